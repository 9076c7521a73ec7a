"""A user's pilot drawn up front: the interactions, what the system sees of them, and the dice.

:func:`draw_stream` turns one (profile, seed) into a :class:`Stream`: every prompt time, whether
the user answers it, where they are, what they feel, which pool rows the frozen models see for the
face and the voice, which modality is missing, and the uniform and normal draws that will decide
the user's feedback. Nothing depends on what a policy does, so every policy compared on a user
meets the same moments and the same dice (*common random numbers*): per-user differences between
policies are paired and low-variance.

Each mechanism draws from its own child of the (seed, user) seed sequence, so changing one part
of a profile (say the feedback rate) leaves every other draw, such as the emotions, unchanged.

A stream keeps the truth (:attr:`Stream.label`, :attr:`Stream.in_episode`) apart from what a
policy may see (:meth:`Stream.observable`); only the user's feedback
(:func:`simulators.users.feedback.respond`) reveals anything about the label.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mer_gym.config import ConfigError
from mer_gym.labels import EMOTIONS
from simulators.users.pool import PoolError, UserPool
from simulators.users.profile import Profile

STUDY_START = np.datetime64("2026-01-05T00:00:00", "s")
"""Day 0 of every study (a Monday); timestamps are this plus the study day and the hour."""
_STREAMS = ("times", "emotions", "compliance", "contexts", "capture", "moments", "dice")


def markov_chain(rng: np.random.Generator, probs: np.ndarray, stay: np.ndarray) -> np.ndarray:
    """A chain that at each step keeps its state with probability ``stay[t]`` and otherwise draws
    from ``probs[t]`` (T, K), so each state's indicator has lag-1 autocorrelation ``stay`` and the
    marginal is ``probs`` (vectorized: the state is the last redraw, forward-filled)."""
    t = len(probs)
    if t == 0:
        return np.zeros(0, np.int64)
    redraw = rng.random(t) >= stay
    redraw[0] = True
    draws = categorical(probs, rng.random(t))
    last = np.maximum.accumulate(np.where(redraw, np.arange(t), 0))
    return draws[last]


def categorical(probs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Row-wise inverse-CDF draw: index k with ``cdf[k-1] <= u < cdf[k]`` for each row."""
    cdf = np.cumsum(probs, axis=-1)
    cdf[..., -1] = 1.0 + 1e-12  # guard against rounding
    return (u[..., None] < cdf).argmax(axis=-1)


def user_seed(seed: int, user_id: str) -> np.random.SeedSequence:
    """The seed sequence of (seed, user): stable across runs, machines and Python versions."""
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed = {seed!r}: expected an integer >= 0")
    return np.random.SeedSequence(entropy=int(seed), spawn_key=(zlib.crc32(user_id.encode()),))


@dataclass(frozen=True, eq=False)
class Stream:
    """One user's pilot, every interaction pre-drawn (arrays of length T, one per interaction).

    Observable (what the environment may show a policy):
        study_day, pilot_day, week, hour, timestamp: when (``week`` = ``pilot_day // 7``).
        context: index into :attr:`context_names`.
        face_row, speech_row: rows of the pool's face / speech arrays
            (:meth:`UserPool.fused_softmax`); the row of an absent modality is still valid (its
            capture is simply not used).
        face_condition, speech_condition: condition indices (pool order).
        face_present, speech_present: whether the camera saw a face / the microphone heard speech.
    Dice (decide the feedback, :func:`simulators.users.feedback.respond`):
        u_explicit, u_label_noise: uniform [0, 1); noise_offset: 1..5, the wrong label a noisy
        answer names is ``(label + noise_offset) % 6``; z_rt, z_engagement: standard normal.
        deliver_step: the interaction at which explicit feedback given here arrives (itself, or
        the day's last interaction in diary mode).
    Truth (never shown to a policy):
        label: the felt emotion (index into :data:`mer_gym.labels.EMOTIONS`).
        in_episode: whether the interaction falls in an emotion episode (e.g. a low-mood week).
    """

    profile: Profile
    seed: int
    context_names: tuple[str, ...]
    study_day: np.ndarray
    pilot_day: np.ndarray
    week: np.ndarray
    hour: np.ndarray
    context: np.ndarray
    face_row: np.ndarray
    speech_row: np.ndarray
    face_condition: np.ndarray
    speech_condition: np.ndarray
    face_present: np.ndarray
    speech_present: np.ndarray
    u_explicit: np.ndarray
    u_label_noise: np.ndarray
    noise_offset: np.ndarray
    z_rt: np.ndarray
    z_engagement: np.ndarray
    deliver_step: np.ndarray
    label: np.ndarray = field(repr=False)
    in_episode: np.ndarray = field(repr=False)
    counts: dict[str, int] = field(default_factory=dict)

    OBSERVABLE = (
        "study_day", "pilot_day", "week", "hour", "context", "face_row", "speech_row",
        "face_condition", "speech_condition", "face_present", "speech_present",
    )
    DICE = ("u_explicit", "u_label_noise", "noise_offset", "z_rt", "z_engagement", "deliver_step")
    TRUTH = ("label", "in_episode")

    def __post_init__(self) -> None:
        for name in self.OBSERVABLE + self.DICE + self.TRUTH:
            getattr(self, name).setflags(write=False)

    def __len__(self) -> int:
        return len(self.label)

    @functools.cached_property
    def lists(self) -> dict[str, list]:
        """Every array as a Python list (computed once): per-step code reads plain floats and
        ints, several times faster than indexing numpy arrays one element at a time."""
        return {name: getattr(self, name).tolist() for name in self.OBSERVABLE + self.DICE + self.TRUTH}

    @property
    def user_id(self) -> str:
        return self.profile.user_id

    @property
    def timestamp(self) -> np.ndarray:
        """datetime64[s] of every interaction."""
        secs = np.round(self.hour.astype(np.float64) * 3600).astype("timedelta64[s]")
        return STUDY_START + self.study_day.astype("timedelta64[D]") + secs

    def observable(self) -> dict[str, np.ndarray]:
        """The arrays a policy may see (no label, no dice)."""
        return {name: getattr(self, name) for name in self.OBSERVABLE}

    def to_frame(self, *, truth: bool = False) -> pd.DataFrame:
        """One row per interaction (observable columns; with ``truth=True`` also label and episode)."""
        df = pd.DataFrame(self.observable())
        df.insert(0, "timestamp", self.timestamp)
        df.insert(0, "user_id", self.user_id)
        df["context"] = pd.Categorical.from_codes(self.context, categories=list(self.context_names))
        if truth:
            df["label"] = pd.Categorical.from_codes(self.label, categories=list(EMOTIONS))
            df["in_episode"] = self.in_episode
        return df


