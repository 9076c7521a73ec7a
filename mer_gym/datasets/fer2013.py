"""FER-2013 (Goodfellow et al. 2013): 35,887 48x48 gray faces in one csv file.

Layout: ``fer2013.csv`` with columns ``emotion`` (code 0-6), ``pixels`` (2,304 space-separated
0-255 ints, row-major 48x48) and ``Usage`` (Training / PublicTest / PrivateTest). The file carries
no subject ids, so records have ``subject=None``.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mer_gym.config import ConfigError
from mer_gym.datasets.base import Collector, require_path
from mer_gym.datasets.label_maps import label_scheme
from mer_gym.datasets.records import DatasetError, FaceRecord, LoadResult

SIDE = 48
USAGES: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
REQUIRED_COLUMNS: tuple[str, ...] = ("emotion", "pixels")


def find_csv(root_or_csv: str | Path) -> Path:
    """The csv file itself, or ``fer2013.csv`` in the folder or its ``fer2013/`` subfolder."""
    path = Path(root_or_csv)
    if path.is_file():
        return path
    require_path(path, what="fer2013.csv or a folder holding it", kind="dir")
    for cand in (path / "fer2013.csv", path / "fer2013" / "fer2013.csv"):
        if cand.is_file():
            return cand
    raise DatasetError(
        f"{path}: no fer2013.csv here or in {path / 'fer2013'}; expected the Kaggle release's "
        "fer2013.csv (columns emotion,pixels,Usage)",
        source=str(path),
        reason="missing fer2013.csv",
    )


def parse_pixels(text: str, *, source: str) -> np.ndarray:
    """Parse a ``pixels`` field into a 48x48 uint8 image.

    Raises:
        DatasetError: If the field is not 2,304 integers in 0-255.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            values = np.fromstring(text, dtype=np.int64, sep=" ")
        except (ValueError, DeprecationWarning):
            bad = next((t for t in text.split() if not t.isdigit()), text[:20])
            raise DatasetError(
                f"{source}: pixels field holds {bad!r}; expected {SIDE * SIDE} space-separated "
                "integers 0-255",
                source=source,
                reason="pixels field is not integers",
            ) from None
    if values.size != SIDE * SIDE:
        raise DatasetError(
            f"{source}: pixels field has {values.size} values; expected {SIDE * SIDE} (48x48)",
            source=source,
            reason=f"pixels field of wrong length ({values.size})",
        )
    if values.min() < 0 or values.max() > 255:
        raise DatasetError(
            f"{source}: pixel values span {values.min()}..{values.max()}; expected 0-255",
            source=source,
            reason="pixel values outside 0-255",
        )
    return values.astype(np.uint8).reshape(SIDE, SIDE)


def _usage_filter(usage: str | Sequence[str] | None) -> frozenset[str] | None:
    if usage is None:
        return None
    chosen = (usage,) if isinstance(usage, str) else tuple(usage)
    bad = [u for u in chosen if u not in USAGES]
    if bad or not chosen:
        raise ConfigError(f"usage = {usage!r}: expected one or more of {', '.join(USAGES)}")
    return frozenset(chosen)


def _columns(header: list[str] | None, path: Path, need_usage: bool) -> dict[str, int]:
    if header is None:
        raise DatasetError(
            f"{path}: file is empty; expected a header emotion,pixels,Usage", source=str(path)
        )
    names = [h.strip() for h in header]
    required = (*REQUIRED_COLUMNS, "Usage") if need_usage else REQUIRED_COLUMNS
    missing = [c for c in required if c not in names]
    if missing:
        raise DatasetError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(names)}; "
            "expected the columns emotion,pixels,Usage",
            source=str(path),
            reason="missing column",
        )
    return {n: i for i, n in enumerate(names)}


def load_fer2013(
    root_or_csv: str | Path,
    *,
    usage: str | Sequence[str] | None = None,
    label_map: Mapping[str, str | None] | None = None,
    on_error: str = "raise",
    limit: int | None = None,
) -> LoadResult:
    """Load FER-2013 faces from ``fer2013.csv``.

    Args:
        root_or_csv: The csv file, or a folder holding ``fer2013.csv`` (or ``fer2013/fer2013.csv``).
        usage: Keep only rows of this ``Usage`` (or these); rows of other usages are counted in
            ``skipped``. None keeps all rows (and then a ``Usage`` column is optional).
        label_map: Overrides, FER native name -> canonical emotion or None; native names are
            angry, disgust, fear, happy, sad, surprise, neutral.
        on_error: ``"raise"`` on a bad row, or ``"skip"`` it and account for it in ``skipped``.
        limit: Stop after this many records.

    Returns:
        Records with ``source="<csv>:<line>"``, ``subject=None`` and ``meta`` holding ``usage``,
        ``row`` (0-based data row) and ``native_label``.

    Raises:
        DatasetError: Missing file or column; with ``on_error="raise"`` a bad row (pixels field of
            the wrong length or not 0-255 ints, emotion code outside 0-6, unknown Usage).
        ConfigError: Bad ``usage``, ``label_map``, ``on_error`` or ``limit``.
    """
    usages = _usage_filter(usage)
    path = find_csv(root_or_csv)
    col = Collector(label_scheme("fer2013", label_map), path, on_error=on_error, limit=limit)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        idx = _columns(next(reader, None), path, need_usage=usages is not None)
        for row_no, row in enumerate(reader):
            if col.stop():
                break
            if not row:
                continue
            source = f"{path}:{reader.line_num}"
            with col.guard(source):
                record = _row_record(row, idx, row_no, source, col, usages)
                if record is not None:
                    col.add(record)
    return col.finish()


def _row_record(
    row: list[str],
    idx: dict[str, int],
    row_no: int,
    source: str,
    col: Collector,
    usages: frozenset[str] | None,
) -> FaceRecord | None:
    if len(row) < len(idx):
        raise DatasetError(
            f"{source}: row has {len(row)} fields; the header has {len(idx)}",
            source=source,
            reason="row with missing fields",
        )
    use = row[idx["Usage"]].strip() if "Usage" in idx else None
    if use is not None and use not in USAGES:
        raise DatasetError(
            f"{source}: Usage {use!r} is not one of {', '.join(USAGES)}",
            source=source,
            reason="unknown Usage value",
        )
    if usages is not None and use not in usages:
        col.skip(source, f"usage {use!r} not selected by usage=")
        return None
    native, label = col.label(row[idx["emotion"]].strip(), source)
    if label is None:
        return None
    image = parse_pixels(row[idx["pixels"]], source=source)
    meta = {"usage": use, "row": row_no, "native_label": native}
    return FaceRecord("fer2013", None, label, image, source, None, meta)
