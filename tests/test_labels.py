import pytest

from mer_gym.labels import EMOTIONS, NUM_EMOTIONS, emotion_index, emotion_name, validate_emotion


def test_canonical_set_is_cremad_six_in_fixed_order():
    assert EMOTIONS == ("anger", "disgust", "fear", "happiness", "sadness", "neutral")
    assert NUM_EMOTIONS == 6


@pytest.mark.parametrize("i, name", list(enumerate(EMOTIONS)))
def test_index_and_name_round_trip(i, name):
    assert emotion_index(name) == i
    assert emotion_name(i) == name


def test_unknown_names_and_indices_are_refused_with_the_allowed_set():
    with pytest.raises(ValueError, match=r"surprise.*anger, disgust"):
        emotion_index("surprise")
    with pytest.raises(ValueError, match="out of range"):
        emotion_name(6)
    with pytest.raises(ValueError, match="label 'calm'"):
        validate_emotion("calm", what="label")
