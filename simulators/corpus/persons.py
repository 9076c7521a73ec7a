"""People of the generated corpus: one face identity, one voice and two expressivities each.

A *person* is what a later simulated user is built from. Besides the geometry of a face and the
acoustics of a voice, every person has a **facial** and a **vocal expressivity** in (0, 1]: the factor
by which a felt emotion's intensity shows in that channel. CREMA-D's raters found the channels differ
in reliability per actor far more than on average (simulator-facts §2, P); personalizing the fusion
weights only matters because of that, so expressivity is a first-class, configurable parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
from scipy.stats import norm

from mer_gym.config import ConfigError, check_interval, check_range
from simulators.corpus.faces import FaceIdentity
from simulators.corpus.speech import VoiceIdentity

SPLITS: Final[tuple[str, ...]] = ("train", "val", "test", "user_pool")
"""Identity splits. ``user_pool`` persons are never seen in training: simulated users come from it."""

SEXES: Final[tuple[str, ...]] = ("female", "male")


@dataclass(frozen=True)
class ExpressivitySpec:
    """Distribution of per-person expressivity (D: design defaults, no published numbers).

    Each expressivity is uniform on its interval; ``correlation`` couples the two channels through a
    Gaussian copula (0: independent; negative: people who show much in the face tend to show less in
    the voice).
    """

    face: tuple[float, float] = (0.35, 1.0)
    voice: tuple[float, float] = (0.35, 1.0)
    correlation: float = 0.0

    def __post_init__(self) -> None:
        check_interval("expressivity.face", self.face, 0.0, 1.0)
        check_interval("expressivity.voice", self.voice, 0.0, 1.0)
        check_range("expressivity.correlation", self.correlation, -0.99, 0.99)

    def sample(self, rng: np.random.Generator) -> tuple[float, float]:
        """Draw (facial, vocal) expressivity."""
        cov = np.array([[1.0, self.correlation], [self.correlation, 1.0]])
        z = rng.multivariate_normal(np.zeros(2), cov, method="cholesky")
        u = norm.cdf(z)
        face = self.face[0] + u[0] * (self.face[1] - self.face[0])
        voice = self.voice[0] + u[1] * (self.voice[1] - self.voice[0])
        return float(face), float(voice)


@dataclass(frozen=True)
class Person:
    """One generated person: identity, split and how expressive each channel is."""

    person_id: str
    index: int
    split: str
    sex: str
    facial_expressivity: float
    vocal_expressivity: float
    face: FaceIdentity = field(repr=False)
    voice: VoiceIdentity = field(repr=False)

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ConfigError(f"person {self.person_id}: split {self.split!r} is not one of {SPLITS}")
        if self.sex not in SEXES:
            raise ConfigError(f"person {self.person_id}: sex {self.sex!r} is not one of {SEXES}")
        check_range(f"person {self.person_id}: facial_expressivity", self.facial_expressivity, 0.0, 1.0)
        check_range(f"person {self.person_id}: vocal_expressivity", self.vocal_expressivity, 0.0, 1.0)


def person_rng(seed: int, index: int) -> np.random.Generator:
    """The generator that draws person ``index``'s identity: independent of every other person."""
    return np.random.default_rng([seed, 0, index])


def sample_person(seed: int, index: int, split: str, expressivity: ExpressivitySpec) -> Person:
    """Draw person ``index`` of a corpus with ``seed``; the same arguments give the same person."""
    rng = person_rng(seed, index)
    sex = SEXES[int(rng.integers(len(SEXES)))]
    face_expr, voice_expr = expressivity.sample(rng)
    face = FaceIdentity.sample(rng, sex=sex)
    voice = VoiceIdentity.sample(rng, sex=sex)
    return Person(
        person_id=f"p{index:04d}",
        index=index,
        split=split,
        sex=sex,
        facial_expressivity=face_expr,
        vocal_expressivity=voice_expr,
        face=face,
        voice=voice,
    )


def sample_people(
    seed: int, counts: dict[str, int], expressivity: ExpressivitySpec
) -> list[Person]:
    """Draw every person of a corpus, split by ``counts`` (split name → number of persons).

    Persons are numbered consecutively over the splits in ``SPLITS`` order, so identities in
    different splits are disjoint by construction.
    """
    unknown = set(counts) - set(SPLITS)
    if unknown:
        raise ConfigError(f"unknown split(s) {sorted(unknown)}: expected a subset of {SPLITS}")
    people: list[Person] = []
    for split in SPLITS:
        n = counts.get(split, 0)
        if n < 0:
            raise ConfigError(f"persons.{split} = {n}: expected a count >= 0")
        start = len(people)
        people.extend(sample_person(seed, start + i, split, expressivity) for i in range(n))
    return people
