"""The §6.3 fusion head as numpy arithmetic on per-sample projections (no TensorFlow at step time).

The head computes ``softmax(relu([w · e_face, (1 - w) · e_speech] @ W1 + b1) @ W2 + b2)``. Its first
layer is linear in the scaled embeddings, so with ``W1`` split into the rows that see the face
(``W_face``, the first 128) and the speech embedding (``W_speech``, the last 128)::

    [w · e_face, (1 - w) · e_speech] @ W1 = w · (e_face @ W_face) + (1 - w) · (e_speech @ W_speech)

The two projections ``p_face = e_face @ W_face`` and ``p_speech = e_speech @ W_speech`` (128 numbers
each) do not depend on the weight. An embedding bank stores them once per sample, and the fused
softmax at any ``w_face`` costs one 128-vector blend, a ReLU and a 128 x 6 product: about two
thousand flops, microseconds in numpy.

>>> proj = FusionProjection.from_model(keras_fusion_head)           # doctest: +SKIP
>>> p_face, p_speech = proj.project(e_face, e_speech)               # doctest: +SKIP
>>> proj.fused_softmax(p_face, p_speech, 0.3)                       # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mer_gym.labels import EMOTIONS

EMBEDDING_DIM = 128
"""Width of the face and speech embeddings (and of the head's hidden layer)."""

COMPUTE_DTYPE = np.float64
"""The dtype :meth:`FusionProjection.fused_softmax` computes and returns in.

Inputs (float16 or float32 projections) are upcast to float64, so the result depends only on the
stored values, not on the storage precision of intermediate steps; for one sample the cost of the
wider type is nil.
"""


def check_w_face(w_face: Any, n: int | None = None) -> float | np.ndarray:
    """Validate a face fusion weight: a scalar or one weight per sample, each in [0, 1].

    Args:
        w_face: A number, or an array of shape ``(n,)`` or ``(n, 1)``.
        n: The number of samples an array must cover (None: any length).

    Returns:
        A Python float, or a float64 array of shape ``(n,)``.

    Raises:
        ValueError: A NaN or infinite weight, one outside [0, 1] (naming the value and, for an
            array, its position), or an array of the wrong shape.
    """
    if isinstance(w_face, float | int):  # the per-step case: skip numpy's scalar machinery
        if not 0.0 <= w_face <= 1.0:  # False for NaN too
            raise ValueError(
                f"w_face = {w_face!r}: expected a finite number in [0, 1] "
                "(the face weight; w_speech = 1 - w_face)"
            )
        return float(w_face)
    if np.ndim(w_face) == 0:
        try:
            w = float(w_face)
        except (TypeError, ValueError):
            raise ValueError(
                f"w_face = {w_face!r}: expected a number in [0, 1] (the face weight; w_speech = 1 - w_face)"
            ) from None
        if not 0.0 <= w <= 1.0:  # False for NaN too
            raise ValueError(
                f"w_face = {w!r}: expected a finite number in [0, 1] "
                "(the face weight; w_speech = 1 - w_face)"
            )
        return w
    arr = np.asarray(w_face, dtype=COMPUTE_DTYPE)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
        want = "(n,)" if n is None else f"({n},)"
        raise ValueError(
            f"w_face has shape {np.shape(w_face)}: expected a scalar or one weight per sample, "
            f"shape {want} or {want[:-2]}, 1)"
        )
    bad = ~((arr >= 0.0) & (arr <= 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"w_face[{i}] = {float(arr[i])!r} ({int(bad.sum())} of {arr.size} weights bad): every weight "
            "must be a finite number in [0, 1]"
        )
    return arr


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis (the row maximum is subtracted first)."""
    z = logits - logits.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


@dataclass(frozen=True, eq=False)
class FusionProjection:
    """The weights of a trained fusion head, split for per-sample projection.

    Attributes:
        W_face: float32 (128, 128), the rows of the hidden layer's kernel ``W1`` that see the face
            embedding (``W1[:128]``).
        W_speech: float32 (128, 128), the rows that see the speech embedding (``W1[128:]``).
        b1: float32 (128,), the hidden layer's bias.
        W2: float32 (128, n_classes), the softmax layer's kernel.
        b2: float32 (n_classes,), the softmax layer's bias.
    """

    W_face: np.ndarray
    W_speech: np.ndarray
    b1: np.ndarray
    W2: np.ndarray
    b2: np.ndarray

    def __post_init__(self) -> None:
        for name in ("W_face", "W_speech", "b1", "W2", "b2"):
            value = np.asarray(getattr(self, name), dtype=np.float32)
            if not np.isfinite(value).all():
                raise ValueError(f"FusionProjection.{name} holds NaN or infinite values")
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        e, h = self.W_face.shape if self.W_face.ndim == 2 else (None, None)
        c = self.W2.shape[1] if self.W2.ndim == 2 else None
        want = {
            "W_face": (e, h),
            "W_speech": (e, h),
            "b1": (h,),
            "W2": (h, c),
            "b2": (c,),
        }
        for name, shape in want.items():
            got = getattr(self, name).shape
            if None in shape or got != shape:
                raise ValueError(
                    f"FusionProjection.{name} has shape {got}; the five arrays must have shapes "
                    "W_face (E, H), W_speech (E, H), b1 (H,), W2 (H, C), b2 (C,)"
                )
        # float64 copies for fused_softmax (not fields: they follow from the float32 arrays).
        for name in ("b1", "W2", "b2"):
            object.__setattr__(self, f"_{name}_f64", getattr(self, name).astype(COMPUTE_DTYPE))

    @classmethod
    def from_model(cls, model: Any) -> FusionProjection:
        """Read the weights of a Keras fusion head (:func:`~mer_gym.models.architectures.build_fusion_head`).

        Raises:
            ValueError: If the model has no ``dense128``/``softmax`` layers or their kernels do not
                have the head's shapes (``(2E, H)`` and ``(H, C)``).
        """
        try:
            hidden = model.get_layer("dense128")
            out = model.get_layer("softmax")
        except (AttributeError, ValueError) as exc:
            raise ValueError(
                f"{getattr(model, 'name', type(model).__name__)!r} is not a fusion head (no "
                f"'dense128'/'softmax' layer: {exc}); load fusion_head.keras or build it with "
                "build_fusion_head"
            ) from None
        w1, b1 = (np.asarray(a, np.float32) for a in hidden.get_weights())
        w2, b2 = (np.asarray(a, np.float32) for a in out.get_weights())
        if w1.ndim != 2 or w1.shape[0] % 2:
            raise ValueError(
                f"fusion head kernel dense128 has shape {w1.shape}: expected (2 * embedding_dim, hidden)"
            )
        half = w1.shape[0] // 2
        return cls(W_face=w1[:half], W_speech=w1[half:], b1=b1, W2=w2, b2=b2)

    @property
    def embedding_dim(self) -> int:
        return int(self.W_face.shape[0])

    @property
    def n_classes(self) -> int:
        return int(self.W2.shape[1])

    @property
    def flops_per_sample(self) -> int:
        """Approximate floating-point operations of :meth:`fused_softmax` for one sample."""
        h, c = self.W2.shape
        return 5 * h + 2 * h * c + 4 * c

    def project(self, e_face: np.ndarray, e_speech: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample projections ``(e_face @ W_face, e_speech @ W_speech)``, float32 (N, H) each.

        Computed in float32, the precision of the Keras layer they replace.
        """
        out = []
        for name, e, w in (("e_face", e_face, self.W_face), ("e_speech", e_speech, self.W_speech)):
            e = np.asarray(e, dtype=np.float32)
            if e.ndim != 2 or e.shape[1] != w.shape[0]:
                raise ValueError(f"{name} has shape {e.shape}: expected (N, {w.shape[0]})")
            out.append(e @ w)
        if out[0].shape[0] != out[1].shape[0]:
            raise ValueError(
                f"e_face has {out[0].shape[0]} rows but e_speech {out[1].shape[0]}: pass paired samples"
            )
        return out[0], out[1]

    def fused_softmax(
        self, p_face: np.ndarray, p_speech: np.ndarray, w_face: float | np.ndarray
    ) -> np.ndarray:
        """The fusion head's softmax from stored projections, for any face weight.

        Args:
            p_face: Face projections, (N, H), or (H,) for one sample.
            p_speech: Speech projections, same shape as ``p_face``.
            w_face: The face weight in [0, 1] (``w_speech = 1 - w_face``): a scalar, or one weight
                per sample (shape (N,) or (N, 1)).

        Returns:
            float64 probabilities (see :data:`COMPUTE_DTYPE`), shape (N, C), or (C,) for one sample;
            each row sums to 1.

        Raises:
            ValueError: NaN or out-of-range ``w_face``, or projections of the wrong shape.
        """
        h = self.b1.shape[0]
        pf = p_face if isinstance(p_face, np.ndarray) else np.asarray(p_face, COMPUTE_DTYPE)
        ps = p_speech if isinstance(p_speech, np.ndarray) else np.asarray(p_speech, COMPUTE_DTYPE)
        if pf.shape != ps.shape or pf.ndim not in (1, 2) or pf.shape[-1] != h:
            raise ValueError(
                f"p_face {pf.shape} and p_speech {ps.shape}: expected the same shape, (N, {h}) or ({h},)"
            )
        w = check_w_face(w_face, pf.shape[0] if pf.ndim == 2 else None)
        if not isinstance(w, float):
            if pf.ndim == 1:
                raise ValueError(
                    f"w_face has shape {w.shape} but the projections hold one sample: pass a scalar"
                )
            w = w[:, None]
        # z = w · p_face + (1 - w) · p_speech, as p_speech + w · (p_face - p_speech), in place in
        # one float64 copy of p_face (p_speech is upcast exactly inside the ufuncs).
        z = pf.astype(COMPUTE_DTYPE)
        z -= ps
        z *= w
        z += ps
        z += self._b1_f64
        np.maximum(z, 0.0, out=z)
        return softmax(z @ self._W2_f64 + self._b2_f64)

    def arrays(self) -> dict[str, np.ndarray]:
        """The five arrays by name (for saving beside a bank)."""
        return {k: getattr(self, k) for k in ("W_face", "W_speech", "b1", "W2", "b2")}


def check_classes(proj: FusionProjection) -> None:
    """Raise if the head's class count differs from :data:`mer_gym.labels.EMOTIONS`."""
    if proj.n_classes != len(EMOTIONS):
        raise ValueError(
            f"the fusion head has {proj.n_classes} classes but mer-gym uses {len(EMOTIONS)} "
            f"({', '.join(EMOTIONS)}): retrain it with `mer-gym models train`"
        )


__all__ = ["COMPUTE_DTYPE", "EMBEDDING_DIM", "FusionProjection", "check_classes", "check_w_face", "softmax"]
