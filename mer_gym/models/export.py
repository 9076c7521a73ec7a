"""Edge export: the face CNN and the speech LSTM as TFLite (LiteRT) models, float32 and int8.

Every export is the *embedding* model of :func:`~mer_gym.models.architectures.embedding_model`
with a fixed batch of one: input ``face`` (1, 112, 112, 1) or ``speech`` (1, 120, 13), outputs
``embedding`` (1, 128) and ``softmax`` (1, 6), so the edge copy feeds the fusion head as well as
classifying on its own. Both outputs survive full-integer quantization (each gets its own scale),
so the int8 files keep them too. :class:`TFLiteModel` runs a file with the ``ai-edge-litert``
interpreter (``tf.lite.Interpreter`` is deprecated) and loops single samples over any batch.

How each model converts (TensorFlow 2.21, Keras 3):

* Both go through a ``tf.function`` with a fixed input signature and
  ``TFLiteConverter.from_concrete_functions`` with ``experimental_lower_to_saved_model = False``,
  which freezes the weights into constants. (Through the SavedModel route the weights stay
  resource variables, and the converted file read uninitialized variables: wrong outputs.)
* **Face CNN**: converts as it is, to builtin ops only, float32 and full int8.
* **Speech LSTM**: ``Masking`` + two masked ``LSTM`` layers. The TFLite copy is a fresh
  :func:`~mer_gym.models.architectures.build_speech_lstm` with the trained weights and
  ``dropout=0`` (inference ignores dropout, but Keras' dropout seed generator would otherwise put
  a variable update into the traced graph, which blocks freezing). Masking converts as ordinary
  builtin ops: the frame mask is ``REDUCE_ANY(NOT_EQUAL(x, 0))`` and every recurrent step keeps
  the previous output and state where the mask is false (``SELECT_V2``), which is exactly Keras'
  masked recurrence. Padded frames are exact zeros at the tail (:mod:`mer_gym.models.data`), so the
  carried state after the last real frame is the utterance embedding, as in Keras; the float32
  export matches Keras to ~1e-7 on inputs of every padding length.

  - float32 keeps Keras' symbolic loop (``unroll=False``): two ``WHILE`` ops, a compact file that
    converts in about a second.
  - int8 uses the unrolled graph (``unroll=True``, 120 steps × 2 layers of ``FULLY_CONNECTED``,
    ``LOGISTIC``, ``TANH``, ``MUL``, ``ADD``, ``SELECT_V2``), because the int8 calibrator of
    TensorFlow 2.21 crashes the process (segmentation fault) on the ``WHILE`` graph. The unrolled
    graph quantizes fully: every recurrent op runs in int8 with int8 input and outputs; the only
    float op left is the mask test itself (``DEQUANTIZE`` of the int8 input, then
    ``NOT_EQUAL(x, 0.0)``), which is exact because the input's zero point represents 0.0
    exactly. A *real* frame is masked in int8 only if all 13 of its coefficients round to the
    zero point (|x| < scale/2 ≈ 0.02 for CMVN features); :class:`TFLiteModel` warns if that
    happens. On the default corpus the smallest max-|coefficient| of any real frame is ≈ 0.4.

  The int8 LSTM file is *larger* than the float32 one (≈ 775 KB vs ≈ 585 KB): its weights
  shrink to 131 KB of int8, but the unrolled graph describes ~4,100 operators and ~5,200 tensors,
  each activation tensor with its own scale and zero point.

Every file goes through :func:`_canonicalize` after conversion, which

* drops intermediate tensor names (the int8 quantizer concatenates the names of fused ops, which
  made the int8 LSTM file 2 MB of strings); the input keeps its name (``face`` or ``speech``) and
  the outputs are named ``embedding`` and ``softmax``;
* makes the bytes deterministic. The converter alone is not (tensorflow#55512): for the int8
  LSTM, some runs leave an exact but useless float detour (``DEQUANTIZE → SPLIT → QUANTIZE`` at
  the first step of a layer) and others do not, with the tensors in a different order. The
  canonical form removes such detours (the outputs stay bit-identical) and renumbers tensors,
  buffers and operator codes in order of first use. With the int8 calibration on a fixed,
  seeded subset of training samples, the same weights and samples give the same ``.tflite``
  bytes in every process (checked over repeated runs; :func:`export_all` records the sha256 of
  each file).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

    from mer_gym.models.data import Arrays

KINDS = ("face", "speech")
QUANTIZATIONS = ("float32", "int8")
MODEL_FOR_KIND = {"face": "face_cnn", "speech": "speech_lstm"}
OUTPUT_NAMES = ("embedding", "softmax")
# Training samples used to calibrate the int8 ranges (a seeded subset of the train split).
N_REPRESENTATIVE = 256


def load_tflite(
    kind: str, quantization: str, directory: str | Path | None = None, *, num_threads: int = 1
) -> TFLiteModel:
    """The ``kind`` (``"face"``/``"speech"``) export in ``quantization`` from ``directory`` (default
    the shipped models), checked against the sha256 its model card records.

    Raises:
        FrozenModelError: no card, or a card without this export.
        ValueError: the file's sha256 differs from the card's.
    """
    from mer_gym.models.frozen import FrozenModelError, default_dir, read_card

    _check_kind(kind)
    _check_quantization(quantization)
    directory = Path(directory) if directory is not None else default_dir()
    name = MODEL_FOR_KIND[kind]
    entry = (read_card(name, directory).get("edge") or {}).get(quantization)
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
        raise FrozenModelError(
            f"the card of {name} in {directory} records no {quantization} export: run `mer-gym models export`"
        )
    return TFLiteModel(directory / entry["file"], num_threads=num_threads, expected_sha256=entry["sha256"])


def tflite_name(kind: str, quantization: str) -> str:
    """File name of an export: ``face_cnn_float32.tflite``, ``speech_lstm_int8.tflite``, ..."""
    _check_kind(kind)
    _check_quantization(quantization)
    return f"{MODEL_FOR_KIND[kind]}_{quantization}.tflite"


TFLITE_FILES = tuple(f"{MODEL_FOR_KIND[k]}_{q}.tflite" for k in KINDS for q in QUANTIZATIONS)


# ---------------------------------------------------------------------------------------------
# Export


def export_tflite(
    model: keras.Model,
    kind: str,
    out_path: str | Path,
    *,
    quantization: str = "float32",
    representative: np.ndarray | None = None,
) -> Path:
    """Convert a trained face CNN or speech LSTM to a ``.tflite`` file (written atomically).

    Args:
        model: the Keras classifier, as built by
            :func:`~mer_gym.models.architectures.build_face_cnn` or
            :func:`~mer_gym.models.architectures.build_speech_lstm` (any class count).
        kind: ``"face"`` or ``"speech"``.
        out_path: the file to write; must end in ``.tflite``. Its folder is created.
        quantization: ``"float32"`` (weights and activations in float) or ``"int8"`` (full-integer
            quantization: int8 weights, activations, input and outputs; see the module notes for
            the LSTM's one float comparison).
        representative: model inputs for int8 calibration, float32 (N, 112, 112, 1) faces in
            [0, 1] or (N, 120, 13) speech features; required for ``"int8"``, ignored otherwise.
            Use training samples (:func:`representative_inputs`).

    Returns:
        The path of the written file.
    """
    import tensorflow as tf

    from mer_gym.models.architectures import embedding_model

    _check_kind(kind)
    _check_quantization(quantization)
    out_path = Path(out_path)
    if out_path.suffix != ".tflite":
        raise ValueError(f"out_path {out_path} must end in '.tflite'")
    sample_shape = _check_model(model, kind)
    if quantization == "int8":
        representative = _check_representative(representative, sample_shape, kind)

    if kind == "speech":
        source = _speech_export_copy(model, unroll=quantization == "int8")
    else:
        source = model
    emb = embedding_model(source)

    spec = tf.TensorSpec((1, *sample_shape), tf.float32, name=kind)

    @tf.function(input_signature=[spec], autograph=False)
    def serve(x):
        e, p = emb(x, training=False)
        return e, p

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [serve.get_concrete_function()], emb
    )
    converter.experimental_lower_to_saved_model = False  # freeze weights into constants
    if quantization == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative_dataset(representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    else:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    with warnings.catch_warnings():
        # Emitted for every int8 conversion whose input statistics come from calibration.
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        flat = converter.convert()
    flat = _canonicalize(flat, kind)
    _atomic_write(out_path, flat)
    return out_path


def representative_inputs(
    arrays: Arrays, kind: str, n: int = N_REPRESENTATIVE, *, split: str = "train", seed: int = 0
) -> np.ndarray:
    """A seeded subset of ``n`` samples of ``split`` as float32 model inputs for int8 calibration.

    Falls back to all samples when ``arrays`` has no ``split`` column or no row of ``split``.
    """
    from mer_gym.models.data import face_batch

    _check_kind(kind)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n = {n!r}: expected an integer >= 1 (samples to calibrate with)")
    if "split" in arrays.index and (arrays.index["split"] == split).any():
        arrays = arrays.split(split)
    data = arrays.faces if kind == "face" else arrays.speech
    if data is None or len(data) == 0:
        raise ValueError(f"the arrays hold no {kind} samples to calibrate the int8 export with")
    take = np.sort(np.random.default_rng(seed).permutation(len(data))[: min(n, len(data))])
    return face_batch(data[take]) if kind == "face" else np.asarray(data[take], np.float32)


def export_all(
    models_dir: str | Path,
    out_dir: str | Path,
    representative_arrays: Arrays,
    *,
    n_representative: int = N_REPRESENTATIVE,
    verify_hash: bool = True,
    check_samples: int = 16,
) -> dict[str, dict[str, Any]]:
    """Export face CNN and speech LSTM of ``models_dir``, float32 and int8, into ``out_dir``.

    Writes :data:`TFLITE_FILES`. The models are loaded with
    :func:`~mer_gym.models.frozen.load_model` (sha256 checked against their cards unless
    ``verify_hash`` is false); the int8 calibration uses :func:`representative_inputs` of
    ``representative_arrays`` (its train split). Each export is then run on ``check_samples`` of
    those inputs against Keras: a float32 export whose softmax differs by more than 1e-4 (the
    embedding: 1e-4 relative to its largest value, at least 1e-4) raises :class:`RuntimeError`.

    Returns:
        Per file stem (``face_cnn_int8``, ...): ``file``, ``kind``, ``quantization``,
        ``size_bytes``, ``sha256``, ``n_representative`` and the largest absolute difference
        to Keras of ``max_abs_diff_embedding`` and ``max_abs_diff_softmax`` on the check samples.
    """
    from mer_gym.models.data import file_sha256
    from mer_gym.models.frozen import load_model

    out_dir = Path(out_dir)
    out: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        model = load_model(MODEL_FOR_KIND[kind], models_dir, verify_hash=verify_hash)
        rep = representative_inputs(representative_arrays, kind, n_representative)
        check = rep[: max(1, check_samples)]
        ke, kp = _keras_outputs(model, check)
        for quantization in QUANTIZATIONS:
            path = export_tflite(
                model,
                kind,
                out_dir / tflite_name(kind, quantization),
                quantization=quantization,
                representative=rep,
            )
            te, tp = TFLiteModel(path).predict(check)
            diff_e = float(np.max(np.abs(te - ke)))
            diff_p = float(np.max(np.abs(tp - kp)))
            if quantization == "float32" and (
                diff_e > 1e-4 * max(1.0, float(np.abs(ke).max())) or diff_p > 1e-4
            ):
                raise RuntimeError(
                    f"{path}: the float32 export differs from Keras by {max(diff_e, diff_p):.2e} "
                    "(> 1e-4) on training samples; the conversion is wrong, do not ship it"
                )
            out[path.stem] = {
                "file": path.name,
                "kind": kind,
                "quantization": quantization,
                "size_bytes": path.stat().st_size,
                "sha256": file_sha256(path),
                "n_representative": len(rep) if quantization == "int8" else 0,
                "max_abs_diff_embedding": diff_e,
                "max_abs_diff_softmax": diff_p,
            }
    return out


# ---------------------------------------------------------------------------------------------
# Inference


class TFLiteModel:
    """A face or speech export run by the LiteRT interpreter (``ai_edge_litert``).

    :meth:`predict` takes a batch of float inputs, feeds them one sample at a time (the exports
    have a fixed batch of one), quantizes them for int8 files and dequantizes the outputs with
    each tensor's scale and zero point, so float32 and int8 files are used the same way.

    Attributes:
        path: the ``.tflite`` file.
        kind: ``"face"`` or ``"speech"`` (the input tensor's name).
        input_shape: the shape of one sample, e.g. ``(112, 112, 1)``.
        quantization: ``"int8"`` when the input tensor is int8, else ``"float32"``.
        output_names: the outputs in :meth:`predict`'s order (``embedding``, ``softmax``).
        n_classes: width of the softmax output.
    """

    def __init__(
        self, path: str | Path, *, num_threads: int = 1, expected_sha256: str | None = None
    ) -> None:
        from ai_edge_litert.interpreter import Interpreter

        from mer_gym.models.data import file_sha256

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"{self.path} not found: export it with mer_gym.models.export.export_tflite "
                "(or export_all)"
            )
        if expected_sha256 is not None:
            actual = file_sha256(self.path)
            if actual != expected_sha256:
                raise ValueError(
                    f"{self.path} has sha256 {actual[:16]}… but its card records "
                    f"{expected_sha256[:16]}…: the file was modified or corrupted. Restore it, or "
                    "re-export with `mer-gym models export`"
                )
        try:
            self.interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
            self.interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            raise ValueError(f"{self.path} is not a loadable TFLite model: {exc}") from exc
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or not 1 <= len(outputs) <= 2 or int(inputs[0]["shape"][0]) != 1:
            raise ValueError(
                f"{self.path}: expected one batch-1 input and the outputs (embedding, softmax) or "
                f"(softmax,); found {len(inputs)} input(s) of shape "
                f"{[tuple(int(s) for s in d['shape']) for d in inputs]} and {len(outputs)} output(s)"
            )
        self._in = inputs[0]
        names = [d["name"] for d in outputs]
        if set(names) == set(OUTPUT_NAMES):
            outputs = sorted(outputs, key=lambda d: OUTPUT_NAMES.index(d["name"]))
        self._out = outputs
        self.output_names = tuple(d["name"] for d in outputs)
        self.input_shape = tuple(int(s) for s in self._in["shape"][1:])
        name = str(self._in["name"])
        self.kind = name if name in KINDS else ("face" if len(self.input_shape) == 3 else "speech")
        self.quantization = "int8" if self._in["dtype"] == np.int8 else "float32"
        self.n_classes = int(outputs[-1]["shape"][-1])

    @property
    def has_embedding(self) -> bool:
        return len(self._out) == 2

    def __repr__(self) -> str:
        return f"TFLiteModel({self.path.name!r}, kind={self.kind!r}, quantization={self.quantization!r})"

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | np.ndarray:
        """Run a batch ``x`` of shape (N, *input_shape) one sample at a time.

        Returns:
            ``(embedding, softmax)`` float32 arrays of shape (N, 128) and (N, n_classes), or the
            softmax alone for a file with one output.
        """
        x = self._check_input(x)
        q = self._quantize(x)
        interp = self.interpreter
        in_index = self._in["index"]
        results = [np.empty((len(x), *d["shape"][1:]), d["dtype"]) for d in self._out]
        for i in range(len(x)):
            interp.set_tensor(in_index, q[i : i + 1])
            interp.invoke()
            for res, d in zip(results, self._out, strict=True):
                res[i] = interp.get_tensor(d["index"])[0]
        outs = [self._dequantize(r, d) for r, d in zip(results, self._out, strict=True)]
        return (outs[0], outs[1]) if len(outs) == 2 else outs[0]

    def _check_input(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        expected = f"(N, {', '.join(map(str, self.input_shape))})"
        hint = (
            "float faces in [0, 1]: use mer_gym.models.data.face_batch on uint8 crops"
            if self.kind == "face"
            else "MFCC sequences zero-padded at the tail (mer_gym.models.data SPEECH_PREP)"
        )
        if x.ndim != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            single = (
                " (one sample? add a batch axis: x[None])" if x.shape == self.input_shape else ""
            )
            raise ValueError(
                f"{self.path.name}: input has shape {tuple(x.shape)}; expected {expected}, "
                f"{hint}{single}"
            )
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(
                f"{self.path.name}: input has dtype {x.dtype}; expected float32 {expected}, {hint}"
            )
        return x.astype(np.float32, copy=False)

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        if self.quantization != "int8":
            return np.ascontiguousarray(x, np.float32)
        scale, zero = self._in["quantization"]
        q = np.clip(np.round(x / np.float32(scale)) + zero, -128, 127).astype(np.int8)
        if self.kind == "speech":
            real = np.any(x != 0.0, axis=-1)
            lost = real & np.all(q == zero, axis=-1)
            if lost.any():
                warnings.warn(
                    f"{self.path.name}: {int(lost.sum())} non-zero frame(s) quantize to all-zero "
                    f"int8 frames (|x| < {scale / 2:.3g}) and are masked as padding; use the float32 "
                    "export for such inputs",
                    RuntimeWarning,
                    stacklevel=3,
                )
        return q

    @staticmethod
    def _dequantize(values: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
        if detail["dtype"] == np.int8:
            scale, zero = detail["quantization"]
            return ((values.astype(np.float32) - np.float32(zero)) * np.float32(scale)).astype(
                np.float32
            )
        return values.astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------------------
# Helpers


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind = {kind!r}: expected one of {', '.join(map(repr, KINDS))}")


def _check_quantization(quantization: str) -> None:
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"quantization = {quantization!r}: expected one of {', '.join(map(repr, QUANTIZATIONS))}"
        )


def _check_model(model: keras.Model, kind: str) -> tuple[int, ...]:
    """The model's per-sample input shape, after checking that it is a ``kind`` model."""
    layer = f"{kind}_embedding"
    names = {la.name for la in getattr(model, "layers", [])}
    if layer not in names or len(getattr(model, "inputs", [])) != 1:
        other = next((k for k in KINDS if f"{k}_embedding" in names), None)
        got = f"a {other} model" if other else f"{getattr(model, 'name', type(model).__name__)!r}"
        builder = "build_face_cnn" if kind == "face" else "build_speech_lstm"
        raise ValueError(
            f"kind={kind!r} needs a model with one input and a {layer!r} layer (from {builder}); "
            f"got {got}"
        )
    shape = tuple(model.inputs[0].shape[1:])
    if any(s is None for s in shape):
        raise ValueError(f"the {kind} model's input shape {shape} is not fully known")
    return tuple(int(s) for s in shape)


def _check_representative(rep: np.ndarray | None, shape: tuple[int, ...], kind: str) -> np.ndarray:
    if rep is None:
        raise ValueError(
            "int8 export needs representative inputs (training samples) to calibrate the ranges: "
            "pass representative=representative_inputs(arrays, kind)"
        )
    rep = np.asarray(rep)
    if rep.ndim != len(shape) + 1 or tuple(rep.shape[1:]) != shape or len(rep) == 0:
        raise ValueError(
            f"representative inputs have shape {rep.shape}; expected (N >= 1, "
            f"{', '.join(map(str, shape))}) float {kind} inputs"
        )
    return rep.astype(np.float32, copy=False)


def _representative_dataset(rep: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    def gen() -> Iterator[list[np.ndarray]]:
        for i in range(len(rep)):
            yield [rep[i : i + 1]]

    return gen


def _speech_export_copy(model: keras.Model, *, unroll: bool) -> keras.Model:
    """A fresh speech LSTM with ``model``'s weights, dropout 0 and the chosen loop form."""
    from mer_gym.models.architectures import build_speech_lstm

    frames, features = (int(s) for s in model.inputs[0].shape[1:])
    n_classes = int(model.outputs[0].shape[-1])
    copy = build_speech_lstm(
        n_classes, dropout=0.0, frames=frames, features=features, unroll=unroll
    )
    try:
        copy.set_weights(model.get_weights())
    except ValueError as exc:
        raise ValueError(
            f"the speech model {model.name!r} does not have the weights of build_speech_lstm "
            f"(Table 6): {exc}"
        ) from exc
    return copy


def _keras_outputs(model: keras.Model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from mer_gym.models.architectures import embedding_model

    e, p = embedding_model(model).predict(x, batch_size=256, verbose=0)
    return np.asarray(e, np.float32), np.asarray(p, np.float32)


def _canonicalize(flat: bytes, kind: str) -> bytes:
    """Make the converter's output deterministic and lean (same numbers, same bytes every run).

    1. Removes float detours around int8 data movement: ``DEQUANTIZE → SPLIT → QUANTIZE`` (also
       ``SPLIT_V``, ``UNPACK``, ``RESHAPE``) where every ``QUANTIZE`` restores the input's scale
       and zero point is replaced by the int8 op alone. The int8 quantizer of TensorFlow 2.21
       leaves such a detour at the first step of an unrolled LSTM layer in some runs and not in
       others (upstream: tensorflow#55512); the detour is exact, so removing it changes no output.
    2. Renumbers tensors, buffers and operator codes in order of first use, so equal graphs
       serialize to equal bytes whatever order the converter emitted them in.
    3. Drops intermediate tensor names (the quantizer concatenates the names of fused ops: 2 MB
       of strings in the int8 LSTM); the input is named ``kind``, the outputs ``embedding`` and
       ``softmax``.
    """
    from tensorflow.lite.python import schema_py_generated as fb
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flat))
    if model.signatureDefs:
        raise RuntimeError("unexpected SignatureDefs in a frozen-graph conversion")
    code = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    for sg in model.subgraphs:
        _drop_float_detours(sg, code, fb.BuiltinOperator)

    # Operator codes, tensors (per subgraph) and buffers in order of first use.
    op_order: dict[int, int] = {}
    for sg in model.subgraphs:
        for op in sg.operators:
            op_order.setdefault(op.opcodeIndex, len(op_order))
    model.operatorCodes = [model.operatorCodes[i] for i in op_order]
    buf_order: dict[int, int] = {0: 0}  # buffer 0 is the empty sentinel
    for n, sg in enumerate(model.subgraphs):
        seq: list[int] = list(sg.inputs)
        for op in sg.operators:
            op.opcodeIndex = op_order[op.opcodeIndex]
            seq += [
                *op.inputs,
                *op.outputs,
                *(op.intermediates if op.intermediates is not None else []),
            ]
        seq += list(sg.outputs)
        t_order: dict[int, int] = {}
        for t in seq:
            if t >= 0:
                t_order.setdefault(int(t), len(t_order))
        names = {}
        if n == 0:
            names = {int(sg.inputs[0]): kind}
            names.update({int(t): nm for t, nm in zip(sg.outputs, OUTPUT_NAMES, strict=True)})
        tensors = []
        for old in t_order:
            tensor = sg.tensors[old]
            tensor.name = names.get(old)
            tensor.buffer = buf_order.setdefault(tensor.buffer, len(buf_order))
            tensors.append(tensor)
        sg.tensors = tensors
        sg.inputs, sg.outputs = _remap(sg.inputs, t_order), _remap(sg.outputs, t_order)
        for op in sg.operators:
            op.inputs, op.outputs = _remap(op.inputs, t_order), _remap(op.outputs, t_order)
            if op.intermediates is not None and len(op.intermediates):
                op.intermediates = _remap(op.intermediates, t_order)
    for meta in model.metadata or []:
        meta.buffer = buf_order.setdefault(meta.buffer, len(buf_order))
    if model.metadataBuffer is not None and len(model.metadataBuffer):
        model.metadataBuffer = [
            buf_order.setdefault(b, len(buf_order)) for b in model.metadataBuffer
        ]
    model.buffers = [model.buffers[i] for i in buf_order]
    _rehash_conversion_metadata(model)
    return flatbuffer_utils.convert_object_to_bytearray(model)


def _remap(indices: Any, order: dict[int, int]) -> np.ndarray:
    """Tensor indices through ``order`` (-1, an omitted optional input, stays -1)."""
    return np.array([order[int(t)] if t >= 0 else int(t) for t in indices], np.int32)


def _rehash_conversion_metadata(model: Any) -> None:
    """Recompute the converter's structural ``modelHash`` for the canonical graph."""
    import flatbuffers
    from tensorflow.lite.python import conversion_metadata_schema_py_generated as meta_fb
    from tensorflow.lite.python.util import get_model_hash

    for meta in model.metadata or []:
        if meta.name != b"CONVERSION_METADATA":
            continue
        buffer = model.buffers[meta.buffer]
        root = meta_fb.ConversionMetadata.GetRootAs(bytes(bytearray(buffer.data)), 0)
        obj = meta_fb.ConversionMetadataT.InitFromObj(root)
        if obj.environment is not None:
            obj.environment.modelHash = get_model_hash(model)
        builder = flatbuffers.Builder(1024)
        builder.Finish(obj.Pack(builder))
        buffer.data = np.frombuffer(bytes(builder.Output()), np.uint8)


def _drop_float_detours(sg: Any, code: list[int], ops: Any) -> None:
    """Step 1 of :func:`_canonicalize` on one subgraph (in place)."""
    movers = {ops.SPLIT, ops.SPLIT_V, ops.UNPACK, ops.RESHAPE}
    consumers: dict[int, list[int]] = {}
    for k, op in enumerate(sg.operators):
        for t in op.inputs:
            consumers.setdefault(int(t), []).append(k)
    graph_outputs = {int(t) for t in sg.outputs}

    def qparams(t: int) -> tuple | None:
        q = sg.tensors[t].quantization
        if q is None or q.scale is None or len(q.scale) != 1:
            return None
        return float(q.scale[0]), int(q.zeroPoint[0])

    drop: set[int] = set()
    for k, deq in enumerate(sg.operators):
        if code[deq.opcodeIndex] != ops.DEQUANTIZE:
            continue
        q_in, f_in = int(deq.inputs[0]), int(deq.outputs[0])
        users = consumers.get(f_in, [])
        if len(users) != 1 or f_in in graph_outputs or qparams(q_in) is None:
            continue
        mover = sg.operators[users[0]]
        if code[mover.opcodeIndex] not in movers:
            continue
        # Every mover output must be unused or feed only QUANTIZE ops back to the same params.
        plan: dict[int, list[int]] = {}
        for f_out in (int(t) for t in mover.outputs):
            quants = consumers.get(f_out, [])
            if f_out in graph_outputs or any(
                code[sg.operators[j].opcodeIndex] != ops.QUANTIZE
                or qparams(int(sg.operators[j].outputs[0])) != qparams(q_in)
                for j in quants
            ):
                plan = {}
                break
            plan[f_out] = quants
        if not plan:
            continue
        src = sg.tensors[q_in]
        new_outputs = []
        for f_out, quants in plan.items():
            if quants:
                q_out = int(sg.operators[quants[0]].outputs[0])
                for j in quants[1:]:  # further copies of the same value: reroute their users
                    dup = int(sg.operators[j].outputs[0])
                    for user in consumers.get(dup, []):
                        op = sg.operators[user]
                        op.inputs = [q_out if int(t) == dup else int(t) for t in op.inputs]
                drop.update(quants)
            else:  # an unused output becomes an int8 tensor with the input's parameters
                q_out = f_out
                tensor = sg.tensors[f_out]
                tensor.type, tensor.quantization = src.type, src.quantization
            new_outputs.append(q_out)
        mover.inputs = [q_in if int(t) == f_in else int(t) for t in mover.inputs]
        mover.outputs = new_outputs
        drop.add(k)
    if drop:
        sg.operators = [op for k, op in enumerate(sg.operators) if k not in drop]


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


__all__ = [
    "KINDS",
    "MODEL_FOR_KIND",
    "N_REPRESENTATIVE",
    "OUTPUT_NAMES",
    "QUANTIZATIONS",
    "TFLITE_FILES",
    "TFLiteModel",
    "export_all",
    "export_tflite",
    "representative_inputs",
    "tflite_name",
]
