"""Run a study: every (condition, policy, user, seed) job, in parallel, resumable.

:func:`run_study` plans the jobs of a :class:`~studies.spec.Study`, runs those not yet finished
with joblib (local processes) or Ray (``backend="ray"``, local or a cluster's ``address``), and
writes each job's result the moment it comes back: ``jobs/<key>.parquet`` (one row per pilot day,
:data:`DAY_COLUMNS`), written to a temporary name and renamed, so a file that exists is whole. A
killed run loses only the jobs in flight; ``resume=True`` skips every finished job and computes
the rest. Results do not depend on the backend or the number of workers: a job is a pure function
of the study and its (condition, policy, user, seed).

Only the driver writes (workers return their tables), so a Ray cluster needs no shared disk.

Output folder::

    study.json        the validated study (its digest guards --resume)
    provenance.json   package versions, model and pool sha256s, git revision, backend, timings
    jobs/             one parquet per finished job (the days table, in pieces)
    qtables/          final Q-tables of the warm start's source policy (waves study)
    interactions/     one parquet per job with one row per interaction (log_interactions: true)
    days.parquet, days.csv   all jobs' days, sorted (written by :func:`collect`)
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mer_gym.labels import EMOTIONS
from studies.spec import Study

__all__ = [
    "DAY_COLUMNS",
    "Job",
    "StudyError",
    "collect",
    "plan",
    "run_job",
    "run_study",
]

N = len(EMOTIONS)
_INDEX = {e: i for i, e in enumerate(EMOTIONS)}
#: confusion-count columns: ``cm_<true>_<predicted>`` (emotion indices)
CM_COLUMNS = tuple(f"cm_{i}_{j}" for i in range(N) for j in range(N))
#: one row per (condition, policy, user, seed, pilot day with at least one interaction)
DAY_COLUMNS = (
    "condition", "policy", "user_id", "subgroup", "seed", "stream_seed", "day", "week", "n",
    "correct", "oracle_correct", "explicit", "confirmations", "corrections", "reward",
    "w_face_mean", "w_face_end", "in_episode", *CM_COLUMNS,
)


class StudyError(RuntimeError):
    """A study cannot run as asked (its message says what to do)."""


@dataclass(frozen=True, order=True)
class Job:
    """One policy on one user's pilot under one condition and seed."""

    condition: str
    policy: str
    user: int
    user_id: str
    seed: int

    @property
    def key(self) -> str:
        """A file-safe unique name."""
        raw = f"{self.condition}|{self.policy}|{self.user_id}|{self.seed}"
        safe = re.sub(r"[^A-Za-z0-9_.=+-]", "_", f"{self.condition}__{self.policy}__{self.user_id}__s{self.seed}")
        return f"{safe}__{hashlib.sha256(raw.encode()).hexdigest()[:8]}"


# ---------------------------------------------------------------------------------------------
# The users of a condition (built once per process)


_PROFILES: dict[tuple[str, str], tuple[Any, ...]] = {}
_ENVS: dict[tuple[str, str, str], Any] = {}


def _profiles_cached(digest: str, study: Study, condition: str) -> tuple[Any, ...]:
    key = (digest, condition)
    if key not in _PROFILES:
        _PROFILES[key] = _sample(study, condition)
    return _PROFILES[key]


def _sample(study: Study, condition: str) -> tuple[Any, ...]:
    from simulators.users.pool import default_pool
    from simulators.users.population import load_population, merge, sample_population

    pop = study.population
    overrides = merge(pop.overrides, study.condition(condition).population)
    if pop.days is not None:
        overrides = merge(overrides, {"profile": {"schedule": {"days": pop.days}}})
    preset = load_population(pop.preset, overrides)
    return tuple(sample_population(preset, default_pool(), n_users=pop.n_users, seed=pop.seed))


def profiles(study: Study, condition: str) -> list[Any]:
    """The sampled users of ``condition`` (the same in every process)."""
    return list(_profiles_cached(study.digest(), study, condition))


