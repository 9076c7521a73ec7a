"""Source–filter speech synthesizer of the generated corpus: emotional utterances at 16 kHz mono.

An utterance is a string of nonsense syllables (onset consonant + vowel) spoken by a
:class:`VoiceIdentity` with the prosody of an emotion at an intensity, then captured under
:class:`SpeechConditions` (noise, room, telephone band, level, clipping).

Source
    A Rosenberg glottal pulse train driven by an F0 contour (declination, accents on stressed
    syllables that rise, fall or peak per emotion, a final rise or fall, random per-syllable
    offsets and slow drift), with per-period jitter and shimmer, creaky stretches (low, alternating
    pulses) and pitch-synchronous aspiration noise; voice quality via the open quotient
    (breathiness) and a high-shelf spectral tilt (tense/bright vs soft/dull).
Filter
    A cascade of formant resonators per vowel (F1–F4, scaled by the speaker's formant scale and
    stretched or shrunk around the schwa by the emotion's articulation), applied with
    :func:`scipy.signal.sosfilt` per segment and overlap-added; onsets are band-passed fricative
    noise, plosive closures with bursts, or voiced sonorants. Syllable durations follow the
    speaker's habitual rate times the emotion's tempo, with pauses between syllables.
Level
    Active speech is set to a fixed reference level plus the emotion's effort and the speaker's
    habitual level (never normalized away), so anger is louder and sadness softer in the files.

Every number lives in ``data/prosody.yaml`` with its status (P/S/D; simulator-facts §4): emofilt's
multipliers for joy, hot anger, fear and sadness, Murray & Arnott's directions for disgust and
Juslin & Laukka's spectral tilt. Emotion values are interpolated from neutral (intensity 0) to the
table row (intensity 1).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> voice = VoiceIdentity.sample(rng, sex="female")
    >>> wave = synthesize(voice, "anger", 0.8, SpeechConditions.clean(), rng)
    >>> wave.dtype, bool(1.0 <= len(wave) / 16000 <= 2.5), bool(np.abs(wave).max() <= 1.0)
    (dtype('float32'), True, True)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from scipy import signal

from mer_gym.config import ConfigError, check_interval, check_range
from mer_gym.labels import validate_emotion
from simulators.corpus.speech_dsp import (
    NOISE_TYPES,
    add_noise,
    glottal_source,
    phone_sos,
    room_impulse_response,
    tilt,
)
from simulators.corpus.speech_prosody import ProsodyTable, load_prosody
from simulators.corpus.speech_utterance import articulate, f0_contour, plan_utterance

__all__ = [
    "NOISE_TYPES",
    "VOICE_SEXES",
    "SpeechConditionSpec",
    "SpeechConditions",
    "VoiceIdentity",
    "load_prosody",
    "synthesize",
]

VOICE_SEXES: Final[tuple[str, ...]] = ("female", "male")


@dataclass(frozen=True)
class VoiceIdentity:
    """The habitual voice of one speaker (draw one with :meth:`sample`).

    Attributes:
        sex: ``"female"`` or ``"male"``.
        f0_hz: base (neutral, mid-utterance) F0 in Hz; about 100–130 male, 180–230 female (D).
        formant_scale: vocal-tract scaling of every formant (1 = the male vowel table; shorter
            tracts, higher formants > 1).
        syllable_rate: habitual neutral speaking rate, syllables per second.
        breathiness: 0 (pressed) … 1 (very breathy): open quotient and aspiration noise.
        jitter_pct: baseline local jitter in percent.
        shimmer_pct: baseline local shimmer in percent.
        range_st: height of a neutral pitch accent, semitones.
        level_db: habitual loudness relative to the reference level.
        tilt_db: individual brightness (high-shelf gain of the source), dB.
    """

    sex: str
    f0_hz: float
    formant_scale: float = 1.0
    syllable_rate: float = 5.0
    breathiness: float = 0.2
    jitter_pct: float = 0.5
    shimmer_pct: float = 2.5
    range_st: float = 3.0
    level_db: float = 0.0
    tilt_db: float = 0.0

    def __post_init__(self) -> None:
        if self.sex not in VOICE_SEXES:
            raise ConfigError(f"voice sex = {self.sex!r}: expected one of {', '.join(VOICE_SEXES)}")
        check_range("voice f0_hz", self.f0_hz, 50.0, 400.0)
        check_range("voice formant_scale", self.formant_scale, 0.7, 1.5)
        check_range("voice syllable_rate", self.syllable_rate, 1.0, 10.0)
        check_range("voice breathiness", self.breathiness, 0.0, 1.0)
        check_range("voice jitter_pct", self.jitter_pct, 0.0, 5.0)
        check_range("voice shimmer_pct", self.shimmer_pct, 0.0, 20.0)
        check_range("voice range_st", self.range_st, 0.0, 12.0)
        check_range("voice level_db", self.level_db, -20.0, 20.0)
        check_range("voice tilt_db", self.tilt_db, -12.0, 12.0)

    @classmethod
    def sample(
        cls,
        rng: np.random.Generator,
        *,
        sex: str | None = None,
        prosody: ProsodyTable | None = None,
    ) -> VoiceIdentity:
        """Draw a voice uniformly from the ranges of ``voices.<sex>`` in the prosody table.

        Args:
            rng: the generator to draw from.
            sex: ``"female"``, ``"male"`` or ``None`` (drawn with equal probability).
            prosody: table to read the ranges from; ``None`` uses ``data/prosody.yaml``.
        """
        table = prosody or load_prosody()
        if sex is None:
            sex = VOICE_SEXES[int(rng.integers(len(VOICE_SEXES)))]
        if sex not in table.voices:
            raise ConfigError(
                f"sex = {sex!r}: the prosody table has voices for {sorted(table.voices)}"
            )
        ranges = table.voices[sex]
        names = [f.name for f in dataclasses.fields(ranges)]
        draws = rng.uniform(size=len(names))
        values = {
            name: float(lo + u * (hi - lo))
            for name, u, (lo, hi) in zip(
                names, draws, (getattr(ranges, n) for n in names), strict=True
            )
        }
        return cls(sex=sex, **values)


@dataclass(frozen=True)
class SpeechConditions:
    """How one utterance was captured; flat scalars, so ``dataclasses.asdict`` gives manifest columns.

    Attributes:
        noise_type: additive-noise colour, one of :data:`NOISE_TYPES` (``none``: clean).
        snr_db: signal-to-noise ratio against the active speech power; ``inf`` when there is no noise.
        rt60_s: reverberation time of the room in seconds (0: no room).
        drr_db: direct-to-reverberant energy ratio in dB; ``inf`` when there is no room
            (required finite when ``rt60_s`` > 0, ignored otherwise).
        phone_band: band-limit to the 300–3400 Hz telephone band.
        gain_db: recording level change in dB.
        clip_level: hard clipping at this fraction of the peak (1: no clipping).
    """

    noise_type: str = "none"
    snr_db: float = math.inf
    rt60_s: float = 0.0
    drr_db: float = math.inf
    phone_band: bool = False
    gain_db: float = 0.0
    clip_level: float = 1.0

    def __post_init__(self) -> None:
        if self.noise_type not in NOISE_TYPES:
            raise ConfigError(
                f"noise_type = {self.noise_type!r}: expected one of {', '.join(NOISE_TYPES)}"
            )
        if self.noise_type == "none":
            if self.snr_db != math.inf:
                raise ConfigError(
                    f"snr_db = {self.snr_db!r} with noise_type 'none': use snr_db = inf, or name a noise type"
                )
        else:
            check_range("snr_db", self.snr_db, -20.0, 80.0)
        check_range("rt60_s", self.rt60_s, 0.0, 3.0)
        if self.drr_db != math.inf or self.rt60_s > 0.0:
            if self.drr_db == math.inf:
                raise ConfigError(
                    f"drr_db = inf with rt60_s = {self.rt60_s}: give a finite direct-to-reverberant "
                    "ratio in [-20, 40] dB, or rt60_s = 0 for no room"
                )
            check_range("drr_db", self.drr_db, -20.0, 40.0)
        if not isinstance(self.phone_band, bool | np.bool_):
            raise ConfigError(f"phone_band = {self.phone_band!r}: expected true or false")
        check_range("gain_db", self.gain_db, -40.0, 40.0)
        check_range("clip_level", self.clip_level, 0.05, 1.0)

    @classmethod
    def clean(cls) -> SpeechConditions:
        """No noise, no room, full band, unchanged level, no clipping."""
        return cls()


@dataclass(frozen=True)
class SpeechConditionSpec:
    """Distribution of capture conditions (all D: design defaults, calibrate with the frozen models).

    Each event happens independently with its probability; each range is uniform.

    Attributes:
        p_noise: probability of additive noise.
        noise_types: noise colours to choose from (not ``none``).
        noise_weights: relative weights of ``noise_types``.
        snr_db: SNR range when there is noise. Classical speech-emotion models trained on clean
            audio lose much accuracy already at 20 dB (simulator-facts §2, S).
        p_reverb: probability of a reverberant room.
        rt60_s: reverberation-time range.
        drr_db: direct-to-reverberant ratio range.
        p_phone: probability of telephone band-limiting.
        gain_db: recording-level range.
        p_clip: probability of clipping.
        clip_level: clipping-level range (fraction of the peak).
    """

    p_noise: float = 0.85
    noise_types: tuple[str, ...] = ("white", "pink", "brown", "babble")
    noise_weights: tuple[float, ...] = (0.2, 0.3, 0.2, 0.3)
    snr_db: tuple[float, float] = (5.0, 40.0)
    p_reverb: float = 0.5
    rt60_s: tuple[float, float] = (0.2, 0.9)
    drr_db: tuple[float, float] = (0.0, 12.0)
    p_phone: float = 0.1
    gain_db: tuple[float, float] = (-6.0, 6.0)
    p_clip: float = 0.03
    clip_level: tuple[float, float] = (0.3, 0.8)

    def __post_init__(self) -> None:
        for name in ("p_noise", "p_reverb", "p_phone", "p_clip"):
            check_range(name, getattr(self, name), 0.0, 1.0)
        bad = [t for t in self.noise_types if t not in NOISE_TYPES or t == "none"]
        if not self.noise_types or bad:
            raise ConfigError(
                f"noise_types = {list(self.noise_types)}: expected a non-empty list of {', '.join(NOISE_TYPES[1:])}"
            )
        if (
            len(self.noise_weights) != len(self.noise_types)
            or min(self.noise_weights) < 0
            or sum(self.noise_weights) <= 0
        ):
            raise ConfigError(
                f"noise_weights = {list(self.noise_weights)}: expected {len(self.noise_types)} weights >= 0 "
                "with a positive sum, one per noise_types entry"
            )
        check_interval("snr_db", self.snr_db, -20.0, 80.0)
        check_interval("rt60_s", self.rt60_s, 0.0, 3.0)
        check_interval("drr_db", self.drr_db, -20.0, 40.0)
        check_interval("gain_db", self.gain_db, -40.0, 40.0)
        check_interval("clip_level", self.clip_level, 0.05, 1.0)

    def sample(self, rng: np.random.Generator) -> SpeechConditions:
        """Draw one utterance's conditions (always the same number of draws from ``rng``)."""
        events = rng.random(4)
        weights = np.asarray(self.noise_weights, dtype=float)
        kind = self.noise_types[int(rng.choice(len(weights), p=weights / weights.sum()))]
        snr, rt60, drr, gain, clip = (
            float(rng.uniform(*r))
            for r in (self.snr_db, self.rt60_s, self.drr_db, self.gain_db, self.clip_level)
        )
        noisy = bool(events[0] < self.p_noise)
        reverb = bool(events[1] < self.p_reverb) and rt60 > 0.0
        return SpeechConditions(
            noise_type=kind if noisy else "none",
            snr_db=snr if noisy else math.inf,
            rt60_s=rt60 if reverb else 0.0,
            drr_db=drr if reverb else math.inf,
            phone_band=bool(events[2] < self.p_phone),
            gain_db=gain,
            clip_level=clip if events[3] < self.p_clip else 1.0,
        )


