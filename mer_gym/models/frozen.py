"""Loading the shipped (or any trained) models safely: the file's sha256 must match its card.

Every model ``<name>.keras`` in a model directory has a card ``<name>.card.json`` whose ``sha256``
field is the file's hash. :func:`load_model` recomputes the hash and refuses a mismatch before
Keras sees the file, and then loads with Keras' safe mode on (no arbitrary code from ``Lambda``
layers). Nothing here unpickles.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from mer_gym.models.data import file_sha256

MODEL_NAMES = ("face_cnn", "speech_lstm", "fusion_head")


class FrozenModelError(ValueError):
    """A model file or its card is missing, unreadable or does not match."""


def default_dir() -> Path:
    """The repository's ``frozen_models/`` folder (shipped as the ``frozen_models`` package)."""
    import frozen_models

    return Path(frozen_models.__file__).resolve().parent


def card_path(name: str, directory: str | Path | None = None) -> Path:
    return Path(directory or default_dir()) / f"{name}.card.json"


def model_path(name: str, directory: str | Path | None = None) -> Path:
    return Path(directory or default_dir()) / f"{name}.keras"


def read_card(name: str, directory: str | Path | None = None) -> dict[str, Any]:
    """The card of model ``name``; raises :class:`FrozenModelError` naming the fix."""
    _check_name(name)
    path = card_path(name, directory)
    if not path.is_file():
        raise FrozenModelError(
            f"{path} not found: the model card of {name!r} is missing. Restore frozen_models/ "
            "from the repository or write cards with `mer-gym models evaluate`"
        )
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise FrozenModelError(f"{path} is not valid JSON ({exc}): restore it from the repository") from exc
    if not isinstance(card, dict) or not isinstance(card.get("sha256"), str):
        raise FrozenModelError(f"{path} has no 'sha256' string: it is not a mer-gym model card")
    return card


def verify(name: str, directory: str | Path | None = None) -> Path:
    """Check ``<name>.keras`` against the sha256 of its card; return the model path."""
    card = read_card(name, directory)
    path = model_path(name, directory)
    if not path.is_file():
        raise FrozenModelError(f"{path} not found: restore frozen_models/ or retrain with `mer-gym models train`")
    actual = file_sha256(path)
    if actual != card["sha256"]:
        raise FrozenModelError(
            f"{path} has sha256 {actual[:16]}… but its card {card_path(name, directory).name} says "
            f"{card['sha256'][:16]}…: the file was modified or corrupted. Restore it "
            "(git checkout frozen_models/) or retrain and re-card it (`mer-gym models train`)"
        )
    return path


def load_model(name: str, directory: str | Path | None = None, *, verify_hash: bool = True):
    """Load frozen model ``name`` (one of :data:`MODEL_NAMES`) with Keras safe mode on.

    ``verify_hash=False`` skips the card check; it exists for models that have no card yet
    (the moment between training and carding) and is never used on shipped models.
    """
    import keras

    _check_name(name)
    path = verify(name, directory) if verify_hash else model_path(name, directory)
    if not path.is_file():
        raise FrozenModelError(f"{path} not found")
    return _safe_load(keras, path)


def _safe_load(keras: Any, path: Path) -> Any:
    """``keras.saving.load_model`` in safe mode; a file Keras refuses, e.g. one whose ``Lambda``
    layer holds Python bytecode, raises :class:`FrozenModelError`.

    Keras lets a global ``keras.config.enable_unsafe_deserialization()`` (called by any code in
    the process) override ``safe_mode=True``; the load therefore runs inside Keras' own
    ``SafeModeScope(True)``, which sets that flag back on for its duration.
    """
    scope: Any
    try:
        from keras.src.saving.serialization_lib import SafeModeScope

        scope = SafeModeScope(True)
    except ImportError:  # a Keras without it: safe_mode=True alone
        scope = contextlib.nullcontext()
    try:
        with scope:
            return keras.saving.load_model(path, compile=False, safe_mode=True)
    except (ValueError, TypeError, OSError, KeyError) as exc:
        raise FrozenModelError(
            f"{path} cannot be loaded with Keras safe mode ({type(exc).__name__}: {exc}). mer-gym "
            "never loads models unsafely: use models saved by `mer-gym models train`"
        ) from exc


def _check_name(name: str) -> None:
    if name not in MODEL_NAMES:
        raise FrozenModelError(f"unknown model {name!r}: expected one of {', '.join(MODEL_NAMES)}")


def write_card(name: str, directory: str | Path, fields: dict[str, Any] | None = None) -> Path:
    """Write (or update) ``<name>.card.json`` beside ``<name>.keras`` with the file's sha256 and
    parameter count, merged with ``fields``; returns the card's path.

    Cards written by ``mer-gym models evaluate`` add the training and evaluation sections.
    """
    import keras

    _check_name(name)
    path = model_path(name, directory)
    if not path.is_file():
        raise FrozenModelError(f"{path} not found: save the model before writing its card")
    cpath = card_path(name, directory)
    card: dict[str, Any] = json.loads(cpath.read_text()) if cpath.is_file() else {}
    model = _safe_load(keras, path)
    card.update(
        {
            "name": name,
            "file": path.name,
            "sha256": file_sha256(path),
            "size_bytes": path.stat().st_size,
            "params": int(model.count_params()),
        }
    )
    card.update(fields or {})
    cpath.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
    return cpath
