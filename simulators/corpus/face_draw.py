"""Raster layers of the face renderer: albedo painting, soft and fine shading, camera effects.

A frame is composed as ``albedo * (1 + soft + fine)`` inside the face and plain albedo outside it,
then lit, blurred and given sensor noise. ``soft`` is drawn at a quarter of the resolution and blurred
by a large kernel (eye sockets, cheek highlights, nose shading, the falloff toward the face edge);
``fine`` is drawn at full resolution and blurred slightly (brow furrows, folds, wrinkles, lid creases,
the mouth line). Polygons are filled with sub-pixel precision (``shift``) inside their bounding box
only, so drawing costs little more than the pixels a shape covers.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

_SHIFT = 4
_ONE = 1 << _SHIFT
SOFT_DOWNSAMPLE = 4


Polys = np.ndarray | list[np.ndarray]
"""One polygon as an (n, 2) array of pixel coordinates, or a list of them drawn together."""


def _fixed(pts: Polys, origin: tuple[int, int] = (0, 0)) -> list[np.ndarray]:
    polys = pts if isinstance(pts, list) else [pts]
    return [np.rint((p - origin) * _ONE).astype(np.int32).reshape(-1, 1, 2) for p in polys]


def _bbox(pts: Polys, shape: tuple[int, int], pad: int) -> tuple[int, int, int, int] | None:
    h, w = shape
    if isinstance(pts, list):
        lo = np.min([p.min(axis=0) for p in pts], axis=0)
        hi = np.max([p.max(axis=0) for p in pts], axis=0)
    else:
        lo, hi = pts.min(axis=0), pts.max(axis=0)
    x0 = max(0, int(lo[0]) - pad - 1)
    y0 = max(0, int(lo[1]) - pad - 1)
    x1 = min(w, int(hi[0]) + pad + 2)
    y1 = min(h, int(hi[1]) + pad + 2)
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, y0, x1, y1


def fill(img: np.ndarray, pts: Polys, value: float) -> None:
    """Fill polygon(s) ``pts`` (pixel coordinates) with ``value`` in place."""
    cv2.fillPoly(img, _fixed(pts), float(value), cv2.LINE_8, _SHIFT)


def mask_of(pts: Polys, shape: tuple[int, int], pad: int = 0) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """A float32 0/1 mask of polygon(s) ``pts`` inside their bounding box (+ ``pad``), and the box."""
    box = _bbox(pts, shape, pad)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    m = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.fillPoly(m, _fixed(pts, (x0, y0)), 1.0, cv2.LINE_8, _SHIFT)
    return m, box


def add(layer: np.ndarray, pts: Polys, value: float, scale: float = 1.0) -> None:
    """Add ``value`` inside polygon(s) ``pts`` to ``layer`` (drawn at ``scale`` × pixel coordinates)."""
    if value == 0.0:
        return
    if scale != 1.0:
        pts = [p * scale for p in pts] if isinstance(pts, list) else pts * scale
    got = mask_of(pts, layer.shape)
    if got is not None:
        m, (x0, y0, x1, y1) = got
        layer[y0:y1, x0:x1] += value * m


def add_line(layer: np.ndarray, pts: Polys, value: float, thickness_px: float) -> None:
    """Add ``value`` along the open polyline(s) ``pts`` (``thickness_px`` wide) to ``layer``."""
    if value == 0.0:
        return
    t = max(1, round(thickness_px))
    box = _bbox(pts, layer.shape, t + 1)
    if box is None:
        return
    x0, y0, x1, y1 = box
    m = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.polylines(m, _fixed(pts, (x0, y0)), False, 1.0, t, cv2.LINE_8, _SHIFT)
    layer[y0:y1, x0:x1] += value * m


def blend(img: np.ndarray, pts: Polys, value: float, sigma: float, alpha: float = 1.0) -> None:
    """Paint ``value`` into ``img`` inside polygon(s) ``pts`` with a soft edge (Gaussian ``sigma`` px)."""
    pad = math.ceil(3 * sigma) + 1
    got = mask_of(pts, img.shape, pad)
    if got is None:
        return
    m, (x0, y0, x1, y1) = got
    if sigma > 0.3:
        cv2.GaussianBlur(m, (0, 0), sigma, dst=m)
    if alpha != 1.0:
        m *= alpha
    sub = img[y0:y1, x0:x1]
    sub += m * (value - sub)


def blur_inplace(layer: np.ndarray, sigma: float) -> None:
    """Gaussian blur of ``layer`` in place (skipped for negligible ``sigma``)."""
    if sigma > 0.25:
        cv2.GaussianBlur(layer, (0, 0), sigma, dst=layer, borderType=cv2.BORDER_REPLICATE)


def upsample(small: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a low-resolution layer to ``shape`` (height, width)."""
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def background(
    shape: tuple[int, int], level: float, clutter: float, rng: np.random.Generator, n_shapes: int = 9
) -> np.ndarray:
    """A defocused background: gray ``level``, a soft vertical gradient and ``clutter`` (0-1) of shapes.

    Always takes the same number of draws from ``rng``.
    """
    h, w = shape
    sh, sw = max(4, h // SOFT_DOWNSAMPLE), max(4, w // SOFT_DOWNSAMPLE)
    u = rng.random((n_shapes, 7))
    slope = rng.uniform(-1.0, 1.0)
    small = np.full((sh, sw), level, np.float32)
    small += (np.linspace(-0.5, 0.5, sh, dtype=np.float32)[:, None] * slope * 30.0 * (0.3 + clutter))
    if clutter > 0.0:
        for ux, uy, uw, uh, ug, kind, ua in u:
            x, y = ux * sw, uy * sh
            a, b = (0.1 + 0.5 * uw) * sw, (0.05 + 0.5 * uh) * sh
            value = float(level + clutter * (ug - 0.5) * 200.0)
            if kind < 0.5:
                pts = np.array([[x - a, y - b], [x + a, y - b], [x + a, y + b], [x - a, y + b]])
            else:
                t = np.linspace(0.0, 2.0 * math.pi, 16, endpoint=False)
                pts = np.column_stack([x + a * np.cos(t + ua), y + b * np.sin(t)])
            fill(small, pts, value)
    blur_inplace(small, 0.8)
    return upsample(small, shape)


def lighting(img: np.ndarray, level: float, angle_deg: float, gradient: float) -> None:
    """Multiply by ``level`` and a linear ramp along ``angle_deg`` (±``gradient`` at the frame edges)."""
    h, w = img.shape
    if gradient > 0.0:
        a = math.radians(angle_deg)
        xs = np.linspace(-1.0, 1.0, w, dtype=np.float32) * (math.cos(a) * gradient)
        ys = np.linspace(-1.0, 1.0, h, dtype=np.float32) * (math.sin(a) * gradient)
        ramp = np.maximum(0.05, 1.0 + ys[:, None] + xs[None, :]) * level
        img *= ramp
    elif level != 1.0:
        img *= level


def camera(img: np.ndarray, blur_sigma: float, noise_sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Lens blur, Gaussian sensor noise (always drawn) and 8-bit quantization."""
    blur_inplace(img, math.hypot(0.55, blur_sigma))
    noise = rng.standard_normal(img.shape, dtype=np.float32)
    if noise_sigma > 0.0:
        img += noise * np.float32(noise_sigma)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
