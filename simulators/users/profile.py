"""Who a simulated user is: the validated :class:`Profile` (the *state* of the user model).

A profile says everything that stays fixed about one user during a pilot: which person of the
user pool they are (face and voice), where they are when prompted (contexts, each with its own
capture conditions), what they feel and how it lingers (emotion dynamics and episodes), how they
answer the system (feedback behaviour), and when (schedule). Profiles come from a population
preset (:mod:`simulators.users.population`); every field can also be set by hand.

Every default below is grounded in ``shared/reference/simulator-facts.md``; the status letter says
how: **P** read in a primary source, **S** in a secondary source, **D** a design default of ours
consistent with the sources' direction. The section numbers refer to that file.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mer_gym.config import (
    ConfigError,
    check_interval,
    check_probability,
    check_range,
    from_mapping,
    plain,
)
from mer_gym.labels import EMOTIONS

DEFAULT_BASE_RATES: Mapping[str, float] = {
    "neutral": 0.40,
    "happiness": 0.30,
    "sadness": 0.10,
    "anger": 0.08,
    "fear": 0.07,
    "disgust": 0.05,
}
"""§5, D: consistent with Trampe et al. 2015 (P: positive 2.5x as often as negative, an emotion at
90 % of prompts) and the ESM intensities of Kuppens et al. 2010 (P)."""


def _probabilities(where: str, probs: Mapping[str, float], allowed: tuple[str, ...] | None) -> None:
    """Check a name → probability mapping: known names, each in [0, 1], summing to 1."""
    if not probs:
        raise ConfigError(f"{where} is empty: give at least one name with a probability")
    for name, p in probs.items():
        if allowed is not None and name not in allowed:
            raise ConfigError(f"{where}: unknown name {name!r}; expected one of {', '.join(allowed)}")
        if isinstance(p, bool) or not isinstance(p, int | float):
            raise ConfigError(f"{where}.{name} = {p!r}: expected a probability in [0, 1]")
        check_range(f"{where}.{name}", float(p), 0.0, 1.0)
    total = float(sum(probs.values()))
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise ConfigError(f"{where}: probabilities sum to {total:.6g}, expected 1")


@dataclass(frozen=True)
class Context:
    """Where a user is when prompted, and how that captures them.

    Attributes:
        name: e.g. ``home``, ``work``, ``commute``.
        weight: relative share of prompts answered in this context (normalized over contexts).
        hours: [from, to) hours of the day in which the context can occur (``[0, 24]``: any time).
        face: probability of each named face condition (the shipped pool's: clean, low_light,
            occluded, pose_30deg, blur, dark) when the camera is on.
        speech: probability of each named speech condition (clean, snr_20db, snr_10db, snr_0db,
            reverb, phone, snr_-10db) when the user speaks.
        p_camera_off: probability that no face is captured (camera covered, phone in a pocket).
        p_silence: probability that no speech is captured (the user types or stays silent).
    """

    name: str
    weight: float = 1.0
    hours: tuple[float, float] = (0.0, 24.0)
    face: dict[str, float] = field(default_factory=lambda: {"clean": 1.0})
    speech: dict[str, float] = field(default_factory=lambda: {"clean": 1.0})
    p_camera_off: float = 0.0
    p_silence: float = 0.0

    def __post_init__(self) -> None:
        where = f"context {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"context name = {self.name!r}: expected a non-empty string")
        if isinstance(self.weight, bool) or not isinstance(self.weight, int | float) or not self.weight > 0:
            raise ConfigError(f"{where}.weight = {self.weight!r}: expected a number > 0")
        check_interval(f"{where}.hours", self.hours, 0.0, 24.0)
        if self.hours[0] == self.hours[1]:
            raise ConfigError(f"{where}.hours = {list(self.hours)}: the window is empty")
        _probabilities(f"{where}.face", self.face, None)
        _probabilities(f"{where}.speech", self.speech, None)
        check_probability(f"{where}.p_camera_off", self.p_camera_off)
        check_probability(f"{where}.p_silence", self.p_silence)
        if self.p_camera_off == 1.0 and self.p_silence == 1.0:
            raise ConfigError(f"{where}: p_camera_off and p_silence are both 1, so nothing is ever captured")


@dataclass(frozen=True)
class Episode:
    """A stretch of days with different emotion dynamics, e.g. a low-mood week.

    Attributes:
        start_day: first pilot day of the episode (0 = the user's first day).
        days: length in days.
        rate_multipliers: factor per emotion on the base rates (renormalized), e.g.
            ``{sadness: 3.0, happiness: 0.5}``.
        inertia: inertia during the episode (None: unchanged). Inertia is higher in depression
            (Kuppens, Allen & Sheeber 2010, P, §5).
        kind: a label for analyses (``low_mood``).
    """

    start_day: int
    days: int
    rate_multipliers: dict[str, float] = field(default_factory=dict)
    inertia: float | None = None
    kind: str = "low_mood"

    def __post_init__(self) -> None:
        where = f"episode {self.kind!r}"
        if not isinstance(self.start_day, int) or isinstance(self.start_day, bool) or self.start_day < 0:
            raise ConfigError(f"{where}.start_day = {self.start_day!r}: expected an integer >= 0")
        if not isinstance(self.days, int) or isinstance(self.days, bool) or self.days < 1:
            raise ConfigError(f"{where}.days = {self.days!r}: expected an integer >= 1")
        for name, m in self.rate_multipliers.items():
            if name not in EMOTIONS:
                raise ConfigError(
                    f"{where}.rate_multipliers: unknown emotion {name!r}; expected one of {', '.join(EMOTIONS)}"
                )
            if isinstance(m, bool) or not isinstance(m, int | float) or not m >= 0:
                raise ConfigError(f"{where}.rate_multipliers.{name} = {m!r}: expected a number >= 0")
        if self.inertia is not None:
            check_range(f"{where}.inertia", self.inertia, 0.0, 0.99)

    def covers(self, day: int) -> bool:
        return self.start_day <= day < self.start_day + self.days


@dataclass(frozen=True)
class EmotionDynamics:
    """What the user feels at each prompt: a Markov chain over the six emotions.

    At each prompt the emotion stays with probability ``inertia`` and is otherwise redrawn from the
    base rates, so each emotion's indicator has lag-1 autocorrelation ``inertia`` and the chain's
    stationary distribution is the base rates (§5).

    Attributes:
        base_rates: probability of each emotion (§5, D; see :data:`DEFAULT_BASE_RATES`).
        inertia: lag-1 autocorrelation between prompts (Kuppens, Allen & Sheeber 2010, P: 0.20-0.30
            per emotion; 0.25 by default, D).
        episodes: stretches with other dynamics (a low-mood week, D).
    """

    base_rates: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_BASE_RATES))
    inertia: float = 0.25
    episodes: tuple[Episode, ...] = ()

    def __post_init__(self) -> None:
        _probabilities("emotions.base_rates", self.base_rates, EMOTIONS)
        check_range("emotions.inertia", self.inertia, 0.0, 0.99)

    def rates(self, day: int) -> tuple[list[float], float]:
        """(base rates in EMOTIONS order, inertia) on pilot day ``day``."""
        rates = [float(self.base_rates.get(e, 0.0)) for e in EMOTIONS]
        inertia = self.inertia
        for ep in self.episodes:
            if ep.covers(day):
                rates = [r * float(ep.rate_multipliers.get(e, 1.0)) for r, e in zip(rates, EMOTIONS, strict=True)]
                inertia = ep.inertia if ep.inertia is not None else inertia
        total = sum(rates)
        if total <= 0:
            raise ConfigError(f"emotions: every base rate is 0 on day {day} (check the episodes' multipliers)")
        return [r / total for r in rates], inertia


@dataclass(frozen=True)
class Feedback:
    """How the user answers the system's prediction.

    Explicit feedback (a confirmation or a correction) comes with probability
    ``p_explicit * (1 - weekly_decay) ** week * engagement`` (times ``morning_factor`` before
    ``morning_until``); engagement starts at 1, loses ``erosion`` of itself after every wrong
    prediction and regains ``recovery`` of what it lacks after every right one. Implicit cues come
    at every interaction: the log response time is normal with standard deviation ``rt_sigma``
    around ``log(rt_median_s)``, shifted up by ``implicit_margin * rt_sigma`` after a wrong
    prediction; the engagement cue is the engagement state plus normal noise ``engagement_noise``,
    shifted down by ``implicit_margin * engagement_noise`` after a wrong prediction.

    Attributes:
        p_explicit: per-interaction probability of explicit feedback in week 1 (§5, D: no
            published rate; 0.3).
        weekly_decay: share of ``p_explicit`` lost per week (§5, D: a tenth).
        morning_factor: multiplier before ``morning_until`` (§5, D: lower in the morning, as ESM
            compliance is: 56 % at 07:30-09:00 vs 83 % at noon, Rintala et al. 2020, P).
        morning_until: hour at which the morning ends.
        label_noise: probability that an explicit answer names a wrong label (D).
        rt_median_s: median response time after a right prediction, seconds (D).
        rt_sigma: standard deviation of the log response time (D).
        implicit_margin: separation (Cohen's d) of the implicit cues between right and wrong
            predictions (D; 0 makes the cues useless).
        engagement_noise: standard deviation of the engagement cue (D).
        erosion: share of engagement lost after a wrong prediction (D).
        recovery: share of the missing engagement regained after a right prediction (D).
        timing: ``immediate`` (feedback at the interaction) or ``diary`` (the day's explicit
            feedback arrives with the day's last interaction, as in an evening diary).
    """

    p_explicit: float = 0.3
    weekly_decay: float = 0.1
    morning_factor: float = 0.7
    morning_until: float = 9.0
    label_noise: float = 0.05
    rt_median_s: float = 4.0
    rt_sigma: float = 0.5
    implicit_margin: float = 0.5
    engagement_noise: float = 0.1
    erosion: float = 0.05
    recovery: float = 0.05
    timing: str = "immediate"

    def __post_init__(self) -> None:
        for name in ("p_explicit", "weekly_decay", "morning_factor", "label_noise", "erosion", "recovery"):
            check_probability(f"feedback.{name}", getattr(self, name))
        check_range("feedback.morning_until", self.morning_until, 0.0, 24.0)
        for name in ("rt_median_s", "rt_sigma", "engagement_noise"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"feedback.{name} = {value!r}: expected a number > 0")
        check_range("feedback.implicit_margin", self.implicit_margin, 0.0, 10.0)
        if self.timing not in ("immediate", "diary"):
            raise ConfigError(f"feedback.timing = {self.timing!r}: expected 'immediate' or 'diary'")

    def p_explicit_at(self, week: Any, hour: Any) -> Any:
        """The explicit-feedback probability at full engagement (numpy-broadcasting)."""
        import numpy as np

        p = self.p_explicit * (1.0 - self.weekly_decay) ** np.asarray(week)
        return p * np.where(np.asarray(hour) < self.morning_until, self.morning_factor, 1.0)


@dataclass(frozen=True)
class Schedule:
    """When the user is prompted, and whether they answer.

    Attributes:
        days: pilot length in days (the paper's pilot: 14, §7).
        prompts_per_day: prompts on a prompted day (D; ESM studies prompt 3-10 times a day).
        days_per_week: prompted days per week (the first ones of each week; 7: every day).
        hours: [from, to) window of prompt times; each day's prompts are spread over it with
            stratified random times.
        start_day: the study day on which the user enrols (users may join in waves).
        compliance: probability of answering a prompt (Wrzus & Neubauer 2023, P: 79 % across 477
            studies, §5).
        morning_compliance_factor: multiplier on compliance before ``morning_until`` hours
            (Rintala et al. 2020, P: 56 % at 07:30-09:00 vs 83 % at noon, a factor 0.67).
        morning_until: hour at which the morning ends.
        weekly_compliance_decline: share of compliance lost per week (Rintala et al. 2019, P: 78 %
            to 73 % in the first five days; D beyond).
        miss_streak: lag-1 autocorrelation of missing a prompt (Rintala et al. 2019, P: missed
            prompts cluster; 0.3 is D).
    """

    days: int = 14
    prompts_per_day: int = 6
    days_per_week: int = 7
    hours: tuple[float, float] = (8.0, 22.0)
    start_day: int = 0
    compliance: float = 0.79
    morning_compliance_factor: float = 0.67
    morning_until: float = 9.0
    weekly_compliance_decline: float = 0.05
    miss_streak: float = 0.3

    def __post_init__(self) -> None:
        for name, low in (("days", 1), ("prompts_per_day", 1), ("days_per_week", 1), ("start_day", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"schedule.{name} = {value!r}: expected an integer >= {low}")
        if self.days_per_week > 7:
            raise ConfigError(f"schedule.days_per_week = {self.days_per_week}: expected 1..7")
        check_interval("schedule.hours", self.hours, 0.0, 24.0)
        if self.hours[0] == self.hours[1]:
            raise ConfigError(f"schedule.hours = {list(self.hours)}: the window is empty")
        for name in ("compliance", "morning_compliance_factor", "weekly_compliance_decline"):
            check_probability(f"schedule.{name}", getattr(self, name))
        check_range("schedule.morning_until", self.morning_until, 0.0, 24.0)
        check_range("schedule.miss_streak", self.miss_streak, 0.0, 0.99)
        if self.compliance == 0:
            raise ConfigError("schedule.compliance = 0: the user would never answer a prompt")

    @property
    def weeks(self) -> int:
        return -(-self.days // 7)


@dataclass(frozen=True)
class Drift:
    """A change of capture conditions from a pilot day on (a new phone, a move to a dim room).

    From ``day`` on, the contexts named in ``contexts`` (all, if empty) take the given face and
    speech distributions and camera-off / silence rates; fields left None keep their value.
    """

    day: int
    contexts: tuple[str, ...] = ()
    face: dict[str, float] | None = None
    speech: dict[str, float] | None = None
    p_camera_off: float | None = None
    p_silence: float | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.day, int) or isinstance(self.day, bool) or self.day < 0:
            raise ConfigError(f"drift.day = {self.day!r}: expected an integer >= 0")
        if self.face is not None:
            _probabilities("drift.face", self.face, None)
        if self.speech is not None:
            _probabilities("drift.speech", self.speech, None)
        for name in ("p_camera_off", "p_silence"):
            if getattr(self, name) is not None:
                check_probability(f"drift.{name}", getattr(self, name))

    def apply(self, context: Context) -> Context:
        if self.contexts and context.name not in self.contexts:
            return context
        changes = {
            k: getattr(self, k)
            for k in ("face", "speech", "p_camera_off", "p_silence")
            if getattr(self, k) is not None
        }
        return dataclasses.replace(context, **changes)


def _default_contexts() -> tuple[Context, ...]:
    # D: a day split between home, work and a commute, each capturing differently (§2: low light
    # and occlusion cost the face, noise costs speech steeply).
    return (
        Context("home", 0.5, (0.0, 24.0), {"clean": 0.6, "low_light": 0.25, "pose_30deg": 0.1, "occluded": 0.05},
                {"clean": 0.6, "reverb": 0.25, "snr_20db": 0.15}, 0.10, 0.15),
        Context("work", 0.3, (8.0, 18.0), {"clean": 0.7, "pose_30deg": 0.2, "occluded": 0.1},
                {"clean": 0.3, "snr_20db": 0.4, "snr_10db": 0.3}, 0.05, 0.30),
        Context("commute", 0.2, (7.0, 20.0), {"clean": 0.3, "blur": 0.35, "pose_30deg": 0.2, "low_light": 0.15},
                {"snr_10db": 0.4, "snr_0db": 0.35, "phone": 0.25}, 0.25, 0.20),
    )


@dataclass(frozen=True)
class Profile:
    """One simulated user: validated at construction; build from a mapping with :meth:`from_dict`.

    Attributes:
        user_id: unique within a population.
        person_id: the person of the user pool whose face and voice the user has.
        subgroup: tag for fairness analyses.
        facial_expressivity, vocal_expressivity: the person's expressivities (copied from the
            pool by the sampler; informational, NaN for a real corpus).
        contexts: where the user is when prompted (:class:`Context`).
        emotions: emotion dynamics (:class:`EmotionDynamics`).
        feedback: feedback behaviour (:class:`Feedback`).
        schedule: prompts and compliance (:class:`Schedule`).
        drift: capture-condition changes during the pilot (:class:`Drift`).
    """

    user_id: str
    person_id: str
    subgroup: str = "all"
    facial_expressivity: float = math.nan
    vocal_expressivity: float = math.nan
    contexts: tuple[Context, ...] = field(default_factory=_default_contexts)
    emotions: EmotionDynamics = field(default_factory=EmotionDynamics)
    feedback: Feedback = field(default_factory=Feedback)
    schedule: Schedule = field(default_factory=Schedule)
    drift: tuple[Drift, ...] = ()

    def __post_init__(self) -> None:
        for name in ("user_id", "person_id", "subgroup"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"profile.{name} = {getattr(self, name)!r}: expected a non-empty string")
        for name in ("facial_expressivity", "vocal_expressivity"):
            value = getattr(self, name)
            if value is None:  # how to_dict writes NaN
                object.__setattr__(self, name, math.nan)
                continue
            if not (isinstance(value, float) and math.isnan(value)):
                check_range(f"profile {self.user_id}: {name}", value, 0.0, 1.0)
        if not self.contexts:
            raise ConfigError(f"profile {self.user_id}: contexts is empty; give at least one context")
        names = [c.name for c in self.contexts]
        if len(set(names)) != len(names):
            raise ConfigError(f"profile {self.user_id}: context names repeat ({', '.join(names)})")
        lo, hi = self.schedule.hours
        if not any(c.hours[0] < hi and lo < c.hours[1] for c in self.contexts):
            raise ConfigError(
                f"profile {self.user_id}: no context's hours overlap the prompt window {list(self.schedule.hours)}"
            )
        for d in self.drift:
            unknown = [n for n in d.contexts if n not in names]
            if unknown:
                raise ConfigError(
                    f"profile {self.user_id}: drift names unknown context(s) {', '.join(unknown)}; "
                    f"contexts are {', '.join(names)}"
                )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "profile") -> Profile:
        """Build from a plain mapping (YAML); unknown keys and bad values fail naming the field."""
        return from_mapping(cls, data, where=where)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML/JSON-safe) that :meth:`from_dict` turns back into an equal profile."""
        return plain(dataclasses.asdict(self), nan_as_none=True)

    def contexts_on(self, day: int) -> tuple[Context, ...]:
        """The contexts as they are on pilot day ``day`` (after any drift that has started)."""
        contexts = self.contexts
        for d in sorted(self.drift, key=lambda d: d.day):
            if day >= d.day:
                contexts = tuple(d.apply(c) for c in contexts)
        return contexts

    def conditions_used(self) -> tuple[set[str], set[str]]:
        """Every face and speech condition name the profile can ask for (drift included)."""
        face = {n for c in self.contexts for n, p in c.face.items() if p > 0}
        speech = {n for c in self.contexts for n, p in c.speech.items() if p > 0}
        for d in self.drift:
            face |= {n for n, p in (d.face or {}).items() if p > 0}
            speech |= {n for n, p in (d.speech or {}).items() if p > 0}
        return face, speech
