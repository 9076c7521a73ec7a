"""OpenCV's bundled Haar frontal-face cascade, with the one set of detection parameters that the
face preprocessing (paper §5.1) and the corpus benchmarks share.

The cascade file ships inside ``opencv-python-headless`` (``cv2.data.haarcascades``); OpenCV 5
dropped it, which is why mer-gym pins ``opencv-python-headless<5``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

CASCADE_FILE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class HaarParams:
    """Arguments of ``CascadeClassifier.detectMultiScale``.

    scale_factor: image-pyramid step. min_neighbors: overlapping detections a face needs (higher is
    stricter). min_size_frac: smallest face side as a fraction of the frame's shorter side.
    """

    scale_factor: float = 1.1
    min_neighbors: int = 4
    min_size_frac: float = 0.2

    def __post_init__(self) -> None:
        from mer_gym.config import ConfigError

        if not self.scale_factor > 1.0:
            raise ConfigError(f"haar.scale_factor = {self.scale_factor!r}: expected > 1.0 (e.g. 1.1)")
        if not isinstance(self.min_neighbors, int) or self.min_neighbors < 0:
            raise ConfigError(f"haar.min_neighbors = {self.min_neighbors!r}: expected an integer >= 0")
        if not 0.0 < self.min_size_frac <= 1.0:
            raise ConfigError(f"haar.min_size_frac = {self.min_size_frac!r}: expected a value in (0, 1]")


DEFAULT_HAAR = HaarParams()


@lru_cache(maxsize=1)
def load_cascade():  # -> cv2.CascadeClassifier
    """Load (once per process) OpenCV's bundled frontal-face Haar cascade."""
    import cv2

    if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
        raise RuntimeError(
            f"OpenCV {cv2.__version__} has no CascadeClassifier or bundled cascades: "
            "install opencv-python-headless<5 (pip install 'opencv-python-headless<5')"
        )
    path = cv2.data.haarcascades + CASCADE_FILE
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"could not load the Haar cascade {path}: reinstall opencv-python-headless<5")
    return cascade


def detect_faces(gray: np.ndarray, params: HaarParams = DEFAULT_HAAR) -> np.ndarray:
    """Detect frontal faces in a 2-D uint8 image; returns an (n, 4) int array of (x, y, w, h)."""
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(
            f"detect_faces expects a 2-D uint8 grayscale image, got shape {gray.shape} dtype {gray.dtype}"
        )
    side = max(1, round(min(gray.shape) * params.min_size_frac))
    boxes = load_cascade().detectMultiScale(
        gray,
        scaleFactor=params.scale_factor,
        minNeighbors=params.min_neighbors,
        minSize=(side, side),
    )
    return np.asarray(boxes, dtype=np.int64).reshape(-1, 4)


def largest_face(boxes: np.ndarray) -> tuple[int, int, int, int] | None:
    """The largest box by area (ties: the first), or None when there is none."""
    if len(boxes) == 0:
        return None
    i = int(np.argmax(boxes[:, 2] * boxes[:, 3]))
    x, y, w, h = (int(v) for v in boxes[i])
    return x, y, w, h
