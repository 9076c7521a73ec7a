"""Face CNN and speech LSTM on this CPU: Keras vs TFLite float32 vs TFLite int8.

    python benchmarks/bench_models.py [--corpus runs/corpus-default] [--models-dir frozen_models]
        [--split test] [--repeats 200] [--threads 1] [--export] [--json out.json]

For each model and runtime it reports the file size, accuracy and macro-F1 on one corpus split
(sklearn), the accuracy change against Keras in percentage points, how often the argmax agrees
with Keras, the single-sample latency (batch 1, median and 95th percentile over ``--repeats``
calls after ``--warmup`` calls, cycling over the split's samples), the throughput over the whole
split (Keras: ``predict`` at ``--batch`` 256; TFLite: the batch-1 interpreter looped over the
samples, the way an edge device runs it) and the footprint: the peak resident memory
(``VmHWM``; ``resource.getrusage`` off Linux) of a fresh process that loads the model and classifies single samples.

Each runtime runs in its own subprocess so the footprints do not mix: a TFLite process imports
only NumPy and ``ai_edge_litert`` (no TensorFlow), a Keras process imports TensorFlow. Every
process uses ``--threads`` CPU threads (default 1, as on a small edge core). The paper (Arzu et
al. 2026) claims 35-120 ms per sample on edge devices and a 120 MB footprint.

The TFLite files are taken from ``--models-dir`` (``face_cnn_float32.tflite``, ...); with
``--export``, when any is missing, all four are exported to a temporary folder first
(:func:`mer_gym.models.export.export_all`, int8 calibrated on training samples of ``--corpus``).
``--json`` writes every number (and the export's sizes and sha256s) for the README and cards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

KINDS = ("face", "speech")
RUNTIMES = ("keras", "float32", "int8")
MODEL_FILE = {"face": "face_cnn", "speech": "speech_lstm"}
PAPER = "paper: 35-120 ms per sample on edge devices, 120 MB footprint"


# ---------------------------------------------------------------------------------------------
# Worker: one model in one runtime, in a fresh process


def _peak_rss_mb() -> float:
    """Peak resident memory of this process in MB.

    Linux: ``VmHWM`` of ``/proc/self/status``, the high-water mark of this program's own address
    space. ``resource.getrusage(...).ru_maxrss`` survives ``execve`` on Linux, so in a worker it
    would report the (larger) parent's peak at the moment it forked. Elsewhere: ``ru_maxrss``.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024  # bytes vs KiB


def _model_input(data: Path, kind: str, idx: slice | np.ndarray) -> np.ndarray:
    """Rows ``idx`` of the split as float32 model input (faces: same as data.face_batch)."""
    if kind == "face":
        u8 = np.load(data / "faces.npy", mmap_mode="r")[idx]
        return (u8.astype(np.float32) / np.float32(255.0))[..., np.newaxis]
    return np.array(np.load(data / "speech.npy", mmap_mode="r")[idx], np.float32)


def worker(args: argparse.Namespace) -> dict:
    kind, runtime = args.worker.split(":")
    data = Path(args.data)
    n = int(np.load(data / "labels.npy", mmap_mode="r").shape[0])
    # Phase 1: load the model and classify single samples (the footprint is measured here).
    t0 = time.perf_counter()
    if runtime == "keras":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
        from mer_gym.models.architectures import embedding_model
        from mer_gym.models.frozen import load_model

        model = embedding_model(
            load_model(MODEL_FILE[kind], args.models_dir, verify_hash=not args.no_verify)
        )

        def one(x: np.ndarray) -> None:
            model.predict_on_batch(x)

    else:
        from mer_gym.models.export import TFLiteModel, tflite_name

        model = TFLiteModel(
            Path(args.tflite_dir) / tflite_name(kind, runtime), num_threads=args.threads
        )

        def one(x: np.ndarray) -> None:
            model.predict(x)

    load_s = time.perf_counter() - t0
    samples = [_model_input(data, kind, slice(i % n, i % n + 1)) for i in range(min(n, 64))]
    for i in range(args.warmup):
        one(samples[i % len(samples)])
    lat = np.empty(args.repeats)
    for i in range(args.repeats):
        x = samples[i % len(samples)]
        t = time.perf_counter()
        one(x)
        lat[i] = time.perf_counter() - t
    footprint = _peak_rss_mb()

    # Phase 2: the whole split (accuracy and throughput).
    x = _model_input(data, kind, slice(None))
    if runtime == "keras":
        model.predict(x[: args.batch], batch_size=args.batch, verbose=0)  # warm-up
        t = time.perf_counter()
        _, prob = model.predict(x, batch_size=args.batch, verbose=0)
        wall = time.perf_counter() - t
    else:
        t = time.perf_counter()
        _, prob = model.predict(x)
        wall = time.perf_counter() - t
    return {
        "model": MODEL_FILE[kind],
        "runtime": runtime,
        "load_s": load_s,
        "latency_ms_median": float(np.median(lat) * 1e3),
        "latency_ms_p95": float(np.percentile(lat, 95) * 1e3),
        "throughput_sps": n / wall,
        "throughput_batch": args.batch if runtime == "keras" else 1,
        "peak_rss_mb": footprint,
        "pred": np.asarray(prob).argmax(1).tolist(),
    }


