"""The embedding bank (mer_gym.bank): build, cache, save/load, float16, errors, fusion at any weight."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mer_gym.bank import (
    SAMPLE_ARRAYS,
    BankError,
    EmbeddingBank,
    add_embed_command,
    build_bank,
    build_bank_from_dataset,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_corpus, random_models_dir) -> tuple[EmbeddingBank, Path]:
    """The tiny corpus' float32 bank, built once for the module (into a temporary folder)."""
    out = tmp_path_factory.mktemp("banks") / "b32"
    bank = build_bank(tiny_corpus, models_dir=random_models_dir, out=out, progress=False)
    return bank, out


def copy_bank(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def assert_same_arrays(a: EmbeddingBank, b: EmbeddingBank) -> None:
    for name in SAMPLE_ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    for name, x in a.projection.arrays().items():
        assert np.array_equal(x, getattr(b.projection, name)), name


def test_build_contents_and_keras_agreement(built, tiny_corpus, random_models_dir):
    from mer_gym.models.architectures import embedding_model
    from mer_gym.models.data import corpus_arrays, face_batch
    from mer_gym.models.frozen import load_model

    bank, _ = built
    assert len(bank) == 120 and not bank.from_cache and bank.dtype == "float32"
    assert bank.face_embedding.shape == bank.face_proj.shape == (120, 128)
    assert bank.speech_softmax.shape == (120, 6)
    cols = set(bank.index.columns)
    assert {"sample_id", "person_id", "label", "label_index", "split", "face_detected", "speech_frames"} <= cols
    assert any(c.startswith("face_") and c not in ("face_detected", "face_path") for c in cols)
    assert any(c.startswith("speech_snr") for c in cols)
    assert set(bank.index["split"]) == {"train", "val", "test", "user_pool"}
    assert len(bank.persons) == 10 and bank.meta["n_persons"] == 10

    arrays = corpus_arrays(tiny_corpus, progress=False)
    assert bank.index["sample_id"].tolist() == arrays.index["sample_id"].tolist()
    np.testing.assert_array_equal(bank.index["face_detected"], arrays.face_detected)
    face = embedding_model(load_model("face_cnn", random_models_dir))
    e, p = face.predict(face_batch(arrays.faces[:16]), verbose=0)
    np.testing.assert_allclose(bank.face_embedding[:16], e, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(bank.face_softmax[:16], p, atol=1e-6)
    speech = embedding_model(load_model("speech_lstm", random_models_dir))
    e, p = speech.predict(arrays.speech[:16], verbose=0)
    np.testing.assert_allclose(bank.speech_embedding[:16], e, atol=1e-5, rtol=1e-5)

    fusion = load_model("fusion_head", random_models_dir)
    rng = np.random.default_rng(0)
    w = rng.random(len(bank)).astype(np.float32)
    want = fusion.predict([bank.face_embedding, bank.speech_embedding, w[:, None]], verbose=0)
    np.testing.assert_allclose(bank.fused_softmax(None, w), want, atol=1e-5, rtol=0)
    for scalar in (0.0, 0.3, 1.0):
        want = fusion.predict(
            [bank.face_embedding[:5], bank.speech_embedding[:5], np.full((5, 1), scalar)], verbose=0
        )
        np.testing.assert_allclose(bank.fused_softmax(range(5), scalar), want, atol=1e-5, rtol=0)
        np.testing.assert_allclose(bank.fused_softmax(np.int64(2), scalar), want[2], atol=1e-5, rtol=0)
    timing = bank.meta["timing"]
    assert timing["face_cnn_samples_per_s"] > 0 and timing["speech_lstm_samples_per_s"] > 0


def test_save_load_roundtrip(built):
    bank, out = built
    assert sorted(p.name for p in out.iterdir()) == ["arrays.npz", "index.parquet", "meta.json"]
    assert not out.with_name(out.name + ".partial").exists()
    loaded = EmbeddingBank.load(out)
    assert_same_arrays(bank, loaded)
    pd.testing.assert_frame_equal(bank.index, loaded.index)
    assert loaded.meta == json.loads(json.dumps(bank.meta))
    assert loaded.meta["source"]["kind"] == "corpus"
    np.testing.assert_array_equal(loaded.fused_softmax(None, 0.4), bank.fused_softmax(None, 0.4))


def test_cache_hit_does_not_run_the_models(built, tiny_corpus, random_models_dir, monkeypatch):
    import mer_gym.bank as bank_mod

    bank, out = built
    stamp = (out / "arrays.npz").stat().st_mtime_ns

    def boom(*args, **kwargs):
        raise AssertionError("a cache hit must not load or run a model")

    monkeypatch.setattr(bank_mod, "infer", boom)
    monkeypatch.setattr(bank_mod, "load_frozen_models", boom)
    again = build_bank(tiny_corpus, models_dir=random_models_dir, out=out, progress=False)
    assert again.from_cache
    assert_same_arrays(bank, again)
    assert (out / "arrays.npz").stat().st_mtime_ns == stamp
    with pytest.raises(AssertionError, match="cache hit"):  # force=True rebuilds
        build_bank(tiny_corpus, models_dir=random_models_dir, out=out, progress=False, force=True)


def test_changed_model_triggers_rebuild(built, tiny_corpus, random_models_dir, tmp_path):
    import keras

    from mer_gym.models.architectures import build_fusion_head
    from mer_gym.models.frozen import write_card

    bank, out = built
    models = tmp_path / "models"
    shutil.copytree(random_models_dir, models)
    dst = copy_bank(out, tmp_path / "bank")
    assert build_bank(tiny_corpus, models_dir=models, out=dst, progress=False).from_cache
    keras.utils.set_random_seed(123)
    build_fusion_head().save(models / "fusion_head.keras")
    # A modified file whose card was not updated is refused, not silently served from the cache.
    with pytest.raises(ValueError, match="sha256"):
        build_bank(tiny_corpus, models_dir=models, out=dst, progress=False)
    write_card("fusion_head", models)
    new = build_bank(tiny_corpus, models_dir=models, out=dst, progress=False)
    assert not new.from_cache and new.meta["key"] != bank.meta["key"]
    assert new.meta["models"]["fusion_head"] != bank.meta["models"]["fusion_head"]
    assert new.meta["models"]["face_cnn"] == bank.meta["models"]["face_cnn"]
    np.testing.assert_array_equal(new.face_embedding, bank.face_embedding)
    assert not np.allclose(new.face_proj, bank.face_proj)
    assert EmbeddingBank.load(dst).meta["key"] == new.meta["key"]


def test_changed_manifest_triggers_rebuild_at_default_out(built, tiny_corpus, random_models_dir, tmp_path):
    bank, out = built
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus, ignore=shutil.ignore_patterns("arrays-*", "bank-*"))
    copy_bank(out, corpus / "bank-float32")  # the default out; same models and manifest: a hit
    assert build_bank(corpus, models_dir=random_models_dir, progress=False).from_cache
    manifest = pd.read_parquet(corpus / "manifest.parquet")
    keep = sorted(manifest["sample_id"].unique())[:12]
    manifest[manifest["sample_id"].isin(keep)].to_parquet(corpus / "manifest.parquet", index=False)
    new = build_bank(corpus, models_dir=random_models_dir, progress=False)
    assert not new.from_cache and len(new) == 12
    assert new.meta["source"]["manifest_sha256"] != bank.meta["source"]["manifest_sha256"]
    rows = bank.index["sample_id"].isin(keep).to_numpy()
    np.testing.assert_allclose(new.face_softmax, bank.face_softmax[rows], atol=1e-5)
    assert len(EmbeddingBank.load(corpus / "bank-float32")) == 12


def test_float16_bank(built, tiny_corpus, random_models_dir, tmp_path):
    bank, out = built
    half = build_bank(
        tiny_corpus, models_dir=random_models_dir, out=tmp_path / "b16", dtype="float16", progress=False
    )
    assert half.dtype == "float16" and half.face_proj.dtype == np.float16
    assert half.projection.W2.dtype == np.float32
    assert half.meta["key"] != bank.meta["key"]
    assert_same_arrays(half, bank.astype("float16"))  # direct build == cast of the float32 bank
    assert bank.astype("float16").meta["key"] == half.meta["key"]
    w = np.linspace(0, 1, len(bank))
    diff = np.abs(half.fused_softmax(None, w) - bank.fused_softmax(None, w)).max()
    assert 0 < diff < 1e-2
    loaded = EmbeddingBank.load(tmp_path / "b16")
    assert loaded.dtype == "float16"
    assert 2 * half.nbytes == bank.nbytes
    assert (tmp_path / "b16" / "arrays.npz").stat().st_size < (out / "arrays.npz").stat().st_size


def test_corrupt_or_incomplete_banks_name_the_fix(built, tmp_path):
    _, out = built
    truncated = copy_bank(out, tmp_path / "truncated")
    data = (truncated / "arrays.npz").read_bytes()
    (truncated / "arrays.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(BankError, match=r"arrays\.npz is corrupt.*mer-gym embed"):
        EmbeddingBank.load(truncated)

    missing = copy_bank(out, tmp_path / "missing")
    with np.load(missing / "arrays.npz") as z:
        kept = {k: z[k] for k in z.files if k != "speech_proj"}
    np.savez(missing / "arrays.npz", **kept)
    with pytest.raises(BankError, match=r"lacks array.*speech_proj.*--force"):
        EmbeddingBank.load(missing)

    shape = copy_bank(out, tmp_path / "shape")
    kept["speech_proj"] = np.zeros((7, 128), np.float32)
    np.savez(shape / "arrays.npz", **kept)
    with pytest.raises(BankError, match=r"speech_proj has shape \(7, 128\), expected \(120, 128\)"):
        EmbeddingBank.load(shape)

    mixed = copy_bank(out, tmp_path / "mixed")
    kept["speech_proj"] = np.zeros((120, 128), np.float64)
    np.savez(mixed / "arrays.npz", **kept)
    with pytest.raises(BankError, match="dtype float64"):
        EmbeddingBank.load(mixed)

    bad_meta = copy_bank(out, tmp_path / "meta")
    (bad_meta / "meta.json").write_text("{not json")
    with pytest.raises(BankError, match=r"meta\.json is unreadable"):
        EmbeddingBank.load(bad_meta)
    (bad_meta / "meta.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(BankError, match="bank format 99"):
        EmbeddingBank.load(bad_meta)

    no_index = copy_bank(out, tmp_path / "noindex")
    (no_index / "index.parquet").unlink()
    with pytest.raises(BankError, match=r"index\.parquet is missing"):
        EmbeddingBank.load(no_index)
    with pytest.raises(FileNotFoundError, match="not an embedding bank"):
        EmbeddingBank.load(tmp_path / "nowhere")


def test_corrupt_cache_is_rebuilt_bit_identically(built, tiny_corpus, random_models_dir, tmp_path):
    bank, out = built
    dst = copy_bank(out, tmp_path / "bank")
    (dst / "arrays.npz").write_bytes(b"garbage")
    with pytest.warns(RuntimeWarning, match="cached bank unusable"):
        again = build_bank(tiny_corpus, models_dir=random_models_dir, out=dst, progress=False)
    assert not again.from_cache and again.meta["key"] == bank.meta["key"]
    # Determinism: a second build of the same corpus with the same models gives the same bits.
    assert_same_arrays(bank, again)
    assert_same_arrays(bank, EmbeddingBank.load(dst))


def test_save_refuses_a_foreign_folder(built, tmp_path):
    bank, _ = built
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not an embedding bank"):
        bank.save(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("bad", [float("nan"), -0.2, 1.01])
def test_fused_softmax_rejects_bad_weights(built, bad):
    bank, _ = built
    with pytest.raises(ValueError, match=r"w_face.*\[0, 1\]"):
        bank.fused_softmax(0, bad)
    with pytest.raises(ValueError, match=r"w_face\[1\]"):
        bank.fused_softmax([0, 1, 2], [0.5, bad, 0.5])


def test_fused_softmax_rows_and_bounds(built):
    bank, _ = built
    all_rows = bank.fused_softmax(None, 0.25)
    assert all_rows.shape == (120, 6)
    np.testing.assert_allclose(all_rows.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(bank.fused_softmax(7, 0.25), all_rows[7])
    mask = np.zeros(120, bool)
    mask[[3, 9]] = True
    np.testing.assert_array_equal(bank.fused_softmax(mask, 0.25), all_rows[[3, 9]])
    with pytest.raises(IndexError, match="outside the bank's 120 rows"):
        bank.fused_softmax(120, 0.5)


def test_select_and_user(built):
    bank, _ = built
    pid = bank.persons[3]
    rows = bank.user_rows(pid)
    user = bank.user(pid)
    assert len(user) == len(rows) > 0 and set(user.index["person_id"]) == {pid}
    np.testing.assert_array_equal(user.face_proj, bank.face_proj[rows])
    np.testing.assert_array_equal(user.fused_softmax(None, 0.6), bank.fused_softmax(rows, 0.6))
    assert list(user.index.index) == list(range(len(user)))
    test = bank.select(bank.index["split"] == "test")
    assert set(test.index["split"]) == {"test"}
    with pytest.raises(KeyError, match="'nobody' is not in this bank"):
        bank.user("nobody")
    with pytest.raises(ValueError, match="mask has shape"):
        bank.select(np.ones(3, bool))
    with pytest.raises(ValueError, match="dtype"):
        bank.astype("int8")


def test_loading_and_fusing_needs_no_tensorflow(built):
    _, out = built
    code = textwrap.dedent(
        f"""
        import sys
        from mer_gym.bank import EmbeddingBank
        bank = EmbeddingBank.load({str(out)!r})
        p = bank.fused_softmax(bank.user_rows(bank.persons[0])[0], 0.5)
        assert p.shape == (6,)
        assert bank.user(bank.persons[1]).astype("float16").fused_softmax(None, 0.2).shape[1] == 6
        heavy = [m for m in ("tensorflow", "keras", "cv2", "librosa") if m in sys.modules]
        assert not heavy, heavy
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]


def test_cli_embed_summary_and_errors(built, tiny_corpus, random_models_dir, tmp_path, capsys):
    _, out = built
    parser = argparse.ArgumentParser(prog="mer-gym")
    add_embed_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["embed", "--corpus", str(tiny_corpus), "--models-dir", str(random_models_dir),
         "--out", str(out), "--quiet"]
    )
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "120 samples from 10 persons" in text and "cache hit" in text and str(out) in text
    args = parser.parse_args(
        ["embed", "--corpus", str(tiny_corpus), "--models-dir", str(tmp_path), "--quiet"]
    )
    assert args.func(args) == 2
    assert "face_cnn.card.json not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["embed", "--corpus", "x", "--batch-size", "0"])
    with pytest.raises(FileNotFoundError, match="not a generated corpus"):
        build_bank(tmp_path / "none", models_dir=random_models_dir)
    with pytest.raises(ValueError, match="batch_size = 0"):
        build_bank(tiny_corpus, models_dir=random_models_dir, batch_size=0)


def test_bank_from_ravdess_clips(random_models_dir, tmp_path):
    from dataset_fixtures import write_video, write_wav

    root = tmp_path / "ravdess"
    takes = ["01-05-02-02-01-01", "01-04-01-01-02-01", "01-01-01-01-01-02"]  # channel..actor
    for i, take in enumerate(takes):
        actor = take[-2:]
        if not write_video(root / f"Actor_{actor}" / f"01-{take}.mp4", 5, size=(64, 48)):
            pytest.fail("cv2.VideoWriter cannot write mp4v here: the opencv-python-headless install lacks its video codecs")
        write_wav(root / f"Actor_{actor}" / f"03-{take}.wav", 48_000, freq=200.0 * (i + 1), seconds=0.6)
    write_wav(root / "Actor_02" / "03-01-01-01-02-01-02.wav", 48_000)  # no video: unmatched
    bank = build_bank_from_dataset(
        "ravdess", root, models_dir=random_models_dir, out=tmp_path / "bank", progress=False
    )
    assert len(bank) == 3 and not bank.from_cache
    assert sorted(bank.index["label"]) == ["anger", "neutral", "sadness"]
    assert set(bank.index["person_id"]) == {"01", "02"} and set(bank.index["split"]) == {"user_pool"}
    assert bank.index["sample_id"].iloc[0].startswith("ravdess:")
    assert bank.meta["source"]["pairs"] == 3
    again = build_bank_from_dataset(
        "ravdess", root, models_dir=random_models_dir, out=tmp_path / "bank", progress=False
    )
    assert again.from_cache
    assert_same_arrays(bank, again)
    with pytest.raises(BankError, match="expected one of ravdess, cremad"):
        build_bank_from_dataset("emodb", root, models_dir=random_models_dir)
