"""Geometry of the rendered face: landmark shapes in face coordinates and their projection.

Face coordinates: x to the image right, y down, z toward the camera, in units of the face
half-width at the cheekbones; the origin is on the midline at cheekbone level. Every shape is an
``(n, 2)`` array of (x, y) points; :class:`Projector` maps them with a depth ``z`` to pixels. Head
pose is an orthographic rotation (yaw about the vertical axis, then pitch) of points on an
ellipsoidal head, followed by roll, scale and translation; the head's silhouette keeps its width,
features in front of it shift with their depth, which is how yaw and pitch look in a 2-D frame.

``ident`` below is a :class:`simulators.corpus.faces.FaceIdentity` and ``p`` a dict of expression
parameters from :func:`simulators.corpus.face_facs.expression_params`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache, cached_property
from typing import TYPE_CHECKING, Final

import numpy as np

if TYPE_CHECKING:
    from simulators.corpus.faces import FaceIdentity

HEAD_DEPTH: Final[float] = 0.95
"""Depth of the head ellipsoid in face half-widths (D)."""

NOSE_HEIGHT: Final[float] = 0.32
"""How far the nose tip stands out of the head ellipsoid (D)."""


@dataclass(frozen=True)
class Projector:
    """Orthographic head pose plus a similarity transform into the frame.

    A face point (x, y, z) goes to pixel ``matrix @ (x, y, z) + (cx, cy)``: yaw about the vertical
    axis, then pitch, orthographic projection, roll, scale.
    """

    cx: float
    cy: float
    scale: float  # pixels per face unit
    yaw: float  # radians
    pitch: float
    roll: float

    @classmethod
    def from_pose(
        cls, size: tuple[int, int], *, offset: tuple[float, float], face_scale: float,
        yaw_deg: float, pitch_deg: float, roll_deg: float,
    ) -> Projector:
        """Face centred at ``offset`` (fractions of the frame) from the frame centre; the face is
        ``face_scale`` times the frame's shorter side wide."""
        h, w = size
        return cls(
            cx=w / 2.0 + offset[0] * w,
            cy=h / 2.0 + offset[1] * h,
            scale=face_scale * min(h, w) / 2.0,
            yaw=math.radians(yaw_deg),
            pitch=math.radians(pitch_deg),
            roll=math.radians(roll_deg),
        )

    @cached_property
    def matrix(self) -> np.ndarray:
        """The 2×3 linear part of the projection (pixels per face unit)."""
        cy_, sy = math.cos(self.yaw), math.sin(self.yaw)
        cp, sp = math.cos(self.pitch), math.sin(self.pitch)
        # (x1, y2) = ((cy, 0, sy), (sy*sp, cp, -cy*sp)) @ (x, y, z)
        pose = np.array([[cy_, 0.0, sy], [sy * sp, cp, -cy_ * sp]])
        return self._roll_scale() @ pose

    @cached_property
    def silhouette_matrix(self) -> np.ndarray:
        """The 2×2 map of the head outline (the ellipsoid's silhouette keeps its width)."""
        kx = math.hypot(math.cos(self.yaw), HEAD_DEPTH * math.sin(self.yaw))
        ky = math.hypot(math.cos(self.pitch), HEAD_DEPTH * math.sin(self.pitch))
        return self._roll_scale() @ np.diag([kx, ky])

    def _roll_scale(self) -> np.ndarray:
        cr, sr = math.cos(self.roll), math.sin(self.roll)
        return self.scale * np.array([[cr, -sr], [sr, cr]])

    def __call__(self, xy: np.ndarray, z: np.ndarray | float) -> np.ndarray:
        """Pixel coordinates of face points ``xy`` (n, 2) at depth ``z`` (scalar or (n,))."""
        m = self.matrix
        out = xy @ m[:, :2].T
        out += np.multiply.outer(z, m[:, 2]) if np.ndim(z) else z * m[:, 2]
        out += (self.cx, self.cy)
        return out

    def silhouette(self, xy: np.ndarray) -> np.ndarray:
        """Pixel coordinates of the head's outline points ``xy``."""
        return xy @ self.silhouette_matrix.T + (self.cx, self.cy)


