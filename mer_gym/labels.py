"""The canonical emotion labels shared by every modality, dataset, model and simulator.

The paper's §6 evaluates six classes; the six below are the ones that the face corpora (FER-2013,
CK+) and the speech corpora (EMO-DB, RAVDESS, CREMA-D) share, and exactly CREMA-D's set. Classes
outside it (surprise, contempt, boredom, calm) are dropped by default and can be mapped onto one of
the six by a loader's ``label_map`` (see ``mer_gym/datasets/label_maps.yaml``).
"""

from __future__ import annotations

from typing import Final

EMOTIONS: Final[tuple[str, ...]] = ("anger", "disgust", "fear", "happiness", "sadness", "neutral")
"""Canonical labels, in the fixed order that defines class indices everywhere in mer-gym."""

NUM_EMOTIONS: Final[int] = len(EMOTIONS)
NEUTRAL: Final[str] = "neutral"

_INDEX: Final[dict[str, int]] = {name: i for i, name in enumerate(EMOTIONS)}


def emotion_index(name: str) -> int:
    """Class index of a canonical emotion name.

    >>> emotion_index("fear")
    2
    """
    try:
        return _INDEX[name]
    except KeyError:
        raise ValueError(
            f"unknown emotion {name!r}: expected one of {', '.join(EMOTIONS)}"
        ) from None


def emotion_name(index: int) -> str:
    """Canonical emotion name of a class index.

    >>> emotion_name(5)
    'neutral'
    """
    if not 0 <= int(index) < NUM_EMOTIONS:
        raise ValueError(f"emotion index {index} out of range: expected 0..{NUM_EMOTIONS - 1}")
    return EMOTIONS[int(index)]


def validate_emotion(name: str, *, what: str = "emotion") -> str:
    """Return ``name`` if it is canonical, else raise a ValueError naming ``what``."""
    if name not in _INDEX:
        raise ValueError(f"{what} {name!r} is not a canonical emotion: use one of {', '.join(EMOTIONS)}")
    return name
