"""The corpus writer: presets, determinism, splits, manifest and the CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mer_gym.cli import main
from mer_gym.config import ConfigError
from mer_gym.labels import EMOTIONS
from simulators.corpus.persons import ExpressivitySpec, sample_people
from simulators.corpus.writer import (
    CorpusPreset,
    SplitCounts,
    generate_sample,
    load_preset,
    preset_names,
    read_manifest,
    summarize,
    write_corpus,
)


@pytest.fixture(scope="module")
def tiny() -> CorpusPreset:
    return load_preset("tiny")


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory, tiny) -> Path:
    out = tmp_path_factory.mktemp("corpus") / "tiny"
    write_corpus(tiny, out, progress=False)
    return out


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in (".png", ".wav")
    }


def test_shipped_presets_load_and_validate():
    assert {"default", "tiny"} <= set(preset_names())
    default = load_preset("default")
    assert default.sample_rate == 16000
    assert default.emotions == EMOTIONS
    assert default.persons.user_pool > 0


def test_bad_preset_keys_and_values_name_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nseed: 1\npersons: {train: 1}\nsamples_per_emotion: {train: 1}\ncolour: red\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'colour'"):
        load_preset(bad)
    bad.write_text("name: x\nseed: 1\npersons: {train: -1}\nsamples_per_emotion: {train: 1}\n")
    with pytest.raises(ConfigError, match=r"persons: train = -1"):
        load_preset(bad)
    bad.write_text("name: x\nseed: 1\npersons: {train: 1}\nsamples_per_emotion: {train: 1}\nemotions: [joy]\n")
    with pytest.raises(ConfigError, match="'joy' is not a canonical emotion"):
        load_preset(bad)
    with pytest.raises(ConfigError, match="unknown preset 'hueg'"):
        load_preset("hueg")


def test_manifest_has_one_row_per_file_with_conditions(tiny_corpus, tiny):
    m = read_manifest(tiny_corpus)
    n_samples = sum(
        getattr(tiny.persons, s) * getattr(tiny.samples_per_emotion, s) for s in tiny.persons.as_dict()
    ) * len(tiny.emotions)
    assert len(m) == 2 * n_samples
    assert m["sample_id"].nunique() == n_samples
    assert set(m["modality"]) == {"face", "speech"}
    assert (m.groupby("sample_id")["label"].nunique() == 1).all()
    for row in m.itertuples():
        assert (tiny_corpus / row.path).is_file()
    face = m[m["modality"] == "face"]
    speech = m[m["modality"] == "speech"]
    face_cond = [c for c in m.columns if c.startswith("face_")]
    speech_cond = [c for c in m.columns if c.startswith("speech_")]
    assert face_cond and speech_cond
    assert face[face_cond].notna().all().all()
    assert speech[speech_cond].notna().all().all()
    assert (m.loc[m["label"] == "neutral", "intensity"] == 0).all()
    lo, hi = tiny.intensity
    other = m.loc[m["label"] != "neutral", "intensity"]
    assert other.between(lo, hi).all()
    np.testing.assert_allclose(m["expressed_intensity"], m["intensity"] * m["expressivity"])


def test_files_are_what_the_manifest_says(tiny_corpus):
    m = read_manifest(tiny_corpus)
    face = m[m["modality"] == "face"].iloc[0]
    img = cv2.imread(str(tiny_corpus / face["path"]), cv2.IMREAD_UNCHANGED)
    assert img.ndim == 2 and img.dtype == np.uint8
    assert img.shape == (face["height"], face["width"])
    speech = m[m["modality"] == "speech"].iloc[0]
    wave, sr = sf.read(tiny_corpus / speech["path"])
    assert sr == 16000 and wave.ndim == 1
    assert len(wave) / sr == pytest.approx(speech["duration_s"])


def test_splits_are_identity_disjoint(tiny_corpus, tiny):
    persons = pd.read_parquet(tiny_corpus / "persons.parquet")
    assert persons["person_id"].is_unique
    assert persons.groupby("split").size().to_dict() == {
        k: v for k, v in tiny.persons.as_dict().items() if v
    }
    m = read_manifest(tiny_corpus)
    assert (m.groupby("person_id")["split"].nunique() == 1).all()


def test_same_preset_gives_identical_bytes_for_any_number_of_jobs(tmp_path, tiny_corpus, tiny):
    again = tmp_path / "again"
    write_corpus(tiny, again, n_jobs=2, progress=False)
    assert _digest(again) == _digest(tiny_corpus)
    pd.testing.assert_frame_equal(read_manifest(again), read_manifest(tiny_corpus))


def test_another_seed_gives_another_corpus(tmp_path, tiny):
    from dataclasses import replace

    small = replace(tiny, seed=tiny.seed + 1, persons=SplitCounts(train=1), samples_per_emotion=SplitCounts(train=1))
    out = tmp_path / "other"
    write_corpus(small, out, progress=False)
    ref = replace(tiny, persons=SplitCounts(train=1), samples_per_emotion=SplitCounts(train=1))
    write_corpus(ref, tmp_path / "ref", progress=False)
    assert _digest(out) != _digest(tmp_path / "ref")


def test_a_sample_does_not_depend_on_the_rest_of_the_corpus(tiny):
    people = sample_people(tiny.seed, tiny.persons.as_dict(), tiny.expressivity)
    frame, wave, rows = generate_sample(tiny, people[3], "fear", 1)
    frame2, wave2, rows2 = generate_sample(tiny, people[3], "fear", 1)
    np.testing.assert_array_equal(frame, frame2)
    np.testing.assert_array_equal(wave, wave2)
    assert rows == rows2
    # Adding persons to a split later in the order does not change earlier persons.
    more = sample_people(tiny.seed, {**tiny.persons.as_dict(), "user_pool": 9}, tiny.expressivity)
    assert more[: len(people) - tiny.persons.user_pool] == people[: len(people) - tiny.persons.user_pool]


def test_expressivity_spec_draws_within_ranges_and_correlates():
    rng = np.random.default_rng(0)
    spec = ExpressivitySpec(face=(0.2, 0.6), voice=(0.5, 1.0), correlation=-0.8)
    draws = np.array([spec.sample(rng) for _ in range(2000)])
    assert draws[:, 0].min() >= 0.2 and draws[:, 0].max() <= 0.6
    assert draws[:, 1].min() >= 0.5 and draws[:, 1].max() <= 1.0
    assert np.corrcoef(draws.T)[0, 1] < -0.6
    with pytest.raises(ConfigError, match=r"expressivity\.face"):
        ExpressivitySpec(face=(0.8, 0.2))


def test_existing_output_is_not_clobbered(tiny_corpus, tiny):
    before = _digest(tiny_corpus)
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_corpus(tiny, tiny_corpus, progress=False)
    assert _digest(tiny_corpus) == before


def test_summary_counts_every_split_and_label(tiny_corpus):
    text = summarize(read_manifest(tiny_corpus))
    assert "120 samples" in text
    assert "user_pool 2" in text
    for emotion in EMOTIONS:
        assert emotion in text


def test_cli_writes_a_corpus_and_prints_its_summary(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["corpus", "--preset", "tiny", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "120 samples" in printed and (out / "manifest.parquet").is_file()
    assert main(["summary", str(out)]) == 0
    assert "persons per split" in capsys.readouterr().out
    assert main(["corpus", "--preset", "tiny", "--out", str(out), "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["corpus", "--preset", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err
