"""CREMA-D (Cao et al. 2014): 7,442 clips of 91 actors, six emotions, audio (16 kHz) and video.

Layout: ``AudioWAV/1001_IEO_ANG_HI.wav`` and ``VideoFlash/1001_IEO_ANG_HI.flv`` (or ``.mp4``):
actor (1001-1091), sentence (12 codes), emotion (ANG DIS FEA HAP NEU SAD) and level (LO, MD, HI;
XX unspecified). ``clip_id`` is the file stem, shared by a clip's audio and video. When the
release's ``VideoDemographics.csv`` (ActorID, Age, Sex, Race, Ethnicity) sits at the root, each
record's ``meta`` gains the actor's age, sex, race and ethnicity.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mer_gym.datasets.base import (
    Collector,
    face_from_video,
    layout_error,
    media_folder,
    require_path,
    sorted_files,
    speech_record,
)
from mer_gym.datasets.label_maps import label_scheme
from mer_gym.datasets.records import DatasetError, LoadResult

SENTENCES: dict[str, str] = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
"""Sentence code -> text (codes P; texts S, the release README)."""

LEVELS: dict[str, str] = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
ACTORS = range(1001, 1092)
VIDEO_EXTS: tuple[str, ...] = (".flv", ".mp4")
DEMOGRAPHICS = "VideoDemographics.csv"
_EXPECTED = "AAAA_SSS_EEE_LL, e.g. 1001_IEO_ANG_HI (actor, sentence, emotion, level)"


def parse_name(path: Path) -> dict[str, str]:
    """Split a CREMA-D file name into actor, sentence, emotion code and level.

    Raises:
        DatasetError: If the name does not have the four fields with valid actor/sentence/level.
    """
    parts = path.stem.split("_")
    if len(parts) != 4 or not parts[0].isdigit():
        raise layout_error(path, _EXPECTED, reason="file name does not follow the CREMA-D layout")
    actor, sentence, emotion, level = parts
    if int(actor) not in ACTORS:
        raise layout_error(
            path, f"an actor in 1001..1091 ({_EXPECTED})", reason="unknown CREMA-D actor"
        )
    if sentence not in SENTENCES:
        raise layout_error(
            path, f"a sentence code in {', '.join(SENTENCES)}", reason="unknown CREMA-D sentence"
        )
    if level not in LEVELS:
        raise layout_error(path, f"a level in {', '.join(LEVELS)}", reason="unknown CREMA-D level")
    return {"actor": actor, "sentence": sentence, "emotion": emotion, "level": level}


def read_demographics(root: Path) -> dict[str, dict[str, Any]]:
    """Actor id -> {age, sex, race, ethnicity} from ``VideoDemographics.csv``, or {} if absent.

    Raises:
        DatasetError: If the file exists but lacks its columns.
    """
    path = root / DEMOGRAPHICS
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        need = ("ActorID", "Age", "Sex", "Race", "Ethnicity")
        missing = [c for c in need if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(
                f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(need)}",
                source=str(path),
                reason="missing column",
            )
        return {
            row["ActorID"].strip(): {
                "age": int(row["Age"]) if row["Age"].strip().isdigit() else None,
                "sex": row["Sex"].strip().lower(),
                "race": row["Race"].strip(),
                "ethnicity": row["Ethnicity"].strip(),
            }
            for row in reader
        }


def _meta(
    f: dict[str, str], native: str, demographics: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "sentence": f["sentence"],
        "text": SENTENCES[f["sentence"]],
        "level": LEVELS[f["level"]],
        "code": f["emotion"],
        "native_label": native,
    }
    return meta | demographics.get(f["actor"], {})


def _load(
    root: str | Path, kind: str, label_map: Any, on_error: str, limit: int | None
) -> LoadResult:
    root = require_path(Path(root), what="the CREMA-D root folder", kind="dir")
    if kind == "speech":
        folder = media_folder(root, "AudioWAV", (".wav",), what="CREMA-D")
        files = sorted_files(folder, "*.wav")
    else:
        folder = media_folder(root, "VideoFlash", VIDEO_EXTS, what="CREMA-D")
        files = sorted(p for ext in VIDEO_EXTS for p in sorted_files(folder, f"*{ext}"))
    demographics = read_demographics(root)
    col = Collector(label_scheme("cremad", label_map), folder, on_error=on_error, limit=limit)
    seen: set[str] = set()
    for path in files:
        if col.stop():
            break
        with col.guard(path):
            f = parse_name(path)
            if path.stem in seen:
                col.skip(path, "duplicate clip (another video file of this clip was read)")
                continue
            native, label = col.label(f["emotion"], path)
            if label is None:
                continue
            meta = _meta(f, native, demographics)
            if kind == "speech":
                col.add(speech_record("cremad", f["actor"], label, path, path.stem, meta))
            else:
                col.add(face_from_video("cremad", f["actor"], label, path, path.stem, meta))
            seen.add(path.stem)
    return col.finish()


def load_cremad_speech(
    root: str | Path,
    *,
    label_map: Mapping[str, str | None] | None = None,
    on_error: str = "raise",
    limit: int | None = None,
) -> LoadResult:
    """Load CREMA-D ``AudioWAV/*.wav`` as mono float32 at the native rate (16 kHz).

    Args:
        root: The CREMA-D folder holding ``AudioWAV/`` (or the ``AudioWAV`` folder itself).
        label_map: Overrides, CREMA-D native name -> canonical emotion or None; native names are
            anger, disgust, fear, happy, neutral, sad (all six map onto the canonical set).
        on_error: ``"raise"`` on a bad file, or ``"skip"`` it and account for it.
        limit: Stop after this many records.

    Returns:
        Records with ``speaker="1001"``, ``clip_id="1001_IEO_ANG_HI"`` and ``meta`` holding
        sentence, text, level, code, native_label (and age, sex, race, ethnicity when
        ``VideoDemographics.csv`` is present).

    Raises:
        DatasetError: Missing folder, no usable file; with ``on_error="raise"`` a name off the
            layout, an emotion code outside the six, an unreadable, empty or corrupt wav (the
            public release holds at least one empty file: load it with ``on_error="skip"``).
    """
    return _load(root, "speech", label_map, on_error, limit)


def load_cremad_faces(
    root: str | Path,
    *,
    label_map: Mapping[str, str | None] | None = None,
    on_error: str = "raise",
    limit: int | None = None,
) -> LoadResult:
    """Load one face per CREMA-D video (``VideoFlash/*.flv`` or ``*.mp4``): its middle frame, gray.

    Decoding video is slow; use ``limit=`` for a quick look. When a clip exists as both ``.flv``
    and ``.mp4``, the ``.flv`` is read and the other counted in ``skipped`` as a duplicate.

    Args:
        root: The CREMA-D folder holding ``VideoFlash/`` (or the video folder itself).
        label_map: As for :func:`load_cremad_speech`.
        on_error: ``"raise"`` on a bad file, or ``"skip"`` it and account for it.
        limit: Stop after this many records.

    Returns:
        Records with ``subject`` the actor, ``clip_id`` matching :func:`load_cremad_speech`, and
        ``meta`` as there plus ``frame_index``, ``n_frames``, ``fps``.

    Raises:
        DatasetError: As for :func:`load_cremad_speech`, and for a video OpenCV cannot decode.
    """
    return _load(root, "faces", label_map, on_error, limit)
