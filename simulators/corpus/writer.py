"""Write the generated face + speech corpus to disk: PNG frames, WAV utterances and a tidy manifest.

``write_corpus(preset, out)`` draws the persons of a :class:`CorpusPreset`, renders for every person,
emotion and repetition one *sample*: a camera frame and an utterance of the same person feeling the
same emotion at the same intensity (as one audio-visual clip of CREMA-D would be), each under its own
capture conditions, and writes::

    out/
      preset.yaml           the fully resolved preset (every default spelled out)
      persons.parquet       one row per person: split, sex, expressivities, identity parameters
      manifest.parquet      one row per file: sample id, person, split, modality, label, intensity,
                            expressivity, every capture-condition value, path
      faces/<person>/<sample>.png     uint8 grayscale frames
      speech/<person>/<sample>.wav    16-bit PCM mono

Every sample draws from its own generator seeded by (preset seed, person, emotion, repetition), so
the corpus is identical bit for bit whatever the number of worker processes, and a sample does not
change when another sample, person or split is added. The corpus is written to ``out.partial`` and
renamed to ``out`` only when complete: an interrupted run never leaves a corpus that looks finished.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import soundfile as sf
import yaml
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from mer_gym.config import ConfigError, check_interval, from_mapping, parse_yaml, plain
from mer_gym.labels import EMOTIONS, NEUTRAL, emotion_index, validate_emotion
from simulators.corpus.faces import FaceConditions, FaceConditionSpec, render_face
from simulators.corpus.persons import SPLITS, ExpressivitySpec, Person, sample_people
from simulators.corpus.speech import SpeechConditions, SpeechConditionSpec, synthesize

MANIFEST = "manifest.parquet"
PERSONS = "persons.parquet"
PRESET = "preset.yaml"


@dataclass(frozen=True)
class SplitCounts:
    """A count per identity split."""

    train: int = 0
    val: int = 0
    test: int = 0
    user_pool: int = 0

    def __post_init__(self) -> None:
        for name, value in dataclasses.asdict(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name} = {value!r}: expected an integer >= 0")

    def as_dict(self) -> dict[str, int]:
        return {split: getattr(self, split) for split in SPLITS}


@dataclass(frozen=True)
class CorpusPreset:
    """Everything that determines a generated corpus. Build from YAML with :func:`load_preset`.

    Attributes:
        name: preset name, written into the manifest.
        seed: root seed; the corpus is a pure function of the preset.
        persons: persons per split (identities are disjoint across splits).
        samples_per_emotion: samples per person and emotion, per split.
        emotions: emotions to generate (canonical names).
        intensity: range of the felt intensity of non-neutral samples (uniform); neutral is 0.
            What a channel shows is this times the person's expressivity in that channel.
        face_size: (height, width) of the camera frames.
        sample_rate: audio sample rate in Hz (the paper's 16 kHz).
        expressivity: per-person expressivity distribution.
        face_conditions: distribution of camera capture conditions.
        speech_conditions: distribution of microphone / room capture conditions.
    """

    name: str
    seed: int
    persons: SplitCounts
    samples_per_emotion: SplitCounts
    emotions: tuple[str, ...] = EMOTIONS
    intensity: tuple[float, float] = (0.3, 1.0)
    face_size: tuple[int, int] = (160, 160)
    sample_rate: int = 16000
    expressivity: ExpressivitySpec = field(default_factory=ExpressivitySpec)
    face_conditions: FaceConditionSpec = field(default_factory=FaceConditionSpec)
    speech_conditions: SpeechConditionSpec = field(default_factory=SpeechConditionSpec)

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"seed = {self.seed!r}: expected an integer >= 0")
        if not self.emotions:
            raise ConfigError("emotions is empty: list at least one of " + ", ".join(EMOTIONS))
        for e in self.emotions:
            validate_emotion(e, what="emotions entry")
        check_interval("intensity", self.intensity, 0.0, 1.0)
        if len(self.face_size) != 2 or min(self.face_size) < 48:
            raise ConfigError(f"face_size = {list(self.face_size)}: expected [height, width], each >= 48")
        if self.sample_rate < 8000:
            raise ConfigError(f"sample_rate = {self.sample_rate}: expected >= 8000 Hz (the paper uses 16000)")
        if sum(self.persons.as_dict().values()) == 0:
            raise ConfigError("persons: every split has 0 persons; give at least one")

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML-safe dict of every field (tuples as lists)."""
        return plain(dataclasses.asdict(self))


def preset_names() -> list[str]:
    """Names of the presets shipped in ``simulators/corpus/presets/``."""
    folder = resources.files("simulators.corpus") / "presets"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_preset(name_or_path: str | Path) -> CorpusPreset:
    """Load a shipped preset by name (``tiny``, ``default``) or a preset YAML file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"preset file {path} does not exist: give a YAML path or one of {preset_names()}")
        text, where = path.read_text(), f"preset {path}"
    else:
        if str(name_or_path) not in preset_names():
            raise ConfigError(
                f"unknown preset {str(name_or_path)!r}: use one of {preset_names()} or a path to a YAML file"
            )
        text = (resources.files("simulators.corpus") / "presets" / f"{name_or_path}.yaml").read_text()
        where = f"preset {name_or_path!r}"
    return from_mapping(CorpusPreset, parse_yaml(text, where=where), where=where)


def _conditions_row(prefix: str, conditions: Any) -> dict[str, Any]:
    return {f"{prefix}_{k}": v for k, v in dataclasses.asdict(conditions).items()}


def sample_id(person: Person, emotion: str, k: int) -> str:
    return f"{person.person_id}-{emotion[:3]}-{k:03d}"


def generate_sample(
    preset: CorpusPreset,
    person: Person,
    emotion: str,
    k: int,
    *,
    face_conditions: FaceConditions | None = None,
    speech_conditions: SpeechConditions | None = None,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Render sample ``k`` of ``person`` feeling ``emotion``: (frame, waveform, two manifest rows).

    The sample's generator is seeded by (preset seed, person index, emotion, k) and split into
    independent streams for the draw of intensity, the face and the voice. ``face_conditions`` /
    ``speech_conditions`` replace the preset's sampled capture conditions (the draw still happens,
    so the same moment is rendered under every override: what a per-condition evaluation needs).
    """
    seq = np.random.SeedSequence([preset.seed, 1, person.index, emotion_index(emotion), k])
    rng_sample, rng_face, rng_voice = (np.random.default_rng(s) for s in seq.spawn(3))
    intensity = 0.0 if emotion == NEUTRAL else float(rng_sample.uniform(*preset.intensity))
    face_cond = preset.face_conditions.sample(rng_face)
    voice_cond = preset.speech_conditions.sample(rng_voice)
    face_cond = face_conditions if face_conditions is not None else face_cond
    voice_cond = speech_conditions if speech_conditions is not None else voice_cond
    face_intensity = intensity * person.facial_expressivity
    voice_intensity = intensity * person.vocal_expressivity
    frame = render_face(person.face, emotion, face_intensity, face_cond, rng_face, size=preset.face_size)
    wave = synthesize(
        person.voice, emotion, voice_intensity, voice_cond, rng_voice, sample_rate=preset.sample_rate
    )
    sid = sample_id(person, emotion, k)
    common = {
        "sample_id": sid,
        "person_id": person.person_id,
        "split": person.split,
        "sex": person.sex,
        "label": emotion,
        "label_index": emotion_index(emotion),
        "repetition": k,
        "intensity": intensity,
    }
    face_row = {
        **common,
        "modality": "face",
        "expressivity": person.facial_expressivity,
        "expressed_intensity": face_intensity,
        "path": f"faces/{person.person_id}/{sid}.png",
        "height": int(frame.shape[0]),
        "width": int(frame.shape[1]),
        **_conditions_row("face", face_cond),
    }
    voice_row = {
        **common,
        "modality": "speech",
        "expressivity": person.vocal_expressivity,
        "expressed_intensity": voice_intensity,
        "path": f"speech/{person.person_id}/{sid}.wav",
        "duration_s": len(wave) / preset.sample_rate,
        "sample_rate": preset.sample_rate,
        **_conditions_row("speech", voice_cond),
    }
    return frame, wave, [face_row, voice_row]


def _write_person(preset: CorpusPreset, person: Person, root: Path) -> list[dict[str, Any]]:
    (root / "faces" / person.person_id).mkdir(parents=True, exist_ok=True)
    (root / "speech" / person.person_id).mkdir(parents=True, exist_ok=True)
    n = getattr(preset.samples_per_emotion, person.split)
    rows: list[dict[str, Any]] = []
    for emotion in preset.emotions:
        for k in range(n):
            frame, wave, sample_rows = generate_sample(preset, person, emotion, k)
            face_path, voice_path = (root / r["path"] for r in sample_rows)
            if not cv2.imwrite(str(face_path), frame):
                raise OSError(f"could not write {face_path}: check the disk and permissions of {root}")
            sf.write(voice_path, wave, preset.sample_rate, subtype="PCM_16")
            rows.extend(sample_rows)
    return rows


def persons_table(people: list[Person]) -> pd.DataFrame:
    """One row per person: split, sex, expressivities and every identity parameter (prefixed)."""
    rows = []
    for p in people:
        row = {
            "person_id": p.person_id,
            "index": p.index,
            "split": p.split,
            "sex": p.sex,
            "facial_expressivity": p.facial_expressivity,
            "vocal_expressivity": p.vocal_expressivity,
        }
        row.update({f"face_{k}": v for k, v in plain(dataclasses.asdict(p.face)).items()})
        row.update({f"voice_{k}": v for k, v in plain(dataclasses.asdict(p.voice)).items()})
        rows.append(row)
    return pd.DataFrame(rows)


def _iter_people(preset: CorpusPreset, people: list[Person], root: Path, n_jobs: int) -> Iterator[list]:
    if n_jobs == 1:
        for p in people:
            yield _write_person(preset, p, root)
        return
    yield from Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(_write_person)(preset, p, root) for p in people
    )


