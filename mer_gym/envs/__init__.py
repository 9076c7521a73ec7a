"""The Gymnasium environments of mer-gym (registered in :mod:`mer_gym` as ``mer_gym/...-v0``)."""

from mer_gym.envs.fusion import FUSION_MODES
from mer_gym.envs.personalization import PersonalizationEnv
from mer_gym.envs.reward import FeedbackReward, OracleReward, RewardSignal
from mer_gym.envs.vector import PersonalizationVectorEnv

__all__ = [
    "FUSION_MODES",
    "FeedbackReward",
    "OracleReward",
    "PersonalizationEnv",
    "PersonalizationVectorEnv",
    "RewardSignal",
]
