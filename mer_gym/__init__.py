"""mer-gym: a Gymnasium testbed for RL personalization of multimodal (face + speech) emotion recognition.

Subpackages:
    mer_gym.labels         the six canonical emotions shared by every modality and dataset
    mer_gym.datasets       loaders for FER-2013, CK+, EMO-DB, RAVDESS and CREMA-D on disk
    mer_gym.preprocessing  the paper's §5.1 face and §5.2 speech preprocessing
    simulators.corpus      the generated face + speech corpus (the embedded default)
"""

from mer_gym.labels import EMOTIONS, NUM_EMOTIONS

__version__ = "0.1.0"
__all__ = ["EMOTIONS", "NUM_EMOTIONS", "__version__"]