def surface_z(ident: FaceIdentity, xy: np.ndarray) -> np.ndarray:
    """Depth of the head ellipsoid under each point (features sit on it)."""
    x, y = xy[:, 0], xy[:, 1]
    ay = np.where(y < 0.0, ident.cranium, ident.face_length)
    return HEAD_DEPTH * np.sqrt(np.maximum(0.04, 1.0 - x * x - (y / ay) ** 2))


@cache
def _circle(n: int) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    return np.column_stack([np.cos(t), np.sin(t)])


def ellipse(cx: float, cy: float, ax: float, ay: float, n: int = 24) -> np.ndarray:
    """Points of an axis-aligned ellipse centred at (cx, cy) with half-axes (ax, ay)."""
    return _circle(n) * (ax, ay) + (cx, cy)


def band(points: np.ndarray, half_width: np.ndarray | float) -> np.ndarray:
    """A closed polygon of a stroke along ``points`` with the given half-width (scalar or per point)."""
    d = np.empty_like(points)
    d[1:-1] = points[2:] - points[:-2]
    d[0], d[-1] = points[1] - points[0], points[-1] - points[-2]
    d /= np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)[:, None]
    normal = np.column_stack([-d[:, 1], d[:, 0]]) * np.reshape(half_width, (-1, 1))
    return np.vstack([points + normal, (points - normal)[::-1]])


def capsule(p0: np.ndarray, p1: np.ndarray, radius: float, n: int = 7) -> np.ndarray:
    """A stroke from ``p0`` to ``p1`` with round ends (a finger)."""
    d = np.asarray(p1, dtype=float) - np.asarray(p0, dtype=float)
    a = math.atan2(d[1], d[0])
    t1 = np.linspace(a - math.pi / 2, a + math.pi / 2, n)
    t0 = t1 + math.pi
    cap1 = np.column_stack([np.cos(t1), np.sin(t1)]) * radius + p1
    cap0 = np.column_stack([np.cos(t0), np.sin(t0)]) * radius + p0
    return np.vstack([cap1, cap0])


def quad_curve(p0: tuple[float, float], p1: tuple[float, float], p2: tuple[float, float], n: int = 9) -> np.ndarray:
    """Quadratic Bézier curve from ``p0`` to ``p2`` pulled toward ``p1``."""
    w = _bezier_weights(n)
    return w @ np.array([p0, p1, p2], dtype=float)


@cache
def _bezier_weights(n: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)
    return np.column_stack([(1 - t) ** 2, 2 * (1 - t) * t, t**2])


# --- landmarks -------------------------------------------------------------------------------------


def mouth_y(ident: FaceIdentity) -> float:
    """Height of the closed mouth line."""
    return ident.eye_y + ident.nose_length + ident.mouth_gap


def head_outline(ident: FaceIdentity, p: dict[str, float], n: int = 64) -> np.ndarray:
    """Head and face outline: an ellipse above the cheekbones, a jaw tapering to the chin below."""
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    s, c = np.sin(t), np.cos(t)
    lower = s > 0.0
    y = np.where(lower, ident.face_length * s, ident.cranium * s)
    # At s = 0.75 (the jaw angle) the half-width becomes jaw_width.
    k = ident.jaw_width / math.sqrt(1.0 - 0.75**2) - 1.0
    x = c * np.where(lower, 1.0 + k * (s / 0.75) ** 2 * np.clip(1.6 - s, 0.0, 1.0), 1.0)
    my = mouth_y(ident)
    drop = p["jaw_drop"] * np.clip((y - my) / (ident.face_length - my), 0.0, 1.0)
    return np.column_stack([x, y + drop])


@dataclass(frozen=True)
class EyeShape:
    """One eye: lids, opening, iris and pupil (face coordinates)."""

    opening: np.ndarray
    upper: np.ndarray
    lower: np.ndarray
    iris: np.ndarray
    pupil: np.ndarray
    crease: np.ndarray
    centre: tuple[float, float]


