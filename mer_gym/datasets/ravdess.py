"""RAVDESS (Livingstone & Russo 2018): 24 actors, speech and song, audio (48 kHz) and video.

Layout: ``Actor_12/03-01-06-01-02-01-12.wav`` (or ``.mp4``), seven dash-separated two-digit
fields: modality (01 audio-video, 02 video-only, 03 audio-only), vocal channel (01 speech,
02 song), emotion (01-08), intensity (01 normal, 02 strong), statement (01 "Kids are talking by
the door", 02 "Dogs are sitting by the door"), repetition (01, 02), actor (01-24; odd = male).
Files are found anywhere under the root.

The audio-only, audio-video and video-only files of one take share every field but the first, so
``clip_id`` is the name without its modality field (``"01-06-01-02-01-12"``): a face record from
the ``.mp4`` and the speech record from the ``.wav`` of one take match on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mer_gym.config import ConfigError
from mer_gym.datasets.base import (
    Collector,
    face_from_video,
    layout_error,
    require_path,
    sorted_files,
    speech_record,
)
from mer_gym.datasets.label_maps import label_scheme
from mer_gym.datasets.records import LoadResult

FIELDS: tuple[str, ...] = (
    "modality",
    "channel",
    "emotion",
    "intensity",
    "statement",
    "repetition",
    "actor",
)
_VALID: dict[str, tuple[str, ...]] = {
    "modality": ("01", "02", "03"),
    "channel": ("01", "02"),
    "intensity": ("01", "02"),
    "statement": ("01", "02"),
    "repetition": ("01", "02"),
    "actor": tuple(f"{i:02d}" for i in range(1, 25)),
}
MODALITY = {"01": "audio-video", "02": "video-only", "03": "audio-only"}
CHANNEL = {"01": "speech", "02": "song"}
INTENSITY = {"01": "normal", "02": "strong"}
STATEMENT = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
SONG_EXCLUDED = "song (channel 02) excluded; pass include_song=True to keep it"
_EXPECTED = "MM-VV-EE-II-SS-RR-AA.wav/.mp4, seven two-digit fields, e.g. 03-01-06-01-02-01-12.wav"


def parse_name(path: Path) -> dict[str, str]:
    """Split a RAVDESS file name into its seven fields (emotion is checked by the label scheme).

    Raises:
        DatasetError: If the name does not have seven two-digit fields with valid values.
    """
    parts = path.stem.split("-")
    if len(parts) != len(FIELDS) or not all(len(p) == 2 and p.isdigit() for p in parts):
        raise layout_error(path, _EXPECTED, reason="file name does not follow the RAVDESS layout")
    fields = dict(zip(FIELDS, parts, strict=True))
    for name, allowed in _VALID.items():
        if fields[name] not in allowed:
            raise layout_error(
                path,
                f"{name} field in {allowed[0]}..{allowed[-1]}, got {fields[name]} ({_EXPECTED})",
                reason=f"RAVDESS {name} field out of range",
            )
    if fields["emotion"] == "01" and fields["intensity"] == "02":
        raise layout_error(
            path,
            "intensity 01 for neutral (RAVDESS has no strong neutral)",
            reason="strong neutral",
        )
    return fields


def _meta(fields: dict[str, str], native: str) -> dict[str, Any]:
    return {
        "modality": MODALITY[fields["modality"]],
        "channel": CHANNEL[fields["channel"]],
        "intensity": INTENSITY[fields["intensity"]],
        "statement": STATEMENT[fields["statement"]],
        "repetition": int(fields["repetition"]),
        "sex": "male" if int(fields["actor"]) % 2 else "female",
        "code": fields["emotion"],
        "native_label": native,
    }


def clip_id(fields: dict[str, str]) -> str:
    """The modality-free id shared by the audio and video files of one take."""
    return "-".join(fields[f] for f in FIELDS[1:])


def load_ravdess_speech(
    root: str | Path,
    *,
    label_map: Mapping[str, str | None] | None = None,
    on_error: str = "raise",
    limit: int | None = None,
    include_song: bool = False,
) -> LoadResult:
    """Load RAVDESS audio-only (modality 03) ``.wav`` files as mono float32 at 48 kHz.

    Args:
        root: Any folder above the ``.wav`` files (searched recursively), e.g. the folder holding
            ``Actor_01`` ... ``Actor_24``.
        label_map: Overrides, RAVDESS native name -> canonical emotion or None; native names are
            neutral, calm, happy, sad, angry, fearful, disgust, surprised.
        on_error: ``"raise"`` on a bad file, or ``"skip"`` it and account for it.
        limit: Stop after this many records.
        include_song: Keep song (channel 02) files; by default they are counted in ``skipped``.

    Returns:
        Records with ``speaker`` the actor (``"12"``), ``clip_id`` as in the module docstring and
        ``meta`` holding channel, intensity, statement, repetition, sex, code, native_label.

    Raises:
        DatasetError: Missing folder, no usable file; with ``on_error="raise"`` a name off the
            layout (including a ``.wav`` whose modality is not 03), an emotion code outside
            01-08, an unreadable or corrupt wav.
    """
    root = require_path(Path(root), what="the RAVDESS root folder", kind="dir")
    col = Collector(label_scheme("ravdess", label_map), root, on_error=on_error, limit=limit)
    for path in sorted_files(root, "*.wav", recursive=True):
        if col.stop():
            break
        with col.guard(path):
            fields = parse_name(path)
            if fields["modality"] != "03":
                raise layout_error(
                    path,
                    "modality 03 (audio-only) for a .wav file",
                    reason="wav with a video modality",
                )
            if fields["channel"] == "02" and not include_song:
                col.skip(path, SONG_EXCLUDED)
                continue
            native, label = col.label(fields["emotion"], path)
            if label is not None:
                meta = _meta(fields, native)
                col.add(
                    speech_record("ravdess", fields["actor"], label, path, clip_id(fields), meta)
                )
    return col.finish()


def load_ravdess_faces(
    root: str | Path,
    *,
    label_map: Mapping[str, str | None] | None = None,
    on_error: str = "raise",
    limit: int | None = None,
    include_song: bool = False,
    modalities: Sequence[str] = ("01", "02"),
) -> LoadResult:
    """Load one face per RAVDESS ``.mp4``: its middle frame, full 1280x720 frame as uint8 gray.

    Decoding video is slow (a seek and a decode per file); use ``limit=`` for a quick look. The
    frame is not cropped: the face detector of :mod:`mer_gym.preprocessing` does that.

    Args:
        root: Any folder above the ``.mp4`` files (searched recursively).
        label_map: As for :func:`load_ravdess_speech`.
        on_error: ``"raise"`` on a bad file, or ``"skip"`` it and account for it.
        limit: Stop after this many records.
        include_song: Keep song (channel 02) files; by default they are counted in ``skipped``.
        modalities: Which video modalities to read: ``"01"`` audio-video, ``"02"`` video-only.
            Both hold the same frames, so when both files of a take are present only the first
            (01) is read and the other is counted in ``skipped`` as a duplicate.

    Returns:
        Records with ``subject`` the actor, ``clip_id`` matching :func:`load_ravdess_speech`, and
        ``meta`` as there plus ``frame_index``, ``n_frames``, ``fps``.

    Raises:
        DatasetError: As for :func:`load_ravdess_speech`, for ``.mp4`` files with modality 01/02,
            and for a video OpenCV cannot open or decode.
        ConfigError: Bad ``modalities``.
    """
    chosen = (modalities,) if isinstance(modalities, str) else tuple(modalities)
    if not chosen or any(m not in ("01", "02") for m in chosen):
        raise ConfigError(f"modalities = {modalities!r}: expected one or both of '01', '02'")
    root = require_path(Path(root), what="the RAVDESS root folder", kind="dir")
    col = Collector(label_scheme("ravdess", label_map), root, on_error=on_error, limit=limit)
    seen: dict[str, Path] = {}
    for path in sorted_files(root, "*.mp4", recursive=True):
        if col.stop():
            break
        with col.guard(path):
            fields = parse_name(path)
            if fields["modality"] not in ("01", "02"):
                raise layout_error(
                    path,
                    "modality 01 or 02 (video) for an .mp4 file",
                    reason="mp4 with audio modality",
                )
            cid = clip_id(fields)
            if fields["modality"] not in chosen:
                col.skip(path, f"modality {fields['modality']} not selected by modalities=")
            elif fields["channel"] == "02" and not include_song:
                col.skip(path, SONG_EXCLUDED)
            elif cid in seen:
                col.skip(path, "duplicate take (its frames were read from another modality's file)")
            else:
                native, label = col.label(fields["emotion"], path)
                if label is not None:
                    meta = _meta(fields, native)
                    col.add(face_from_video("ravdess", fields["actor"], label, path, cid, meta))
                    seen[cid] = path
    return col.finish()