def check_profile(profile: Profile, pool: UserPool) -> int:
    """Check that ``pool`` can play ``profile``; return the person's position in the pool.

    Raises:
        PoolError: naming the field: a person the pool lacks, a capture condition it lacks, or an
            emotion with positive base rate that the person has no moments of.
    """
    p = pool.person_index(profile.person_id, where=f"profile {profile.user_id}: person_id")
    face, speech = profile.conditions_used()
    for modality, names, have in (("face", face, pool.face_conditions), ("speech", speech, pool.speech_conditions)):
        missing = sorted(set(names) - set(have))
        if missing:
            raise PoolError(
                f"profile {profile.user_id}: contexts ask for {modality} condition(s) "
                f"{', '.join(missing)} that the user pool lacks (it has {', '.join(have)}); "
                f"use only those in the profile's contexts[*].{modality}"
            )
    rates = dict(profile.emotions.base_rates)
    for label, n in zip(EMOTIONS, pool.n_moments[p], strict=True):
        if n == 0 and rates.get(label, 0) > 0:
            raise PoolError(
                f"profile {profile.user_id}: emotions.base_rates.{label} > 0 but person "
                f"{profile.person_id} has no {label} moments in the pool; set that rate to 0"
            )
    return p


def _prompt_times(profile: Profile, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    s = profile.schedule
    days = np.array([d for d in range(s.days) if d % 7 < s.days_per_week], np.int64)
    n = s.prompts_per_day
    lo, hi = s.hours
    slot = (np.arange(n)[None, :] + rng.random((len(days), n))) / n  # stratified in the window
    hours = lo + slot * (hi - lo)
    return np.repeat(days, n), hours.reshape(-1)


def _context_probs(profile: Profile, hour: np.ndarray) -> np.ndarray:
    weights = np.array([c.weight for c in profile.contexts], np.float64)
    inside = np.stack([(c.hours[0] <= hour) & (hour < c.hours[1]) for c in profile.contexts], axis=1)
    inside[~inside.any(axis=1)] = True  # no context covers the hour: any context may occur
    probs = inside * weights
    return probs / probs.sum(axis=1, keepdims=True)


def _condition_probs(dist: dict[str, float], names: tuple[str, ...]) -> np.ndarray:
    return np.array([float(dist.get(n, 0.0)) for n in names])


def draw_stream(profile: Profile, pool: UserPool, seed: int = 0) -> Stream:
    """Draw ``profile``'s whole pilot against ``pool`` (deterministic in (profile, seed)).

    Raises:
        PoolError: the pool cannot play the profile (see :func:`check_profile`).
        ConfigError: a negative or non-integer seed.
    """
    p = check_profile(profile, pool)
    ss = user_seed(seed, profile.user_id)
    rngs = dict(zip(_STREAMS, (np.random.default_rng(c) for c in ss.spawn(len(_STREAMS))), strict=True))
    sched = profile.schedule

    # -- every prompt: time, emotion, whether it is answered, context ---------------------------
    day, hour = _prompt_times(profile, rngs["times"])
    n_prompts = len(day)
    week = day // 7
    per_day = {d: profile.emotions.rates(int(d)) for d in np.unique(day)}
    rates = np.array([per_day[d][0] for d in day]).reshape(n_prompts, len(EMOTIONS))
    stay = np.array([per_day[d][1] for d in day])
    label = markov_chain(rngs["emotions"], rates, stay)
    in_episode = np.array([any(ep.covers(int(d)) for ep in profile.emotions.episodes) for d in day], bool)

    p_answer = sched.compliance * (1.0 - sched.weekly_compliance_decline) ** week
    p_answer = p_answer * np.where(hour < sched.morning_until, sched.morning_compliance_factor, 1.0)
    answered = markov_chain(
        rngs["compliance"], np.stack([p_answer, 1.0 - p_answer], axis=1), np.full(n_prompts, sched.miss_streak)
    ) == 0
    context = categorical(_context_probs(profile, hour), rngs["contexts"].random(n_prompts))

    # -- capture: conditions and presence under the context of the day (after drift) ------------
    u = rngs["capture"].random((4, n_prompts))
    starts = sorted({0} | {d.day for d in profile.drift})  # contexts change only at drift days
    phase = np.searchsorted(starts, day, side="right") - 1
    tables = [profile.contexts_on(d) for d in starts]  # (phase, context) -> Context
    k = len(profile.contexts)
    flat = [c for ctxs in tables for c in ctxs]
    cell = phase * k + context
    face_p = np.array([_condition_probs(c.face, pool.face_conditions) for c in flat])[cell]
    speech_p = np.array([_condition_probs(c.speech, pool.speech_conditions) for c in flat])[cell]
    face_cond = categorical(face_p, u[0])
    speech_cond = categorical(speech_p, u[1])
    p_off = np.array([c.p_camera_off for c in flat])[cell]
    p_sil = np.array([c.p_silence for c in flat])[cell]
    face_present = u[2] >= p_off
    speech_present = u[3] >= p_sil
    n_moments = pool.n_moments[p, label]
    moment = np.minimum((rngs["moments"].random(n_prompts) * n_moments).astype(np.int64), n_moments - 1)

    # -- the dice of the feedback --------------------------------------------------------------
    dice = rngs["dice"]
    u_explicit = dice.random(n_prompts)
    u_label_noise = dice.random(n_prompts)
    noise_offset = dice.integers(1, len(EMOTIONS), n_prompts)
    z_rt = dice.standard_normal(n_prompts)
    z_engagement = dice.standard_normal(n_prompts)

    # -- keep the answered prompts that captured something ------------------------------------
    signal = face_present | speech_present
    keep = answered & signal
    pilot_day = day[keep]
    if profile.feedback.timing == "diary":
        # the day's explicit feedback arrives with the day's last interaction
        last = np.r_[pilot_day[1:] != pilot_day[:-1], True]
        last_idx = np.flatnonzero(last)
        deliver = last_idx[np.searchsorted(last_idx, np.arange(len(pilot_day)))]
    else:
        deliver = np.arange(len(pilot_day))
    return Stream(
        profile=profile,
        seed=int(seed),
        context_names=tuple(c.name for c in profile.contexts),
        study_day=(pilot_day + sched.start_day).astype(np.int32),
        pilot_day=pilot_day.astype(np.int32),
        week=(pilot_day // 7).astype(np.int16),
        hour=hour[keep].astype(np.float32),
        context=context[keep].astype(np.int8),
        face_row=pool.face_row(p, label[keep], moment[keep], face_cond[keep]).astype(np.int32),
        speech_row=pool.speech_row(p, label[keep], moment[keep], speech_cond[keep]).astype(np.int32),
        face_condition=face_cond[keep].astype(np.int8),
        speech_condition=speech_cond[keep].astype(np.int8),
        face_present=face_present[keep],
        speech_present=speech_present[keep],
        u_explicit=u_explicit[keep],
        u_label_noise=u_label_noise[keep],
        noise_offset=noise_offset[keep].astype(np.int8),
        z_rt=z_rt[keep],
        z_engagement=z_engagement[keep],
        deliver_step=deliver.astype(np.int32),
        label=label[keep].astype(np.int8),
        in_episode=in_episode[keep],
        counts={
            "prompts": int(n_prompts),
            "missed": int((~answered).sum()),
            "no_signal": int((answered & ~signal).sum()),
            "interactions": int(keep.sum()),
        },
    )


def draw_streams(profiles: Any, pool: UserPool, seed: int = 0) -> list[Stream]:
    """:func:`draw_stream` for every profile (each user's own seed sequence from ``seed``)."""
    return [draw_stream(p, pool, seed) for p in profiles]
