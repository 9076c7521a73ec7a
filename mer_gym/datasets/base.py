"""Shared machinery of the loaders: error policy and accounting, and reading images, audio, video.

Every reader here turns a failure into a :class:`~mer_gym.datasets.records.DatasetError` naming the
file, so a loader's ``on_error`` policy sees one exception type.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import soundfile as sf

from mer_gym.config import ConfigError
from mer_gym.datasets.label_maps import LabelScheme
from mer_gym.datasets.records import DatasetError, FaceRecord, LoadResult, Skip, SpeechRecord

logger = logging.getLogger(__name__)

OnError = Literal["raise", "skip"]


class Collector:
    """Gathers a loader's records and skips, applies ``on_error`` and ``limit``, builds the result.

    Args:
        scheme: The dataset's label scheme (with the caller's overrides).
        root: The folder or file being read (for messages).
        on_error: ``"raise"`` re-raises a per-file :class:`DatasetError`; ``"skip"`` records it.
        limit: Stop after this many records (None: no limit).
    """

    def __init__(
        self, scheme: LabelScheme, root: Path, *, on_error: str, limit: int | None
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ConfigError(f"on_error = {on_error!r}: expected 'raise' or 'skip'")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise ConfigError(f"limit = {limit!r}: expected a positive int or None")
        self.scheme = scheme
        self.dataset = scheme.dataset
        self.root = root
        self.on_error = on_error
        self.limit = limit
        self.records: list[Any] = []
        self.skipped: list[Skip] = []
        self.truncated = False

    @property
    def full(self) -> bool:
        """True once ``limit`` records have been gathered."""
        return self.limit is not None and len(self.records) >= self.limit

    def stop(self) -> bool:
        """Call before each further item: True (and mark the result truncated) once full."""
        if self.full:
            self.truncated = True
        return self.truncated

    def add(self, record: Any) -> None:
        """Keep one record."""
        self.records.append(record)

    def skip(self, source: str | Path, reason: str) -> None:
        """Account for one file, row or sequence that yields no record."""
        self.skipped.append(Skip(str(source), reason))

    @contextmanager
    def guard(self, source: str | Path) -> Iterator[None]:
        """Apply ``on_error`` to a :class:`DatasetError` raised while reading ``source``."""
        try:
            yield
        except DatasetError as exc:
            if self.on_error == "raise":
                raise
            self.skip(exc.source or source, exc.reason)

    def label(self, code: str, source: str | Path) -> tuple[str, str | None]:
        """Native name and canonical label of ``code``; a dropped label is recorded as skipped.

        Raises:
            DatasetError: If ``code`` is outside the dataset's label set.
        """
        native = self.scheme.native_name(code, source=str(source))
        canonical = self.scheme.canonical(native)
        if canonical is None:
            self.skip(source, f"label {native!r} dropped by label map")
        return native, canonical

    def finish(self) -> LoadResult:
        """Build the result; warn when anything was skipped; raise when nothing was usable.

        Raises:
            DatasetError: If no record was gathered.
        """
        result = LoadResult(
            dataset=self.dataset,
            root=str(self.root),
            records=self.records,
            skipped=self.skipped,
            truncated=self.truncated,
        )
        if not self.records:
            raise DatasetError(
                f"{self.root}: no usable {self.dataset} samples found. {result.summary()}",
                source=str(self.root),
                reason="no usable samples",
            )
        if self.skipped:
            logger.warning("%s", result.summary())
        return result


def require_path(path: Path, *, what: str, kind: Literal["dir", "file"]) -> Path:
    """Return ``path`` if it exists as a ``kind``; raise a DatasetError saying what was expected."""
    ok = path.is_dir() if kind == "dir" else path.is_file()
    if not ok:
        state = (
            "does not exist"
            if not path.exists()
            else f"is not a {'folder' if kind == 'dir' else 'file'}"
        )
        raise DatasetError(
            f"{path} {state}: expected {what}", source=str(path), reason=f"missing {what}"
        )
    return path


def find_dir(root: Path, name: str, *, what: str) -> Path:
    """Find folder ``name`` at ``root`` or one level below it (archives often add a wrapper folder).

    Raises:
        DatasetError: If none or more than one is found.
    """
    require_path(root, what=f"the {what} root folder", kind="dir")
    if (root / name).is_dir():
        return root / name
    found = sorted(p / name for p in root.iterdir() if p.is_dir() and (p / name).is_dir())
    if len(found) == 1:
        return found[0]
    if not found:
        raise DatasetError(
            f"{root}: no '{name}' folder here or one level below; expected the {what} layout "
            f"(see docs/datasets.md)",
            source=str(root),
            reason=f"missing {name} folder",
        )
    raise DatasetError(
        f"{root}: several '{name}' folders ({', '.join(map(str, found))}); point the loader at one",
        source=str(root),
        reason=f"ambiguous {name} folder",
    )


def sorted_files(folder: Path, pattern: str, *, recursive: bool = False) -> list[Path]:
    """Files matching ``pattern`` under ``folder``, sorted by path (the loaders' record order)."""
    it = folder.rglob(pattern) if recursive else folder.glob(pattern)
    return sorted(p for p in it if p.is_file() and not p.name.startswith("._"))


def read_audio(path: Path) -> tuple[np.ndarray, int, dict[str, Any]]:
    """Read an audio file as mono float32 in [-1, 1] at its native sample rate.

    Stereo (or more) is averaged over channels; ``meta["channels"]`` and ``meta["downmix"]`` say so.
    Float files with samples beyond +-1 are clipped, counted in ``meta["clipped_samples"]``.

    Raises:
        DatasetError: If the file is missing, unreadable, empty or holds non-finite samples.
    """
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        detail = str(exc).replace(f"'{path}'", "").replace(str(path), "").strip(" :")
        raise DatasetError(
            f"{path}: unreadable or corrupt audio ({detail}); expected a readable WAV file",
            source=str(path),
            reason="unreadable or corrupt audio",
        ) from exc
    if data.shape[0] == 0:
        raise DatasetError(
            f"{path}: audio file holds no samples", source=str(path), reason="empty audio"
        )
    if not np.isfinite(data).all():
        raise DatasetError(
            f"{path}: audio holds NaN or infinite samples",
            source=str(path),
            reason="non-finite audio",
        )
    channels = data.shape[1]
    meta: dict[str, Any] = {
        "channels": channels,
        "downmix": "none" if channels == 1 else f"mean of {channels} channels",
    }
    wav = data[:, 0] if channels == 1 else data.mean(axis=1, dtype=np.float32)
    clipped = int(np.count_nonzero(np.abs(wav) > 1.0))
    if clipped:
        wav = np.clip(wav, -1.0, 1.0)
    meta["clipped_samples"] = clipped
    return np.ascontiguousarray(wav, dtype=np.float32), int(sr), meta


def to_gray_uint8(img: np.ndarray, *, source: str) -> tuple[np.ndarray, str]:
    """Convert a decoded OpenCV image (gray, BGR, BGRA; 8 or 16 bit) to 2-D uint8 gray.

    Returns:
        The gray image and the stored mode (``"gray"``, ``"bgr"``, ``"bgra"``, ``"gray+alpha"``).
    """
    if img.dtype == np.uint16:
        img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise DatasetError(
            f"{source}: image pixel type {img.dtype} is not supported; expected 8- or 16-bit",
            source=source,
            reason=f"unsupported image pixel type {img.dtype}",
        )
    if img.ndim == 2:
        return img, "gray"
    n = img.shape[2]
    if n == 1:
        return img[:, :, 0].copy(), "gray"
    if n == 2:
        return img[:, :, 0].copy(), "gray+alpha"
    if n == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), "bgr"
    if n == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY), "bgra"
    raise DatasetError(
        f"{source}: image has {n} channels", source=source, reason="unsupported channels"
    )