def plan(study: Study) -> list[Job]:
    """Every job of the study, in a fixed order (condition, policy, seed, user)."""
    jobs = []
    for cond in study.condition_labels:
        users = profiles(study, cond)
        for label in study.labels:
            for seed in study.seeds:
                jobs.extend(Job(cond, label, i, p.user_id, seed) for i, p in enumerate(users))
    return jobs


# ---------------------------------------------------------------------------------------------
# One job


def _env_cached(digest: str, study: Study, condition: str, actions: str) -> Any:
    key = (digest, condition, actions)
    if key not in _ENVS:
        _ENVS[key] = _make_env(study, condition, actions)
    return _ENVS[key]


def _make_env(study: Study, condition: str, actions: str) -> Any:
    from mer_gym.envs import PersonalizationEnv
    from simulators.users.pool import default_pool

    return PersonalizationEnv(
        profiles=profiles(study, condition), pool=default_pool(), actions=actions,
        **study.env_kwargs(condition),
    )


def _make_policy(study: Study, job: Job) -> Any:
    from agents.base import make_policy

    name, params = study.policy_params(job.policy, job.condition)
    policy = make_policy(name, **params)
    config = getattr(policy, "config", None)
    # the policy's own randomness follows the study seed (unless the study fixes it)
    if config is not None and hasattr(config, "seed") and "seed" not in params:
        policy = make_policy(name, **{**params, "seed": job.seed})
    return policy


def run_job(study: Study, job: Job, table: np.ndarray | None = None) -> dict[str, Any]:
    """Play ``job`` and summarize it.

    Args:
        table: the warm start's population Q-table (the waves study), or None.

    Returns:
        ``{"days": DataFrame (DAY_COLUMNS), "interactions": DataFrame | None,
        "q_table": ndarray | None}``.
    """
    from agents.runner import play
    from mer_gym.envs.personalization import weight_levels

    policy = _make_policy(study, job)
    if table is None and getattr(getattr(policy, "config", None), "init", None) == "population":
        table = np.zeros(policy.shape)  # the first wave has no earlier users: a cold start
    if table is not None:
        policy.set_population(table)
    env = _env_cached(study.digest(), study, job.condition, policy.actions)
    log = play(policy, env, user=job.user, seed=job.seed)
    base = env.unwrapped
    stream = base.stream
    labels = np.asarray(stream.label, np.int64)
    pred = log["prediction"].map(_INDEX).to_numpy(np.int64)
    if len(labels) != len(log):
        raise StudyError(f"job {job}: the log has {len(log)} rows but the stream {len(labels)} interactions")
    # the per-sample oracle: is there a weight on the grid whose prediction is right?
    try:
        grid = weight_levels(base.delta_w)
    except ValueError:
        grid = weight_levels(0.1)
    oracle = np.zeros(len(labels), np.bool_)
    for w in grid:
        oracle |= base.fused_table(float(w)).argmax(axis=1) == labels
    days = _days(study, job, log, labels, pred, oracle, np.asarray(stream.in_episode, np.bool_))
    q_table = None
    ws = study.warm_start
    if ws is not None and job.policy == ws.source and hasattr(policy, "tables"):
        policy.fit_population([job.user_id])  # flushes pending batch updates
        q_table = np.asarray(policy.tables[job.user_id], np.float64)
    interactions = None
    if study.log_interactions:
        interactions = log.assign(condition=job.condition, policy=job.policy, seed=job.seed,
                                  oracle_correct=oracle, in_episode=np.asarray(stream.in_episode, np.bool_))
    return {"days": days, "interactions": interactions, "q_table": q_table}


