"""The paper's facial-image preprocessing (§5.1): crop the face, equalize its histogram, downsample.

Pipeline for one frame (:class:`FacePreprocessor`)::

    any supported image ─► 2-D uint8 gray ─► Haar face box (largest) + margin ─► square crop
        (no face: centred square fallback) ─► histogram equalization (Eq. 1) ─► resize to 112×112
        ─► float32 in [0, 1], shape (112, 112, 1)

The order (crop, then equalize, then downsample) is the paper's: equalizing the crop keeps the
background out of the face's intensity histogram.

Input conversion rule (:func:`to_gray_uint8`):

* 2-D ``uint8`` is used as is; ``(H, W, 1)`` is squeezed; ``(H, W, 3)`` is BGR and ``(H, W, 4)``
  BGRA (OpenCV's channel order) and both are converted with ``cv2.cvtColor``.
* ``uint16`` is rescaled linearly, 0..65535 → 0..255 (rounded).
* floating point must lie in [0, 1] and is scaled by 255 (rounded); NaN/inf or values outside
  [0, 1] are an error (divide 0..255 floats by 255 first).
* other integer types (``int64`` from parsing FER-2013's pixel strings, say) are accepted when every
  value lies in 0..255, otherwise an error.
* ``bool``, complex, object arrays, empty images and images smaller than ``min_input_size`` on either
  side are an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from mer_gym.config import ConfigError, check_range
from mer_gym.preprocessing.haar import DEFAULT_HAAR, HaarParams, detect_faces, largest_face

GRAY_LEVELS = 256
"""L in Eq. 1: the number of grey levels of an 8-bit image."""

Box = tuple[int, int, int, int]
"""A rectangle (x, y, w, h) in input-image pixels."""


class FaceResult(NamedTuple):
    """One preprocessed frame.

    Attributes:
        array: float32 array of shape (size, size, 1), values in [0, 1].
        detected: True when the Haar cascade found a face; False when the centre-crop fallback was
            used (or detection was switched off).
        box: the square region (x, y, w, h) of the input image that was cropped.
    """

    array: np.ndarray
    detected: bool
    box: Box


class FaceBatch(NamedTuple):
    """A stack of preprocessed frames.

    Attributes:
        arrays: float32 array of shape (n, size, size, 1).
        detected: bool array of shape (n,); False where the fallback crop was used.
        boxes: int64 array of shape (n, 4), the cropped regions as (x, y, w, h).
    """

    arrays: np.ndarray
    detected: np.ndarray
    boxes: np.ndarray

    @property
    def n_fallback(self) -> int:
        """How many frames used the centre-crop fallback (no face detected, or detection off)."""
        return int(np.count_nonzero(~self.detected))


def equalize_histogram(img: np.ndarray) -> np.ndarray:
    """Histogram-equalize a 2-D uint8 image exactly as the paper's Eq. 1.

    ``H(v) = round((cdf(v) − cdf_min) / (M·N − cdf_min) · (L − 1))`` with ``cdf_min`` the smallest
    non-zero value of the cumulative histogram, ``M·N`` the pixel count and ``L = 256``.

    Edge case: when the image has a single grey level, ``M·N == cdf_min`` and Eq. 1 is 0/0; the
    image is then returned unchanged (a copy), which is also what ``cv2.equalizeHist`` does.

    Args:
        img: 2-D ``uint8`` array.

    Returns:
        A new 2-D ``uint8`` array of the same shape. It agrees with ``cv2.equalizeHist`` to within
        one grey level (OpenCV computes the scale in float32, so exact .5 ties can round apart).
    """
    if not isinstance(img, np.ndarray) or img.ndim != 2 or img.dtype != np.uint8 or img.size == 0:
        raise ValueError(
            "equalize_histogram expects a non-empty 2-D uint8 image, got "
            f"{_describe(img)}; convert it first with to_gray_uint8()"
        )
    cdf = np.cumsum(np.bincount(img.ravel(), minlength=GRAY_LEVELS)).astype(np.float64)
    cdf_min = cdf[np.flatnonzero(cdf)[0]]
    total = float(img.size)
    if total == cdf_min:  # one grey level: Eq. 1 is 0/0, keep the image as it is
        return img.copy()
    lut = np.round((cdf - cdf_min) / (total - cdf_min) * (GRAY_LEVELS - 1))
    lut = np.clip(lut, 0, GRAY_LEVELS - 1).astype(np.uint8)  # levels below cdf_min map to 0
    return lut[img]


def to_gray_uint8(image: np.ndarray, *, name: str = "image") -> np.ndarray:
    """Convert a supported image to a 2-D uint8 grayscale array (rules in the module docstring).

    Args:
        image: the input array.
        name: how error messages refer to the input (a file name, ``"images[3]"``, ...).

    Raises:
        ValueError: unsupported shape or dtype, empty image, NaN/inf, or values out of range.
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array, got {type(image).__name__}")
    if image.size == 0:
        raise ValueError(f"{name}: the image is empty (shape {image.shape}); drop the frame or check how it was read")
    _check_layout(image, name)
    return _to_single_channel(_to_uint8(image, name))


