"""Loaders for the real emotion corpora in their published on-disk layouts.

Each loader reads one corpus and returns a :class:`LoadResult`: the usable samples as
:class:`FaceRecord` / :class:`SpeechRecord` (labelled with a canonical emotion, see
:mod:`mer_gym.labels`) and a :class:`Skip` for every file, row or sequence it did not use, with the
reason. Native labels map onto the canonical six through ``label_maps.yaml``; classes outside them
(surprise, contempt, boredom, calm) are dropped by default and can be mapped with ``label_map=``.
See ``docs/datasets.md`` for the layouts.

>>> from mer_gym.datasets import load_emodb          # doctest: +SKIP
>>> result = load_emodb("/data/emodb")               # doctest: +SKIP
>>> print(result.summary())                          # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable

from mer_gym.datasets.ckplus import load_ckplus
from mer_gym.datasets.cremad import load_cremad_faces, load_cremad_speech
from mer_gym.datasets.emodb import load_emodb
from mer_gym.datasets.fer2013 import load_fer2013
from mer_gym.datasets.label_maps import DATASETS, LabelScheme, label_scheme
from mer_gym.datasets.ravdess import load_ravdess_faces, load_ravdess_speech
from mer_gym.datasets.records import (
    DatasetError,
    FaceRecord,
    LoadResult,
    Skip,
    SpeechRecord,
    pair_clips,
)

LOADERS: dict[str, Callable[..., LoadResult]] = {
    "fer2013": load_fer2013,
    "ckplus": load_ckplus,
    "emodb": load_emodb,
    "ravdess_speech": load_ravdess_speech,
    "ravdess_faces": load_ravdess_faces,
    "cremad_speech": load_cremad_speech,
    "cremad_faces": load_cremad_faces,
}
"""Loader per name: ``LOADERS["emodb"](root, limit=10)``. Face loaders: fer2013, ckplus, *_faces."""

__all__ = [
    "DATASETS",
    "LOADERS",
    "DatasetError",
    "FaceRecord",
    "LabelScheme",
    "LoadResult",
    "Skip",
    "SpeechRecord",
    "label_scheme",
    "load_ckplus",
    "load_cremad_faces",
    "load_cremad_speech",
    "load_emodb",
    "load_fer2013",
    "load_ravdess_faces",
    "load_ravdess_speech",
    "pair_clips",
]