def _days(
    study: Study, job: Job, log: pd.DataFrame, labels: np.ndarray, pred: np.ndarray,
    oracle: np.ndarray, in_episode: np.ndarray,
) -> pd.DataFrame:
    """Sum one job's interactions per pilot day (:data:`DAY_COLUMNS`)."""
    day = log["day"].to_numpy(np.int64)
    starts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
    ends = np.r_[starts[1:], len(day)]
    if np.any(np.diff(day[starts]) <= 0):
        raise StudyError(f"job {job}: pilot days are not in order in the log")

    def per_day(x: np.ndarray) -> np.ndarray:
        return np.add.reduceat(np.asarray(x, np.float64), starts)

    n = ends - starts
    w = log["w_face"].to_numpy(np.float64)
    cm = np.zeros((len(starts), N * N), np.int64)
    cell = labels * N + pred
    d_index = np.repeat(np.arange(len(starts)), n)
    np.add.at(cm, (d_index, cell), 1)
    subgroup = profiles(study, job.condition)[job.user].subgroup
    out = pd.DataFrame({
        "condition": job.condition,
        "policy": job.policy,
        "user_id": job.user_id,
        "subgroup": subgroup,
        "seed": np.int64(job.seed),
        "stream_seed": log["stream_seed"].to_numpy(np.int64)[starts],
        "day": day[starts],
        "week": log["week"].to_numpy(np.int64)[starts],
        "n": n.astype(np.int64),
        "correct": per_day(labels == pred).astype(np.int64),
        "oracle_correct": per_day(oracle).astype(np.int64),
        "explicit": per_day(log["explicit"].to_numpy()).astype(np.int64),
        "confirmations": per_day(log["confirmations"].to_numpy()).astype(np.int64),
        "corrections": per_day(log["corrections"].to_numpy()).astype(np.int64),
        "reward": per_day(log["reward"].to_numpy()),
        "w_face_mean": per_day(w) / n,
        "w_face_end": w[ends - 1],
        "in_episode": per_day(in_episode).astype(np.int64),
    })
    cms = pd.DataFrame(cm, columns=list(CM_COLUMNS))
    return pd.concat([out, cms], axis=1)[list(DAY_COLUMNS)]


def _run_chunk(study: Study, jobs: Sequence[Job], tables: dict[Job, np.ndarray] | None = None) -> list[tuple[Job, dict[str, Any]]]:
    tables = tables or {}
    return [(job, run_job(study, job, tables.get(job))) for job in jobs]


# ---------------------------------------------------------------------------------------------
# Writing


def _atomic_parquet(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def _atomic_bytes(data: bytes, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _atomic_npy(a: np.ndarray, path: Path) -> None:
    import io

    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    _atomic_bytes(buf.getvalue(), path)


def _write(out: Path, job: Job, result: dict[str, Any]) -> None:
    """Write one job's result; the days file is written last, so that it marks the job finished."""
    if result["q_table"] is not None:
        _atomic_npy(result["q_table"], out / "qtables" / f"{job.key}.npy")
    if result["interactions"] is not None:
        _atomic_parquet(result["interactions"], out / "interactions" / f"{job.key}.parquet")
    _atomic_parquet(result["days"], out / "jobs" / f"{job.key}.parquet")


def finished(out: Path, jobs: Iterable[Job]) -> set[Job]:
    folder = out / "jobs"
    names = {p.name for p in folder.glob("*.parquet")} if folder.is_dir() else set()
    return {job for job in jobs if f"{job.key}.parquet" in names}


# ---------------------------------------------------------------------------------------------
# Backends


def _chunks(jobs: Sequence[Job], size: int) -> list[list[Job]]:
    return [list(jobs[i : i + size]) for i in range(0, len(jobs), size)]


def _joblib_results(
    study: Study, chunks: list[list[Job]], tables: dict[Job, np.ndarray], n_workers: int
) -> Iterator[list[tuple[Job, dict[str, Any]]]]:
    if n_workers == 1:
        for chunk in chunks:
            yield _run_chunk(study, chunk, {j: tables[j] for j in chunk if j in tables})
        return
    from joblib import Parallel, delayed

    parallel = Parallel(n_jobs=n_workers, return_as="generator_unordered", batch_size=1)
    yield from parallel(
        delayed(_run_chunk)(study, chunk, {j: tables[j] for j in chunk if j in tables}) for chunk in chunks
    )


def _ray_results(
    study: Study, chunks: list[list[Job]], tables: dict[Job, np.ndarray], n_workers: int, address: str | None
) -> Iterator[list[tuple[Job, dict[str, Any]]]]:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise StudyError("backend 'ray' needs Ray: pip install 'mer-gym[ray]'") from exc
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            kwargs["address"] = address
        else:
            kwargs["num_cpus"] = n_workers
        # workers import this package: make the driver's import path theirs
        kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}}
        ray.init(**kwargs)
        started = True
    try:
        remote = ray.remote(_run_chunk)
        ref = ray.put(study)
        pending = [remote.remote(ref, chunk, {j: tables[j] for j in chunk if j in tables}) for chunk in chunks]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for item in done:
                yield ray.get(item)
    finally:
        if started:
            ray.shutdown()


