"""Fusion of the two modalities at a face weight, batched over samples (numpy, float64).

Three modes (the env's ``fusion`` kwarg):

* ``feature`` (the paper's §6.3 head, default): ``softmax(relu(b1 + w·p_face + (1-w)·p_speech) @ W2 + b2)``
  on the pool's per-sample projections (:class:`~mer_gym.models.fusion.FusionProjection`). An absent
  modality enters as a zero embedding, as the head was trained with whole-modality dropout.
* ``late``: the weighted average ``w·P_face + (1-w)·P_speech`` of the two models' own softmaxes.
* ``log_linear``: ``softmax(w·log P_face + (1-w)·log P_speech)`` (a product of experts).

For ``late`` and ``log_linear`` an absent modality gets weight 0 and the present one takes all of
it; a sample with weight 0 on its only present modality uses that modality alone.

:class:`PoolArrays` holds float64 copies of the pool's arrays once per process, so that gathering
a batch of rows costs one fancy index and the result does not depend on the batch's composition.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from mer_gym.labels import EMOTIONS
from simulators.users.pool import UserPool

FUSION_MODES = ("feature", "late", "log_linear")
UNIFORM = np.full(len(EMOTIONS), 1.0 / len(EMOTIONS))
"""What the observation shows for an absent modality's softmax."""
_EPS = 1e-12


def check_fusion(mode: str) -> str:
    if mode not in FUSION_MODES:
        raise ValueError(f"fusion = {mode!r}: expected one of {', '.join(FUSION_MODES)}")
    return mode


@dataclass(frozen=True, eq=False)
class PoolArrays:
    """Float64 row views of a :class:`UserPool` and its fusion head (gathered per batch); the
    softmax rows are renormalized to sum to 1 (float16 storage rounds them)."""

    face_proj: np.ndarray
    speech_proj: np.ndarray
    face_probs: np.ndarray
    speech_probs: np.ndarray
    b1: np.ndarray
    W2: np.ndarray
    b2: np.ndarray

    @classmethod
    def of(cls, pool: UserPool) -> PoolArrays:
        return _pool_arrays(pool)


@functools.lru_cache(maxsize=8)
def _pool_arrays(pool: UserPool) -> PoolArrays:
    def f64(a: np.ndarray) -> np.ndarray:
        out = np.ascontiguousarray(a, dtype=np.float64)
        out.setflags(write=False)
        return out

    def probs(a: np.ndarray) -> np.ndarray:  # float16 storage rounds: renormalize each row
        a = np.asarray(a, dtype=np.float64)
        return f64(a / a.sum(axis=1, keepdims=True))

    proj = pool.projection
    return PoolArrays(
        face_proj=f64(pool.face_flat("proj")),
        speech_proj=f64(pool.speech_flat("proj")),
        face_probs=probs(pool.face_flat("softmax")),
        speech_probs=probs(pool.speech_flat("softmax")),
        b1=f64(proj.b1),
        W2=f64(proj.W2),
        b2=f64(proj.b2),
    )


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def fuse(
    mode: str,
    arrays: PoolArrays,
    face_proj: np.ndarray,
    speech_proj: np.ndarray,
    face_probs: np.ndarray,
    speech_probs: np.ndarray,
    face_present: np.ndarray,
    speech_present: np.ndarray,
    w_face: np.ndarray,
) -> np.ndarray:
    """Fused probabilities (N, 6) for N samples at face weights ``w_face`` (N,).

    ``face_proj``/``speech_proj`` must already be zero where the modality is absent (the env
    gathers them so); ``face_probs``/``speech_probs`` are the models' softmaxes.
    """
    w = w_face[:, None]
    if mode == "feature":
        hidden = arrays.b1 + w * face_proj + (1.0 - w) * speech_proj
        np.maximum(hidden, 0.0, out=hidden)
        return softmax(hidden @ arrays.W2 + arrays.b2)
    wf = w * face_present[:, None]
    ws = (1.0 - w) * speech_present[:, None]
    none = (wf + ws)[:, 0] <= 0.0
    if none.any():  # the only present modality has weight 0: use it alone
        wf = np.where(none[:, None], face_present[:, None].astype(float), wf)
        ws = np.where(none[:, None], speech_present[:, None].astype(float), ws)
    total = wf + ws
    if mode == "late":
        return (wf * face_probs + ws * speech_probs) / total
    logits = (wf * np.log(face_probs + _EPS) + ws * np.log(speech_probs + _EPS)) / total
    return softmax(logits)
