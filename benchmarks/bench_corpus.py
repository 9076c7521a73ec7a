"""Throughput of the corpus generators and the Haar face-detection rate on their frames.

    python benchmarks/bench_corpus.py [--faces 600] [--utterances 150] [--detect 300] [--seed 0]

Pins itself to one CPU core (the issue's targets are per core: >= 200 faces/s, >= 50 utterances/s)
and prints one table. Rates are wall-clock over the given number of items, after a warm-up.
The detection rate uses the same cascade and parameters as the paper's face crop
(``mer_gym.preprocessing.haar.DEFAULT_HAAR``), on clean frames and on frames under the default
preset's capture-condition distribution.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import time

import cv2
import numpy as np
import pandas as pd

from mer_gym.labels import EMOTIONS
from mer_gym.preprocessing.haar import detect_faces
from simulators.corpus.faces import FaceConditions, FaceIdentity, render_face
from simulators.corpus.speech import VoiceIdentity, synthesize
from simulators.corpus.writer import load_preset


def _pin_one_core() -> str:
    cv2.setNumThreads(1)
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"core {core}"
    return "unpinned"


def bench_faces(n: int, seed: int) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
    preset = load_preset("default")
    rng = np.random.default_rng(seed)
    identities = [FaceIdentity.sample(rng, sex=("female", "male")[i % 2]) for i in range(24)]
    work = [(identities[i % 24], EMOTIONS[i % 6], float(rng.uniform(0.3, 1.0))) for i in range(n)]
    conds = [preset.face_conditions.sample(rng) for _ in range(n)]
    for ident, emo, inten in work[:10]:  # warm-up
        render_face(ident, emo, inten, conds[0], rng, size=preset.face_size)
    t0 = time.perf_counter()
    frames = [
        render_face(ident, emo, inten, c, rng, size=preset.face_size)
        for (ident, emo, inten), c in zip(work, conds, strict=True)
    ]
    rate = n / (time.perf_counter() - t0)
    clean = [
        render_face(ident, emo, inten, FaceConditions.clean(), rng, size=preset.face_size)
        for ident, emo, inten in work
    ]
    return rate, frames, clean


def bench_speech(n: int, seed: int) -> tuple[float, float]:
    preset = load_preset("default")
    rng = np.random.default_rng(seed)
    voices = [VoiceIdentity.sample(rng, sex=("female", "male")[i % 2]) for i in range(24)]
    work = [(voices[i % 24], EMOTIONS[i % 6], float(rng.uniform(0.3, 1.0))) for i in range(n)]
    conds = [preset.speech_conditions.sample(rng) for _ in range(n)]
    for v, emo, inten in work[:5]:
        synthesize(v, emo, inten, conds[0], rng)
    t0 = time.perf_counter()
    seconds = 0.0
    for (v, emo, inten), c in zip(work, conds, strict=True):
        seconds += len(synthesize(v, emo, inten, c, rng, sample_rate=preset.sample_rate)) / preset.sample_rate
    elapsed = time.perf_counter() - t0
    return n / elapsed, seconds / elapsed


def detection_rate(frames: list[np.ndarray]) -> float:
    return float(np.mean([len(detect_faces(f)) > 0 for f in frames]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=600)
    parser.add_argument("--utterances", type=int, default=150)
    parser.add_argument("--detect", type=int, default=300, help="frames per condition for the Haar rate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    where = _pin_one_core()

    face_rate, frames, clean = bench_faces(max(args.faces, args.detect), args.seed)
    utt_rate, realtime = bench_speech(args.utterances, args.seed)
    rows = [
        ("face frames rendered per second (160x160, default conditions)", f"{face_rate:,.0f}", ">= 200"),
        ("utterances synthesized per second (16 kHz, default conditions)", f"{utt_rate:,.1f}", ">= 50"),
        ("  audio seconds synthesized per wall second", f"{realtime:,.1f}", ""),
        (f"Haar detection rate, clean frames (n={args.detect})", f"{detection_rate(clean[: args.detect]):.1%}", ">= 90%"),
        (
            f"Haar detection rate, default conditions (n={args.detect})",
            f"{detection_rate(frames[: args.detect]):.1%}",
            "reported",
        ),
    ]
    table = pd.DataFrame(rows, columns=["measure", "value", "target"])
    print(f"corpus generator benchmark ({where}, seed {args.seed})")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