def synthesize(
    voice: VoiceIdentity,
    emotion: str,
    intensity: float,
    conditions: SpeechConditions,
    rng: np.random.Generator,
    *,
    sample_rate: int = 16000,
    n_syllables: int | None = None,
    prosody: ProsodyTable | None = None,
) -> np.ndarray:
    """Synthesize one utterance of ``voice`` expressing ``emotion`` at ``intensity``.

    Args:
        voice: the speaker.
        emotion: a canonical emotion name.
        intensity: 0 (neutral prosody) … 1 (the table's full multipliers).
        conditions: capture conditions (noise, room, phone band, level, clipping).
        rng: the only source of randomness; the same generator state gives the same samples.
        sample_rate: Hz, 8000–48000.
        n_syllables: number of syllables; ``None`` draws from ``timing.syllables`` (5–8).
        prosody: prosody table; ``None`` uses the shipped ``data/prosody.yaml``.

    Returns:
        float32 mono waveform, peak <= 1; about 1–2.5 s long by default.

    Raises:
        ValueError: a bad emotion, intensity, sample rate or syllable count (the message names it).
        TypeError: ``voice``, ``conditions`` or ``rng`` is of the wrong type.
    """
    _check_args(voice, emotion, intensity, conditions, rng, sample_rate, n_syllables)
    table = prosody or load_prosody()
    p = table.at(emotion, float(intensity))
    plan = plan_utterance(voice, p, table, rng, sample_rate, n_syllables)
    f0, creak = f0_contour(plan, voice, p, table, rng, sample_rate)
    breath = float(np.clip(voice.breathiness + p.breathiness, 0.0, 1.0))
    src = table.source
    source = glottal_source(
        f0,
        creak,
        rng,
        sample_rate,
        open_quotient=src.open_quotient + src.open_quotient_breathy * breath,
        jitter_pct=voice.jitter_pct + p.jitter * table.jitter_pct_per_unit,
        shimmer_pct=voice.shimmer_pct * p.shimmer,
        creak_alternation=table.contour.creak_alternation,
        aspiration=src.aspiration * breath,
    )
    source = tilt(source, voice.tilt_db + p.tilt_db, src.shelf_hz, sample_rate)
    dry, active = articulate(plan, source, voice, p, table, rng, sample_rate)
    target_db = table.level.reference_rms_dbfs + p.effort_db + voice.level_db
    rms = float(np.sqrt(np.mean(dry[active] ** 2))) or 1.0
    return _capture(dry * (10.0 ** (target_db / 20.0) / rms), conditions, rng, sample_rate)