def write_corpus(
    preset: CorpusPreset,
    out: str | Path,
    *,
    n_jobs: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """Generate ``preset`` into folder ``out`` and return the manifest.

    Refuses to touch an existing ``out`` unless ``overwrite``. ``n_jobs`` worker processes (joblib)
    render persons in parallel; the result is the same for every ``n_jobs``.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty: pass overwrite=True (--overwrite) or another folder")
    if n_jobs < 1:
        raise ConfigError(f"n_jobs = {n_jobs}: expected >= 1")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    people = sample_people(preset.seed, preset.persons.as_dict(), preset.expressivity)
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=len(people), desc=f"corpus {preset.name}", unit="person", disable=not progress)
    for person_rows in _iter_people(preset, people, partial, n_jobs):
        rows.extend(person_rows)
        bar.update()
    bar.close()
    manifest = pd.DataFrame(rows)
    manifest.insert(0, "corpus", preset.name)
    manifest.to_parquet(partial / MANIFEST, index=False)
    persons_table(people).to_parquet(partial / PERSONS, index=False)
    (partial / PRESET).write_text(yaml.safe_dump(preset.to_dict(), sort_keys=False))
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    return manifest


def read_manifest(root: str | Path) -> pd.DataFrame:
    """Read the manifest of a corpus written by :func:`write_corpus`."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: {root} is not a generated corpus (write one with `mer-gym corpus --out {root}`)"
        )
    return pd.read_parquet(path)


