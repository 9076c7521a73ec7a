"""The paper's speech preprocessing (§5.2): MFCC sequences for the LSTM, padded for its Masking layer.

Pipeline for one utterance (:class:`SpeechPreprocessor`)::

    waveform ─► float64 mono at 16 kHz ─► pre-emphasis (Eq. 2) ─► 25 ms Hamming frames every 10 ms
        ─► |FFT|² (n_fft 512) ─► 40 Mel bands ─► log (dB) ─► DCT-II ─► 13 MFCCs [+ Δ, ΔΔ → 39]
        ─► per-utterance CMVN ─► pad with 0.0 / truncate to 120 frames

Input conversion rule (:func:`to_mono_float`):

* 1-D arrays are mono; 2-D arrays are ``(n_samples, n_channels)`` (soundfile's layout) with at most
  8 channels and are averaged to mono; a 2-D array whose second axis is longer than 8 looks like
  librosa's ``(channels, samples)`` layout and is an error (pass ``waveform.T``).
* float arrays are used as they are (nominally in [-1, 1]; CMVN makes the overall scale irrelevant).
* ``int16`` PCM is divided by 32768, ``int32`` by 2**31, and ``uint8`` (8-bit WAV) maps to
  ``(x − 128) / 128``; any other dtype (bool, complex, int64, ...) is an error.
* empty audio, NaN/inf samples and a sample rate that is not a positive integer are errors; so is
  a rate outside 4000..384000 Hz (:data:`MIN_SAMPLE_RATE`, :data:`MAX_SAMPLE_RATE`).

Framing: each frame is the 400 samples ``[t·160, t·160 + 400)`` of the pre-emphasized signal, so an
utterance of N samples gives ``1 + (N − 400) // 160`` frames (1.0 s → 98). ``librosa`` frames with
``center=False`` span ``n_fft`` = 512 samples and centre the 400-sample window in them; the signal
is therefore zero-padded by ``(n_fft − win) / 2`` = 56 samples on each side first, which makes the
frames exactly the 25 ms ones above (zero-padded to 512 for the FFT).

Short clips: audio shorter than one frame (400 samples = 25 ms) is an error rather than silently
padded, since it cannot hold speech. With CMVN on, one frame is not enough either (its mean is
itself, so it would normalize to an all-zero, i.e. masked, row): at least two frames (560 samples
= 35 ms) are required.

Padding: frames past ``n_frames`` are exactly 0.0, the ``mask_value`` of the LSTM's Masking layer.
After CMVN every coefficient has mean 0 over the valid frames, so a *real* frame is all-zero only if
all 13 (or 39) normalized coefficients are exactly 0.0 at once: a freak event for real audio. (Two
cases make it systematic: a single frame, which is refused above, and a clip with no variation at
all, such as digital silence, whose frames all normalize to 0.0 and are then masked.) Callers that
need a mask that cannot be fooled use ``n_frames``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import gcd
from typing import NamedTuple

import numpy as np

from mer_gym.config import ConfigError, check_range

MAX_CHANNELS = 8
"""Most channels a 2-D ``(n_samples, n_channels)`` waveform may have."""
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 4000, 384_000
"""Accepted input rates in Hz. Resampling from a rate far below 16 kHz multiplies the samples
(1 Hz would turn one second into 16 000 samples per input sample), so absurd rates, usually a
mistyped argument, are refused instead of exhausting memory."""

_PCM_SCALE: dict[str, tuple[float, float]] = {
    "int16": (0.0, 32768.0),
    "int32": (0.0, 2.0**31),
    "uint8": (128.0, 128.0),
}
"""dtype → (offset, scale): PCM sample x maps to (x − offset) / scale."""


class SpeechFeatures(NamedTuple):
    """One utterance's features.

    Attributes:
        features: float32 array (max_frames, n_features), n_features = n_mfcc or 3·n_mfcc; rows at and
            after ``n_frames`` are exactly 0.0.
        n_frames: number of valid (real) frames, 1 ≤ n_frames ≤ max_frames.
    """

    features: np.ndarray
    n_frames: int


class SpeechBatch(NamedTuple):
    """A stack of utterances' features.

    Attributes:
        features: float32 array (n, max_frames, n_features).
        n_frames: int64 array (n,), the valid frames of each utterance.
    """

    features: np.ndarray
    n_frames: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """bool array (n, max_frames): True on valid frames."""
        return np.arange(self.features.shape[1])[np.newaxis, :] < self.n_frames[:, np.newaxis]


def preemphasis(x: np.ndarray, alpha: float = 0.95) -> np.ndarray:
    """Eq. 2: ``y[t] = x[t] − α·x[t−1]`` with ``y[0] = x[0]`` (float64, same length as ``x``)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"preemphasis expects a 1-D signal, got shape {x.shape}")
    y = x.copy()
    y[1:] -= alpha * x[:-1]
    return y


