"""Personalization policies behind one protocol (:mod:`agents.base`), and a runner.

>>> from agents import make_policy, policy_names
>>> "q-learning" in policy_names() and "equal-weights" in policy_names()
True
>>> make_policy("q-learning").config.alpha, make_policy("q-learning").config.gamma
(0.05, 0.9)
"""

from agents.bandits import LinearThompson, LinUCB
from agents.base import Policy, PolicyError, make_policy, policy, policy_names, register
from agents.bounds import HindsightBest, PerSampleOracle
from agents.fixed import ConfidenceWeighting, FixedWeight, RandomWeight
from agents.online import Hedge
from agents.runner import env_for, play, play_users
from agents.sb3 import SB3Policy
from agents.tabular import QLearning

__all__ = [
    "ConfidenceWeighting",
    "FixedWeight",
    "Hedge",
    "HindsightBest",
    "LinUCB",
    "LinearThompson",
    "PerSampleOracle",
    "Policy",
    "PolicyError",
    "QLearning",
    "RandomWeight",
    "SB3Policy",
    "env_for",
    "make_policy",
    "play",
    "play_users",
    "policy",
    "policy_names",
    "register",
]
