"""Composition of one camera frame from a face identity, expression parameters and conditions.

Painter's order: background, clothing, long hair behind the head, neck, ears, the shaded face
(albedo × (1 + soft + fine) inside the head outline, see :mod:`simulators.corpus.face_draw`), the hair
cap, an occluder, then lighting, lens blur, sensor noise and quantization. The shading is what
OpenCV's Haar cascade keys on: dark eye sockets and brows over bright cheeks, a bright nose bridge
between them, a darker mouth, falloff toward the face edge. The public entry point is
:func:`simulators.corpus.faces.render_face`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from simulators.corpus import face_draw as fd
from simulators.corpus import face_geometry as fg
from simulators.corpus.face_geometry import Projector

if TYPE_CHECKING:
    from simulators.corpus.faces import FaceConditions, FaceIdentity


def compose(
    ident: FaceIdentity, p: dict[str, float], cond: FaceConditions, rng: np.random.Generator, size: tuple[int, int]
) -> np.ndarray:
    """Render the frame (uint8, ``size`` = (height, width)); draws a fixed number of values from ``rng``."""
    proj = Projector.from_pose(
        size, offset=(cond.offset_x, cond.offset_y), face_scale=cond.face_scale,
        yaw_deg=cond.yaw_deg, pitch_deg=cond.pitch_deg, roll_deg=cond.roll_deg,
    )
    gaze = tuple(rng.normal(0.0, (0.02, 0.008)))
    occ_u = rng.random(4)
    img = fd.background(size, cond.background_level, cond.background_clutter, rng)
    _body(img, ident, proj)
    _face(img, ident, p, proj, gaze)
    if ident.hair_style != "none":
        cap = fg.hair_cap(ident)
        fd.blend(img, proj(cap, fg.surface_z(ident, cap) + 0.05), ident.hair_level, 0.9)
    if cond.occlusion != "none":
        _occluder(img, ident, cond, proj, occ_u)
    fd.lighting(img, cond.illumination, cond.light_angle_deg, cond.light_gradient)
    return fd.camera(img, cond.blur_sigma, cond.noise_sigma, rng)


def _pair(make: Callable[[int], np.ndarray]) -> list[np.ndarray]:
    return [make(-1), make(1)]


def _body(img: np.ndarray, ident: FaceIdentity, proj: Projector) -> None:
    fl = ident.face_length
    shoulders = fg.ellipse(0.0, fl + 1.45, 2.3, 1.0, 32)
    fd.blend(img, proj(shoulders, 0.0), ident.clothing_level, 1.0)
    if ident.hair_style == "long":
        fd.blend(img, proj.silhouette(fg.hair_back(ident)), ident.hair_level, 1.0)
    neck = np.array([[-0.52, 0.4], [0.52, 0.4], [0.58, fl + 1.0], [-0.58, fl + 1.0]])
    fd.blend(img, proj(neck, 0.0), ident.skin_level * 0.72, 0.8)
    ears = _pair(lambda side: proj(fg.ellipse(side * 1.0, ident.eye_y + 0.24, 0.13, 0.26, 16), -0.2))
    fd.blend(img, ears, ident.skin_level * 0.8, 0.8)


def _face(img: np.ndarray, ident: FaceIdentity, p: dict[str, float], proj: Projector, gaze: tuple[float, float]) -> None:
    shape = img.shape
    s = proj.scale
    outline = proj.silhouette(fg.head_outline(ident, p))
    got = fd.mask_of(outline, shape, pad=2)
    if got is None:
        return
    mask, (x0, y0, x1, y1) = got
    fd.blur_inplace(mask, 0.7)
    albedo = np.full(shape, ident.skin_level, np.float32)
    fine = np.zeros(shape, np.float32)
    q = 1.0 / fd.SOFT_DOWNSAMPLE
    small = (max(4, shape[0] // fd.SOFT_DOWNSAMPLE), max(4, shape[1] // fd.SOFT_DOWNSAMPLE))
    soft = np.zeros(small, np.float32)
    edge = np.zeros(small, np.float32)
    fd.add(edge, outline, 1.0, q)
    fd.blur_inplace(edge, 0.2 * s * q)
    mouth = fg.mouth(ident, p)
    on = _Surface(ident, proj)
    _soft_shading(soft, ident, p, on, mouth, q)
    fd.blur_inplace(soft, 0.07 * s * q)
    soft += 0.55 * (np.minimum(edge, 1.0) - 1.0)
    _eyes_and_brows(albedo, fine, ident, p, on, gaze)
    _nose_and_mouth(albedo, fine, ident, p, on, mouth)
    fd.blur_inplace(fine, max(0.5, 0.012 * s))
    shading = fd.upsample(soft, shape)
    shading += fine
    shading += 1.0
    sub = (slice(y0, y1), slice(x0, x1))
    face = albedo[sub] * shading[sub]
    img[sub] += mask * (face - img[sub])


class _Surface:
    """Projects face points lying on the head surface (plus an offset in depth)."""

    def __init__(self, ident: FaceIdentity, proj: Projector) -> None:
        self.ident, self.proj, self.scale = ident, proj, proj.scale

    def __call__(self, pts: np.ndarray, dz: float = 0.0) -> np.ndarray:
        return self.proj(pts, fg.surface_z(self.ident, pts) + dz)

    def at(self, pts: np.ndarray, z: float) -> np.ndarray:
        return self.proj(pts, z)


def _soft_shading(
    soft: np.ndarray, ident: FaceIdentity, p: dict[str, float], on: _Surface, mouth: fg.MouthShape, q: float
) -> None:
    ey, nb = ident.eye_y, ident.eye_y + ident.nose_length
    brow_y = ey - ident.brow_gap

    def blobs(cx: float, cy: float, ax: float, ay: float, value: float, dz: float = 0.0) -> None:
        """A soft ellipse at (cx, cy) and, for cx != 0, its mirror image."""
        pts = [on(fg.ellipse(sx, cy, ax, ay, 16), dz) for sx in ((cx, -cx) if cx else (0.0,))]
        fd.add(soft, pts, value, q)

    lowered = max(0.0, p["brow_inner_dy"])
    blobs(ident.eye_spacing - 0.02, ey - 0.05, ident.eye_width * 1.55, 0.16,
          -(ident.socket_depth + 1.5 * lowered), -0.05)
    blobs(0.5, 0.15 - 0.1 * p["cheek_raise"], 0.26, 0.16, 0.1 + 0.1 * p["cheek_raise"])
    blobs(ident.eye_spacing, ey + ident.eye_opening + 0.1 - 0.04 * p["cheek_raise"],
          ident.eye_width * 1.1, 0.05, 0.12 * p["cheek_raise"] - 0.06)
    blobs(0.74, 0.55, 0.15, 0.26, -0.1)

    def nose_side(side: int) -> np.ndarray:
        line = fg.quad_curve((side * 0.075, ey + 0.03), (side * 0.09, ey + 0.2),
                             (side * ident.nose_width * 0.8, nb - 0.09), 7)
        return on(fg.band(line, 0.035), 0.1)

    fd.add(soft, _pair(nose_side), -0.17, q)
    bridge = np.array([[0.0, ey + 0.02], [0.0, 0.5 * (ey + nb) - 0.02], [0.0, nb - 0.06]])
    zb = np.array([0.9, 0.95 + 0.5 * fg.NOSE_HEIGHT, 0.95 + fg.NOSE_HEIGHT])
    fd.add(soft, on.proj(fg.band(bridge, 0.04), np.concatenate([zb, zb[::-1]])), 0.13, q)
    blobs(0.0, nb - 0.06, 0.07, 0.05, 0.1, fg.NOSE_HEIGHT)
    blobs(0.0, nb + 0.02, ident.nose_width * 0.85, 0.035, -0.28)
    blobs(0.0, mouth.lower_outer_y + 0.045, ident.mouth_width * 0.55, 0.035, -0.2)
    blobs(0.0, ident.face_length - 0.22 + p["jaw_drop"], 0.22, 0.12, 0.08 + 0.14 * p["chin_raise"])
    blobs(0.0, brow_y - 0.32, 0.42, 0.17, 0.08)
    blobs(0.0, brow_y + 0.02, 0.1, 0.07, -0.18 * p["furrow"])


def _eyes_and_brows(
    albedo: np.ndarray, fine: np.ndarray, ident: FaceIdentity, p: dict[str, float], on: _Surface,
    gaze: tuple[float, float],
) -> None:
    s, skin = on.scale, ident.skin_level
    line_px = max(1.0, 0.018 * s)
    brows = _pair(lambda side: on(fg.brow(ident, p, side)[1], 0.02))
    fd.blend(albedo, brows, skin * ident.brow_level, max(0.6, 0.012 * s))
    eyes = [fg.eye(ident, p, side, gaze) for side in (-1, 1)]
    z = float(fg.surface_z(ident, np.array([eyes[1].centre]))[0]) - 0.04
    fd.blend(albedo, [on.at(e.opening, z) for e in eyes], min(235.0, 0.5 * skin + 95.0), 0.0)
    fd.blend(albedo, [on.at(e.iris, z + 0.01) for e in eyes], skin * ident.iris_level, 0.0)
    fd.blend(albedo, [on.at(e.pupil, z + 0.01) for e in eyes], 12.0, 0.0)
    taper = 0.012 + 0.01 * (1.0 - np.abs(np.linspace(-1.0, 1.0, len(eyes[0].upper))))
    fd.blend(albedo, [on.at(fg.band(e.upper, taper), z) for e in eyes], skin * 0.22, 0.0)
    fd.add_line(fine, [on.at(e.crease, z) for e in eyes], -0.2, line_px)
    fd.add_line(fine, [on.at(e.lower, z) for e in eyes], -0.12, line_px)
    if p["cheek_raise"] > 0.05:
        crows = []
        for side in (-1, 1):
            ox = side * (ident.eye_spacing + ident.eye_width + 0.03)
            for k in (-1, 0, 1):
                crow = np.array([[ox, ident.eye_y + 0.025 * k], [ox + side * 0.05, ident.eye_y + 0.045 * k]])
                crows.append(on.at(crow, z))
        fd.add_line(fine, crows, -0.12 * p["cheek_raise"], line_px)
    base = ident.eye_y - ident.brow_gap
    if p["furrow"] > 0.02:
        furrows = _pair(lambda side: on.at(np.array(
            [[side * 0.045, base - 0.05 + p["brow_inner_dy"]], [side * 0.035, base + 0.08]]), 0.9))
        fd.add_line(fine, furrows, -0.32 * p["furrow"], line_px)
    if p["forehead_lines"] > 0.02:
        lift = min(p["brow_inner_dy"], p["brow_outer_dy"], 0.0)
        arcs = []
        for k in range(3):
            y = base - 0.17 - 0.1 * k + lift
            arcs.append(on(fg.quad_curve((-0.42, y + 0.02), (0.0, y - 0.04), (0.42, y + 0.02), 9)))
        fd.add_line(fine, arcs, -0.2 * p["forehead_lines"], line_px)


def _nose_and_mouth(
    albedo: np.ndarray, fine: np.ndarray, ident: FaceIdentity, p: dict[str, float], on: _Surface,
    mouth: fg.MouthShape,
) -> None:
    s, skin = on.scale, ident.skin_level
    line_px = max(1.0, 0.02 * s)
    nb = ident.eye_y + ident.nose_length
    zn = 0.95 + 0.5 * fg.NOSE_HEIGHT
    ala_raise = p["ala_raise"]
    nostrils = _pair(lambda side: on.at(fg.ellipse(
        side * 0.065, nb - 0.012 - 0.8 * ala_raise, 0.045 * (1 + 3 * ala_raise), 0.018, 12), zn))
    fd.blend(albedo, nostrils, skin * 0.3, 0.4)
    arc = {-1: [3, 4, 5, 6, 7, 8, 9], 1: [9, 10, 11, 0, 1, 2, 3]}
    alae = _pair(lambda side: on.at(fg.ellipse(
        side * (ident.nose_width - 0.045), nb - 0.045 - ala_raise, 0.05, 0.055, 12)[arc[side]], zn - 0.05))
    fd.add_line(fine, alae, -0.3, line_px)
    folds = [fg.nasolabial(ident, p, side, mouth.corners[(side + 1) // 2]) for side in (-1, 1)]
    depth = 0.03 + 0.3 * ident.fold_depth + 0.25 * p["fold"]
    fd.add_line(fine, [on(f) for f in folds], -depth, line_px)
    if p["fold"] > 0.02:
        lit = [on(f + np.array([side * 0.035, -0.01])) for f, side in zip(folds, (-1, 1), strict=True)]
        fd.add_line(fine, lit, 0.08 * p["fold"], line_px * 1.5)
    corners = [on(fg.ellipse(cx + np.sign(cx) * 0.01, cy, 0.02, 0.015, 8)) for cx, cy in mouth.corners]
    fd.add(fine, corners, -0.35)
    if p["dimple"] > 0.02:
        dimples = [on(np.array([[cx + np.sign(cx) * 0.05, cy - 0.04], [cx + np.sign(cx) * 0.06, cy + 0.04]]))
                   for cx, cy in mouth.corners]
        fd.add_line(fine, dimples, -0.3 * p["dimple"], line_px)
    if p["nose_wrinkle"] > 0.02:
        wrinkles = []
        for k in range(3):
            y = ident.eye_y + 0.06 + 0.05 * k
            wrinkles.append(on.at(np.array([[-0.1, y + 0.01], [0.0, y - 0.01], [0.1, y + 0.01]]), 0.95 + 0.1 * k))
        fd.add_line(fine, wrinkles, -0.35 * p["nose_wrinkle"], line_px)
    zm = float(fg.surface_z(ident, mouth.line[8:9])[0]) + 0.03
    fd.blend(albedo, [on.at(mouth.upper_lip, zm), on.at(mouth.lower_lip, zm)], skin * ident.lip_level, 0.5)
    if mouth.opening is not None:
        fd.blend(albedo, on.at(mouth.opening, zm), skin * 0.15, 0.4)
        teeth = [on.at(t, zm - 0.01) for t in (mouth.upper_teeth, mouth.lower_teeth) if t is not None]
        if teeth:
            fd.blend(albedo, teeth, min(225.0, 0.45 * skin + 120.0), 0.4)
    fd.add_line(fine, on.at(mouth.line, zm), -0.45, line_px)
    crease_y = mouth.lower_outer_y + 0.08 - 0.03 * p["chin_raise"]
    crease = fg.quad_curve((-0.16, crease_y - 0.01), (0.0, crease_y + 0.02), (0.16, crease_y - 0.01), 7)
    fd.add_line(fine, on(crease), -(0.06 + 0.3 * p["chin_raise"]), line_px)


def _occluder(img: np.ndarray, ident: FaceIdentity, cond: FaceConditions, proj: Projector, u: np.ndarray) -> None:
    """Glasses-like dark band, a face mask or a hand; ``occlusion_frac`` sets its size, ``u`` (4
    uniforms) its placement and shade."""
    frac, kind = cond.occlusion_frac, cond.occlusion
    on = _Surface(ident, proj)
    ey, my = ident.eye_y, fg.mouth_y(ident)
    if kind == "glasses":
        half = float(np.clip(0.5 * frac * (ident.cranium + ident.face_length), 0.08, 0.35))
        lenses = _pair(lambda side: on.at(fg.ellipse(side * ident.eye_spacing, ey, 0.29, half, 20), 1.0))
        fd.blend(img, lenses, 15.0 + 35.0 * u[1], 0.6, alpha=0.85 + 0.1 * u[2])
        bridge = np.array([[-0.17, ey - 0.06], [0.17, ey - 0.06], [0.17, ey - 0.02], [-0.17, ey - 0.02]])
        fd.blend(img, on.at(bridge, 1.1), 20.0, 0.5)
    elif kind == "mask":
        top = my - 0.05 - (my - ey - 0.12) * float(np.clip((frac - 0.05) / 0.5, 0.0, 1.0))
        edge = fg.quad_curve((-0.97, top + 0.15), (0.0, top - 0.15), (0.97, top + 0.15), 9)
        t = np.linspace(0.15, math.pi - 0.15, 15)
        chin = np.column_stack([0.95 * np.cos(t), (ident.face_length + 0.06) * np.sin(t) ** 0.5])
        poly = np.vstack([edge, chin])
        level = 40.0 + 60.0 * u[1] if u[2] < 0.25 else 175.0 + 60.0 * u[1]
        fd.blend(img, on(poly, 0.12), level, 0.6)
        pleat = np.array([[-0.6, top + 0.3], [0.6, top + 0.3], [0.6, top + 0.36], [-0.6, top + 0.36]])
        fd.blend(img, on(pleat, 0.12), level * 0.85, 0.8)
    else:  # hand, fingers reaching across the mouth from one side
        side = -1.0 if u[0] < 0.5 else 1.0
        r = 0.25 + 0.6 * frac
        palm_c = np.array([side * (0.45 + 0.25 * u[1]), my + 0.3 + 0.15 * u[2]])
        reach = np.array([-side, -0.35 - 0.3 * u[3]])
        reach /= np.hypot(*reach)
        across = np.array([-reach[1], reach[0]])
        skin = ident.skin_level * 0.95
        palm = fg.ellipse(*palm_c, 0.75 * r, 0.85 * r, 20)
        fd.blend(img, on.at(palm + np.array([0.0, 0.05]), 1.2), skin * 0.6, 2.0, alpha=0.6)
        fd.blend(img, on.at(palm, 1.25), skin, 0.8)
        for k in range(4):
            base = palm_c + reach * 0.4 * r + across * (k - 1.5) * 0.36 * r
            tip = base + reach * (1.0 + 0.2 * (k in (1, 2))) * r
            width = 0.17 * r
            fd.blend(img, on.at(fg.capsule(base, tip, width * 1.15), 1.25), skin * 0.7, 0.6)
            fd.blend(img, on.at(fg.capsule(base, tip, width), 1.3), skin * (1.0 + 0.04 * (k % 2)), 0.5)