def _check_layout(image: np.ndarray, name: str) -> None:
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4)):
        return
    raise ValueError(
        f"{name}: unsupported image shape {image.shape}; expected (H, W) gray, (H, W, 1), "
        "(H, W, 3) BGR or (H, W, 4) BGRA"
    )


def _to_single_channel(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    if image.shape[2] == 1:
        return np.ascontiguousarray(image[:, :, 0])
    code = cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
    return cv2.cvtColor(np.ascontiguousarray(image), code)


def _to_uint8(image: np.ndarray, name: str) -> np.ndarray:
    """Convert the pixel values (any layout) to uint8 by the module's dtype rule."""
    kind = image.dtype.kind
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return np.round(image.astype(np.float64) * (255.0 / 65535.0)).astype(np.uint8)
    if kind == "f":
        if not np.all(np.isfinite(image)):
            raise ValueError(
                f"{name}: the image contains NaN or inf values; clean them (np.nan_to_num) or drop the frame"
            )
        lo, hi = float(image.min()), float(image.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"{name}: float images must lie in [0, 1], got values in [{lo:g}, {hi:g}]; "
                "divide 0..255 data by 255 (or pass it as uint8)"
            )
        return np.round(image.astype(np.float64) * 255.0).astype(np.uint8)
    if kind in ("i", "u"):
        lo, hi = int(image.min()), int(image.max())
        if lo < 0 or hi > 255:
            raise ValueError(
                f"{name}: integer images of dtype {image.dtype} must hold values in 0..255, got "
                f"[{lo}, {hi}]; rescale to uint8 first"
            )
        return image.astype(np.uint8)
    raise ValueError(
        f"{name}: unsupported dtype {image.dtype}; use uint8, uint16, another integer type with "
        "values 0..255, or float in [0, 1]"
    )


def square_crop_box(face: Box, margin: float, shape: tuple[int, int]) -> Box:
    """The square region to crop around a detected face.

    The face box's longer side grows by ``margin`` of itself on each side; the square is then shrunk
    to fit the frame if it is larger, and shifted (not clipped) to lie inside it, so that crops stay
    square and the resize never distorts the face.
    """
    x, y, w, h = face
    height, width = shape
    side = round(max(w, h) * (1.0 + 2.0 * margin))
    side = max(1, min(side, height, width))
    cx, cy = x + w / 2.0, y + h / 2.0
    x0 = round(cx - side / 2.0)
    y0 = round(cy - side / 2.0)
    x0 = min(max(x0, 0), width - side)
    y0 = min(max(y0, 0), height - side)
    return x0, y0, side, side


def centre_crop_box(shape: tuple[int, int], fraction: float) -> Box:
    """The fallback crop: a centred square whose side is ``fraction`` of the frame's shorter side."""
    height, width = shape
    side = max(1, round(min(height, width) * fraction))
    return (width - side) // 2, (height - side) // 2, side, side


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """Resize to ``size``×``size``: ``cv2.INTER_AREA`` when shrinking, ``INTER_LINEAR`` otherwise.

    "Shrinking" means both sides are at least ``size``; a crop smaller than the target on either side
    (FER-2013's 48×48 frames, say) is enlarged with bilinear interpolation.
    """
    h, w = img.shape
    if (h, w) == (size, size):
        return img.copy()
    interp = cv2.INTER_AREA if min(h, w) >= size else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


def _check_haar(haar: HaarParams) -> None:
    # HaarParams validates its own values; here only its type can be wrong.
    if not isinstance(haar, HaarParams):
        raise ConfigError(f"FacePreprocessor.haar must be a HaarParams, got {type(haar).__name__}")


@dataclass(frozen=True)
class FacePreprocessor:
    """The §5.1 face pipeline as a validated, immutable configuration that is also callable.

    Attributes:
        size: output side in pixels. 112 (P: the paper's CNN input is 112×112×1).
        margin: fraction of the face box's side added on each side of the crop, in [0, 1].
            0.1 (D).
        fallback_fraction: side of the centred fallback square as a fraction of the frame's shorter
            side, in (0, 1]. 0.8 (D).
        equalize: apply histogram equalization (Eq. 1) to the crop. True (P).
        detect: run the Haar cascade; False always uses the fallback crop (for frames that are
            already face crops, e.g. FER-2013 with ``fallback_fraction=1.0``). True (P: the paper
            names Haar cascades).
        min_input_size: smallest accepted input side in pixels. 24 (D: the Haar cascade's own
            detection window is 24×24).
        haar: the cascade's detection parameters (shared with the corpus benchmarks).

    Example:
        >>> import numpy as np
        >>> prep = FacePreprocessor(detect=False)
        >>> prep(np.zeros((48, 48), np.uint8)).array.shape
        (112, 112, 1)
    """

    size: int = 112
    margin: float = 0.1
    fallback_fraction: float = 0.8
    equalize: bool = True
    detect: bool = True
    min_input_size: int = 24
    haar: HaarParams = DEFAULT_HAAR

    def __post_init__(self) -> None:
        for name in ("size", "min_input_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"FacePreprocessor.{name} = {value!r}: expected an integer >= 1")
        check_range("FacePreprocessor.margin", self.margin, 0.0, 1.0)
        if not 0.0 < self.fallback_fraction <= 1.0:
            raise ConfigError(
                f"FacePreprocessor.fallback_fraction = {self.fallback_fraction!r}: "
                "expected a value in (0, 1]"
            )
        for name in ("equalize", "detect"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    f"FacePreprocessor.{name} = {getattr(self, name)!r}: expected true or false"
                )
        _check_haar(self.haar)

    def __call__(self, image: np.ndarray, *, name: str = "image") -> FaceResult:
        """Preprocess one frame.

        Args:
            image: a frame in any supported layout (see the module docstring).
            name: how error messages refer to the frame (e.g. its file name).

        Returns:
            The (size, size, 1) float32 array, whether a face was detected, and the crop box.
        """
        gray = to_gray_uint8(image, name=name)
        self._check_size(gray, name)
        box, detected = self.crop_box(gray)
        x, y, w, h = box
        crop = gray[y : y + h, x : x + w]
        if self.equalize:
            crop = equalize_histogram(crop)
        out = resize_square(crop, self.size).astype(np.float32) / np.float32(255.0)
        return FaceResult(out[:, :, np.newaxis], detected, box)

    def crop_box(self, gray: np.ndarray) -> tuple[Box, bool]:
        """The square region to crop from a 2-D uint8 frame, and whether a face was found."""
        if self.detect:
            face = largest_face(detect_faces(gray, self.haar))
            if face is not None:
                return square_crop_box(face, self.margin, gray.shape), True
        return centre_crop_box(gray.shape, self.fallback_fraction), False

    def batch(self, images: Sequence[np.ndarray], *, names: Sequence[str] | None = None) -> FaceBatch:
        """Preprocess a sequence of frames into one stacked array.

        Args:
            images: the frames (each may have its own size and layout).
            names: optional per-frame names for error messages; default ``"images[i]"``.

        Returns:
            A :class:`FaceBatch`; ``FaceBatch.n_fallback`` counts frames without a detected face.
        """
        if names is not None and len(names) != len(images):
            raise ValueError(f"names has {len(names)} entries but images has {len(images)}")
        results = [
            self(img, name=names[i] if names is not None else f"images[{i}]")
            for i, img in enumerate(images)
        ]
        if not results:
            return FaceBatch(
                np.zeros((0, self.size, self.size, 1), np.float32),
                np.zeros(0, bool),
                np.zeros((0, 4), np.int64),
            )
        return FaceBatch(
            np.stack([r.array for r in results]),
            np.array([r.detected for r in results], dtype=bool),
            np.array([r.box for r in results], dtype=np.int64),
        )

    def _check_size(self, gray: np.ndarray, name: str) -> None:
        h, w = gray.shape
        if min(h, w) < self.min_input_size:
            raise ValueError(
                f"{name}: image of shape {gray.shape} is smaller than the minimum "
                f"{self.min_input_size}×{self.min_input_size}; upscale it or lower "
                "FacePreprocessor.min_input_size"
            )


def _describe(obj: object) -> str:
    if isinstance(obj, np.ndarray):
        return f"shape {obj.shape} dtype {obj.dtype}"
    return type(obj).__name__
