"""TFLite export of the face CNN and the speech LSTM: parity with Keras, masking, int8, errors,
atomic writes and byte-for-byte determinism.

The int8 speech export (an unrolled 120-step graph) takes ~30 s to convert, so the tests that need
it are marked slow; everything else runs in a few seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mer_gym.models import export
from mer_gym.models.architectures import embedding_model
from mer_gym.models.export import (
    TFLITE_FILES,
    TFLiteModel,
    export_tflite,
    representative_inputs,
)
from mer_gym.models.frozen import load_model

# Valid frames per utterance: full, partly padded, one frame, and an all-padding row.
LENGTHS = (120, 97, 64, 31, 8, 2, 1, 0)


@pytest.fixture(scope="module")
def face_model(random_models_dir: Path):
    return load_model("face_cnn", random_models_dir)


@pytest.fixture(scope="module")
def speech_model(random_models_dir: Path):
    return load_model("speech_lstm", random_models_dir)


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    return np.random.default_rng(1).random((12, 112, 112, 1), dtype=np.float32)


def _utterances(lengths, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((len(lengths), 120, 13), np.float32)
    for i, n in enumerate(lengths):
        x[i, :n] = rng.normal(size=(n, 13))
    return x


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return _utterances(LENGTHS, seed=2)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, face_model, speech_model, faces, speech) -> dict[str, Path]:
    """The three fast exports (the int8 speech export is the slow one)."""
    out = tmp_path_factory.mktemp("tflite")
    return {
        "face_float32": export_tflite(face_model, "face", out / "f32.tflite"),
        "face_int8": export_tflite(
            face_model, "face", out / "f8.tflite", quantization="int8", representative=faces
        ),
        "speech_float32": export_tflite(speech_model, "speech", out / "s32.tflite"),
    }


@pytest.fixture(scope="module")
def speech_int8(tmp_path_factory, speech_model) -> Path:
    rep = _utterances(np.random.default_rng(3).integers(2, 121, 32), seed=3)
    path = tmp_path_factory.mktemp("tflite8") / "s8.tflite"
    return export_tflite(speech_model, "speech", path, quantization="int8", representative=rep)


def _keras(model, x):
    e, p = embedding_model(model).predict(x, verbose=0)
    return np.asarray(e), np.asarray(p)


# --- float32: same numbers as Keras ------------------------------------------------------------


def test_float32_face_reproduces_keras_embedding_and_softmax(exported, face_model, faces):
    m = TFLiteModel(exported["face_float32"])
    assert (m.kind, m.quantization, m.input_shape) == ("face", "float32", (112, 112, 1))
    assert m.output_names == ("embedding", "softmax") and m.n_classes == 6
    e, p = m.predict(faces)
    ke, kp = _keras(face_model, faces)
    assert e.shape == (len(faces), 128) and p.shape == (len(faces), 6)
    np.testing.assert_allclose(e, ke, atol=1e-4)
    np.testing.assert_allclose(p, kp, atol=1e-4)


def test_float32_speech_reproduces_keras_at_every_padding_length(exported, speech_model, speech):
    m = TFLiteModel(exported["speech_float32"])
    assert (m.kind, m.quantization, m.input_shape) == ("speech", "float32", (120, 13))
    e, p = m.predict(speech)
    ke, kp = _keras(speech_model, speech)
    np.testing.assert_allclose(e, ke, atol=1e-4)
    np.testing.assert_allclose(p, kp, atol=1e-4)
    # The rows really differ (a constant output would pass the comparison above only by luck).
    assert np.ptp(e, axis=0).max() > 1e-3


def test_float32_speech_masks_the_padded_tail_like_keras(exported, speech_model, speech):
    """An utterance padded to 120 frames gives what the same weights give on its valid frames
    alone (a 97-frame copy of the network, no padding at all); unmasked padding would not."""
    from mer_gym.models.architectures import build_speech_lstm

    m = TFLiteModel(exported["speech_float32"])
    x = speech[1:2]  # 97 valid frames, 23 padded
    short = build_speech_lstm(frames=97)
    short.set_weights(speech_model.get_weights())
    ref_e, ref_p = _keras(short, x[:, :97])
    e, p = m.predict(x)
    np.testing.assert_allclose(e, ref_e, atol=1e-4)
    np.testing.assert_allclose(p, ref_p, atol=1e-4)
    # Tail frames that are not exactly zero are not padding: the LSTM runs on through them.
    not_padding = x.copy()
    not_padding[0, 97:] = 1e-3
    assert np.abs(m.predict(not_padding)[0] - e).max() > 1e-4


# --- int8 -------------------------------------------------------------------------------------


def test_int8_face_is_full_integer_and_close_to_keras(exported, face_model, faces):
    m = TFLiteModel(exported["face_int8"])
    assert m.quantization == "int8"
    details = m.interpreter.get_input_details() + m.interpreter.get_output_details()
    assert all(d["dtype"] == np.int8 for d in details)
    e, p = m.predict(faces)
    ke, kp = _keras(face_model, faces)
    assert np.abs(p - kp).mean() < 0.01
    assert np.abs(e - ke).max() < 0.05 * max(1.0, np.abs(ke).max())
    assert (p.argmax(1) == kp.argmax(1)).mean() >= 0.75


@pytest.mark.slow
def test_int8_speech_is_full_integer_and_close_to_keras(speech_int8, speech_model, speech):
    m = TFLiteModel(speech_int8)
    assert (m.kind, m.quantization) == ("speech", "int8")
    details = m.interpreter.get_input_details() + m.interpreter.get_output_details()
    assert all(d["dtype"] == np.int8 for d in details)
    e, p = m.predict(speech)
    _, kp = _keras(speech_model, speech)
    assert np.abs(p - kp).mean() < 0.01
    assert np.abs(p - kp).max() < 0.05
    assert np.abs(e[-1]).max() == 0.0  # the all-padding row stays exactly masked


@pytest.mark.slow
def test_int8_speech_warns_when_a_real_frame_would_quantize_to_padding(speech_int8, speech):
    m = TFLiteModel(speech_int8)
    scale = m.interpreter.get_input_details()[0]["quantization"][0]
    x = speech[:1].copy()
    x[0, 10] = scale / 10  # non-zero, but every coefficient rounds to the zero point
    with pytest.warns(RuntimeWarning, match="masked as padding"):
        m.predict(x)


# --- errors -----------------------------------------------------------------------------------


def test_wrong_input_shapes_name_the_expected_shape(exported, faces, speech):
    face = TFLiteModel(exported["face_float32"])
    with pytest.raises(ValueError, match=r"shape \(12, 112, 112\); expected \(N, 112, 112, 1\)"):
        face.predict(faces[..., 0])
    with pytest.raises(ValueError, match=r"add a batch axis"):
        face.predict(faces[0])
    with pytest.raises(ValueError, match=r"dtype uint8; expected float32"):
        face.predict((faces * 255).astype(np.uint8))
    sp = TFLiteModel(exported["speech_float32"])
    with pytest.raises(ValueError, match=r"shape \(8, 100, 13\); expected \(N, 120, 13\)"):
        sp.predict(speech[:, :100])


def test_export_rejects_bad_arguments(face_model, faces, tmp_path):
    with pytest.raises(
        ValueError, match=r"kind='speech' needs .* 'speech_embedding' layer.*got a face model"
    ):
        export_tflite(face_model, "speech", tmp_path / "x.tflite")
    with pytest.raises(ValueError, match="kind = 'voice'"):
        export_tflite(face_model, "voice", tmp_path / "x.tflite")
    with pytest.raises(ValueError, match="quantization = 'int4'"):
        export_tflite(face_model, "face", tmp_path / "x.tflite", quantization="int4")
    with pytest.raises(ValueError, match=r"must end in '\.tflite'"):
        export_tflite(face_model, "face", tmp_path / "x.bin")
    with pytest.raises(ValueError, match="int8 export needs representative inputs"):
        export_tflite(face_model, "face", tmp_path / "x.tflite", quantization="int8")
    with pytest.raises(ValueError, match=r"representative inputs have shape \(12, 112, 112\)"):
        export_tflite(
            face_model,
            "face",
            tmp_path / "x.tflite",
            quantization="int8",
            representative=faces[..., 0],
        )
    assert list(tmp_path.iterdir()) == []


def test_tflite_model_rejects_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="export_tflite"):
        TFLiteModel(tmp_path / "missing.tflite")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer" * 8)
    with pytest.raises(ValueError, match="not a loadable TFLite model"):
        TFLiteModel(bad)


# --- files ------------------------------------------------------------------------------------


def test_export_writes_atomically(face_model, tmp_path, monkeypatch):
    target = tmp_path / "face.tflite"
    export_tflite(face_model, "face", target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.tflite"]
    before = target.read_bytes()

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(export.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        export_tflite(face_model, "face", target)
    assert target.read_bytes() == before  # the old file survives a failed write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.tflite"]  # no partial left


def test_same_model_and_samples_give_identical_bytes(exported, face_model, faces, tmp_path):
    again = export_tflite(
        face_model, "face", tmp_path / "again.tflite", quantization="int8", representative=faces
    )
    assert again.read_bytes() == exported["face_int8"].read_bytes()
    f32 = export_tflite(face_model, "face", tmp_path / "again32.tflite")
    assert f32.read_bytes() == exported["face_float32"].read_bytes()


def test_canonical_form_is_a_fixed_point(exported):
    for name in ("face_int8", "speech_float32"):
        data = exported[name].read_bytes()
        kind = name.split("_")[0]
        assert export._canonicalize(data, kind) == data


def _detour_model() -> bytes:
    """int8 (1, 8) → DEQUANTIZE → SPLIT in float → QUANTIZE × 2 → int8 (1, 4) × 2, the float
    detour the int8 quantizer sometimes leaves in the unrolled LSTM."""
    from tensorflow.lite.python import schema_py_generated as fb
    from tensorflow.lite.tools import flatbuffer_utils

    def tensor(shape, ttype, buffer=0, q=None):
        t = fb.TensorT()
        t.shape, t.type, t.buffer = np.array(shape, np.int32), ttype, buffer
        if q is not None:
            t.quantization = fb.QuantizationParametersT()
            t.quantization.scale, t.quantization.zeroPoint = [q[0]], [q[1]]
        return t

    def op(code, inputs, outputs, options=None):
        o = fb.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = code, inputs, outputs
        if options is not None:
            o.builtinOptionsType, o.builtinOptions = fb.BuiltinOptions.SplitOptions, options
        return o

    def opcode(builtin):
        c = fb.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = builtin, min(builtin, 127), 1
        return c

    q = (0.05, -3)
    sg = fb.SubGraphT()
    sg.tensors = [
        tensor([1, 8], fb.TensorType.INT8, q=q),  # 0 input
        tensor([1, 8], fb.TensorType.FLOAT32),  # 1
        tensor([], fb.TensorType.INT32, buffer=1),  # 2 split axis
        tensor([1, 4], fb.TensorType.FLOAT32),  # 3
        tensor([1, 4], fb.TensorType.FLOAT32),  # 4
        tensor([1, 4], fb.TensorType.INT8, q=q),  # 5 output
        tensor([1, 4], fb.TensorType.INT8, q=q),  # 6 output
    ]
    split = fb.SplitOptionsT()
    split.numSplits = 2
    sg.operators = [
        op(0, [0], [1]),
        op(1, [2, 1], [3, 4], split),
        op(2, [4], [6]),
        op(2, [3], [5]),
    ]
    sg.inputs, sg.outputs = [0], [5, 6]
    model = fb.ModelT()
    model.version = 3
    model.operatorCodes = [
        opcode(fb.BuiltinOperator.DEQUANTIZE),
        opcode(fb.BuiltinOperator.SPLIT),
        opcode(fb.BuiltinOperator.QUANTIZE),
    ]
    model.subgraphs = [sg]
    empty, axis = fb.BufferT(), fb.BufferT()
    axis.data = np.frombuffer(np.int32(1).tobytes(), np.uint8)
    model.buffers = [empty, axis]
    return flatbuffer_utils.convert_object_to_bytearray(model)


def test_canonical_form_removes_the_float_detour_and_keeps_the_outputs(tmp_path):
    from tensorflow.lite.tools import flatbuffer_utils

    raw = tmp_path / "detour.tflite"
    raw.write_bytes(_detour_model())
    canon = tmp_path / "canon.tflite"
    canon.write_bytes(export._canonicalize(raw.read_bytes(), "speech"))
    parsed = flatbuffer_utils.convert_bytearray_to_object(bytearray(canon.read_bytes()))
    ops = [
        flatbuffer_utils.opcode_to_name(parsed, o.opcodeIndex)
        for o in parsed.subgraphs[0].operators
    ]
    assert ops == ["SPLIT"]
    x = np.random.default_rng(5).normal(size=(16, 8)).astype(np.float32)
    before, after = TFLiteModel(raw), TFLiteModel(canon)
    assert after.output_names == ("embedding", "softmax")
    for got, want in zip(after.predict(x), before.predict(x), strict=True):
        np.testing.assert_array_equal(got, want)
    assert export._canonicalize(canon.read_bytes(), "speech") == canon.read_bytes()


def test_representative_inputs_are_a_seeded_train_subset():
    import pandas as pd

    from mer_gym.models.data import Arrays

    n = 30
    rng = np.random.default_rng(4)
    split = np.array(["train", "test", "val"] * 10)
    arrays = Arrays(
        pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "split": split}),
        rng.integers(0, 256, (n, 112, 112), dtype=np.uint8),
        np.ones(n, bool),
        rng.normal(size=(n, 120, 13)).astype(np.float32),
        np.full(n, 120, np.int32),
    )
    a = representative_inputs(arrays, "speech", 6)
    assert a.shape == (6, 120, 13) and a.dtype == np.float32
    np.testing.assert_array_equal(a, representative_inputs(arrays, "speech", 6))
    assert not np.array_equal(a, representative_inputs(arrays, "speech", 6, seed=1))
    train = arrays.speech[split == "train"]
    assert all(any(np.array_equal(row, t) for t in train) for row in a)
    assert len(representative_inputs(arrays, "speech", 100)) == 10  # all 10 training samples
    f = representative_inputs(arrays, "face", 4)
    assert f.shape == (4, 112, 112, 1) and f.dtype == np.float32
    assert 0.0 <= f.min() and f.max() <= 1.0
    with pytest.raises(ValueError, match="no face samples"):
        representative_inputs(Arrays(arrays.index, None, None, arrays.speech, None), "face")


@pytest.mark.slow
def test_export_all_writes_the_four_files_with_sizes_and_hashes(
    random_models_dir, tiny_corpus, tmp_path
):
    from mer_gym.models.data import corpus_arrays, file_sha256

    arrays = corpus_arrays(tiny_corpus, progress=False)
    info = export.export_all(random_models_dir, tmp_path, arrays, n_representative=16)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(TFLITE_FILES)
    for stem, row in info.items():
        path = tmp_path / row["file"]
        assert path.stem == stem
        assert row["size_bytes"] == path.stat().st_size
        assert row["sha256"] == file_sha256(path)
        if row["quantization"] == "float32":
            assert row["max_abs_diff_softmax"] < 1e-4
        else:
            assert row["n_representative"] == 16 and row["max_abs_diff_softmax"] < 0.05