def to_mono_float(waveform: np.ndarray, *, name: str = "waveform") -> np.ndarray:
    """Convert a waveform to a 1-D float64 mono signal (rules in the module docstring).

    Args:
        waveform: the samples.
        name: how error messages refer to the input (a file name, ``"waveforms[3]"``, ...).

    Raises:
        ValueError: unsupported shape or dtype, empty audio, or NaN/inf samples.
    """
    if not isinstance(waveform, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array, got {type(waveform).__name__}")
    if waveform.ndim not in (1, 2):
        raise ValueError(
            f"{name}: expected a 1-D mono or 2-D (n_samples, n_channels) waveform, "
            f"got shape {waveform.shape}"
        )
    if waveform.ndim == 2 and waveform.shape[1] > MAX_CHANNELS:
        raise ValueError(
            f"{name}: shape {waveform.shape} has {waveform.shape[1]} channels on its last axis; "
            "2-D audio must be (n_samples, n_channels): if it is (channels, samples), pass waveform.T"
        )
    if waveform.size == 0:
        raise ValueError(f"{name}: the audio is empty (shape {waveform.shape}); drop the clip or check how it was read")
    signal = _to_float(waveform, name)
    if signal.ndim == 2:
        signal = signal.mean(axis=1)
    return signal


def _to_float(waveform: np.ndarray, name: str) -> np.ndarray:
    if waveform.dtype.kind == "f":
        if not np.all(np.isfinite(waveform)):
            raise ValueError(f"{name}: the audio contains NaN or inf samples; clean or drop the clip")
        return waveform.astype(np.float64)
    if waveform.dtype.name in _PCM_SCALE:
        offset, scale = _PCM_SCALE[waveform.dtype.name]
        return (waveform.astype(np.float64) - offset) / scale
    raise ValueError(
        f"{name}: unsupported sample dtype {waveform.dtype}; use float32/float64, or int16, int32 "
        "or uint8 PCM"
    )


def check_sample_rate(sample_rate: float, *, name: str = "sample_rate") -> int:
    """Return ``sample_rate`` as an int, or raise if it is not a positive whole number of Hz."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | float | np.integer | np.floating):
        raise ValueError(f"{name} = {sample_rate!r}: expected a positive whole number of Hz")
    if not np.isfinite(sample_rate) or sample_rate <= 0 or float(sample_rate) != int(sample_rate):
        raise ValueError(f"{name} = {sample_rate!r}: expected a positive whole number of Hz, e.g. 16000")
    return int(sample_rate)


def resample(signal: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a 1-D signal with ``scipy.signal.resample_poly`` (polyphase, Kaiser-windowed FIR)."""
    if orig_sr == target_sr:
        return signal
    from scipy.signal import resample_poly

    g = gcd(orig_sr, target_sr)
    return resample_poly(signal, target_sr // g, orig_sr // g)


@dataclass(frozen=True)
class SpeechPreprocessor:
    """The §5.2 speech pipeline as a validated, immutable configuration that is also callable.

    Attributes:
        sample_rate: rate everything is resampled to, Hz. 16000 (P).
        preemphasis: α of Eq. 2, in [0, 1). 0.95 (P).
        frame_ms: frame length. 25 (P: the paper says 20–40 ms; 25 ms is the usual choice, S).
        hop_ms: frame step. 10 (S: the usual choice; the paper says frames overlap).
        n_fft: FFT size, at least the frame length in samples. 512 (D).
        n_mels: Mel bands. 40 (D).
        n_mfcc: cepstral coefficients kept (c0 included). 13 (S).
        deltas: append Δ and ΔΔ (``librosa.feature.delta``), giving 3·n_mfcc features. False (D:
            the paper mentions them; the 13-feature default keeps the LSTM small).
        delta_width: odd regression window of the deltas, ≥ 3. 9 (D: librosa's default).
        max_frames: frames per utterance after padding/truncation. 120 (D).
        truncate: which frames a longer utterance keeps: ``"head"`` (the first ``max_frames``) or
            ``"center"`` (the middle ones). "head" (D).
        cmvn: per-utterance cepstral mean–variance normalization over the kept frames. True (P).
        top_db: floor of the log-Mel spectrogram, dB below its peak (``librosa.power_to_db``), or
            None for no floor. 80.0 (D: librosa's default).

    Example:
        >>> import numpy as np
        >>> t = np.arange(16000) / 16000
        >>> out = SpeechPreprocessor()(np.sin(2 * np.pi * 220 * t) * (1 + t), 16000)
        >>> out.features.shape, out.n_frames
        ((120, 13), 98)
    """

    sample_rate: int = 16000
    preemphasis: float = 0.95
    frame_ms: float = 25.0
    hop_ms: float = 10.0
    n_fft: int = 512
    n_mels: int = 40
    n_mfcc: int = 13
    deltas: bool = False
    delta_width: int = 9
    max_frames: int = 120
    truncate: str = "head"
    cmvn: bool = True
    top_db: float | None = 80.0

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "n_mels", "n_mfcc", "max_frames", "delta_width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"SpeechPreprocessor.{name} = {value!r}: expected an integer >= 1")
        if not 0.0 <= self.preemphasis < 1.0:
            raise ConfigError(
                f"SpeechPreprocessor.preemphasis = {self.preemphasis!r}: expected α in [0, 1)"
            )
        check_range("SpeechPreprocessor.frame_ms", self.frame_ms, 1.0, 1000.0)
        check_range("SpeechPreprocessor.hop_ms", self.hop_ms, 0.1, 1000.0)
        self._check_sizes()
        if self.truncate not in ("head", "center"):
            raise ConfigError(
                f"SpeechPreprocessor.truncate = {self.truncate!r}: expected 'head' or 'center'"
            )
        for name in ("deltas", "cmvn"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    f"SpeechPreprocessor.{name} = {getattr(self, name)!r}: expected true or false"
                )
        if self.top_db is not None and not self.top_db > 0:
            raise ConfigError(
                f"SpeechPreprocessor.top_db = {self.top_db!r}: expected a positive number of dB or null"
            )

    def _check_sizes(self) -> None:
        if self.win_length > self.n_fft:
            raise ConfigError(
                f"SpeechPreprocessor.n_fft = {self.n_fft}: must be >= the frame length "
                f"({self.frame_ms} ms = {self.win_length} samples at {self.sample_rate} Hz)"
            )
        if self.hop_length < 1:
            raise ConfigError(f"SpeechPreprocessor.hop_ms = {self.hop_ms!r}: under one sample")
        if self.n_mels > self.n_fft // 2 + 1:
            raise ConfigError(
                f"SpeechPreprocessor.n_mels = {self.n_mels}: expected at most n_fft // 2 + 1 = "
                f"{self.n_fft // 2 + 1}"
            )
        if self.n_mfcc > self.n_mels:
            raise ConfigError(
                f"SpeechPreprocessor.n_mfcc = {self.n_mfcc}: expected at most n_mels = {self.n_mels}"
            )
        if self.delta_width < 3 or self.delta_width % 2 == 0:
            raise ConfigError(
                f"SpeechPreprocessor.delta_width = {self.delta_width}: expected an odd integer >= 3"
            )

    @property
    def win_length(self) -> int:
        """Frame length in samples (400 at 16 kHz, 25 ms)."""
        return round(self.sample_rate * self.frame_ms / 1000.0)

    @property
    def hop_length(self) -> int:
        """Frame step in samples (160 at 16 kHz, 10 ms)."""
        return round(self.sample_rate * self.hop_ms / 1000.0)

    @property
    def n_features(self) -> int:
        """Feature columns: n_mfcc, or 3·n_mfcc with deltas."""
        return self.n_mfcc * (3 if self.deltas else 1)

    @property
    def min_samples(self) -> int:
        """Shortest accepted utterance at ``sample_rate``: one frame, or two with CMVN."""
        return self.win_length + (self.hop_length if self.cmvn else 0)

    def frame_count(self, n_samples: int) -> int:
        """Frames an utterance of ``n_samples`` (at ``sample_rate``) yields before padding/truncation."""
        if n_samples < self.win_length:
            return 0
        return 1 + (n_samples - self.win_length) // self.hop_length

    def __call__(self, waveform: np.ndarray, sample_rate: int, *, name: str = "waveform") -> SpeechFeatures:
        """Turn one utterance into a padded MFCC sequence.

        Args:
            waveform: the samples (see the module docstring for accepted layouts and dtypes).
            sample_rate: the waveform's sampling rate in Hz; resampled to ``self.sample_rate``.
            name: how error messages refer to the utterance (e.g. its file name).

        Returns:
            ``(max_frames, n_features)`` float32 features and the number of valid frames.
        """
        signal = self.load(waveform, sample_rate, name=name)
        mfcc = self.mfcc(preemphasis(signal, self.preemphasis))
        mfcc = self._truncate(mfcc)
        if self.cmvn:
            mfcc = cmvn(mfcc)
        out = np.zeros((self.max_frames, self.n_features), dtype=np.float32)
        out[: len(mfcc)] = mfcc
        return SpeechFeatures(out, len(mfcc))

    def load(self, waveform: np.ndarray, sample_rate: int, *, name: str = "waveform") -> np.ndarray:
        """Validate, convert to float64 mono and resample to ``self.sample_rate``."""
        sr = check_sample_rate(sample_rate, name=f"{name}: sample_rate")
        if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
            raise ValueError(
                f"{name}: sample_rate = {sr} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz; "
                "pass the rate the audio was recorded at (e.g. 16000, 44100 or 48000)"
            )
        signal = resample(to_mono_float(waveform, name=name), sr, self.sample_rate)
        if len(signal) < self.min_samples:
            need = self.min_samples / self.sample_rate * 1000.0
            raise ValueError(
                f"{name}: {len(signal)} samples at {self.sample_rate} Hz "
                f"({len(signal) / self.sample_rate * 1000.0:.1f} ms) is too short: need at least "
                f"{self.min_samples} samples ({need:g} ms, "
                f"{'two frames for CMVN' if self.cmvn else 'one frame'}); pad or drop the clip"
            )
        return signal

    def mfcc(self, emphasized: np.ndarray) -> np.ndarray:
        """MFCCs (+ deltas) of a pre-emphasized 16 kHz signal, shape (n_frames, n_features), float64.

        Uses ``librosa.feature.melspectrogram(window='hamming', center=False)``,
        ``librosa.power_to_db`` and ``librosa.feature.mfcc(S=...)`` (DCT-II, orthonormal).
        """
        import librosa

        lpad = (self.n_fft - self.win_length) // 2
        padded = np.pad(emphasized, (lpad, self.n_fft - self.win_length - lpad))
        mel = librosa.feature.melspectrogram(
            y=padded,
            sr=self.sample_rate,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window="hamming",
            center=False,
            power=2.0,
            n_mels=self.n_mels,
        )
        log_mel = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=self.top_db)
        coeffs = librosa.feature.mfcc(S=log_mel, n_mfcc=self.n_mfcc)
        if self.deltas:
            d1 = librosa.feature.delta(coeffs, width=self.delta_width, order=1, mode="nearest")
            d2 = librosa.feature.delta(coeffs, width=self.delta_width, order=2, mode="nearest")
            coeffs = np.concatenate([coeffs, d1, d2], axis=0)
        return coeffs.T

    def batch(
        self,
        waveforms: Sequence[np.ndarray],
        sample_rates: int | Sequence[int],
        *,
        names: Sequence[str] | None = None,
    ) -> SpeechBatch:
        """Preprocess several utterances into one stacked array.

        Args:
            waveforms: the utterances (any lengths).
            sample_rates: one rate for all, or one per utterance.
            names: optional per-utterance names for error messages; default ``"waveforms[i]"``.
        """
        n = len(waveforms)
        rates = [sample_rates] * n if np.isscalar(sample_rates) else list(sample_rates)  # type: ignore[list-item]
        if len(rates) != n:
            raise ValueError(f"sample_rates has {len(rates)} entries but waveforms has {n}")
        if names is not None and len(names) != n:
            raise ValueError(f"names has {len(names)} entries but waveforms has {n}")
        feats = np.zeros((n, self.max_frames, self.n_features), dtype=np.float32)
        counts = np.zeros(n, dtype=np.int64)
        for i, (wave, sr) in enumerate(zip(waveforms, rates, strict=True)):
            result = self(wave, sr, name=names[i] if names is not None else f"waveforms[{i}]")
            feats[i], counts[i] = result.features, result.n_frames
        return SpeechBatch(feats, counts)

    def _truncate(self, frames: np.ndarray) -> np.ndarray:
        extra = len(frames) - self.max_frames
        if extra <= 0:
            return frames
        start = extra // 2 if self.truncate == "center" else 0
        return frames[start : start + self.max_frames]


def cmvn(frames: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Cepstral mean–variance normalization over the rows (frames) of ``frames``.

    Each column gets mean 0 and (population) standard deviation 1. A column whose standard deviation
    is below ``eps`` (constant over the utterance) becomes exactly 0.0 instead of being divided by ~0
    (mean subtraction alone would leave rounding residue of order 1e-13).
    """
    mean = frames.mean(axis=0, keepdims=True)
    std = frames.std(axis=0, keepdims=True)
    flat = std < eps
    return np.where(flat, 0.0, (frames - mean) / np.where(flat, 1.0, std))
