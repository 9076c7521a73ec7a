"""Parametric FACS face renderer of the generated corpus: grayscale camera frames of expressions.

A frame shows one :class:`FaceIdentity` (face geometry, skin, brows, lips, hair) making the facial
expression of an emotion at an intensity, captured under :class:`FaceConditions` (light, blur, sensor
noise, occlusion, head pose, where the face sits in the frame, background).

Expression
    Driven by FACS action units: :func:`au_activations` draws the EMFACS prototype of the emotion
    (simulator-facts §3, S) with its variants (anger 23 or 24, disgust 9+15+16 or 10+17), optional
    AUs, per-sample jitter and small noise AUs, all scaled by the intensity; each AU moves a few
    expression parameters (brows, lids, cheeks, nose, lips, jaw) by the deltas in ``data/facs.yaml``.
    Intensity 0 is exactly the identity's neutral face.
Shading
    Smooth shading, not flat fills: eye sockets, cheek highlights, nose bridge and side shadows,
    falloff toward the face edge, wrinkles and folds. It is what OpenCV's Haar cascade keys on, so
    clean frames are detected (see :func:`haar_detection_rate`).
Capture
    Head pose is an orthographic rotation of an ellipsoidal head (features shift with their depth),
    then roll, scale and translation in the frame; then lighting level and gradient, occluders
    (hand, mask, glasses), lens blur and Gaussian sensor noise. All condition ranges are design
    defaults (D) of :class:`FaceConditionSpec`.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> face = FaceIdentity.sample(rng, sex="female")
    >>> frame = render_face(face, "happiness", 0.8, FaceConditions.clean(), rng)
    >>> frame.shape, frame.dtype
    ((160, 160), dtype('uint8'))
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import numpy as np

from mer_gym.config import ConfigError, check_interval, check_range
from mer_gym.labels import validate_emotion
from mer_gym.preprocessing.haar import DEFAULT_HAAR, HaarParams, detect_faces
from simulators.corpus.face_facs import (
    HAIR_STYLES,
    FacsTable,
    au_activations,
    expression_params,
    load_facs,
)
from simulators.corpus.face_render import compose

__all__ = [
    "FACE_SEXES",
    "HAIR_STYLES",
    "OCCLUSIONS",
    "FaceConditionSpec",
    "FaceConditions",
    "FaceIdentity",
    "au_activations",
    "haar_detection_rate",
    "load_facs",
    "render_face",
]

FACE_SEXES: Final[tuple[str, ...]] = ("female", "male")
OCCLUSIONS: Final[tuple[str, ...]] = ("none", "hand", "mask", "glasses")

# Allowed bounds of each identity field (wide: they catch typos, not taste). Face units: half-widths.
_IDENTITY_BOUNDS: Final[dict[str, tuple[float, float]]] = {
    "skin_level": (20.0, 240.0),
    "face_length": (1.0, 1.7),
    "cranium": (1.0, 1.6),
    "jaw_width": (0.4, 1.0),
    "eye_y": (-0.3, 0.05),
    "eye_spacing": (0.3, 0.6),
    "eye_width": (0.1, 0.28),
    "eye_opening": (0.03, 0.12),
    "iris_level": (0.05, 0.9),
    "brow_gap": (0.15, 0.45),
    "brow_thickness": (0.02, 0.14),
    "brow_level": (0.1, 1.0),
    "brow_arch": (-0.02, 0.15),
    "nose_length": (0.3, 0.7),
    "nose_width": (0.1, 0.3),
    "mouth_gap": (0.15, 0.4),
    "mouth_width": (0.2, 0.5),
    "lip_thickness": (0.03, 0.14),
    "lip_level": (0.4, 1.0),
    "socket_depth": (0.0, 0.6),
    "fold_depth": (0.0, 0.6),
    "hair_level": (0.0, 255.0),
    "hairline": (-1.2, -0.5),
    "hair_volume": (1.0, 1.3),
    "hair_part": (-1.0, 1.0),
    "clothing_level": (0.0, 255.0),
}


@dataclass(frozen=True)
class FaceIdentity:
    """The face of one person (draw one with :meth:`sample`; ranges in ``data/facs.yaml``, D).

    Lengths are in face units (1 = half the face width at the cheekbones), measured from the
    midline at cheekbone level, y down. Levels are 0-255 gray albedo; ``*_level`` fractions
    multiply ``skin_level``.

    Attributes:
        sex: ``"female"`` or ``"male"``.
        skin_level: skin gray level. face_length: chin below the origin. cranium: top of the head
            above it. jaw_width: half-width at the jaw angle (small: oval, large: square).
        eye_y: eye line. eye_spacing: eye centre from the midline. eye_width, eye_opening:
            half-width and half-height of the eye opening. iris_level: iris darkness.
        brow_gap: brow above the eye centre. brow_thickness, brow_level, brow_arch: brow shape.
        nose_length: eye line to nose base. nose_width: half-width of the nostril wings.
        mouth_gap: nose base to mouth line. mouth_width: half-width. lip_thickness, lip_level.
        socket_depth: eye-socket shading. fold_depth: resting nasolabial folds (age).
        hair_style: one of :data:`HAIR_STYLES`. hair_level: hair gray level. hairline: its height
            on the midline. hair_volume: how far the hair stands off the head (1: not at all).
            hair_part: tilt of the hairline (-1 … 1, a side parting).
        clothing_level: gray level of the shoulders.
    """

    sex: str
    skin_level: float = 160.0
    face_length: float = 1.28
    cranium: float = 1.28
    jaw_width: float = 0.7
    eye_y: float = -0.12
    eye_spacing: float = 0.44
    eye_width: float = 0.19
    eye_opening: float = 0.07
    iris_level: float = 0.3
    brow_gap: float = 0.29
    brow_thickness: float = 0.06
    brow_level: float = 0.5
    brow_arch: float = 0.05
    nose_length: float = 0.5
    nose_width: float = 0.19
    mouth_gap: float = 0.26
    mouth_width: float = 0.35
    lip_thickness: float = 0.075
    lip_level: float = 0.75
    socket_depth: float = 0.28
    fold_depth: float = 0.15
    hair_style: str = "short"
    hair_level: float = 50.0
    hairline: float = -0.88
    hair_volume: float = 1.07
    hair_part: float = 0.0
    clothing_level: float = 90.0

    def __post_init__(self) -> None:
        if self.sex not in FACE_SEXES:
            raise ConfigError(f"face sex = {self.sex!r}: expected one of {', '.join(FACE_SEXES)}")
        if self.hair_style not in HAIR_STYLES:
            raise ConfigError(f"face hair_style = {self.hair_style!r}: expected one of {', '.join(HAIR_STYLES)}")
        for name, (low, high) in _IDENTITY_BOUNDS.items():
            check_range(f"face {name}", getattr(self, name), low, high)

    @classmethod
    def sample(
        cls, rng: np.random.Generator, *, sex: str | None = None, facs: FacsTable | None = None
    ) -> FaceIdentity:
        """Draw a face uniformly from the ranges of ``identity.<sex>`` in the FACS table.

        Args:
            rng: the generator to draw from (always the same number of draws).
            sex: ``"female"``, ``"male"`` or ``None`` (drawn with equal probability).
            facs: table to read the ranges from; ``None`` uses ``data/facs.yaml``.
        """
        table = facs or load_facs()
        u_sex = rng.random()
        if sex is None:
            sex = FACE_SEXES[int(u_sex * len(FACE_SEXES))]
        if sex not in FACE_SEXES:
            raise ConfigError(f"sex = {sex!r}: expected one of {', '.join(FACE_SEXES)} or None")
        ranges = table.identity[sex]
        names = list(_IDENTITY_BOUNDS)
        missing = [n for n in [*names, "hair_styles"] if n not in ranges]
        if missing:
            raise ConfigError(f"FACS table identity.{sex}: missing range(s) {missing}")
        draws = rng.random(len(names) + 1)
        values = {n: float(ranges[n][0] + u * (ranges[n][1] - ranges[n][0])) for n, u in zip(names, draws, strict=False)}
        styles = ranges["hair_styles"]
        weights = np.array([styles[h] for h in HAIR_STYLES], dtype=float)
        k = int(np.searchsorted(np.cumsum(weights / weights.sum()), draws[-1], side="right"))
        return cls(sex=sex, hair_style=HAIR_STYLES[min(k, len(HAIR_STYLES) - 1)], **values)


@dataclass(frozen=True)
class FaceConditions:
    """How one frame was captured; flat scalars, so ``dataclasses.asdict`` gives manifest columns.

    Attributes:
        illumination: overall light level (1: well lit; 0.3: dim).
        light_angle_deg: direction in which the light gradient brightens the frame (image
            coordinates: 0 right, 90 down, 270 up).
        light_gradient: relative brightness change from the frame centre to its edge along
            ``light_angle_deg`` (0: even light).
        blur_sigma: lens/motion blur, Gaussian sigma in pixels of the rendered frame.
        noise_sigma: Gaussian sensor noise, gray levels.
        occlusion: one of :data:`OCCLUSIONS`.
        occlusion_frac: size of the occluder as a fraction of the head height (0 with ``none``).
        yaw_deg, pitch_deg, roll_deg: head pose (0, 0, 0: frontal, upright).
        offset_x, offset_y: face centre from the frame centre, fractions of width and height.
        face_scale: face width (cheekbone to cheekbone) as a fraction of the frame's shorter side.
        background_level: background gray level.
        background_clutter: 0 (plain) … 1 (strongly cluttered) background.
    """

    illumination: float = 1.0
    light_angle_deg: float = 270.0
    light_gradient: float = 0.0
    blur_sigma: float = 0.0
    noise_sigma: float = 0.0
    occlusion: str = "none"
    occlusion_frac: float = 0.0
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    roll_deg: float = 0.0
    offset_x: float = 0.0
    offset_y: float = 0.0
    face_scale: float = 0.5
    background_level: float = 110.0
    background_clutter: float = 0.0

    def __post_init__(self) -> None:
        check_range("illumination", self.illumination, 0.05, 2.0)
        check_range("light_angle_deg", self.light_angle_deg, 0.0, 360.0)
        check_range("light_gradient", self.light_gradient, 0.0, 0.9)
        check_range("blur_sigma", self.blur_sigma, 0.0, 10.0)
        check_range("noise_sigma", self.noise_sigma, 0.0, 60.0)
        if self.occlusion not in OCCLUSIONS:
            raise ConfigError(f"occlusion = {self.occlusion!r}: expected one of {', '.join(OCCLUSIONS)}")
        if self.occlusion == "none":
            if self.occlusion_frac != 0.0:
                raise ConfigError(
                    f"occlusion_frac = {self.occlusion_frac!r} with occlusion 'none': use 0, or name an occluder"
                )
        else:
            check_range("occlusion_frac", self.occlusion_frac, 0.05, 0.8)
        check_range("yaw_deg", self.yaw_deg, -60.0, 60.0)
        check_range("pitch_deg", self.pitch_deg, -45.0, 45.0)
        check_range("roll_deg", self.roll_deg, -90.0, 90.0)
        check_range("offset_x", self.offset_x, -0.5, 0.5)
        check_range("offset_y", self.offset_y, -0.5, 0.5)
        check_range("face_scale", self.face_scale, 0.1, 1.2)
        check_range("background_level", self.background_level, 0.0, 255.0)
        check_range("background_clutter", self.background_clutter, 0.0, 1.0)

    @classmethod
    def clean(cls) -> FaceConditions:
        """Good even light, no blur, noise or occlusion, frontal, centred, plain background."""
        return cls()


@dataclass(frozen=True)
class FaceConditionSpec:
    """Distribution of capture conditions (all D: design defaults, calibrate with the frozen models).

    Each event happens independently with its probability; each range is uniform; the direction of
    the light gradient is uniform over the circle. Faces lose a few
    points of accuracy to occlusion and "sharply" more in low light (simulator-facts §2, S).

    Attributes:
        illumination: light-level range.
        p_gradient: probability of uneven light; light_gradient: its strength range.
        p_blur: probability of blur; blur_sigma: its sigma range (pixels).
        noise_sigma: sensor-noise range (gray levels).
        p_occlusion: probability of an occluder; occlusion_kinds / occlusion_weights: which one;
            occlusion_frac: its size range.
        yaw_deg, pitch_deg, roll_deg: head-pose ranges.
        offset_x, offset_y: face-position ranges (fractions of the frame); face_scale: face-size range.
        background_level, background_clutter: background ranges.
    """

    illumination: tuple[float, float] = (0.4, 1.25)
    p_gradient: float = 0.6
    light_gradient: tuple[float, float] = (0.1, 0.6)
    p_blur: float = 0.35
    blur_sigma: tuple[float, float] = (0.5, 2.5)
    noise_sigma: tuple[float, float] = (0.0, 10.0)
    p_occlusion: float = 0.2
    occlusion_kinds: tuple[str, ...] = ("hand", "mask", "glasses")
    occlusion_weights: tuple[float, ...] = (0.45, 0.3, 0.25)
    occlusion_frac: tuple[float, float] = (0.15, 0.45)
    yaw_deg: tuple[float, float] = (-25.0, 25.0)
    pitch_deg: tuple[float, float] = (-15.0, 15.0)
    roll_deg: tuple[float, float] = (-12.0, 12.0)
    offset_x: tuple[float, float] = (-0.15, 0.15)
    offset_y: tuple[float, float] = (-0.1, 0.1)
    face_scale: tuple[float, float] = (0.38, 0.6)
    background_level: tuple[float, float] = (20.0, 220.0)
    background_clutter: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        for name in ("p_gradient", "p_blur", "p_occlusion"):
            check_range(name, getattr(self, name), 0.0, 1.0)
        bad = [k for k in self.occlusion_kinds if k not in OCCLUSIONS or k == "none"]
        if not self.occlusion_kinds or bad:
            raise ConfigError(
                f"occlusion_kinds = {list(self.occlusion_kinds)}: expected a non-empty list of {', '.join(OCCLUSIONS[1:])}"
            )
        w = self.occlusion_weights
        if len(w) != len(self.occlusion_kinds) or min(w) < 0 or sum(w) <= 0:
            raise ConfigError(
                f"occlusion_weights = {list(w)}: expected {len(self.occlusion_kinds)} weights >= 0 "
                "with a positive sum, one per occlusion_kinds entry"
            )
        for name, (low, high) in _SPEC_BOUNDS.items():
            check_interval(name, getattr(self, name), low, high)

    def sample(self, rng: np.random.Generator) -> FaceConditions:
        """Draw one frame's conditions (always the same number of draws from ``rng``)."""
        events = rng.random(4)
        values = {name: float(rng.uniform(*getattr(self, name))) for name in _SPEC_BOUNDS}
        weights = np.asarray(self.occlusion_weights, dtype=float)
        k = int(np.searchsorted(np.cumsum(weights / weights.sum()), events[3], side="right"))
        occluded = bool(events[2] < self.p_occlusion)
        values["light_angle_deg"] = float(rng.uniform(0.0, 360.0))
        if not events[0] < self.p_gradient:
            values["light_gradient"] = 0.0
        if not events[1] < self.p_blur:
            values["blur_sigma"] = 0.0
        values["occlusion_frac"] = values["occlusion_frac"] if occluded else 0.0
        kind = self.occlusion_kinds[min(k, len(self.occlusion_kinds) - 1)] if occluded else "none"
        return FaceConditions(occlusion=kind, **values)


