"""One utterance before capture: syllable timeline, F0 contour and articulation (source to dry speech).

Internal to :func:`simulators.corpus.speech.synthesize`; split out to keep files short. Every
function takes its randomness from the generator passed in, in a fixed order of draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
from scipy import signal

from simulators.corpus.speech_dsp import bandpass_sos, formant_sos, ramp_window
from simulators.corpus.speech_prosody import EmotionProsody, ProsodyTable

if TYPE_CHECKING:
    from simulators.corpus.speech import VoiceIdentity

_GRID_HZ: Final[int] = 200  # the F0 contour is built on a 5-ms grid, then interpolated


@dataclass(frozen=True)
class Plan:
    """Timeline of one utterance, in samples.

    Attributes:
        n: total length, silences included.
        start, vowel, end: per syllable, where its onset consonant starts, its vowel starts and it ends.
        stressed: per syllable, whether it carries a pitch accent.
        consonants, vowels: per syllable, the onset and vowel names of the prosody table.
    """

    n: int
    start: np.ndarray
    vowel: np.ndarray
    end: np.ndarray
    stressed: np.ndarray
    consonants: tuple[str, ...]
    vowels: tuple[str, ...]


def plan_utterance(
    voice: VoiceIdentity,
    p: EmotionProsody,
    table: ProsodyTable,
    rng: np.random.Generator,
    sr: int,
    n_syllables: int | None,
) -> Plan:
    """Draw syllable count, stresses, durations, pauses, silences and segments.

    Syllables last ``1 / (syllable_rate * tempo)`` seconds on average (log-normal spread, stressed
    ones longer); each non-final syllable is followed by a pause with probability ``pause_prob``.
    """
    tm = table.timing
    n = (
        int(n_syllables)
        if n_syllables is not None
        else int(rng.integers(tm.syllables[0], tm.syllables[1] + 1))
    )
    stressed = np.zeros(n, dtype=bool)
    i = int(rng.integers(0, 2))
    while i < n:
        stressed[i] = True
        i += int(rng.integers(tm.stress_every[0], tm.stress_every[1] + 1))
    sigma = math.sqrt(math.log1p(tm.syllable_cv**2))
    dur = np.exp(sigma * rng.standard_normal(n) - 0.5 * sigma**2) / (voice.syllable_rate * p.tempo)
    dur *= np.where(stressed, tm.stressed_lengthening, 1.0)
    pauses = (rng.random(n) < p.pause_prob) * rng.uniform(*tm.pause_s, size=n) * p.pause_mult
    pauses[-1] = 0.0
    lead, trail = rng.uniform(*tm.lead_silence_s), rng.uniform(*tm.trail_silence_s)
    start = lead + np.concatenate(([0.0], np.cumsum(dur + pauses)[:-1]))
    end = start + dur
    cons_names, vowel_names = sorted(table.consonants), sorted(table.vowels)
    consonants = tuple(cons_names[j] for j in rng.integers(len(cons_names), size=n))
    vowels = tuple(vowel_names[j] for j in rng.integers(len(vowel_names), size=n))
    has_onset = np.array([table.consonants[c].kind != "none" for c in consonants])
    vowel = np.where(has_onset, start + (1.0 - p.vowel_frac) * dur, start)

    def to_samples(t: np.ndarray | float) -> np.ndarray:
        return np.round(np.asarray(t) * sr).astype(np.int64)

    return Plan(
        n=int(to_samples(end[-1] + trail)),
        start=to_samples(start),
        vowel=to_samples(vowel),
        end=to_samples(end),
        stressed=stressed,
        consonants=consonants,
        vowels=vowels,
    )


def _accent_shape(x: np.ndarray, slope: float) -> np.ndarray:
    """Pitch-accent shape over a vowel (x in [0, 1]): hat at slope 0, rise at +1, fall at -1."""
    hat = np.sin(np.pi * x)
    return (1.0 - abs(slope)) * hat + max(slope, 0.0) * x + max(-slope, 0.0) * (1.0 - x)


def f0_contour(
    plan: Plan,
    voice: VoiceIdentity,
    p: EmotionProsody,
    table: ProsodyTable,
    rng: np.random.Generator,
    sr: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample F0 (Hz) and creakiness (0–1), built on a 5-ms grid and interpolated."""
    c = table.contour
    hop = max(1, sr // _GRID_HZ)
    grid = np.arange(0, plan.n + hop, hop)
    first, last = plan.start[0], plan.end[-1]
    u = np.clip((grid - first) / max(last - first, 1), 0.0, 1.0)
    st = c.declination_st * (u - 0.5)
    creak = np.zeros(len(grid))
    offsets = rng.standard_normal(len(plan.start)) * c.syllable_sd_st * p.f0_var
    creaky = rng.random(len(plan.start)) < p.creak * np.where(plan.stressed, 0.0, 1.0 / 3.0)
    creaky[-1] = rng.random() < p.creak
    lo_idx = np.searchsorted(grid, plan.start)
    v_idx = np.searchsorted(grid, plan.vowel)
    hi_idx = np.searchsorted(grid, plan.end)
    accent = voice.range_st * p.stress
    for k in range(len(plan.start)):
        a, v, b = lo_idx[k], v_idx[k], hi_idx[k]
        x = (grid[v:b] - plan.vowel[k]) / max(plan.end[k] - plan.vowel[k], 1)
        st[a:b] += offsets[k]
        if plan.stressed[k]:
            st[v:b] += accent * _accent_shape(x, p.accent_slope)
        if k == len(plan.start) - 1:
            st[v:b] += p.final_st * x
        if creaky[k]:
            creak[v + (b - v) // 3 : b] = 1.0
    st *= p.f0_range
    drift = np.convolve(rng.standard_normal(len(grid)), np.hanning(41), mode="same")
    st += drift * (c.drift_sd_st / (float(np.std(drift)) or 1.0))
    smooth = np.hanning(9) / np.hanning(9).sum()
    st = np.convolve(st, smooth, mode="same")
    creak = np.convolve(creak, smooth, mode="same")
    samples = np.arange(plan.n)
    st_n = np.interp(samples, grid, st)
    creak_n = np.interp(samples, grid, creak)
    f0 = voice.f0_hz * p.f0_mean * 2.0 ** (st_n / 12.0) * (1.0 - (1.0 - c.creak_f0) * creak_n)
    return np.clip(f0, 40.0, 0.2 * sr), creak_n


def _filtered(sos: np.ndarray, excitation: np.ndarray, tail: int) -> np.ndarray:
    return signal.sosfilt(sos, np.concatenate((excitation, np.zeros(tail))))


def articulate(
    plan: Plan,
    source: np.ndarray,
    voice: VoiceIdentity,
    p: EmotionProsody,
    table: ProsodyTable,
    rng: np.random.Generator,
    sr: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Vowels through formant cascades and onset consonants, overlap-added; returns (dry, active mask)."""
    tm = table.timing
    ramp, tail = max(1, int(tm.ramp_s * sr)), int(tm.tail_s * sr)
    out = np.zeros(plan.n + tail + 2 * ramp)
    active = np.zeros(plan.n, dtype=bool)
    bw = np.asarray(table.bandwidths_hz, dtype=float)
    schwa = np.asarray(table.schwa, dtype=float)
    stress_gain = 10.0 ** (table.contour.stress_db * p.stress / 20.0)
    for k in range(len(plan.start)):
        s, v, e = int(plan.start[k]), int(plan.vowel[k]), int(plan.end[k])
        active[s:e] = True
        art = p.articulation * (1.0 if plan.stressed[k] else table.unstressed_articulation)
        formants = (
            schwa + art * (np.asarray(table.vowels[plan.vowels[k]]) - schwa)
        ) * voice.formant_scale
        lo = max(v - ramp, 0)
        exc = source[lo : e + ramp] * ramp_window(e + ramp - lo, 2 * ramp)
        y = _filtered(formant_sos(formants, bw, sr), exc, tail)
        if plan.stressed[k]:
            y *= stress_gain
        out[lo : lo + len(y)] += y
        vowel_rms = float(np.sqrt(np.mean(y[: e - lo] ** 2)))
        _add_onset(
            out, plan.consonants[k], s, v, vowel_rms, source, voice, table, rng, sr, ramp, tail
        )
    return out[: plan.n], active


def _add_onset(
    out: np.ndarray,
    name: str,
    s: int,
    v: int,
    vowel_rms: float,
    source: np.ndarray,
    voice: VoiceIdentity,
    table: ProsodyTable,
    rng: np.random.Generator,
    sr: int,
    ramp: int,
    tail: int,
) -> None:
    """Add the onset consonant of a syllable spanning samples [s, v) at its level re the vowel."""
    cons = table.consonants[name]
    if cons.kind == "none" or v - s < 4:
        return
    if cons.kind == "voiced":
        lo = max(s - ramp, 0)
        exc = source[lo : v + ramp] * ramp_window(v + ramp - lo, 2 * ramp)
        formants = np.asarray(cons.formants_hz, dtype=float) * voice.formant_scale
        bw = np.asarray(table.bandwidths_hz, dtype=float)[: len(formants)]
        y = _filtered(formant_sos(formants, bw, sr), exc, tail)
    else:
        lo = s
        if cons.kind == "plosive":  # closure (silence), then a decaying burst
            lo = s + int(0.6 * (v - s))
            t = np.arange(v - lo) / sr
            env = np.exp(-t / 0.008)
        else:
            env = ramp_window(v - lo, ramp)
        y = _filtered(bandpass_sos(*cons.band_hz, sr), rng.standard_normal(v - lo) * env, tail // 2)
    y_rms = float(np.sqrt(np.mean(y[: v - lo] ** 2))) or 1.0
    out[lo : lo + len(y)] += y * (vowel_rms * 10.0 ** (cons.level_db / 20.0) / y_rms)