def summarize(manifest: pd.DataFrame) -> str:
    """A human-readable summary: samples per split x label and modality, persons and conditions."""
    lines: list[str] = []
    name = manifest["corpus"].iloc[0] if "corpus" in manifest and len(manifest) else "?"
    persons = manifest.groupby("split", observed=True)["person_id"].nunique().reindex(SPLITS).fillna(0)
    lines.append(
        f"corpus {name!r}: {manifest['sample_id'].nunique()} samples, "
        f"{int((manifest['modality'] == 'face').sum())} face frames, "
        f"{int((manifest['modality'] == 'speech').sum())} utterances, {int(persons.sum())} persons"
    )
    lines.append("persons per split: " + ", ".join(f"{s} {int(n)}" for s, n in persons.items()))
    counts = (
        manifest[manifest["modality"] == "face"]
        .pivot_table(index="split", columns="label", values="sample_id", aggfunc="count", fill_value=0)
        .reindex(index=[s for s in SPLITS if s in set(manifest["split"])])
        .reindex(columns=[e for e in EMOTIONS if e in set(manifest["label"])])
    )
    lines.append("\nsamples (each = one frame + one utterance) per split and label:")
    lines.append(counts.to_string())
    by_mod = manifest.groupby("modality")[["expressivity", "expressed_intensity"]].mean()
    lines.append("\nmean expressivity and expressed intensity per modality:")
    lines.append(by_mod.round(3).to_string())
    speech = manifest[manifest["modality"] == "speech"]
    if "duration_s" in speech:
        d = speech["duration_s"]
        lines.append(f"\nutterance duration: mean {d.mean():.2f} s, min {d.min():.2f} s, max {d.max():.2f} s")
    numeric = [
        c
        for c in manifest.columns
        if (c.startswith("face_") or c.startswith("speech_")) and pd.api.types.is_numeric_dtype(manifest[c])
    ]
    if numeric:
        values = manifest[numeric].astype(float)
        share_off = np.isinf(values).mean()  # inf = condition absent (no noise, no room)
        stats = values.replace([np.inf, -np.inf], np.nan).agg(["mean", "min", "max"]).T
        stats["share_absent"] = share_off
        stats = stats.round(3)
        lines.append("\ncapture conditions (finite values; share_absent: inf = not applied):")
        lines.append(stats.to_string())
    return "\n".join(lines)