# ---------------------------------------------------------------------------------------------
# Parent: data, exports, one worker per model and runtime, the table


def _missing_tflite(args: argparse.Namespace) -> list[str]:
    from mer_gym.models.export import TFLITE_FILES

    missing = [f for f in TFLITE_FILES if not (Path(args.models_dir) / f).is_file()]
    if missing and not args.export:
        sys.exit(
            f"{args.models_dir} lacks {', '.join(missing)}: pass --export to export them to a "
            "temporary folder first (or write them with mer_gym.models.export.export_all)"
        )
    return missing


def _prepare_tflite(
    args: argparse.Namespace, arrays, missing: list[str]
) -> tuple[Path, dict, tempfile.TemporaryDirectory | None]:
    from mer_gym.models.export import export_all

    models_dir = Path(args.models_dir)
    if not missing:
        return models_dir, {}, None
    tmp = tempfile.TemporaryDirectory(prefix="mer-gym-tflite-")
    print(
        f"exporting TFLite models of {models_dir} (int8 calibrated on train samples) ...",
        flush=True,
    )
    info = export_all(models_dir, tmp.name, arrays, verify_hash=not args.no_verify)
    return Path(tmp.name), info, tmp


def _run_worker(args: argparse.Namespace, spec: str, data: Path, tflite_dir: Path) -> dict:
    cmd = [
        sys.executable, __file__, "--worker", spec, "--data", str(data),
        "--models-dir", str(args.models_dir), "--tflite-dir", str(tflite_dir),
        "--repeats", str(args.repeats), "--warmup", str(args.warmup),
        "--batch", str(args.batch), "--threads", str(args.threads),
    ]  # fmt: skip
    if args.no_verify:
        cmd.append("--no-verify")
    env = dict(os.environ)
    for var in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "TF_NUM_INTRAOP_THREADS",
        "TF_NUM_INTEROP_THREADS",
    ):
        env[var] = str(args.threads)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        sys.exit(f"benchmark worker {spec} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _baseline_rss_mb() -> float:
    """Peak RSS of a bare Python process that imports NumPy (what every worker starts from)."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import numpy, bench_models; "
        "print(bench_models._peak_rss_mb())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout)


def _markdown(table) -> str:
    """A pipe table (pandas' ``to_markdown`` needs the optional ``tabulate`` package)."""
    cols = list(table.columns)
    cells = [[str(v) for v in row] for row in table.itertuples(index=False)]
    width = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]

    def line(vals: list[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(vals, width, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in width) + "|"
    return "\n".join([line(cols), rule, *(line(r) for r in cells)])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", default="runs/corpus-default", help="generated corpus folder")
    parser.add_argument(
        "--models-dir",
        default="frozen_models",
        help="folder with face_cnn.keras, speech_lstm.keras (and .tflite files)",
    )
    parser.add_argument(
        "--split", default="test", help="corpus split to score (train, val, test, user_pool)"
    )
    parser.add_argument(
        "--repeats", type=int, default=200, help="timed single-sample calls per model"
    )
    parser.add_argument("--warmup", type=int, default=20, help="untimed single-sample calls first")
    parser.add_argument(
        "--batch", type=int, default=256, help="Keras batch size for the throughput"
    )
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per runtime")
    parser.add_argument(
        "--export", action="store_true", help="export missing .tflite files to a temporary folder"
    )
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="skip the sha256 check against model cards (uncarded training output)",
    )
    parser.add_argument("--json", type=Path, help="also write all numbers here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--tflite-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name in ("repeats", "warmup", "batch", "threads"):
        if getattr(args, name) < (0 if name == "warmup" else 1):
            parser.error(f"--{name} must be {'>= 0' if name == 'warmup' else '>= 1'}")
    if args.worker:
        print(json.dumps(worker(args)))
        return

    import pandas as pd
    from sklearn.metrics import accuracy_score, f1_score

    from mer_gym.models.data import corpus_arrays

    models_dir = Path(args.models_dir)
    missing = [
        f"{MODEL_FILE[k]}.keras"
        for k in KINDS
        if not (models_dir / f"{MODEL_FILE[k]}.keras").is_file()
    ]
    if missing:
        sys.exit(
            f"{models_dir} lacks {', '.join(missing)}: train with `mer-gym models train` or pass --models-dir"
        )
    missing_tflite = _missing_tflite(args)  # before the (possibly slow) preprocessing
    arrays = corpus_arrays(args.corpus, progress=False)
    split = arrays.split(args.split)
    if len(split) == 0:
        sys.exit(
            f"split {args.split!r} of {args.corpus} is empty: use one of train, val, test, user_pool"
        )
    tflite_dir, export_info, tmp = _prepare_tflite(args, arrays, missing_tflite)
    labels = split.labels

    rows = []
    with tempfile.TemporaryDirectory(prefix="mer-gym-bench-") as data_dir:
        data = Path(data_dir)
        np.save(data / "faces.npy", split.faces)
        np.save(data / "speech.npy", split.speech)
        np.save(data / "labels.npy", labels)
        for kind in KINDS:
            keras_pred = None
            for runtime in RUNTIMES:
                print(f"  {MODEL_FILE[kind]} / {runtime} ...", flush=True)
                r = _run_worker(args, f"{kind}:{runtime}", data, tflite_dir)
                pred = np.asarray(r.pop("pred"))
                if runtime == "keras":
                    keras_pred = pred
                    path = models_dir / f"{MODEL_FILE[kind]}.keras"
                else:
                    path = tflite_dir / f"{MODEL_FILE[kind]}_{runtime}.tflite"
                r["file"] = path.name
                r["size_kb"] = path.stat().st_size / 1024
                r["accuracy"] = float(accuracy_score(labels, pred))
                r["macro_f1"] = float(
                    f1_score(labels, pred, average="macro", labels=range(6), zero_division=0)
                )
                r["agreement_with_keras"] = float(np.mean(pred == keras_pred))
                rows.append(r)
    if tmp is not None:
        tmp.cleanup()
    for r in rows:
        ref = next(k for k in rows if k["model"] == r["model"] and k["runtime"] == "keras")
        r["delta_accuracy_points"] = 100.0 * (r["accuracy"] - ref["accuracy"])

    baseline = _baseline_rss_mb()
    table = pd.DataFrame(
        {
            "model": [r["model"] for r in rows],
            "runtime": [
                r["runtime"] if r["runtime"] == "keras" else f"tflite {r['runtime']}" for r in rows
            ],
            "file KB": [f"{r['size_kb']:,.0f}" for r in rows],
            "accuracy": [f"{r['accuracy']:.1%}" for r in rows],
            "macro-F1": [f"{r['macro_f1']:.3f}" for r in rows],
            "Δacc (pts)": [f"{r['delta_accuracy_points']:+.1f}" for r in rows],
            "agree": [f"{r['agreement_with_keras']:.1%}" for r in rows],
            "latency ms (median)": [f"{r['latency_ms_median']:.2f}" for r in rows],
            "p95 ms": [f"{r['latency_ms_p95']:.2f}" for r in rows],
            "samples/s": [f"{r['throughput_sps']:,.0f} (b{r['throughput_batch']})" for r in rows],
            "peak RSS MB": [f"{r['peak_rss_mb']:,.0f}" for r in rows],
        }
    )
    cpu = platform.processor() or platform.machine()
    print(
        f"\nmodel benchmark: split {args.split!r} of {args.corpus} (n={len(split)}), "
        f"{args.threads} thread(s), {cpu}, {os.cpu_count()} CPUs"
    )
    print(_markdown(table))
    print(
        f"\nlatency: batch 1 after {args.warmup} warm-up calls, {args.repeats} calls; samples/s: "
        f"Keras predict at batch {args.batch} (b{args.batch}), TFLite batch-1 loop (b1); peak RSS: "
        f"fresh process after loading the model and classifying single samples (bare Python + "
        f"NumPy: {baseline:.0f} MB). {PAPER}."
    )
    if args.json:
        import ai_edge_litert
        import keras
        import tensorflow as tf

        out = {
            "corpus": str(args.corpus),
            "models_dir": str(models_dir),
            "split": args.split,
            "n": len(split),
            "threads": args.threads,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "batch": args.batch,
            "baseline_rss_mb": baseline,
            "machine": {
                "platform": platform.platform(),
                "processor": cpu,
                "cpu_count": os.cpu_count(),
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                "ai_edge_litert": getattr(ai_edge_litert, "__version__", "unknown"),
                "numpy": np.__version__,
            },
            "rows": rows,
            "export": export_info,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
