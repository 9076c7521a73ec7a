"""Bad inputs, one by one, and what a user sees for each: the table in docs/reliability.md.

Each :class:`Case` names an area, the bad input in words, the exception type it must raise and a
callable that feeds it in (given a fresh temporary folder). :func:`render_table` runs every case
and renders ``| area | bad input | what the user sees |`` with the first line of each message,
temporary paths replaced by ``<tmp>`` and file hashes by ``<sha256>``, so the table is the same on
every machine. ``tests/test_properties.py`` checks that the docs hold exactly this table.

    python tests/bad_inputs.py           # print the table
    python tests/bad_inputs.py --write   # rewrite the table in docs/reliability.md
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "reliability.md"
START, END = "<!-- bad-inputs:start -->", "<!-- bad-inputs:end -->"
MAX_MESSAGE = 160
NO_ERROR = "(no error)"


@dataclass(frozen=True)
class Case:
    """One bad input: ``trigger(tmp)`` must raise ``expect`` (``tmp`` is an empty folder)."""

    area: str
    bad_input: str
    expect: type[BaseException]
    trigger: Callable[[Path], Any]


@dataclass(frozen=True)
class Outcome:
    case: Case
    error: BaseException | None
    seen: str
    """``Type: first line of the message``, made machine-independent (or :data:`NO_ERROR`)."""


# ---- fixtures the cases share ------------------------------------------------------------------


def write_bank(directory: Path, n: int = 12, seed: int = 0) -> Path:
    """A small, valid embedding bank of random arrays (no models, no corpus), saved at ``directory``."""
    import pandas as pd

    from mer_gym.bank import EmbeddingBank
    from mer_gym.labels import EMOTIONS
    from mer_gym.models.fusion import FusionProjection

    rng = np.random.default_rng(seed)
    e, h, c = 128, 128, len(EMOTIONS)
    proj = FusionProjection(
        W_face=rng.standard_normal((e, h)) / 10, W_speech=rng.standard_normal((e, h)) / 10,
        b1=np.zeros(h), W2=rng.standard_normal((h, c)) / 10, b2=np.zeros(c),
    )

    def softmax(shape: tuple[int, int]) -> np.ndarray:
        z = np.exp(rng.standard_normal(shape))
        return (z / z.sum(axis=1, keepdims=True)).astype(np.float32)

    labels = rng.integers(0, c, n)
    index = pd.DataFrame({
        "sample_id": [f"s{i:03d}" for i in range(n)],
        "person_id": [f"p{i % 3}" for i in range(n)],
        "label": [EMOTIONS[i] for i in labels],
        "label_index": labels.astype(np.int64),
    })
    ef = rng.standard_normal((n, e)).astype(np.float32)
    es = rng.standard_normal((n, e)).astype(np.float32)
    fp, sp = proj.project(ef, es)
    bank = EmbeddingBank(
        index=index, face_embedding=ef, speech_embedding=es, face_softmax=softmax((n, c)),
        speech_softmax=softmax((n, c)), face_proj=fp, speech_proj=sp, projection=proj,
        meta={"format": 1, "source": {"kind": "test"}},
    )
    return bank.save(directory)


def flip_byte(path: Path, position: int, mask: int = 0x55) -> None:
    data = bytearray(path.read_bytes())
    data[position % len(data)] ^= mask
    path.write_bytes(bytes(data))


def truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def study_text(**changes: Any) -> str:
    """A small valid study as YAML, with top-level keys changed (None deletes a key)."""
    import yaml

    data: dict[str, Any] = {
        "name": "tiny",
        "population": {"preset": "paper-pilot", "n_users": 2, "days": 4},
        "seeds": 2,
        "policies": ["equal-weights", {"name": "q-learning", "params": {"alpha": 0.05}}],
    }
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return yaml.safe_dump(data, sort_keys=False)


def _study(tmp: Path, text: str | bytes) -> Any:
    from studies.spec import load_study

    path = tmp / "study.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return load_study(path)


def _face(image: Any) -> Any:
    from mer_gym.preprocessing import FacePreprocessor

    return FacePreprocessor()(image, name="frame.png")


def _speech(waveform: Any, sample_rate: Any = 16000) -> Any:
    from mer_gym.preprocessing import SpeechPreprocessor

    return SpeechPreprocessor()(waveform, sample_rate, name="clip.wav")


def _env(**kwargs: Any) -> Any:
    from mer_gym.envs import PersonalizationEnv

    return PersonalizationEnv(**kwargs)


def _step(action: Any, **kwargs: Any) -> Any:
    env = _env(**kwargs)
    env.reset(seed=0)
    return env.step(action)


def _step_before_reset(tmp: Path) -> Any:
    import gymnasium

    import mer_gym  # noqa: F401 - registers the ids

    return gymnasium.make("mer_gym/Personalization-v0").step(1)


def _bank(tmp: Path, change: Callable[[Path], None]) -> Any:
    from mer_gym.bank import EmbeddingBank

    out = write_bank(tmp / "bank")
    change(out)
    return EmbeddingBank.load(out)


def _pool_tampered(tmp: Path) -> Any:
    from simulators.users.pool import UserPool, default_dir

    (tmp / "user_pool.json").write_text((default_dir() / "user_pool.json").read_text())
    (tmp / "user_pool.npz").write_bytes(b"PK\x03\x04 not the shipped pool")
    return UserPool.load(tmp)


def _pool_nan(tmp: Path) -> Any:
    import dataclasses

    from simulators.users.pool import default_pool

    pool = default_pool()
    probs = np.array(pool.face_softmax, dtype=np.float32)
    probs[0, 0, 0, 0] = np.nan
    return dataclasses.replace(pool, face_softmax=probs)


def _model_tampered(tmp: Path) -> Any:
    from mer_gym.models.frozen import load_model

    (tmp / "fusion_head.keras").write_bytes(b"PK\x03\x04 tampered model")
    (tmp / "fusion_head.card.json").write_text(json.dumps({"name": "fusion_head", "sha256": "0" * 64}))
    return load_model("fusion_head", tmp)


def _corrupt_wav(tmp: Path, data: bytes) -> Any:
    from mer_gym.datasets import load_emodb

    (tmp / "wav").mkdir()
    (tmp / "wav" / "03a01Fa.wav").write_bytes(data)
    return load_emodb(tmp, on_error="raise")


def _truncated_wav() -> bytes:
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.zeros(1600, np.float32), 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()[:30]


def _policy(name: str, **params: Any) -> Any:
    from agents.base import make_policy

    return make_policy(name, **params)


def _types() -> dict[str, type[BaseException]]:
    """The exception types the cases expect (imported lazily: each costs an import)."""
    import gymnasium

    from agents.base import PolicyError
    from mer_gym.bank import BankError
    from mer_gym.config import ConfigError
    from mer_gym.datasets import DatasetError
    from mer_gym.models.frozen import FrozenModelError
    from simulators.users.pool import PoolError

    return {
        "ConfigError": ConfigError, "BankError": BankError, "PoolError": PoolError,
        "FrozenModelError": FrozenModelError, "DatasetError": DatasetError, "PolicyError": PolicyError,
        "ResetNeeded": gymnasium.error.ResetNeeded,
    }


# ---- the cases -----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def cases() -> list[Case]:
    t = _types()
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(16000)
    u8 = np.zeros((64, 64), np.uint8)
    return [
        # face preprocessing
        Case("face preprocessing", "a 1x1 image", ValueError, lambda tmp: _face(np.zeros((1, 1), np.uint8))),
        Case("face preprocessing", "a 2-channel image (64, 64, 2)", ValueError,
             lambda tmp: _face(np.zeros((64, 64, 2), np.uint8))),
        Case("face preprocessing", "a bool image", ValueError, lambda tmp: _face(u8.astype(bool))),
        Case("face preprocessing", "a float image holding 0..255", ValueError,
             lambda tmp: _face(np.full((64, 64), 200.0))),
        Case("face preprocessing", "a float image with a NaN pixel", ValueError,
             lambda tmp: _face(np.where(np.eye(64, dtype=bool), np.nan, 0.5))),
        Case("face preprocessing", "an int8 image with negative values", ValueError,
             lambda tmp: _face(np.full((64, 64), -1, np.int8))),
        Case("face preprocessing", "a nested list instead of an array", ValueError,
             lambda tmp: _face(u8.tolist())),
        # speech preprocessing
        Case("speech preprocessing", "empty audio", ValueError, lambda tmp: _speech(np.zeros(0, np.float32))),
        Case("speech preprocessing", "one sample", ValueError, lambda tmp: _speech(np.zeros(1, np.float32))),
        Case("speech preprocessing", "a NaN sample", ValueError,
             lambda tmp: _speech(np.where(np.arange(16000) == 7, np.nan, noise))),
        Case("speech preprocessing", "stereo as (channels, samples) = (2, 16000)", ValueError,
             lambda tmp: _speech(np.stack([noise, noise]))),
        Case("speech preprocessing", "int64 samples", ValueError,
             lambda tmp: _speech((noise * 1000).astype(np.int64))),
        Case("speech preprocessing", "sample rate 1 Hz", ValueError, lambda tmp: _speech(noise, 1)),
        Case("speech preprocessing", "sample rate '16k' (a string)", ValueError,
             lambda tmp: _speech(noise, "16k")),
        # corpus files
        Case("corpus wav", "an EMO-DB wav holding garbage bytes", t["DatasetError"],
             lambda tmp: _corrupt_wav(tmp, b"RIFF\x00\x00\x00\x00garbage")),
        Case("corpus wav", "an EMO-DB wav cut off inside its header", t["DatasetError"],
             lambda tmp: _corrupt_wav(tmp, _truncated_wav())),
        # env
        Case("env", "action 3 in Discrete(3)", ValueError, lambda tmp: _step(3)),
        Case("env", "action 1.5", ValueError, lambda tmp: _step(1.5)),
        Case("env", "action 11 with actions='levels' (Discrete(11))", ValueError,
             lambda tmp: _step(11, actions="levels")),
        Case("env", "step() before reset()", t["ResetNeeded"], _step_before_reset),
        Case("env", "delta_w = 0", ValueError, lambda tmp: _env(delta_w=0)),
        Case("env", "w_face0 = 1.5", ValueError, lambda tmp: _env(w_face0=1.5)),
        Case("env", "reset option 'seed' (not an option)", ValueError,
             lambda tmp: _env().reset(options={"seed": 1})),
        # studies
        Case("study YAML", "an unknown study name 'pilto'", t["ConfigError"], lambda tmp: _study_name("pilto")),
        Case("study YAML", "text that is not YAML", t["ConfigError"], lambda tmp: _study(tmp, "name: [tiny\n")),
        Case("study YAML", "a YAML list instead of a mapping", t["ConfigError"],
             lambda tmp: _study(tmp, "- pilot\n- population\n")),
        Case("study YAML", "a binary file", t["ConfigError"], lambda tmp: _study(tmp, b"\xff\xfe\x00bin")),
        Case("study YAML", "an unknown key 'seedz'", t["ConfigError"], lambda tmp: _study(tmp, study_text(seedz=3))),
        Case("study YAML", "seeds: -1", t["ConfigError"], lambda tmp: _study(tmp, study_text(seeds=-1))),
        Case("study YAML", "population: a list instead of a mapping", t["ConfigError"],
             lambda tmp: _study(tmp, study_text(population=["paper-pilot"]))),
        Case("study YAML", "env.delta_w: 1e-3 (YAML reads it as text)", t["ConfigError"],
             lambda tmp: _study(tmp, study_text().replace("seeds: 2", "seeds: 2\nenv: {delta_w: 1e-3}"))),
        Case("study YAML", "env.history: 0", t["ConfigError"], lambda tmp: _study(tmp, study_text(env={"history": 0}))),
        Case("study YAML", "an unknown policy 'q-leanring'", t["ConfigError"],
             lambda tmp: _study(tmp, study_text(policies=["equal-weights", "q-leanring"]))),
        Case("study YAML", "policy params alpha: -1", t["ConfigError"],
             lambda tmp: _study(tmp, study_text(policies=["equal-weights", {"name": "q-learning",
                                                                            "params": {"alpha": -1}}]))),
        Case("study YAML", "env.delta_w: 0.3 with a weight-level policy (linucb)", t["ConfigError"],
             lambda tmp: _study(tmp, study_text(env={"delta_w": 0.3}, policies=["equal-weights", "linucb"]))),
        Case("study YAML", "warm_start: a string", t["ConfigError"],
             lambda tmp: _study(tmp, study_text(warm_start="q-learning"))),
        # policies
        Case("policy", "make_policy('q-learning', alpha=-1)", t["ConfigError"],
             lambda tmp: _policy("q-learning", alpha=-1)),
        Case("policy", "make_policy('q-leanring')", t["PolicyError"], lambda tmp: _policy("q-leanring")),
        # bank
        Case("embedding bank", "a folder that is not a bank", FileNotFoundError,
             lambda tmp: _bank(tmp, lambda d: (d / "meta.json").unlink())),
        Case("embedding bank", "arrays.npz cut in half", t["BankError"],
             lambda tmp: _bank(tmp, lambda d: truncate(d / "arrays.npz", (d / "arrays.npz").stat().st_size // 2))),
        Case("embedding bank", "one byte of arrays.npz flipped", t["BankError"],
             lambda tmp: _bank(tmp, lambda d: flip_byte(d / "arrays.npz", 5000))),
        Case("embedding bank", "index.parquet missing", t["BankError"],
             lambda tmp: _bank(tmp, lambda d: (d / "index.parquet").unlink())),
        Case("embedding bank", "meta.json not JSON", t["BankError"],
             lambda tmp: _bank(tmp, lambda d: (d / "meta.json").write_text("{not json"))),
        Case("embedding bank", "fused_softmax at w_face = NaN", ValueError,
             lambda tmp: _bank(tmp, lambda d: None).fused_softmax(0, float("nan"))),
        # user pool, models
        Case("user pool", "user_pool.npz replaced (sha256 differs from the card)", t["PoolError"], _pool_tampered),
        Case("user pool", "NaN in the face softmax (NaN probabilities)", t["PoolError"], _pool_nan),
        Case("frozen models", "load_model on a tampered fusion_head.keras", t["FrozenModelError"],
             _model_tampered),
    ]


def _study_name(name: str) -> Any:
    from studies.spec import load_study

    return load_study(name)


# ---- running and rendering -------------------------------------------------------------------------

_HEX = re.compile(r"\b[0-9a-f]{16,64}\b")


def clean(text: str, tmp: Path) -> str:
    """The first line of ``text``, machine-independent and at most :data:`MAX_MESSAGE` characters."""
    for path, mark in ((tmp.resolve(), "<tmp>"), (tmp, "<tmp>"), (ROOT, "<repo>")):
        text = text.replace(str(path), mark)
    text = _HEX.sub("<sha256>", text)
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 1] + "…"


def run_case(case: Case) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="bad-input-") as name, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tmp = Path(name)
        try:
            case.trigger(tmp)
        except Exception as exc:  # recording whatever comes out is the point
            return Outcome(case, exc, clean(f"{type(exc).__name__}: {exc}", tmp))
    return Outcome(case, None, NO_ERROR)


@lru_cache(maxsize=1)
def outcomes() -> tuple[Outcome, ...]:
    return tuple(run_case(case) for case in cases())


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'")


def render_table() -> str:
    rows = ["| area | bad input | what the user sees |", "|---|---|---|"]
    rows += [
        f"| {o.case.area} | {_cell(o.case.bad_input)} | `{_cell(o.seen)}` |" for o in outcomes()
    ]
    return "\n".join(rows) + "\n"


def docs_block(text: str) -> str | None:
    """The text between the markers in ``text`` (None if they are missing)."""
    if START not in text or END not in text:
        return None
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def write_docs(path: Path = DOCS) -> None:
    text = path.read_text()
    if docs_block(text) is None:
        raise SystemExit(f"{path} lacks the markers {START} and {END}")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    path.write_text(f"{head}{START}\n{render_table()}{END}{tail}")


def main(argv: list[str]) -> int:
    if argv[1:] == ["--write"]:
        write_docs()
        print(f"wrote {len(cases())} cases to {DOCS.relative_to(ROOT)}")
    elif not argv[1:]:
        print(render_table(), end="")
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
