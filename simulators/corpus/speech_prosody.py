"""Tables of the speech synthesizer, loaded and validated from ``data/prosody.yaml``.

Every number that shapes a synthesized voice lives in that YAML file with its status (P: primary
source, S: secondary, D: design default); this module only turns the file into frozen, validated
dataclasses and interpolates an emotion's prosody by intensity. Use :func:`load_prosody` with a path
to try a changed table, and pass it to :func:`simulators.corpus.speech.synthesize` as ``prosody=``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Final

from mer_gym.config import ConfigError, check_interval, check_range, from_mapping, parse_yaml
from mer_gym.labels import EMOTIONS, NEUTRAL, validate_emotion

CONSONANT_KINDS: Final[tuple[str, ...]] = ("fricative", "plosive", "voiced", "none")

# Allowed bounds of each per-emotion field (wide: they catch typos, not taste).
_EMOTION_BOUNDS: Final[dict[str, tuple[float, float]]] = {
    "f0_mean": (0.3, 3.0),
    "f0_range": (0.0, 4.0),
    "f0_var": (0.0, 4.0),
    "tempo": (0.3, 3.0),
    "effort_db": (-20.0, 20.0),
    "jitter": (0.0, 20.0),
    "shimmer": (0.0, 5.0),
    "tilt_db": (-24.0, 24.0),
    "breathiness": (-1.0, 1.0),
    "creak": (0.0, 1.0),
    "stress": (0.0, 4.0),
    "accent_slope": (-1.0, 1.0),
    "final_st": (-12.0, 12.0),
    "pause_prob": (0.0, 1.0),
    "pause_mult": (0.0, 5.0),
    "articulation": (0.3, 2.0),
    "vowel_frac": (0.2, 0.95),
}


@dataclass(frozen=True)
class EmotionProsody:
    """Prosody of one emotion at full intensity (field meanings: header of ``prosody.yaml``)."""

    f0_mean: float
    f0_range: float
    f0_var: float
    tempo: float
    effort_db: float
    jitter: float
    shimmer: float
    tilt_db: float
    breathiness: float
    creak: float
    stress: float
    accent_slope: float
    final_st: float
    pause_prob: float
    pause_mult: float
    articulation: float
    vowel_frac: float

    def __post_init__(self) -> None:
        for name, (low, high) in _EMOTION_BOUNDS.items():
            check_range(name, getattr(self, name), low, high)

    def toward(self, other: EmotionProsody, weight: float) -> EmotionProsody:
        """Linear interpolation: ``self`` at ``weight`` 0, ``other`` at ``weight`` 1."""
        return EmotionProsody(
            **{
                f.name: getattr(self, f.name)
                + weight * (getattr(other, f.name) - getattr(self, f.name))
                for f in dataclasses.fields(self)
            }
        )


@dataclass(frozen=True)
class VoiceRanges:
    """Uniform sampling intervals of :class:`~simulators.corpus.speech.VoiceIdentity`, one sex."""

    f0_hz: tuple[float, float]
    formant_scale: tuple[float, float]
    syllable_rate: tuple[float, float]
    breathiness: tuple[float, float]
    jitter_pct: tuple[float, float]
    shimmer_pct: tuple[float, float]
    range_st: tuple[float, float]
    level_db: tuple[float, float]
    tilt_db: tuple[float, float]

    def __post_init__(self) -> None:
        check_interval("f0_hz", self.f0_hz, 50.0, 400.0)
        check_interval("formant_scale", self.formant_scale, 0.7, 1.5)
        check_interval("syllable_rate", self.syllable_rate, 1.0, 10.0)
        check_interval("breathiness", self.breathiness, 0.0, 1.0)
        check_interval("jitter_pct", self.jitter_pct, 0.0, 5.0)
        check_interval("shimmer_pct", self.shimmer_pct, 0.0, 20.0)
        check_interval("range_st", self.range_st, 0.0, 12.0)
        check_interval("level_db", self.level_db, -20.0, 20.0)
        check_interval("tilt_db", self.tilt_db, -12.0, 12.0)


@dataclass(frozen=True)
class Consonant:
    """An onset consonant: band-passed noise, a plosive burst or a voiced sonorant."""

    kind: str
    band_hz: tuple[float, float] = (0.0, 0.0)
    formants_hz: tuple[float, ...] = ()
    level_db: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in CONSONANT_KINDS:
            raise ConfigError(f"kind = {self.kind!r}: expected one of {', '.join(CONSONANT_KINDS)}")
        if self.kind in ("fricative", "plosive"):
            check_interval("band_hz", self.band_hz, 20.0, 20000.0)
        if self.kind == "voiced" and not self.formants_hz:
            raise ConfigError(
                "formants_hz is empty: a voiced consonant needs its formant frequencies"
            )
        check_range("level_db", self.level_db, -60.0, 20.0)


@dataclass(frozen=True)
class Timing:
    """Syllable count, silences, pauses and segment ramps (seconds unless stated)."""

    syllables: tuple[int, int]
    lead_silence_s: tuple[float, float]
    trail_silence_s: tuple[float, float]
    pause_s: tuple[float, float]
    syllable_cv: float
    stressed_lengthening: float
    stress_every: tuple[int, int]
    ramp_s: float
    tail_s: float

    def __post_init__(self) -> None:
        check_interval("syllables", self.syllables, 1, 40)
        check_interval("lead_silence_s", self.lead_silence_s, 0.02, 2.0)
        check_interval("trail_silence_s", self.trail_silence_s, 0.02, 2.0)
        check_interval("pause_s", self.pause_s, 0.0, 2.0)
        check_range("syllable_cv", self.syllable_cv, 0.0, 0.5)
        check_range("stressed_lengthening", self.stressed_lengthening, 0.5, 3.0)
        check_interval("stress_every", self.stress_every, 1, 10)
        check_range("ramp_s", self.ramp_s, 0.001, 0.02)
        check_range("tail_s", self.tail_s, 0.0, 0.1)


@dataclass(frozen=True)
class Contour:
    """F0-contour and loudness shape constants shared by all emotions."""

    declination_st: float
    syllable_sd_st: float
    drift_sd_st: float
    stress_db: float
    creak_f0: float
    creak_alternation: float

    def __post_init__(self) -> None:
        check_range("declination_st", self.declination_st, -12.0, 12.0)
        check_range("syllable_sd_st", self.syllable_sd_st, 0.0, 6.0)
        check_range("drift_sd_st", self.drift_sd_st, 0.0, 6.0)
        check_range("stress_db", self.stress_db, 0.0, 12.0)
        check_range("creak_f0", self.creak_f0, 0.2, 1.0)
        check_range("creak_alternation", self.creak_alternation, 0.0, 0.5)


@dataclass(frozen=True)
class Source:
    """Glottal-source constants: Rosenberg open quotient, aspiration, tilt-shelf corner."""

    open_quotient: float
    open_quotient_breathy: float
    aspiration: float
    shelf_hz: float

    def __post_init__(self) -> None:
        check_range("open_quotient", self.open_quotient, 0.2, 0.9)
        check_range("open_quotient_breathy", self.open_quotient_breathy, 0.0, 0.5)
        check_range("aspiration", self.aspiration, 0.0, 5.0)
        check_range("shelf_hz", self.shelf_hz, 100.0, 4000.0)


@dataclass(frozen=True)
class Level:
    """Output level before capture conditions."""

    reference_rms_dbfs: float

    def __post_init__(self) -> None:
        check_range("reference_rms_dbfs", self.reference_rms_dbfs, -60.0, -6.0)


@dataclass(frozen=True)
class ProsodyTable:
    """Everything in ``prosody.yaml``; build it with :func:`load_prosody`."""

    jitter_pct_per_unit: float
    emotions: Mapping[str, EmotionProsody]
    voices: Mapping[str, VoiceRanges]
    vowels: Mapping[str, tuple[float, ...]]
    schwa: tuple[float, ...]
    bandwidths_hz: tuple[float, ...]
    unstressed_articulation: float
    consonants: Mapping[str, Consonant]
    timing: Timing
    contour: Contour
    source: Source
    level: Level

    def __post_init__(self) -> None:
        check_range("jitter_pct_per_unit", self.jitter_pct_per_unit, 0.0, 1.0)
        missing = [e for e in EMOTIONS if e not in self.emotions]
        if missing:
            raise ConfigError(f"emotions: missing {missing}; every canonical emotion needs a row")
        for name in self.emotions:
            validate_emotion(name, what="emotions key")
        n = len(self.schwa)
        if not 1 <= n <= 6 or len(self.bandwidths_hz) != n:
            raise ConfigError(
                f"schwa/bandwidths_hz: expected 1-6 formants each, equal counts; got {n}, "
                f"{len(self.bandwidths_hz)}"
            )
        for name, formants in self.vowels.items():
            if len(formants) != n:
                raise ConfigError(
                    f"vowels.{name} = {list(formants)}: expected {n} formants like schwa"
                )
        if not self.vowels or not self.consonants:
            raise ConfigError("vowels and consonants must each list at least one entry")
        check_range("unstressed_articulation", self.unstressed_articulation, 0.0, 1.5)

    def at(self, emotion: str, intensity: float) -> EmotionProsody:
        """Prosody of ``emotion`` at ``intensity`` in [0, 1]: neutral at 0, the table row at 1."""
        validate_emotion(emotion)
        check_range("intensity", intensity, 0.0, 1.0)
        return self.emotions[NEUTRAL].toward(self.emotions[emotion], float(intensity))


def _table_from_mapping(data: Any, where: str) -> ProsodyTable:
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{where}: expected a mapping at the top level, got {type(data).__name__}"
        )
    data = dict(data)
    sections: dict[str, tuple[type, bool]] = {
        "emotions": (EmotionProsody, True),
        "voices": (VoiceRanges, True),
        "consonants": (Consonant, True),
        "timing": (Timing, False),
        "contour": (Contour, False),
        "source": (Source, False),
        "level": (Level, False),
    }
    for key, (cls, keyed) in sections.items():
        raw = data.get(key)
        if raw is None:
            raise ConfigError(f"{where}: section {key!r} is missing")
        if keyed:
            if not isinstance(raw, Mapping):
                raise ConfigError(f"{where}.{key}: expected a mapping of name -> {cls.__name__}")
            data[key] = {
                str(k): from_mapping(cls, v, where=f"{where}.{key}.{k}") for k, v in raw.items()
            }
        else:
            data[key] = from_mapping(cls, raw, where=f"{where}.{key}")
    vowels = data.get("vowels")
    if not isinstance(vowels, Mapping):
        raise ConfigError(f"{where}.vowels: expected a mapping of vowel -> [F1, F2, ...] in Hz")
    data["vowels"] = {str(k): tuple(float(f) for f in v) for k, v in vowels.items()}
    for key in ("schwa", "bandwidths_hz"):
        data[key] = tuple(float(f) for f in data.get(key) or ())
    return from_mapping(ProsodyTable, data, where=where)


def load_prosody(path: str | Path | None = None) -> ProsodyTable:
    """Load and validate a prosody table; ``None`` loads the shipped ``data/prosody.yaml``.

    Raises:
        ConfigError: the file is missing, not YAML, or a field is unknown or out of range (the
            message names the field).
    """
    if path is None:
        return _default_table()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"prosody table {path} does not exist: give a YAML file like data/prosody.yaml"
        )
    return _parse(path.read_text(), f"prosody table {path}")


@lru_cache(maxsize=1)
def _default_table() -> ProsodyTable:
    text = (resources.files("simulators.corpus") / "data" / "prosody.yaml").read_text()
    return _parse(text, "prosody table data/prosody.yaml")


def _parse(text: str, where: str) -> ProsodyTable:
    return _table_from_mapping(parse_yaml(text, where=where), where)