def read_gray_image(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read an image file (PNG, JPEG, ...) as a 2-D uint8 gray array.

    Raises:
        DatasetError: If the file is missing or cannot be decoded.
    """
    try:
        buf = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise DatasetError(
            f"{path}: cannot read image file ({exc.strerror})",
            source=str(path),
            reason="unreadable image",
        ) from exc
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if img is None:
        raise DatasetError(
            f"{path}: corrupt or unsupported image; expected a PNG/JPEG file",
            source=str(path),
            reason="corrupt or unsupported image",
        )
    gray, mode = to_gray_uint8(img, source=str(path))
    return gray, {"stored": mode}


def _count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    try:
        n = 0
        while cap.grab():
            n += 1
        return n
    finally:
        cap.release()


def read_middle_frame(path: Path, *, seek: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode the middle frame (0-based index ``n_frames // 2``) of a video as 2-D uint8 gray.

    Seeks by the container's frame count; when the container does not report one, the seek fails
    or ``seek=False``, counts the frames by decoding and reads the middle one sequentially (slower;
    the same frame).

    Raises:
        DatasetError: If the video cannot be opened or has no frames.
    """
    if not path.is_file():
        raise DatasetError(
            f"{path}: video file does not exist", source=str(path), reason="missing video"
        )
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DatasetError(
                f"{path}: cannot open video; expected an .mp4/.flv file OpenCV's FFmpeg backend can read",
                source=str(path),
                reason="unreadable video",
            )
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        frame = None
        if n > 0 and seek:
            cap.set(cv2.CAP_PROP_POS_FRAMES, n // 2)
            ok, frame = cap.read()
            frame = frame if ok else None
    finally:
        cap.release()
    if frame is None:
        n = _count_frames(path)
        if n == 0:
            raise DatasetError(
                f"{path}: video has no decodable frames",
                source=str(path),
                reason="video without frames",
            )
        cap = cv2.VideoCapture(str(path))
        try:
            for _ in range(n // 2):
                cap.grab()
            ok, frame = cap.read()
        finally:
            cap.release()
        if not ok:
            raise DatasetError(
                f"{path}: cannot decode frame {n // 2}",
                source=str(path),
                reason="undecodable video frame",
            )
    gray, mode = to_gray_uint8(frame, source=str(path))
    return gray, {"frame_index": n // 2, "n_frames": n, "fps": fps, "stored": mode}


def media_folder(root: Path, name: str, exts: tuple[str, ...], *, what: str) -> Path:
    """The corpus's media folder: ``root/name``, else ``root`` itself if it holds files with one
    of ``exts``, else ``name`` one level below ``root``.

    Raises:
        DatasetError: If none is found.
    """
    require_path(root, what=f"the {what} root folder", kind="dir")
    if (root / name).is_dir():
        return root / name
    if any(p.suffix.lower() in exts for p in root.iterdir() if p.is_file()):
        return root
    return find_dir(root, name, what=what)


def speech_record(
    dataset: str, speaker: str, label: str, path: Path, clip_id: str | None, meta: dict[str, Any]
) -> SpeechRecord:
    """Read ``path`` with :func:`read_audio` and wrap it in a :class:`SpeechRecord`."""
    wav, sr, audio_meta = read_audio(path)
    return SpeechRecord(dataset, speaker, label, wav, sr, str(path), clip_id, meta | audio_meta)


def face_from_video(
    dataset: str, subject: str, label: str, path: Path, clip_id: str, meta: dict[str, Any]
) -> FaceRecord:
    """Read the middle frame of ``path`` with :func:`read_middle_frame` as a :class:`FaceRecord`."""
    image, frame_meta = read_middle_frame(path)
    return FaceRecord(dataset, subject, label, image, str(path), clip_id, meta | frame_meta)


def layout_error(path: Path, expected: str, *, reason: str) -> DatasetError:
    """A DatasetError for a file name that does not follow the corpus layout."""
    return DatasetError(
        f"{path}: file name does not follow the layout; expected {expected}",
        source=str(path),
        reason=reason,
    )