def _clip_to_lids(pts: np.ndarray, upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    xs = upper[:, 0]
    order = np.argsort(xs)
    x = np.clip(pts[:, 0], xs.min(), xs.max())
    top = np.interp(x, xs[order], upper[order, 1])
    bottom = np.interp(x, xs[order], lower[order, 1])
    return np.column_stack([x, np.clip(pts[:, 1], top, np.maximum(top, bottom))])


def eye(ident: FaceIdentity, p: dict[str, float], side: int, gaze: tuple[float, float]) -> EyeShape:
    """Eye ``side`` (-1 image left, +1 image right); ``gaze`` shifts the iris (face units)."""
    cx, cy = side * ident.eye_spacing, ident.eye_y
    w, h = ident.eye_width, ident.eye_opening
    u = np.linspace(-1.0, 1.0, 13)  # -1: inner corner, +1: outer corner
    x = cx + side * u * w
    base = cy - 0.015 * u - p["lid_lower"] * h * 0.35
    h_up = max(0.004, h * (1.0 + p["lid_upper"]) - 0.25 * h * p["cheek_raise"])
    h_lo = max(0.003, h * 0.75 * (1.0 - 0.55 * p["lid_lower"]) * (1.0 - 0.45 * p["lid_straight"]))
    bump = 1.0 - u * u
    upper = np.column_stack([x, base - h_up * bump**0.75 * (1.0 - 0.12 * u)])
    lower = np.column_stack([x, base + h_lo * bump**0.9])
    opening = np.vstack([upper, lower[::-1][1:-1]])
    r = 0.46 * w
    ic = (cx + gaze[0], cy + 0.006 + gaze[1])
    iris = _clip_to_lids(ellipse(*ic, r, r, 20), upper, lower)
    pupil = _clip_to_lids(ellipse(*ic, 0.4 * r, 0.4 * r, 12), upper, lower)
    crease_h = h_up + 0.045 + 0.03 * max(0.0, -p["lid_upper"])
    crease = np.column_stack([x[2:], cy - crease_h * bump[2:] ** 0.6 - 0.01])
    return EyeShape(opening, upper, lower, iris, pupil, crease, (cx, cy))


def brow(ident: FaceIdentity, p: dict[str, float], side: int) -> tuple[np.ndarray, np.ndarray]:
    """Brow ``side``: (centre line, polygon). Inner end thicker, tapering outward."""
    base = ident.eye_y - ident.brow_gap
    xi = ident.eye_spacing - 1.05 * ident.eye_width - p["brow_inner_dx"]
    xm = ident.eye_spacing + 0.03
    xo = ident.eye_spacing + 1.5 * ident.eye_width
    yi = base + 0.025 + p["brow_inner_dy"]
    yo = base + 0.06 + p["brow_outer_dy"]
    ym = base - ident.brow_arch + 0.45 * p["brow_inner_dy"] + 0.55 * p["brow_outer_dy"]
    line = quad_curve((xi, yi), (xm, 2 * ym - 0.5 * (yi + yo)), (xo, yo), 11)
    line[:, 0] *= side
    t = np.linspace(0.0, 1.0, len(line))
    half = 0.5 * ident.brow_thickness * (1.15 - 0.65 * t**1.5)
    return line, band(line, half)


@dataclass(frozen=True)
class MouthShape:
    """Lips, the opening between them and the visible teeth (face coordinates)."""

    upper_lip: np.ndarray
    lower_lip: np.ndarray
    opening: np.ndarray | None
    upper_teeth: np.ndarray | None
    lower_teeth: np.ndarray | None
    line: np.ndarray
    corners: tuple[tuple[float, float], tuple[float, float]]
    lower_outer_y: float
    gap: float


def mouth(ident: FaceIdentity, p: dict[str, float]) -> MouthShape:
    """Lips from the corner positions, the inner lip contours and the lip thickness."""
    my = mouth_y(ident)
    half_w = ident.mouth_width + p["corner_dx"]
    corner_y = my + p["corner_dy"]
    y_ui = my - 0.6 * p["upper_lip_raise"] - 0.3 * p["lips_part"]
    y_li = max(y_ui, my + 0.7 * p["lips_part"] + 0.85 * p["jaw_drop"] + max(0.0, p["lower_lip_dy"]))
    u = np.linspace(-1.0, 1.0, 17)
    x = u * half_w
    au = np.abs(u)
    inner_up = corner_y + (y_ui - corner_y) * (1.0 - au**2.2)
    inner_lo = corner_y + (y_li - corner_y) * (1.0 - au**2.0)
    thick = ident.lip_thickness * max(0.15, 1.0 + p["lip_thin"])
    bow = 0.8 + 0.35 * np.exp(-(((au - 0.32) / 0.2) ** 2)) - 0.15 * np.exp(-((au / 0.1) ** 2))
    outer_up = inner_up - 0.85 * thick * bow * (1.0 - au**1.6) - 0.5 * p["upper_lip_raise"] * (1 - au**2)
    push = min(0.0, p["lower_lip_dy"])
    outer_lo = inner_lo + thick * (1.0 + 0.3 * push / 0.04) * (1.0 - au**2) ** 0.7
    upper_lip = np.vstack([np.column_stack([x, outer_up]), np.column_stack([x, inner_up])[::-1]])
    lower_lip = np.vstack([np.column_stack([x, inner_lo]), np.column_stack([x, outer_lo])[::-1]])
    gap = y_li - y_ui
    opening = upper_teeth = lower_teeth = None
    if gap > 1e-3:
        opening = np.vstack([np.column_stack([x, inner_up]), np.column_stack([x, inner_lo])[::-1]])
        m = au <= 0.7
        t_up = min(gap * 0.45, 0.02 + 0.4 * p["upper_lip_raise"] + 0.25 * max(0.0, -p["corner_dy"]))
        upper_teeth = np.vstack(
            [np.column_stack([x[m], inner_up[m]]), np.column_stack([x[m], np.minimum(inner_up[m] + t_up, inner_lo[m])])[::-1]]
        )
        if gap > 0.06:
            t_lo = min(0.2 * gap, 0.025)
            lower_teeth = np.vstack(
                [np.column_stack([x[m], inner_lo[m] - t_lo]), np.column_stack([x[m], inner_lo[m]])[::-1]]
            )
    line = np.column_stack([x, 0.5 * (inner_up + inner_lo)])
    corners = ((-half_w, corner_y), (half_w, corner_y))
    return MouthShape(upper_lip, lower_lip, opening, upper_teeth, lower_teeth, line, corners,
                      float(outer_lo[len(u) // 2]), float(gap))


def nasolabial(ident: FaceIdentity, p: dict[str, float], side: int, corner: tuple[float, float]) -> np.ndarray:
    """Fold from the nostril wing to beside the mouth corner."""
    nose_base = ident.eye_y + ident.nose_length
    start = (side * (ident.nose_width + 0.03), nose_base - 0.06 - p["ala_raise"])
    end = (corner[0] + side * 0.06, corner[1] + 0.05 - 0.2 * p["corner_dy"])
    ctrl = (side * (abs(corner[0]) + 0.05), 0.5 * (start[1] + end[1]) - 0.03)
    return quad_curve(start, ctrl, end, 9)


def hair_cap(ident: FaceIdentity, n: int = 28) -> np.ndarray:
    """Hair on top of the head down to the temples, in front of the forehead's top; ``hair_part``
    tilts the hairline (a side parting), ``hair_volume`` sets how far the hair stands off the head."""
    t = np.linspace(math.pi + 0.12, 2.0 * math.pi - 0.12, n)
    vol = ident.hair_volume
    outer = np.column_stack([vol * np.cos(t), (ident.cranium + vol - 1.0) * np.sin(t) - 0.02])
    v = np.linspace(0.0, math.pi, n)
    top = ident.eye_y - 0.06
    x = 0.94 * np.cos(v)
    y = top + (ident.hairline - top) * np.sin(v) ** 0.55 + 0.12 * ident.hair_part * x * np.sin(v)
    return np.vstack([outer, np.column_stack([x, y])])


def hair_back(ident: FaceIdentity) -> np.ndarray:
    """Long hair behind the head, falling to the shoulders."""
    t = np.linspace(math.pi, 2.0 * math.pi, 24)
    vol = ident.hair_volume + 0.08
    top = np.column_stack([vol * np.cos(t), (ident.cranium + vol - 1.0) * np.sin(t)])
    bottom = ident.face_length + 0.55
    return np.vstack([[[-1.28, bottom]], top, [[1.28, bottom]], [[0.8, bottom - 0.1]], [[-0.8, bottom - 0.1]]])