def _check_args(
    voice: object,
    emotion: str,
    intensity: float,
    conditions: object,
    rng: object,
    sample_rate: int,
    n_syllables: int | None,
) -> None:
    if not isinstance(voice, VoiceIdentity):
        raise TypeError(f"voice: expected a VoiceIdentity, got {type(voice).__name__}")
    if not isinstance(conditions, SpeechConditions):
        raise TypeError(
            f"conditions: expected SpeechConditions (e.g. SpeechConditions.clean()), got {type(conditions).__name__}"
        )
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng: expected numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}"
        )
    validate_emotion(emotion)
    check_range("intensity", intensity, 0.0, 1.0)
    if not isinstance(sample_rate, int | np.integer) or not 8000 <= sample_rate <= 48000:
        raise ValueError(
            f"sample_rate = {sample_rate!r}: expected an integer number of Hz in [8000, 48000]"
        )
    if n_syllables is not None and (
        not isinstance(n_syllables, int | np.integer) or not 1 <= n_syllables <= 40
    ):
        raise ValueError(f"n_syllables = {n_syllables!r}: expected None or an integer in [1, 40]")


def _capture(
    x: np.ndarray, cond: SpeechConditions, rng: np.random.Generator, sr: int
) -> np.ndarray:
    """Room, noise, telephone band, gain and clipping, then float32 with peak <= 1."""
    if cond.rt60_s > 0.0:
        h = room_impulse_response(cond.rt60_s, cond.drr_db, rng, sr)
        x = signal.fftconvolve(x, h)[: len(x)]
    if cond.noise_type != "none":
        x = add_noise(x, cond.noise_type, cond.snr_db, rng, sr)
    if cond.phone_band:
        x = signal.sosfilt(phone_sos(sr), x)
    x = x * 10.0 ** (cond.gain_db / 20.0)
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if cond.clip_level < 1.0 and peak > 0.0:
        x = np.clip(x, -cond.clip_level * peak, cond.clip_level * peak)
        peak *= cond.clip_level
    if peak > 1.0:  # clip protection: scale the rare overload down instead of wrapping or clipping
        x = x / peak
    if not np.all(np.isfinite(x)):
        raise FloatingPointError(
            "synthesize produced non-finite samples: report this with the inputs"
        )
    return np.clip(x, -1.0, 1.0).astype(np.float32)
