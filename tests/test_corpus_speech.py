"""Tests of the source–filter speech synthesizer (simulators/corpus/speech.py).

Prosody tests measure the synthesized audio (pyin F0, duration, level, spectral centroid) and check
the published directions of simulator-facts §4, not the code's internals.
"""

from __future__ import annotations

import dataclasses
import math
from importlib import resources

import librosa
import numpy as np
import pytest

from mer_gym.config import ConfigError, from_mapping
from mer_gym.labels import EMOTIONS
from simulators.corpus.speech import (
    NOISE_TYPES,
    SpeechConditions,
    SpeechConditionSpec,
    VoiceIdentity,
    load_prosody,
    synthesize,
)

SR = 16000
CLEAN = SpeechConditions.clean()


def _voices() -> list[VoiceIdentity]:
    return [
        VoiceIdentity.sample(np.random.default_rng(100 + i), sex=("male", "female")[i % 2])
        for i in range(4)
    ]


def _say(voice: VoiceIdentity, emotion: str, seed: int, intensity: float = 1.0, **kw) -> np.ndarray:
    cond = kw.pop("conditions", CLEAN)
    return synthesize(
        voice, emotion, intensity, cond, np.random.default_rng(seed), n_syllables=6, **kw
    )


def _pyin(wave: np.ndarray, base_hz: float) -> np.ndarray:
    """Voiced-frame F0 (Hz), searched from half to four times the speaker's base F0."""
    f0, voiced, _ = librosa.pyin(
        wave.astype(np.float64),
        fmin=base_hz * 0.5,
        fmax=min(base_hz * 4.0, 1000.0),
        sr=SR,
        frame_length=1024,
        hop_length=320,
    )
    return f0[voiced & np.isfinite(f0)]


def _semitone_range(f0: np.ndarray) -> float:
    st = 12.0 * np.log2(f0)
    return float(np.percentile(st, 90) - np.percentile(st, 10))


