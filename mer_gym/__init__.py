"""mer-gym: a Gymnasium testbed for RL personalization of multimodal (face + speech) emotion recognition.

Subpackages:
    mer_gym.labels         the six canonical emotions shared by every modality and dataset
    mer_gym.datasets       loaders for FER-2013, CK+, EMO-DB, RAVDESS and CREMA-D on disk
    mer_gym.preprocessing  the paper's §5.1 face and §5.2 speech preprocessing
    mer_gym.envs           the Gymnasium environments (registered below)
    simulators.corpus      the generated face + speech corpus (the embedded default)
    simulators.users       simulated users, populations and their pre-drawn streams

Registered environment ids (``gymnasium.make(id)``; the package registers them on import):

    mer_gym/Personalization-v0       one user's whole pilot per episode (the paper's pilot population)
    mer_gym/PersonalizationDay-v0    one day per episode; weights and user state carry over
"""

from gymnasium.envs.registration import register, registry

from mer_gym.labels import EMOTIONS, NUM_EMOTIONS

__version__ = "0.1.0"
__all__ = ["EMOTIONS", "ENV_IDS", "NUM_EMOTIONS", "__version__"]

ENV_IDS = ("mer_gym/Personalization-v0", "mer_gym/PersonalizationDay-v0")
_ENTRY = "mer_gym.envs.personalization:PersonalizationEnv"
_VECTOR_ENTRY = "mer_gym.envs.vector:PersonalizationVectorEnv"
for _id, _kwargs in zip(ENV_IDS, ({}, {"episode": "day"}), strict=True):
    if _id not in registry:
        register(
            id=_id,
            entry_point=_ENTRY,
            kwargs=_kwargs,
            # gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point"): N users at once
            vector_entry_point=_VECTOR_ENTRY if not _kwargs else None,
        )
