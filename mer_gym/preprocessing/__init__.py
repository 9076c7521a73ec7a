"""The paper's preprocessing: §5.1 faces (crop, Eq. 1 equalization, 112×112) and §5.2 speech (MFCCs).

    >>> from mer_gym.preprocessing import FacePreprocessor, SpeechPreprocessor
    >>> FacePreprocessor().size, SpeechPreprocessor().n_features
    (112, 13)

Both preprocessors are frozen, validated config dataclasses (build them from YAML with
``mer_gym.config.from_mapping``) that are also callable on one input and have a ``batch`` method.
See ``docs/preprocessing.md`` for each step, its equation and its edge cases.
"""

from mer_gym.preprocessing.face import (
    FaceBatch,
    FacePreprocessor,
    FaceResult,
    equalize_histogram,
    to_gray_uint8,
)
from mer_gym.preprocessing.haar import DEFAULT_HAAR, HaarParams
from mer_gym.preprocessing.speech import (
    SpeechBatch,
    SpeechFeatures,
    SpeechPreprocessor,
    cmvn,
    preemphasis,
    to_mono_float,
)

__all__ = [
    "DEFAULT_HAAR",
    "FaceBatch",
    "FacePreprocessor",
    "FaceResult",
    "HaarParams",
    "SpeechBatch",
    "SpeechFeatures",
    "SpeechPreprocessor",
    "cmvn",
    "equalize_histogram",
    "preemphasis",
    "to_gray_uint8",
    "to_mono_float",
]