def _loud_rms(wave: np.ndarray) -> float:
    """RMS of the louder half of 20-ms frames (ignores silences and pauses)."""
    frames = wave[: len(wave) // 320 * 320].reshape(-1, 320)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    return float(np.sqrt(np.mean(np.sort(rms)[len(rms) // 2 :] ** 2)))


def _centroid(wave: np.ndarray) -> float:
    power = np.abs(np.fft.rfft(wave)) ** 2
    freq = np.fft.rfftfreq(len(wave), 1.0 / SR)
    return float(np.sum(power * freq) / np.sum(power))


def _active_power(clean: np.ndarray) -> float:
    """Independent re-statement of the documented SNR reference: 20-ms frames within 35 dB of the loudest 5 %."""
    energy = np.mean(
        clean[: len(clean) // 320 * 320].astype(np.float64).reshape(-1, 320) ** 2, axis=1
    )
    return float(np.mean(energy[energy >= np.percentile(energy, 95) * 10**-3.5]))


@pytest.fixture(scope="module")
def measured() -> dict[str, dict[str, list[float]]]:
    """pyin mean F0 (re base), F0 range, duration, level and centroid per emotion, 4 voices each."""
    out: dict[str, dict[str, list[float]]] = {}
    for emotion in EMOTIONS:
        rows: dict[str, list[float]] = {"f0": [], "range": [], "dur": [], "rms": [], "centroid": []}
        for i, voice in enumerate(_voices()):
            wave = _say(voice, emotion, seed=i)
            if emotion in ("neutral", "fear", "anger", "happiness", "sadness", "disgust"):
                f0 = _pyin(wave, voice.f0_hz)
                rows["f0"].append(float(np.median(f0)) / voice.f0_hz)
                rows["range"].append(_semitone_range(f0))
            rows["dur"].append(len(wave) / SR)
            rows["rms"].append(_loud_rms(wave))
            rows["centroid"].append(_centroid(wave))
        out[emotion] = rows
    return out


def _mean(measured: dict, emotion: str, key: str) -> float:
    return float(np.mean(measured[emotion][key]))


# ----------------------------------------------------------------------------- basic contract
def test_same_seed_is_bit_identical_and_other_seed_differs() -> None:
    voice = _voices()[0]
    spec = SpeechConditionSpec(p_noise=1.0, p_reverb=1.0)
    a = synthesize(
        voice, "fear", 0.7, spec.sample(np.random.default_rng(1)), np.random.default_rng(5)
    )
    b = synthesize(
        voice, "fear", 0.7, spec.sample(np.random.default_rng(1)), np.random.default_rng(5)
    )
    c = synthesize(
        voice, "fear", 0.7, spec.sample(np.random.default_rng(1)), np.random.default_rng(6)
    )
    assert a.tobytes() == b.tobytes()
    assert len(a) != len(c) or not np.array_equal(a, c)


@pytest.mark.parametrize("emotion", EMOTIONS)
def test_every_emotion_gives_float32_bounded_audio_of_plausible_length(emotion: str) -> None:
    rng = np.random.default_rng(3)
    for sex in ("female", "male"):
        wave = synthesize(
            VoiceIdentity.sample(rng, sex=sex), emotion, 1.0, SpeechConditionSpec().sample(rng), rng
        )
        assert wave.dtype == np.float32 and wave.ndim == 1
        assert np.all(np.isfinite(wave))
        assert 0.0 < np.abs(wave).max() <= 1.0
        assert 0.8 <= len(wave) / SR <= 3.5


def test_default_length_is_about_one_to_two_seconds() -> None:
    rng = np.random.default_rng(0)
    durations = [
        len(synthesize(VoiceIdentity.sample(rng), "neutral", 0.0, CLEAN, rng)) / SR
        for _ in range(20)
    ]
    assert 1.0 <= float(np.median(durations)) <= 2.0


def test_sample_rate_is_respected() -> None:
    voice = _voices()[0]
    at16 = _say(voice, "neutral", 0)
    at8 = _say(voice, "neutral", 0, sample_rate=8000)
    assert len(at8) == pytest.approx(len(at16) / 2, abs=2)


def test_intensity_zero_is_neutral_prosody() -> None:
    voice = _voices()[1]
    assert np.array_equal(
        _say(voice, "anger", 0, intensity=0.0), _say(voice, "neutral", 0, intensity=1.0)
    )


def test_intensity_interpolates_from_neutral_to_the_table_row() -> None:
    table = load_prosody()
    assert table.at("fear", 0.5).f0_mean == pytest.approx(1.5)
    assert table.at("sadness", 0.5).tempo == pytest.approx((1.0 + 0.71) / 2)
    assert table.at("anger", 1.0) == table.emotions["anger"]


def test_clipping_protection_keeps_peak_at_most_one() -> None:
    voice = dataclasses.replace(_voices()[0], level_db=20.0)
    wave = _say(voice, "anger", 0, conditions=SpeechConditions(gain_db=30.0))
    assert np.abs(wave).max() <= 1.0
    assert np.abs(wave).max() > 0.9


# ------------------------------------------------------------------- published prosody directions
def test_prosody_table_matches_the_published_multipliers() -> None:
    e = load_prosody().emotions
    assert (e["happiness"].f0_mean, e["happiness"].f0_range, e["happiness"].tempo) == (
        1.5,
        2.0,
        1.43,
    )
    assert (e["anger"].f0_mean, e["anger"].f0_range, e["anger"].f0_var, e["anger"].tempo) == (
        1.5,
        2.0,
        1.3,
        1.43,
    )
    assert (e["fear"].f0_mean, e["fear"].f0_range, e["fear"].pause_mult) == (2.0, 1.6, 2.1)
    assert (e["sadness"].f0_mean, e["sadness"].f0_range, e["sadness"].tempo) == (1.0, 0.8, 0.71)
    assert [e[k].jitter for k in ("happiness", "anger", "fear", "sadness")] == [0.0, 5.0, 5.0, 10.0]
    assert e["happiness"].accent_slope > 0 > e["anger"].accent_slope and e["fear"].final_st > 0
    d = e["disgust"]  # Murray & Arnott: slower, much lower, slightly wider, softer, creaky
    assert d.tempo < 1 and d.f0_mean < 1 and d.f0_range > 1 and d.effort_db < 0 and d.creak > 0


def test_fear_is_higher_than_neutral_and_disgust_lower(measured) -> None:
    assert _mean(measured, "fear", "f0") > 1.6 * _mean(measured, "neutral", "f0")
    assert _mean(measured, "disgust", "f0") < 0.92 * _mean(measured, "neutral", "f0")
    # neutral speaks near the speaker's base F0
    assert 0.9 < _mean(measured, "neutral", "f0") < 1.15


def test_anger_and_happiness_have_wider_f0_range_than_neutral(measured) -> None:
    neutral = _mean(measured, "neutral", "range")
    assert _mean(measured, "anger", "range") > 1.4 * neutral
    assert _mean(measured, "happiness", "range") > 1.4 * neutral
    assert _mean(measured, "sadness", "range") < neutral


def test_sadness_and_disgust_are_slower_and_anger_faster(measured) -> None:
    neutral = _mean(measured, "neutral", "dur")
    assert _mean(measured, "sadness", "dur") > 1.2 * neutral
    assert _mean(measured, "disgust", "dur") > 1.2 * neutral
    assert _mean(measured, "anger", "dur") < 0.9 * neutral


def test_level_follows_effort(measured) -> None:
    neutral = _mean(measured, "neutral", "rms")
    assert _mean(measured, "sadness", "rms") < 0.85 * neutral
    assert _mean(measured, "anger", "rms") > 1.4 * neutral


def test_anger_is_brighter_than_sadness(measured) -> None:
    assert _mean(measured, "anger", "centroid") > 1.2 * _mean(measured, "sadness", "centroid")


def test_male_voices_are_lower_than_female() -> None:
    rng = np.random.default_rng(0)
    male = [VoiceIdentity.sample(rng, sex="male").f0_hz for _ in range(50)]
    female = [VoiceIdentity.sample(rng, sex="female").f0_hz for _ in range(50)]
    assert max(male) < min(female)
    assert 100 <= min(male) and max(female) <= 230
    m, f = _voices()[0], _voices()[1]
    assert np.median(_pyin(_say(m, "neutral", 0), m.f0_hz)) < np.median(
        _pyin(_say(f, "neutral", 0), f.f0_hz)
    )


def test_voice_sample_draws_sex_when_not_given() -> None:
    rng = np.random.default_rng(0)
    assert {VoiceIdentity.sample(rng).sex for _ in range(20)} == {"female", "male"}


# ----------------------------------------------------------------------------------- conditions
@pytest.mark.parametrize("noise_type", [t for t in NOISE_TYPES if t != "none"])
@pytest.mark.parametrize("snr_db", [0.0, 15.0])
def test_measured_snr_matches_requested(noise_type: str, snr_db: float) -> None:
    voice = _voices()[2]
    clean = _say(voice, "neutral", 9).astype(np.float64)
    noisy = _say(
        voice, "neutral", 9, conditions=SpeechConditions(noise_type=noise_type, snr_db=snr_db)
    )
    noise = noisy.astype(np.float64) - clean
    measured = 10.0 * math.log10(_active_power(clean) / float(np.mean(noise**2)))
    assert measured == pytest.approx(snr_db, abs=1.5)


def test_phone_band_removes_energy_outside_300_3400_hz() -> None:
    voice = _voices()[0]  # a male voice: much energy below 300 Hz

    def outside_share(wave: np.ndarray) -> float:
        power = np.abs(np.fft.rfft(wave.astype(np.float64))) ** 2
        freq = np.fft.rfftfreq(len(wave), 1.0 / SR)
        return float(power[(freq < 250) | (freq > 4000)].sum() / power.sum())

    full = outside_share(_say(voice, "anger", 4))
    phone = outside_share(_say(voice, "anger", 4, conditions=SpeechConditions(phone_band=True)))
    assert full > 0.2
    assert phone < 0.02


def test_reverb_spreads_energy_into_the_trailing_silence() -> None:
    voice = _voices()[1]
    dry = _say(voice, "neutral", 2)
    wet = _say(voice, "neutral", 2, conditions=SpeechConditions(rt60_s=0.8, drr_db=0.0))
    assert len(dry) == len(wet)
    tail = slice(len(dry) - 800, len(dry))
    assert np.mean(wet[tail] ** 2) > 100 * (np.mean(dry[tail] ** 2) + 1e-12)


def test_gain_and_clipping_change_the_level() -> None:
    voice = _voices()[3]
    ref = _say(voice, "neutral", 1)
    louder = _say(voice, "neutral", 1, conditions=SpeechConditions(gain_db=6.0))
    assert _loud_rms(louder) / _loud_rms(ref) == pytest.approx(10 ** (6 / 20), rel=1e-3)
    clipped = _say(voice, "neutral", 1, conditions=SpeechConditions(clip_level=0.3))
    assert np.abs(clipped).max() == pytest.approx(0.3 * np.abs(ref).max(), rel=1e-3)


def test_condition_spec_sampling_is_deterministic_and_follows_probabilities() -> None:
    spec = SpeechConditionSpec()
    a = [spec.sample(np.random.default_rng(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    rng = np.random.default_rng(0)
    draws = [spec.sample(rng) for _ in range(400)]
    noisy = np.mean([d.noise_type != "none" for d in draws])
    assert noisy == pytest.approx(spec.p_noise, abs=0.06)
    assert all((d.noise_type == "none") == (d.snr_db == math.inf) for d in draws)
    assert all((d.rt60_s == 0.0) == (d.drr_db == math.inf) for d in draws)
    assert all(
        spec.snr_db[0] <= d.snr_db <= spec.snr_db[1] for d in draws if d.noise_type != "none"
    )
    silent = from_mapping(
        SpeechConditionSpec, {"p_noise": 0, "p_reverb": 0, "p_phone": 0, "p_clip": 0}
    )
    clean = silent.sample(rng)
    assert dataclasses.replace(clean, gain_db=0.0) == CLEAN


def test_conditions_are_flat_manifest_columns() -> None:
    row = dataclasses.asdict(SpeechConditionSpec().sample(np.random.default_rng(0)))
    assert all(isinstance(v, str | float | bool) for v in row.values())


# ----------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: VoiceIdentity(sex="male", f0_hz=20.0), "f0_hz"),
        (lambda: VoiceIdentity(sex="other", f0_hz=120.0), "sex"),
        (lambda: SpeechConditions(noise_type="purple", snr_db=10.0), "noise_type"),
        (lambda: SpeechConditions(snr_db=10.0), "snr_db"),
        (lambda: SpeechConditions(rt60_s=-1.0), "rt60_s"),
        (lambda: SpeechConditions(rt60_s=0.5), "drr_db"),
        (lambda: from_mapping(SpeechConditionSpec, {"snr": [0, 10]}), "snr"),
        (lambda: from_mapping(SpeechConditionSpec, {"p_noise": 2.0}), "p_noise"),
        (lambda: from_mapping(SpeechConditionSpec, {"noise_types": ["white"]}), "noise_weights"),
        (lambda: from_mapping(SpeechConditionSpec, {"snr_db": [30, 10]}), "snr_db"),
    ],
)
def test_invalid_config_names_the_field(build, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        build()


def test_bad_synthesize_arguments_name_the_argument() -> None:
    voice, rng = _voices()[0], np.random.default_rng(0)
    with pytest.raises(ValueError, match="intensity"):
        synthesize(voice, "anger", 1.5, CLEAN, rng)
    with pytest.raises(ValueError, match="surprise"):
        synthesize(voice, "surprise", 0.5, CLEAN, rng)
    with pytest.raises(ValueError, match="sample_rate"):
        synthesize(voice, "anger", 0.5, CLEAN, rng, sample_rate=4000)
    with pytest.raises(ValueError, match="n_syllables"):
        synthesize(voice, "anger", 0.5, CLEAN, rng, n_syllables=0)
    with pytest.raises(TypeError, match="rng"):
        synthesize(voice, "anger", 0.5, CLEAN, 0)  # a seed instead of a Generator
    with pytest.raises(TypeError, match="conditions"):
        synthesize(voice, "anger", 0.5, SpeechConditionSpec(), rng)


def test_bad_prosody_file_names_the_key(tmp_path) -> None:
    text = (resources.files("simulators.corpus") / "data" / "prosody.yaml").read_text()
    bad = tmp_path / "prosody.yaml"
    bad.write_text(text.replace("    pause_mult: 2.1", "    pause_mult: 2.1\n    pause_mlt: 3.0"))
    with pytest.raises(ConfigError, match="pause_mlt"):
        load_prosody(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_prosody(tmp_path / "missing.yaml")
    edited = tmp_path / "edited.yaml"
    edited.write_text(text.replace("    pause_mult: 2.1", "    pause_mult: 3.0"))
    assert load_prosody(edited).emotions["fear"].pause_mult == 3.0
