"""Signal-processing pieces of the speech synthesizer: glottal source, resonators, noise, rooms.

All functions are vectorized (no per-sample Python loops) and take their randomness from a
``numpy.random.Generator`` passed in. Filter designs are cached per sample rate.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

import numpy as np
from scipy import fft as sfft
from scipy import signal

NOISE_TYPES: Final[tuple[str, ...]] = ("none", "white", "pink", "brown", "babble")
"""Additive-noise colours; ``none`` means a clean recording."""

PHONE_BAND_HZ: Final[tuple[float, float]] = (300.0, 3400.0)
"""Telephone pass band (ITU-T narrow band)."""

_ACTIVE_FRAME_S: Final[float] = 0.02
_ACTIVE_FLOOR_DB: Final[float] = -35.0


# --------------------------------------------------------------------------------------- source
def rosenberg_flow(frac: np.ndarray, open_quotient: float) -> np.ndarray:
    """Glottal flow of a Rosenberg pulse at phase ``frac`` in [0, 1) of each period.

    The glottis opens over 70 % of the open phase (raised cosine), closes over the remaining 30 %
    (quarter cosine, an abrupt closure) and stays shut for the rest of the period.
    """
    tp = 0.7 * open_quotient
    tn = 0.3 * open_quotient
    flow = np.zeros_like(frac)
    rising = frac < tp
    falling = (frac >= tp) & (frac < tp + tn)
    flow[rising] = 0.5 * (1.0 - np.cos(np.pi * frac[rising] / tp))
    flow[falling] = np.cos(0.5 * np.pi * (frac[falling] - tp) / tn)
    return flow


def glottal_source(
    f0: np.ndarray,
    creak: np.ndarray,
    rng: np.random.Generator,
    sample_rate: int,
    *,
    open_quotient: float,
    jitter_pct: float,
    shimmer_pct: float,
    creak_alternation: float,
    aspiration: float,
) -> np.ndarray:
    """Voiced excitation: differentiated Rosenberg pulses plus pitch-synchronous aspiration noise.

    Args:
        f0: fundamental frequency per sample, Hz.
        creak: creakiness per sample in [0, 1]; alternates period lengths and halves every other pulse.
        rng: the generator for jitter, shimmer and aspiration noise.
        sample_rate: Hz.
        open_quotient: share of each period the glottis is open (higher: breathier, duller).
        jitter_pct: local jitter (mean absolute period difference / mean period) in percent.
        shimmer_pct: local shimmer (mean absolute amplitude difference / mean amplitude) in percent.
        creak_alternation: relative period alternation at full creak.
        aspiration: aspiration-noise RMS relative to the pulse train's RMS.

    Returns:
        float64 excitation, the radiated flow derivative (lip radiation included).
    """
    # For i.i.d. Gaussian perturbations the mean absolute difference is 2/sqrt(pi) times the sd.
    to_sd = np.sqrt(np.pi) / 2.0 / 100.0
    phase0 = np.cumsum(f0) / sample_rate
    n_periods = int(phase0[-1]) + 3
    jitter = rng.standard_normal(n_periods) * (jitter_pct * to_sd)
    shimmer = rng.standard_normal(n_periods) * (shimmer_pct * to_sd)
    alternate = np.where(np.arange(n_periods) % 2 == 0, 1.0, -1.0)
    k0 = phase0.astype(np.int64)
    period_scale = (
        1.0 + jitter[k0] * (1.0 + 2.0 * creak) + creak_alternation * creak * alternate[k0]
    )
    phase = np.cumsum(f0 / np.maximum(period_scale, 0.3)) / sample_rate
    k = np.minimum(phase.astype(np.int64), n_periods - 1)
    frac = phase - k
    flow = rosenberg_flow(frac, open_quotient)
    amp = np.maximum(1.0 + shimmer[k], 0.2) * (1.0 - 0.5 * creak * (k % 2))
    pulses = np.diff(flow, prepend=0.0) * amp
    rms = float(np.sqrt(np.mean(pulses**2))) or 1.0
    if aspiration > 0.0:
        open_phase = np.where(frac < open_quotient, 1.0, 0.3)
        pulses = pulses + rng.standard_normal(len(f0)) * open_phase * (aspiration * rms)
    return pulses


def tilt(x: np.ndarray, tilt_db: float, shelf_hz: float, sample_rate: int) -> np.ndarray:
    """High shelf: ``tilt_db`` more (or less) energy above about ``shelf_hz``, unchanged below."""
    if tilt_db == 0.0:
        return x
    k = 10.0 ** (tilt_db / 20.0) - 1.0
    return x + k * signal.sosfilt(_highpass1(shelf_hz, sample_rate), x)


@lru_cache(maxsize=32)
def _highpass1(corner_hz: float, sample_rate: int) -> np.ndarray:
    return signal.butter(1, corner_hz, btype="highpass", fs=sample_rate, output="sos")


# ------------------------------------------------------------------------------------ resonators
def formant_sos(formants_hz: np.ndarray, bandwidths_hz: np.ndarray, sample_rate: int) -> np.ndarray:
    """Cascade of two-pole resonators (one per formant), each with unity gain at 0 Hz.

    Formants at or above 0.46 × the sample rate are left out. Returns second-order sections for
    :func:`scipy.signal.sosfilt`.
    """
    keep = formants_hz < 0.46 * sample_rate
    f, b = formants_hz[keep], bandwidths_hz[keep]
    r = np.exp(-np.pi * b / sample_rate)
    a1 = -2.0 * r * np.cos(2.0 * np.pi * f / sample_rate)
    a2 = r * r
    sos = np.zeros((len(f), 6))
    sos[:, 0] = 1.0 + a1 + a2
    sos[:, 3] = 1.0
    sos[:, 4] = a1
    sos[:, 5] = a2
    return sos


@lru_cache(maxsize=128)
def bandpass_sos(low_hz: float, high_hz: float, sample_rate: int, order: int = 2) -> np.ndarray:
    """Butterworth band-pass sections, with the upper edge kept below Nyquist."""
    nyq = 0.5 * sample_rate
    high = min(high_hz, 0.95 * nyq)
    low = min(low_hz, 0.5 * high)
    return signal.butter(order, (low, high), btype="bandpass", fs=sample_rate, output="sos")


def ramp_window(n: int, ramp: int) -> np.ndarray:
    """Trapezoid of length ``n`` with raised-cosine ramps of ``ramp`` samples at each end."""
    w = np.ones(n)
    r = min(ramp, n // 2)
    if r > 0:
        edge = 0.5 - 0.5 * np.cos(np.pi * (np.arange(r) + 0.5) / r)
        w[:r] = edge
        w[n - r :] = edge[::-1]
    return w


# --------------------------------------------------------------------------------------- noise
def colored_noise(kind: str, n: int, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Unit-power noise of a colour in :data:`NOISE_TYPES` (not ``none``).

    ``pink`` falls 3 dB/octave, ``brown`` 6 dB/octave, ``babble`` is speech-shaped (flat to about
    600 Hz, then about -7 dB/octave) with the slow 2–6 Hz loudness fluctuations of a few talkers.
    """
    if kind not in NOISE_TYPES or kind == "none":
        raise ValueError(f"noise kind {kind!r}: expected one of {', '.join(NOISE_TYPES[1:])}")
    if kind == "white":
        x = rng.standard_normal(n)
    else:
        m = sfft.next_fast_len(n, real=True)
        spectrum = sfft.rfft(rng.standard_normal(m))
        f = np.maximum(sfft.rfftfreq(m, 1.0 / sample_rate), 20.0)
        if kind == "pink":
            shape = f**-0.5
        elif kind == "brown":
            shape = 1.0 / f
        else:
            shape = (1.0 + (f / 600.0) ** 2) ** -0.6 * f**2 / (f**2 + 100.0**2)
        x = sfft.irfft(spectrum * shape, m)[:n]
        if kind == "babble":
            t = np.arange(n) / sample_rate
            rates = rng.uniform(2.0, 6.0, size=4)
            phases = rng.uniform(0.0, 2.0 * np.pi, size=4)
            x = x * (
                1.0 + 0.2 * np.sin(2.0 * np.pi * rates[:, None] * t + phases[:, None]).sum(axis=0)
            )
    return x / (float(np.sqrt(np.mean(x**2))) or 1.0)


