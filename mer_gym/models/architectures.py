"""The paper's three networks as Keras builders: face CNN (Table 5), speech LSTM (Table 6), fusion head.

Every builder takes the class count. With the paper's seven classes the parameter counts equal the
tables row for row; the shipped models use the six canonical classes of :mod:`mer_gym.labels`,
which changes only the softmax rows (face 1,542 instead of 1,799; speech and fusion 774 instead
of 903).

Where the paper disagrees with itself:

* Table 5 prints a total of 128,395 parameters; its rows sum to 128,391 (:data:`FACE_TABLE5`).
* The text of §6.2 calls the global-average-pooling output "a compact 128-dimensional embedding"
  and §5.3.1 says fully connected layers "produce" the 128-d embedding, while Table 5 has no
  128-unit dense layer (GAP 128 → Dense 256 → softmax). We follow Table 5 exactly and take the
  GAP output as the face embedding (layer ``face_embedding``); Dense 256 belongs to the face
  model's own classification head.
* The text says max pooling follows "the first two convolutional blocks"; Table 5 agrees (two
  MaxPooling2D rows), so the third block goes straight into global average pooling.
* Table 5 lists ReLU inside each Conv2D row and BatchNormalization after it (conv → ReLU → BN);
  the text says "each followed by batch normalization and ReLU". The parameter counts do not
  tell them apart; we use the table's order.
* Table 6 says "dropout = 0.3" inside both LSTM rows; we use Keras' input ``dropout=0.3`` on
  both LSTM layers (no recurrent dropout, which keeps the cuDNN/unrolled export paths simple).

L2 regularization (λ = 1e-4, §6.1) applies to the dense layers' kernels, as the paper says.
"""

from __future__ import annotations

import keras
from keras import layers, regularizers

from mer_gym.labels import EMOTIONS

N_CLASSES = len(EMOTIONS)
FACE_SIZE = 112
SPEECH_FRAMES = 120
SPEECH_FEATURES = 13
EMBEDDING_DIM = 128

# Table 5 row by row (paper: 7 classes). The printed total, 128,395, misadds: the rows sum to this.
FACE_TABLE5: dict[str, int] = {
    "conv1": 320,
    "bn1": 128,
    "pool1": 0,
    "conv2": 18_496,
    "bn2": 256,
    "pool2": 0,
    "conv3": 73_856,
    "bn3": 512,
    "face_embedding": 0,
    "dense256": 33_024,
    "dropout": 0,
    "softmax": 1_799,
}
# Table 6 row by row (paper: 7 classes); the printed total 131,335 is right.
SPEECH_TABLE6: dict[str, int] = {
    "masking": 0,
    "lstm128": 72_704,
    "lstm64": 49_408,
    "speech_embedding": 8_320,
    "softmax": 903,
}


def _l2(weight: float) -> regularizers.Regularizer | None:
    return regularizers.L2(weight) if weight > 0 else None


