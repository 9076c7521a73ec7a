"""Local differential privacy on the user's feedback, before any policy sees it (the paper's §3.3
and §4.5 ask for privacy-preserving personalization; this makes it measurable).

With ``PersonalizationEnv(privacy_epsilon=ε)``, each interaction's feedback is privatized on the
user's side, and the env, its reward and its ``info`` only ever hold the privatized version:

* **Explicit answers** go through k-ary randomized response (Warner 1965; Kairouz, Oh & Viswanath
  2014): the emotion the user names is reported truthfully with probability
  ``e^ε / (e^ε + 5)``, and otherwise as one of the five other emotions, uniformly. A confirmation is
  then "the reported emotion is the prediction", so confirmations and corrections are privatized
  together. This release is ε-LDP.
* **Implicit cues** (the response time as a share of ``max_response_time_s``, and the engagement
  cue, both in [0, 1]) get Laplace noise of scale ``2 / ε`` each, then are clipped to [0, 1]. The
  pair has L1 sensitivity 2, so this release is ε-LDP too; an interaction with an explicit answer
  spends 2ε in all (sequential composition).

The randomness is pre-drawn per interaction from the stream seed and the user (common random
numbers: every policy meets the same privatized answers), from its own generator, so turning
privacy on changes nothing else in the stream.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from mer_gym.labels import EMOTIONS

__all__ = ["LocalPrivacy", "PrivacyDice", "check_epsilon"]

K = len(EMOTIONS)


def check_epsilon(epsilon: float | None) -> float | None:
    """``epsilon`` if it is None or a finite number > 0, else a ValueError naming it."""
    if epsilon is None:
        return None
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or not math.isfinite(epsilon) or epsilon <= 0:
        raise ValueError(
            f"privacy_epsilon = {epsilon!r}: expected a finite number > 0 (smaller is more private; "
            "e.g. 1.0), or None for no privacy"
        )
    return float(epsilon)


@dataclass(frozen=True)
class PrivacyDice:
    """Pre-drawn randomness of one stream: ``u`` uniform [0, 1), ``offset`` in 1..5 (the other
    emotion a randomized answer names), ``noise_rt`` and ``noise_engagement`` standard Laplace."""

    u: np.ndarray
    offset: np.ndarray
    noise_rt: np.ndarray
    noise_engagement: np.ndarray


@dataclass(frozen=True)
class LocalPrivacy:
    """ε-LDP randomized response on explicit answers and Laplace noise on implicit cues."""

    epsilon: float

    def __post_init__(self) -> None:
        check_epsilon(self.epsilon)

    @property
    def p_truth(self) -> float:
        """Probability that a randomized answer is the true one: ``e^ε / (e^ε + K - 1)``."""
        return 1.0 / (1.0 + (K - 1) * math.exp(-self.epsilon))

    @property
    def laplace_scale(self) -> float:
        """Scale of the Laplace noise on each implicit cue (sensitivity 2 over ε)."""
        return 2.0 / self.epsilon

    @staticmethod
    def dice(n: int, stream_seed: int, user_id: str) -> PrivacyDice:
        """The privacy randomness of a stream of ``n`` interactions (its own generator)."""
        rng = np.random.default_rng([int(stream_seed), zlib.crc32(user_id.encode()), 0x1D9])
        return PrivacyDice(
            u=rng.random(n),
            offset=rng.integers(1, K, size=n),
            noise_rt=rng.laplace(size=n),
            noise_engagement=rng.laplace(size=n),
        )

    def answer(self, answer: int, u: float, offset: int) -> int:
        """The reported emotion (index) for the true ``answer``."""
        return answer if u < self.p_truth else (answer + int(offset)) % K

    def cue(self, value: float, noise: float) -> float:
        """A cue in [0, 1] with Laplace noise (``noise`` standard Laplace), clipped to [0, 1]."""
        return min(1.0, max(0.0, value + self.laplace_scale * noise))