# ---------------------------------------------------------------------------------------------
# The study


def _versions() -> dict[str, str]:
    names = ("mer-gym", "numpy", "pandas", "scipy", "scikit-learn", "gymnasium", "stable-baselines3",
             "tensorflow-cpu", "keras", "torch", "seaborn", "matplotlib", "joblib", "ray", "pyarrow")
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _artifacts() -> dict[str, str]:
    """sha256 of the shipped models (from their verified cards) and of the user pool."""
    from mer_gym.models.frozen import default_dir as models_dir

    folder = Path(models_dir())
    out = {}
    for card in sorted(folder.glob("*.card.json")):
        out[card.name.removesuffix(".card.json") + ".keras"] = json.loads(card.read_text()).get("sha256", "?")
    pool = folder / "user_pool.json"
    if pool.is_file():
        out["user_pool.npz"] = json.loads(pool.read_text()).get("npz_sha256", "?")
    return out


def _git() -> dict[str, Any]:
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return {"revision": "unknown (not a git checkout)"}
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10)
        return {"revision": rev.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"revision": "unknown (git not found)"}


def provenance(study: Study, backend: str, n_workers: int) -> dict[str, Any]:
    return {
        "study": study.name,
        "study_sha256": study.digest(),
        "versions": _versions(),
        "artifacts_sha256": _artifacts(),
        "git": _git(),
        "backend": backend,
        "workers": n_workers,
        "platform": platform.platform(),
        "command": " ".join(sys.argv),
    }


def _warm_tables(study: Study, out: Path, jobs: Sequence[Job]) -> dict[Job, np.ndarray]:
    """The warm start's table for each of ``jobs``: the mean final table of the source policy over
    users of earlier waves (same condition and seed); none (cold) for the first wave."""
    ws = study.warm_start
    assert ws is not None
    tables = {}
    for job in jobs:
        users = profiles(study, job.condition)
        start = users[job.user].schedule.start_day
        earlier = [u for u in users if u.schedule.start_day < start]
        if not earlier:
            continue
        arrays = []
        for u in earlier:
            src = Job(job.condition, ws.source, users.index(u), u.user_id, job.seed)
            path = out / "qtables" / f"{src.key}.npy"
            if not path.is_file():
                raise StudyError(f"warm start: the source table {path.name} is missing; rerun with --resume")
            arrays.append(np.load(path, allow_pickle=False))
        tables[job] = np.mean(arrays, axis=0)
    return tables