def build_face_cnn(
    n_classes: int = N_CLASSES, *, l2: float = 1e-4, dropout: float = 0.4, size: int = FACE_SIZE
) -> keras.Model:
    """Table 5: 112×112×1 → conv 32/64/128 (+BN, two max-pools) → GAP (128-d embedding) →
    Dense 256 ReLU → Dropout 0.4 → softmax. Input is gray in [0, 1]."""
    _check_classes(n_classes)
    inp = keras.Input((size, size, 1), name="face")
    x = layers.Conv2D(32, 3, activation="relu", name="conv1")(inp)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(64, 3, activation="relu", name="conv2")(x)
    x = layers.BatchNormalization(name="bn2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Conv2D(128, 3, activation="relu", name="conv3")(x)
    x = layers.BatchNormalization(name="bn3")(x)
    emb = layers.GlobalAveragePooling2D(name="face_embedding")(x)
    x = layers.Dense(256, activation="relu", kernel_regularizer=_l2(l2), name="dense256")(emb)
    x = layers.Dropout(dropout, name="dropout")(x)
    out = layers.Dense(n_classes, activation="softmax", kernel_regularizer=_l2(l2), name="softmax")(x)
    return keras.Model(inp, out, name="face_cnn")


def build_speech_lstm(
    n_classes: int = N_CLASSES,
    *,
    l2: float = 1e-4,
    dropout: float = 0.3,
    frames: int = SPEECH_FRAMES,
    features: int = SPEECH_FEATURES,
    unroll: bool = False,
) -> keras.Model:
    """Table 6: 120×13 MFCC → Masking(0.0) → LSTM 128 → LSTM 64 (dropout 0.3 each) →
    Dense 128 ReLU (the 128-d embedding) → softmax.

    ``unroll=True`` builds the same weights as a static, unrolled graph (what the TFLite export
    converts); it is numerically the same network.
    """
    _check_classes(n_classes)
    inp = keras.Input((frames, features), name="speech")
    x = layers.Masking(mask_value=0.0, name="masking")(inp)
    x = layers.LSTM(128, return_sequences=True, dropout=dropout, unroll=unroll, name="lstm128")(x)
    x = layers.LSTM(64, dropout=dropout, unroll=unroll, name="lstm64")(x)
    emb = layers.Dense(
        EMBEDDING_DIM, activation="relu", kernel_regularizer=_l2(l2), name="speech_embedding"
    )(x)
    out = layers.Dense(n_classes, activation="softmax", kernel_regularizer=_l2(l2), name="softmax")(emb)
    return keras.Model(inp, out, name="speech_lstm")


def build_fusion_head(n_classes: int = N_CLASSES, *, l2: float = 1e-4) -> keras.Model:
    """§6.3: [w_face · e_face, w_speech · e_speech] (256) → Dense 128 ReLU → softmax.

    Inputs: ``face_embedding`` (128), ``speech_embedding`` (128) and ``w_face`` (1, in [0, 1]);
    ``w_speech = 1 - w_face``. The first dense layer is linear in the scaled embeddings, so
    ``z = w_face · (e_face @ W_face) + w_speech · (e_speech @ W_speech) + b``: the embedding bank
    stores the two per-sample projections and evaluates the head for any weight cheaply
    (:meth:`mer_gym.models.fusion.FusionProjection.fused_softmax`).
    """
    _check_classes(n_classes)
    e_face = keras.Input((EMBEDDING_DIM,), name="face_embedding")
    e_speech = keras.Input((EMBEDDING_DIM,), name="speech_embedding")
    w_face = keras.Input((1,), name="w_face")
    # 1 - w as a built-in layer (a Lambda would not load in Keras safe mode).
    w_speech = layers.Rescaling(scale=-1.0, offset=1.0, name="w_speech")(w_face)
    face = layers.Multiply(name="scaled_face")([e_face, w_face])
    speech = layers.Multiply(name="scaled_speech")([e_speech, w_speech])
    x = layers.Concatenate(name="fused")([face, speech])
    x = layers.Dense(128, activation="relu", kernel_regularizer=_l2(l2), name="dense128")(x)
    out = layers.Dense(n_classes, activation="softmax", kernel_regularizer=_l2(l2), name="softmax")(x)
    return keras.Model([e_face, e_speech, w_face], out, name="fusion_head")


def embedding_model(model: keras.Model) -> keras.Model:
    """A model that maps the classifier's input to ``(embedding, softmax)``.

    Works for the face CNN (``face_embedding``) and the speech LSTM (``speech_embedding``).
    """
    for name in ("face_embedding", "speech_embedding"):
        try:
            layer = model.get_layer(name)
        except ValueError:
            continue
        if isinstance(layer, keras.layers.InputLayer):
            continue
        return keras.Model(model.inputs, [layer.output, model.output], name=f"{model.name}_embed")
    raise ValueError(
        f"model {model.name!r} has no 'face_embedding' or 'speech_embedding' layer: "
        "build it with build_face_cnn or build_speech_lstm"
    )


def param_counts(model: keras.Model) -> dict[str, int]:
    """Parameters per layer (trainable and not), in layer order, input layers excluded."""
    return {
        layer.name: int(layer.count_params())
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer)
    }


def _check_classes(n_classes: int) -> None:
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ValueError(f"n_classes = {n_classes!r}: expected an integer >= 2")