_SPEC_BOUNDS: Final[dict[str, tuple[float, float]]] = {
    "illumination": (0.05, 2.0),
    "light_gradient": (0.0, 0.9),
    "blur_sigma": (0.0, 10.0),
    "noise_sigma": (0.0, 60.0),
    "occlusion_frac": (0.05, 0.8),
    "yaw_deg": (-60.0, 60.0),
    "pitch_deg": (-45.0, 45.0),
    "roll_deg": (-90.0, 90.0),
    "offset_x": (-0.5, 0.5),
    "offset_y": (-0.5, 0.5),
    "face_scale": (0.1, 1.2),
    "background_level": (0.0, 255.0),
    "background_clutter": (0.0, 1.0),
}
"""Ranges of :class:`FaceConditionSpec` and the bounds each must lie in (as in FaceConditions)."""


def render_face(
    identity: FaceIdentity,
    emotion: str,
    intensity: float,
    conditions: FaceConditions,
    rng: np.random.Generator,
    *,
    size: tuple[int, int] = (160, 160),
    facs: FacsTable | None = None,
) -> np.ndarray:
    """Render ``identity`` expressing ``emotion`` at ``intensity`` as a grayscale camera frame.

    Args:
        identity: the face.
        emotion: a canonical emotion name.
        intensity: 0 (the identity's neutral face) … 1 (the full prototype).
        conditions: capture conditions.
        rng: the only source of randomness (AU variation, gaze, background clutter, occluder
            placement, sensor noise); the same generator state gives the same bytes.
        size: (height, width) of the frame, each 32-1024 pixels.
        facs: FACS table; ``None`` uses ``data/facs.yaml``.

    Returns:
        uint8 array of shape ``size``.
    """
    validate_emotion(emotion)
    check_range("intensity", float(intensity), 0.0, 1.0)
    if not isinstance(identity, FaceIdentity):
        raise TypeError(f"identity must be a FaceIdentity, got {type(identity).__name__}")
    if not isinstance(conditions, FaceConditions):
        raise TypeError(f"conditions must be FaceConditions (see FaceConditionSpec.sample), got {type(conditions).__name__}")
    if len(size) != 2 or not all(32 <= int(v) <= 1024 for v in size):
        raise ValueError(f"size = {tuple(size)!r}: expected (height, width), each 32-1024 pixels")
    table = facs or load_facs()
    params = expression_params(au_activations(emotion, intensity, rng, facs=table), table)
    return compose(identity, params, conditions, rng, (int(size[0]), int(size[1])))


def haar_detection_rate(frames: Iterable[np.ndarray], params: HaarParams = DEFAULT_HAAR) -> float:
    """Fraction of ``frames`` (2-D uint8) in which the project's Haar detector finds a face."""
    hits = total = 0
    for frame in frames:
        total += 1
        hits += int(len(detect_faces(frame, params)) > 0)
    if total == 0:
        raise ValueError("haar_detection_rate needs at least one frame")
    return hits / total