def run_study(
    study: Study,
    out: str | Path,
    *,
    backend: str = "joblib",
    n_workers: int | None = None,
    address: str | None = None,
    resume: bool = False,
    chunk_size: int = 4,
    progress: bool = True,
    on_job: Callable[[Job], None] | None = None,
) -> Path:
    """Run (or resume) ``study`` into folder ``out`` and collect its days table.

    Args:
        backend: ``"joblib"`` (local processes) or ``"ray"`` (a local Ray, or the cluster at
            ``address``).
        n_workers: parallel workers (default: the machine's CPU count; 1 runs in this process).
        resume: continue the run in ``out`` (refused if its study differs); without it, an ``out``
            holding a run is refused.
        chunk_size: jobs sent to a worker at once.
        on_job: called after each job's result is written (progress hooks, tests).

    Returns:
        ``out``.

    Raises:
        StudyError: ``out`` holds another run, or the backend is unknown.
    """
    out = Path(out)
    if backend not in ("joblib", "ray"):
        raise StudyError(f"backend = {backend!r}: expected 'joblib' or 'ray'")
    n_workers = n_workers or os.cpu_count() or 1
    if n_workers < 1:
        raise StudyError(f"n_workers = {n_workers!r}: expected an integer >= 1")
    spec_path = out / "study.json"
    if spec_path.exists():
        saved = json.loads(spec_path.read_text())
        if not resume:
            raise StudyError(
                f"{out} already holds a run of study {saved.get('name')!r}: pass --resume to continue it, "
                "or choose another --out"
            )
        if saved.get("sha256") != study.digest():
            raise StudyError(
                f"{out} holds a run of a different study (sha256 {str(saved.get('sha256'))[:12]}… vs "
                f"{study.digest()[:12]}…): resume it with the same YAML, or choose another --out"
            )
    for sub in ("jobs", "qtables", "interactions"):
        (out / sub).mkdir(parents=True, exist_ok=True)
        for stale in (out / sub).glob(".*.partial"):  # a write a killed run left half done
            stale.unlink()
    _atomic_bytes(json.dumps({"name": study.name, "sha256": study.digest(), "study": study.to_dict()},
                             indent=2).encode(), spec_path)
    t0 = time.perf_counter()
    jobs = plan(study)
    done = finished(out, jobs)
    ws = study.warm_start
    warm = [j for j in jobs if ws is not None and j.policy == ws.policy]
    first = [j for j in jobs if j not in set(warm) and j not in done]
    bar = _progress(len(jobs), len(done), progress, study.name)
    computed = 0
    try:
        for phase in (first, "warm"):
            if phase == "warm":
                todo = [j for j in warm if j not in done]
                tables = _warm_tables(study, out, todo) if todo else {}
            else:
                todo, tables = phase, {}
            if not todo:
                continue
            chunks = _chunks(todo, chunk_size)
            results = (
                _ray_results(study, chunks, tables, n_workers, address)
                if backend == "ray"
                else _joblib_results(study, chunks, tables, n_workers)
            )
            for chunk in results:
                for job, result in chunk:
                    _write(out, job, result)
                    computed += 1
                    if bar is not None:
                        bar.update(1)
                    if on_job is not None:
                        on_job(job)
    finally:
        if bar is not None:
            bar.close()
    prov = provenance(study, backend, n_workers)
    prov.update({"jobs": len(jobs), "computed_now": computed, "resumed_from": len(done),
                 "run_s": round(time.perf_counter() - t0, 2)})
    _atomic_bytes(json.dumps(prov, indent=2).encode(), out / "provenance.json")
    collect(study, out, jobs)
    return out


def _progress(total: int, initial: int, enabled: bool, name: str) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=f"study {name}", unit="job", file=sys.stderr)


def collect(study: Study, out: Path, jobs: Sequence[Job] | None = None) -> pd.DataFrame:
    """All finished jobs' days in one table, sorted (condition, policy, user, seed, day) in the
    study's order; written to ``days.parquet`` and ``days.csv``.

    Raises:
        StudyError: a job of the study has no result yet (``--resume`` computes it).
    """
    out = Path(out)
    jobs = plan(study) if jobs is None else list(jobs)
    missing = [j for j in jobs if not (out / "jobs" / f"{j.key}.parquet").is_file()]
    if missing:
        raise StudyError(f"{len(missing)} of {len(jobs)} jobs have no result in {out}: run again with --resume")
    frames = [pd.read_parquet(out / "jobs" / f"{j.key}.parquet") for j in jobs]
    days = pd.concat(frames, ignore_index=True)
    _atomic_parquet(days, out / "days.parquet")
    tmp = out / ".days.csv.partial"
    days.to_csv(tmp, index=False)
    os.replace(tmp, out / "days.csv")
    return days