def active_power(x: np.ndarray, sample_rate: int) -> float:
    """Mean power of the active speech in ``x``: 20-ms frames within 35 dB of the loudest 5 %.

    This is the speech power that :func:`apply_conditions` sets the SNR against, so silences and
    pauses do not change what an SNR means.
    """
    hop = max(1, int(_ACTIVE_FRAME_S * sample_rate))
    n = len(x) // hop * hop
    if n == 0:
        return float(np.mean(x**2)) if len(x) else 0.0
    energy = np.mean(x[:n].reshape(-1, hop) ** 2, axis=1)
    ref = float(np.percentile(energy, 95))
    if ref <= 0.0:
        return 0.0
    return float(np.mean(energy[energy >= ref * 10.0 ** (_ACTIVE_FLOOR_DB / 10.0)]))


# ---------------------------------------------------------------------------------- conditions
def room_impulse_response(
    rt60_s: float, drr_db: float, rng: np.random.Generator, sample_rate: int
) -> np.ndarray:
    """Direct path plus exponentially decaying Gaussian noise (60 dB down after ``rt60_s``).

    The energies of direct path and tail are in the ratio ``drr_db`` and sum to one, so the
    long-term level is kept.
    """
    n = max(2, int(min(rt60_s, 1.5) * sample_rate))
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-3.0 * np.log(10.0) * t / rt60_s)
    tail[0] = 0.0
    tail_energy = float(np.sum(tail**2)) or 1.0
    ratio = 10.0 ** (drr_db / 10.0)  # direct / reverberant energy
    h = tail * np.sqrt(1.0 / (1.0 + ratio) / tail_energy)
    h[0] = np.sqrt(ratio / (1.0 + ratio))
    return h


@lru_cache(maxsize=8)
def phone_sos(sample_rate: int) -> np.ndarray:
    """Sixth-order elliptic band-pass over :data:`PHONE_BAND_HZ` (0.5 dB ripple, 60 dB stop band).

    Steep like a narrow-band codec chain: a male F0 near 200 Hz and fricative energy above 4 kHz
    are both gone, as after 8-kHz sampling.
    """
    return signal.ellip(6, 0.5, 60.0, PHONE_BAND_HZ, btype="bandpass", fs=sample_rate, output="sos")


def add_noise(
    x: np.ndarray, kind: str, snr_db: float, rng: np.random.Generator, sample_rate: int
) -> np.ndarray:
    """Add ``kind`` noise at ``snr_db`` relative to the active speech power of ``x``."""
    power = active_power(x, sample_rate)
    noise = colored_noise(kind, len(x), rng, sample_rate)
    return x + noise * np.sqrt(power / 10.0 ** (snr_db / 10.0))
