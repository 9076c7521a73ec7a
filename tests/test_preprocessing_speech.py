"""Tests for mer_gym.preprocessing.speech against independent computations (scipy, hand framing)."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import scipy.fft
import scipy.signal

from mer_gym.config import ConfigError, from_mapping
from mer_gym.preprocessing.speech import (
    SpeechPreprocessor,
    cmvn,
    preemphasis,
    to_mono_float,
)


def voiced(sr: int, seconds: float = 1.0, f0: float = 150.0) -> np.ndarray:
    """A deterministic vowel-like test signal: a gliding harmonic series with a 3 Hz syllable rhythm."""
    t = np.arange(round(sr * seconds)) / sr
    phase = 2 * np.pi * np.cumsum(f0 + 40 * np.sin(2 * np.pi * 1.5 * t)) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 15))
    return 0.3 * x * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2)


SR = 16000


# --- Eq. 2 -----------------------------------------------------------------------------------------


def test_preemphasis_matches_lfilter():
    x = np.random.default_rng(0).standard_normal(1000)
    y = preemphasis(x, 0.95)
    np.testing.assert_allclose(y, scipy.signal.lfilter([1.0, -0.95], 1.0, x), rtol=0, atol=1e-12)
    assert y[0] == x[0]


def test_preemphasis_rejects_2d():
    with pytest.raises(ValueError, match="1-D"):
        preemphasis(np.zeros((10, 2)))


# --- framing and MFCCs -----------------------------------------------------------------------------


@pytest.mark.parametrize(("n_samples", "frames"), [(16000, 98), (16079, 98), (16080, 99), (560, 2)])
def test_frame_count_is_25ms_frames_every_10ms(n_samples, frames):
    prep = SpeechPreprocessor(max_frames=200)
    assert prep.frame_count(n_samples) == frames
    x = np.random.default_rng(1).standard_normal(n_samples)
    assert prep(x, SR).n_frames == frames


def test_mfcc_equals_hand_framed_hamming_fft_mel_log_dct():
    prep = SpeechPreprocessor()
    y = preemphasis(voiced(SR, 0.5), 0.95)
    ours = prep.mfcc(y)
    n = 1 + (len(y) - 400) // 160
    frames = np.stack([y[t * 160 : t * 160 + 400] for t in range(n)])
    window = scipy.signal.get_window("hamming", 400)  # periodic, as librosa's "hamming"
    power = np.abs(np.fft.rfft(frames * window, n=512, axis=1)) ** 2
    mel = power @ librosa.filters.mel(sr=SR, n_fft=512, n_mels=40).T
    db = 10 * np.log10(np.maximum(mel, 1e-10))
    db = np.maximum(db, db.max() - 80.0)
    expected = scipy.fft.dct(db, type=2, norm="ortho", axis=1)[:, :13]
    assert ours.shape == (n, 13)
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


@pytest.mark.parametrize(("deltas", "width"), [(False, 13), (True, 39)])
def test_shape_cmvn_statistics_and_zero_padding(deltas, width):
    out = SpeechPreprocessor(deltas=deltas)(voiced(SR, 1.0), SR)
    assert out.features.shape == (120, width) and out.features.dtype == np.float32
    assert out.n_frames == 98
    valid = out.features[: out.n_frames].astype(np.float64)
    np.testing.assert_allclose(valid.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(valid.std(axis=0), 1.0, atol=1e-4)
    assert np.all(out.features[out.n_frames :] == 0.0)
    assert not np.any(np.all(valid == 0.0, axis=1))  # no real frame looks like padding


def test_deltas_extend_the_static_coefficients():
    static = SpeechPreprocessor(cmvn=False)(voiced(SR), SR)
    full = SpeechPreprocessor(cmvn=False, deltas=True)(voiced(SR), SR)
    np.testing.assert_array_equal(full.features[:, :13], static.features)
    coeffs = static.features[: static.n_frames].T.astype(np.float64)
    d1 = librosa.feature.delta(coeffs, width=9, mode="nearest")
    np.testing.assert_allclose(full.features[: full.n_frames, 13:26], d1.T, atol=1e-4)


@pytest.mark.parametrize("mode", ["head", "center"])
def test_truncation_keeps_max_frames(mode):
    x = voiced(SR, 3.0)
    long = SpeechPreprocessor(cmvn=False, max_frames=400)(x, SR)
    short = SpeechPreprocessor(cmvn=False, truncate=mode)(x, SR)
    assert long.n_frames == 298 and short.n_frames == 120
    start = 0 if mode == "head" else (298 - 120) // 2
    np.testing.assert_array_equal(short.features, long.features[start : start + 120])
    normalized = SpeechPreprocessor(truncate=mode)(x, SR).features.astype(np.float64)
    np.testing.assert_allclose(normalized.mean(axis=0), 0.0, atol=1e-5)  # CMVN over the kept frames


def test_resampled_48k_matches_native_16k():
    prep = SpeechPreprocessor()
    native = prep(voiced(16000), 16000)
    resampled = prep(voiced(48000), 48000)
    other_voice = prep(voiced(16000, f0=210.0), 16000)
    assert native.n_frames == resampled.n_frames == 98
    close = np.abs(native.features - resampled.features)[:98].mean()
    apart = np.abs(native.features - other_voice.features)[:98].mean()
    assert close < 0.2 < 0.5 < apart


# --- input rules -----------------------------------------------------------------------------------


def test_stereo_is_averaged_to_mono():
    x = voiced(SR)
    prep = SpeechPreprocessor()
    stereo = np.stack([x, x], axis=1)
    np.testing.assert_array_equal(prep(stereo, SR).features, prep(x, SR).features)
    lr = np.stack([x, 0.5 * x[::-1]], axis=1)
    np.testing.assert_allclose(to_mono_float(lr), (x + 0.5 * x[::-1]) / 2)


def test_pcm_dtypes_are_scaled():
    pcm = np.array([-32768, 0, 16384, 32767], np.int16)
    np.testing.assert_array_equal(to_mono_float(pcm), pcm / 32768.0)
    np.testing.assert_array_equal(to_mono_float(np.array([0, 128, 255], np.uint8)), [-1.0, 0.0, 127 / 128])
    np.testing.assert_array_equal(to_mono_float(np.array([-(2**31)], np.int32)), [-1.0])
    x16 = np.round(voiced(SR) * 32767).astype(np.int16)
    prep = SpeechPreprocessor()
    np.testing.assert_array_equal(prep(x16, SR).features, prep(x16 / 32768.0, SR).features)


@pytest.mark.parametrize(
    ("wave", "rate", "message"),
    [
        (np.zeros(0), SR, "empty"),
        (np.array([0.0, np.nan] * 400), SR, "NaN or inf"),
        (np.array([0.0, np.inf] * 400), SR, "NaN or inf"),
        (np.zeros(1000, np.int64), SR, "unsupported sample dtype"),
        (np.zeros((2, 16000)), SR, r"waveform\.T"),
        (np.zeros((10, 10, 2)), SR, "2-D"),
        (np.zeros(1000), 0, "positive whole number"),
        (np.zeros(1000), -16000, "positive whole number"),
        (np.zeros(1000), 44100.5, "positive whole number"),
        (np.zeros(1000), "16k", "positive whole number"),
        (np.zeros(559), SR, "too short.*559 samples|559 samples.*too short"),
        ([0.0] * 1000, SR, "numpy array"),
    ],
)
def test_bad_audio_is_rejected_with_the_name(wave, rate, message):
    with pytest.raises(ValueError, match=message) as info:
        SpeechPreprocessor()(wave, rate, name="03a01Fa.wav")
    assert "03a01Fa.wav" in str(info.value)


def test_shortest_clips():
    two = SpeechPreprocessor()(np.random.default_rng(2).standard_normal(560), SR)
    assert two.n_frames == 2
    np.testing.assert_allclose(np.abs(two.features[:2]), 1.0, atol=1e-5)
    one = SpeechPreprocessor(cmvn=False)(np.random.default_rng(2).standard_normal(400), SR)
    assert one.n_frames == 1 and np.any(one.features[0] != 0.0)
    with pytest.raises(ValueError, match="one frame"):
        SpeechPreprocessor(cmvn=False)(np.zeros(399), SR)


def test_digital_silence_normalizes_to_masked_rows_without_nan():
    out = SpeechPreprocessor()(np.zeros(16000, np.int16), SR)
    assert out.n_frames == 98
    assert np.all(out.features == 0.0)


def test_cmvn_guards_zero_variance():
    frames = np.column_stack([np.arange(5.0), np.full(5, 3.0)])
    out = cmvn(frames)
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[:, 1], 0.0)
    np.testing.assert_allclose(out[:, 0].std(), 1.0)


# --- batch, determinism, config --------------------------------------------------------------------


def test_batch_stacks_and_masks():
    prep = SpeechPreprocessor(deltas=True)
    waves = [voiced(SR, 0.5), voiced(48000, 2.0), np.round(voiced(SR, 1.0) * 3e4).astype(np.int16)]
    out = prep.batch(waves, [SR, 48000, SR])
    assert out.features.shape == (3, 120, 39)
    np.testing.assert_array_equal(out.n_frames, [48, 120, 98])
    np.testing.assert_array_equal(out.mask.sum(axis=1), [48, 120, 98])
    np.testing.assert_array_equal(out.features[0], prep(waves[0], SR).features)
    assert np.all(out.features[~out.mask] == 0.0)
    assert prep.batch(waves[:1], SR).features.shape == (1, 120, 39)


def test_batch_errors():
    prep = SpeechPreprocessor()
    with pytest.raises(ValueError, match="sample_rates has 1 entries"):
        prep.batch([voiced(SR), voiced(SR)], [SR])
    with pytest.raises(ValueError, match=r"waveforms\[1\]"):
        prep.batch([voiced(SR), np.zeros(0)], SR)


def test_deterministic():
    x = voiced(44100, 1.3)
    a, b = SpeechPreprocessor(deltas=True)(x, 44100), SpeechPreprocessor(deltas=True)(x, 44100)
    assert a.n_frames == b.n_frames and np.array_equal(a.features, b.features)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_fft": 256}, "n_fft"),
        ({"n_mfcc": 50}, "n_mfcc"),
        ({"n_mels": 300}, "n_mels"),
        ({"delta_width": 4}, "delta_width"),
        ({"preemphasis": 1.0}, "preemphasis"),
        ({"truncate": "tail"}, "truncate"),
        ({"max_frames": 0}, "max_frames"),
        ({"sample_rate": 16000.0}, "sample_rate"),
        ({"top_db": -1.0}, "top_db"),
        ({"deltas": 1}, "deltas"),
    ],
)
def test_bad_config_names_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        SpeechPreprocessor(**kwargs)


def test_from_mapping():
    prep = from_mapping(SpeechPreprocessor, {"deltas": True, "top_db": None, "frame_ms": 25}, where="speech")
    assert prep.n_features == 39 and prep.top_db is None and prep.win_length == 400
    assert prep.hop_length == 160
    with pytest.raises(ConfigError, match="n_mfccs"):
        from_mapping(SpeechPreprocessor, {"n_mfccs": 20}, where="speech")
