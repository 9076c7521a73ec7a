"""Throughput of the embedding bank: batched inference of both models, fused softmax, build, size.

    python benchmarks/bench_bank.py --corpus runs/corpus-default [--models-dir frozen_models]
        [--batch-sizes 1 32 256] [--samples 1024] [--samples-bs1 200]

Measures, on the machine's CPU cores (TensorFlow's default thread pools; not pinned):

* embedding throughput (samples/s) of the face CNN and the speech LSTM at each batch size, over
  ``--samples`` samples of the corpus (``--samples-bs1`` at batch size 1), after a warm-up batch
  (graph tracing excluded); the face rate includes the uint8 → float conversion;
* :meth:`mer_gym.bank.EmbeddingBank.fused_softmax` for one sample (what an environment step
  costs) and for 1,000 samples at once, in µs per call, next to the Keras fusion head's
  ``predict_on_batch`` on the same input;
* the wall time of :func:`mer_gym.bank.build_bank` (float32, batch 256, preprocessed arrays
  cached, models loaded from disk) and of a cache hit, and the bank's size on disk as float32 and
  float16.

The bank is built in a temporary folder, never beside the corpus. Prints one markdown table.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# numpy's BLAS on one thread, as in bench_corpus.py: fused_softmax's (N, 128) @ (128, 6) product is
# too small to gain from threads, and on a busy machine OpenBLAS threads wait for a core (we saw
# 1,000 samples take 8 ms instead of 0.2 ms). TensorFlow's inference uses its own thread pools.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import tempfile
import time
import timeit
from pathlib import Path

import numpy as np

from mer_gym.bank import EmbeddingBank, build_bank, infer, load_frozen_models
from mer_gym.models.architectures import embedding_model
from mer_gym.models.data import corpus_arrays, face_batch


def throughput(model, x: np.ndarray, batch_size: int, prepare=None) -> tuple[float, int]:
    """Samples per second of batched (embedding, softmax) inference over whole batches of ``x``,
    after a warm-up batch (so graph tracing is not timed); also returns the samples timed."""
    emb = embedding_model(model)
    n = len(x) if len(x) <= batch_size else len(x) // batch_size * batch_size
    infer(emb, x[:batch_size], batch_size=batch_size, prepare=prepare, progress=False)
    _, _, seconds = infer(emb, x[:n], batch_size=batch_size, prepare=prepare, progress=False)
    return n / seconds, n


def per_call_us(fn, min_time: float = 0.5) -> float:
    """Best-of-5 microseconds per call of ``fn`` (timeit's autorange)."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    number = max(number, int(number * min_time / 0.2))
    return min(timer.repeat(5, number)) / number * 1e6


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def md_table(rows: list[tuple[str, str]]) -> str:
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    lines = [f"| {'measure':<{width}} | {'value':>{vwidth}} |", f"|{'-' * (width + 2)}|{'-' * (vwidth + 1)}:|"]
    lines += [f"| {m:<{width}} | {v:>{vwidth}} |" for m, v in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True, help="a generated corpus folder (mer-gym corpus)")
    parser.add_argument("--models-dir", default=None, help="folder with the three .keras files + cards (default: frozen_models/)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32, 256])
    parser.add_argument("--samples", type=int, default=1024, help="samples per throughput run")
    parser.add_argument("--samples-bs1", type=int, default=200, help="samples for batch size 1")
    parser.add_argument("--no-build", action="store_true", help="skip the full bank build (uses a subset bank)")
    args = parser.parse_args()
    import keras
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # one predict graph per batch size is expected, not a problem
    arrays = corpus_arrays(args.corpus, progress=False)
    models = load_frozen_models(args.models_dir)
    rows: list[tuple[str, str]] = []
    for bs in args.batch_sizes:
        n = min(args.samples_bs1 if bs == 1 else args.samples, len(arrays))
        face, n = throughput(models.face, arrays.faces[:n], bs, prepare=face_batch)
        speech, n = throughput(models.speech, arrays.speech[:n], bs)
        rows.append((f"face CNN embeddings/s, batch {bs} (n={n})", f"{face:,.0f}"))
        rows.append((f"speech LSTM embeddings/s, batch {bs} (n={n})", f"{speech:,.0f}"))

    with tempfile.TemporaryDirectory(prefix="bench-bank-") as tmp:
        tmp = Path(tmp)
        out = tmp / "bank-float32"
        if args.no_build:
            from mer_gym.bank import bank_from_arrays

            n = min(args.samples, len(arrays))
            bank = bank_from_arrays(arrays.subset(np.arange(len(arrays)) < n), models, progress=False)
            bank.save(out)
            what = f"subset of {n}"
        else:
            t0 = time.perf_counter()
            bank = build_bank(args.corpus, models_dir=args.models_dir, out=out, progress=False, force=True)
            build_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            hit = build_bank(args.corpus, models_dir=args.models_dir, out=out, progress=False)
            hit_s = time.perf_counter() - t0
            assert hit.from_cache
            what = f"{len(bank):,} samples"
            rows.append((f"bank build, float32, batch 256 ({what}, arrays cached)", f"{build_s:,.1f} s"))
            rows.append(("bank load on a cache hit (key check + sha256 of models + npz)", f"{hit_s:,.2f} s"))
        half = tmp / "bank-float16"
        bank.astype("float16").save(half)
        rows.append((f"bank size on disk, float32 ({what})", f"{dir_size(out) / 1e6:,.2f} MB"))
        rows.append((f"bank size on disk, float16 ({what})", f"{dir_size(half) / 1e6:,.2f} MB"))
        bank16 = EmbeddingBank.load(half)

    rng = np.random.default_rng(0)
    one = int(rng.integers(len(bank)))
    rows_k = rng.choice(len(bank), size=min(1000, len(bank)), replace=len(bank) < 1000)
    w_k = rng.random(len(rows_k))
    rows.append(("fused_softmax, 1 sample, scalar w (float32 bank)", f"{per_call_us(lambda: bank.fused_softmax(one, 0.37)):,.1f} µs"))
    rows.append(("fused_softmax, 1 sample, scalar w (float16 bank)", f"{per_call_us(lambda: bank16.fused_softmax(one, 0.37)):,.1f} µs"))
    rows.append((f"fused_softmax, {len(rows_k):,} samples, per-sample w", f"{per_call_us(lambda: bank.fused_softmax(rows_k, w_k)):,.1f} µs"))
    ef = np.asarray(bank.face_embedding[[one]], np.float32)
    es = np.asarray(bank.speech_embedding[[one]], np.float32)
    wf = np.full((1, 1), 0.37, np.float32)
    models.fusion.predict_on_batch([ef, es, wf])
    rows.append(("Keras fusion head predict_on_batch, 1 sample (for comparison)", f"{per_call_us(lambda: models.fusion.predict_on_batch([ef, es, wf])):,.1f} µs"))
    ek = np.asarray(bank.face_embedding[rows_k], np.float32)
    sk = np.asarray(bank.speech_embedding[rows_k], np.float32)
    keras_k = models.fusion.predict([ek, sk, w_k[:, None].astype(np.float32)], batch_size=len(rows_k), verbose=0)
    err = np.abs(bank.fused_softmax(rows_k, w_k) - keras_k).max()
    err16 = np.abs(bank16.fused_softmax(rows_k, w_k) - keras_k).max()
    rows.append(("max abs difference fused_softmax vs Keras head, float32 bank", f"{err:.1e}"))
    rows.append(("max abs difference fused_softmax vs Keras head, float16 bank", f"{err16:.1e}"))

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"embedding bank benchmark ({cores} CPU cores, keras {keras.__version__}, "
        f"models {models.directory}, corpus {args.corpus})\n"
    )
    print(md_table(rows))


if __name__ == "__main__":
    main()
