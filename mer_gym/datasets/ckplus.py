"""CK+ (Lucey et al. 2010): 593 posed sequences of 123 subjects, 327 with an emotion label.

Layout::

    cohn-kanade-images/S005/001/S005_001_00000001.png ... S005_001_00000011.png
    Emotion/S005/001/S005_001_00000011_emotion.txt      one float, e.g. "3.0000000e+00"

The label file names the sequence's last (peak) frame. A labelled sequence yields that frame;
``first_frame_neutral=True`` also yields its first frame as ``neutral`` (each sequence starts at a
neutral face: common practice, off by default). Sequences without a label file are counted in
``skipped``. Both folders may sit at the root or one level below it (as in the release archives).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from mer_gym.datasets.base import Collector, find_dir, read_gray_image, sorted_files
from mer_gym.datasets.label_maps import label_scheme
from mer_gym.datasets.records import DatasetError, FaceRecord, LoadResult

IMAGES_DIR = "cohn-kanade-images"
LABELS_DIR = "Emotion"
UNLABELLED = "sequence has no emotion label (CK+ labels 327 of its 593 sequences)"
_LABEL_NAME = re.compile(r"^(?P<subject>S\d+)_(?P<seq>\d+)_(?P<frame>\d+)_emotion\.txt$")


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _sequences(images: Path, labels: Path) -> list[tuple[str, str]]:
    """(subject, sequence) pairs found in either tree, sorted."""
    found: set[tuple[str, str]] = set()
    for tree in (images, labels):
        for subj in _subdirs(tree):
            found.update((subj.name, seq.name) for seq in _subdirs(subj))
    return sorted(found)


def read_label_file(path: Path) -> str:
    """The label code in a CK+ ``*_emotion.txt`` file, as a string (``"3"``).

    Raises:
        DatasetError: If the file does not hold exactly one integral number.
    """
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError as exc:
        raise DatasetError(
            f"{path}: cannot read label file ({exc.strerror})", source=str(path)
        ) from exc
    try:
        value = float(text)
    except ValueError:
        raise DatasetError(
            f"{path}: label file holds {text[:40]!r}; expected one number such as 3.0000000e+00",
            source=str(path),
            reason="label file is not a number",
        ) from None
    if not value.is_integer():
        raise DatasetError(
            f"{path}: label {value} is not a whole number; expected a code 0-7 such as 3.0000000e+00",
            source=str(path),
            reason="label file is not a whole number",
        )
    return str(int(value))


def _peak_frame(label_file: Path, subject: str, seq: str, seq_dir: Path) -> tuple[Path, int]:
    m = _LABEL_NAME.match(label_file.name)
    if m is None or m["subject"] != subject or m["seq"] != seq:
        raise DatasetError(
            f"{label_file}: expected a name like {subject}_{seq}_00000011_emotion.txt",
            source=str(label_file),
            reason="label file name does not follow the CK+ layout",
        )
    png = seq_dir / label_file.name.replace("_emotion.txt", ".png")
    if not png.is_file():
        raise DatasetError(
            f"{label_file}: its peak frame {png} does not exist; expected it in {IMAGES_DIR}",
            source=str(label_file),
            reason="peak frame image missing",
        )
    return png, int(m["frame"])


def load_ckplus(
    root: str | Path,
    *,
    label_map: Mapping[str, str | None] | None = None,
    on_error: str = "raise",
    limit: int | None = None,
    first_frame_neutral: bool = False,
) -> LoadResult:
    """Load CK+ peak frames (and optionally first frames as neutral) as 2-D uint8 gray faces.

    Args:
        root: Folder holding ``cohn-kanade-images/`` and ``Emotion/`` (here or one level below).
        label_map: Overrides, CK+ native name -> canonical emotion or None; native names are
            neutral, anger, contempt, disgust, fear, happy, sadness, surprise.
        on_error: ``"raise"`` on a bad sequence, or ``"skip"`` it and account for it.
        limit: Stop after this many records.
        first_frame_neutral: Also yield each labelled sequence's first frame, labelled as CK+'s
            native ``neutral`` (so ``label_map`` applies). Off by default.

    Returns:
        Records with ``subject="S005"``, ``clip_id="S005_001"`` and ``meta`` holding
        ``sequence``, ``frame``, ``frame_role`` (``"peak"`` or ``"first"``), ``native_label`` and
        ``stored`` (gray / bgr: how the PNG was stored).

    Raises:
        DatasetError: Missing folders; with ``on_error="raise"`` a bad label file (not a number, code
            outside 0-7, wrong name), a missing or corrupt image, a labelled sequence with no images.
    """
    root = Path(root)
    images = find_dir(root, IMAGES_DIR, what="CK+")
    labels = find_dir(root, LABELS_DIR, what="CK+")
    col = Collector(label_scheme("ckplus", label_map), root, on_error=on_error, limit=limit)
    for subject, seq in _sequences(images, labels):
        if col.stop():
            break
        seq_dir = images / subject / seq
        label_files = (
            sorted_files(labels / subject / seq, "*.txt")
            if (labels / subject / seq).is_dir()
            else []
        )
        if not label_files:
            col.skip(seq_dir, UNLABELLED)
            continue
        with col.guard(label_files[0]):
            _load_sequence(col, subject, seq, seq_dir, label_files, first_frame_neutral)
    return col.finish()


def _load_sequence(
    col: Collector,
    subject: str,
    seq: str,
    seq_dir: Path,
    label_files: list[Path],
    first_frame_neutral: bool,
) -> None:
    if len(label_files) > 1:
        raise DatasetError(
            f"{label_files[0].parent}: {len(label_files)} label files; expected one *_emotion.txt",
            source=str(label_files[0].parent),
            reason="several label files in one sequence",
        )
    frames = sorted_files(seq_dir, "*.png") if seq_dir.is_dir() else []
    if not frames:
        raise DatasetError(
            f"{label_files[0]}: labelled sequence has no PNG frames in {seq_dir}",
            source=str(label_files[0]),
            reason="labelled sequence without images",
        )
    peak, frame_no = _peak_frame(label_files[0], subject, seq, seq_dir)
    native, label = col.label(read_label_file(label_files[0]), label_files[0])
    base = {"sequence": seq}
    if label is not None:
        image, meta = read_gray_image(peak)
        meta |= base | {"frame": frame_no, "frame_role": "peak", "native_label": native}
        col.add(FaceRecord("ckplus", subject, label, image, str(peak), f"{subject}_{seq}", meta))
    first = frames[0]
    if not first_frame_neutral or first == peak:
        return
    if col.stop():
        return
    neutral = col.scheme.canonical("neutral")
    if neutral is None:
        col.skip(first, "label 'neutral' dropped by label map")
        return
    image, meta = read_gray_image(first)
    frame = int(first.stem.rsplit("_", 1)[-1]) if first.stem.rsplit("_", 1)[-1].isdigit() else 0
    meta |= base | {"frame": frame, "frame_role": "first", "native_label": "neutral"}
    col.add(FaceRecord("ckplus", subject, neutral, image, str(first), f"{subject}_{seq}", meta))
