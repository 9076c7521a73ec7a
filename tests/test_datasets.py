"""Tests of mer_gym.datasets on tiny corpora written in the real layouts (tests/dataset_fixtures.py)."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import soundfile as sf
from dataset_fixtures import (
    CREMAD_NAMES,
    fer_pixels,
    write_ckplus,
    write_cremad,
    write_emodb,
    write_fer_csv,
    write_ravdess,
    write_video,
    write_wav,
)

from mer_gym.config import ConfigError
from mer_gym.datasets import (
    LOADERS,
    DatasetError,
    FaceRecord,
    LoadResult,
    SpeechRecord,
    label_scheme,
    load_ckplus,
    load_cremad_faces,
    load_cremad_speech,
    load_emodb,
    load_fer2013,
    load_ravdess_faces,
    load_ravdess_speech,
    pair_clips,
)
from mer_gym.datasets.base import read_middle_frame
from mer_gym.datasets.ravdess import SONG_EXCLUDED
from mer_gym.labels import EMOTIONS

DROPPED = "label {!r} dropped by label map"


def at(thing: object) -> str:
    """``thing`` (a path, a message) as a literal regex, for ``pytest.raises(match=...)``."""
    return re.escape(str(thing))


def by_clip(result: LoadResult) -> dict[str | None, object]:
    return {r.clip_id: r for r in result.records}


# --------------------------------------------------------------------------- label maps


@pytest.mark.parametrize("dataset", ["fer2013", "ckplus", "emodb", "ravdess", "cremad"])
def test_every_table_maps_onto_canonical_or_drops(dataset):
    scheme = label_scheme(dataset)
    targets = {scheme.canonical(n) for n in scheme.native_names}
    assert targets - {None} == set(EMOTIONS), "every canonical class must be reachable"


@pytest.mark.parametrize(
    ("dataset", "code", "expected"),
    [
        ("emodb", "W", "anger"),  # Wut: the A/W trap
        ("emodb", "A", "fear"),  # Angst
        ("emodb", "L", None),
        ("fer2013", "5", None),
        ("fer2013", "6", "neutral"),
        ("ckplus", "2", None),
        ("ckplus", "3", "disgust"),
        ("ravdess", "02", None),
        ("ravdess", "06", "fear"),
        ("cremad", "SAD", "sadness"),
    ],
)
def test_native_codes_map_as_published(dataset, code, expected):
    scheme = label_scheme(dataset)
    assert scheme.canonical(scheme.native_name(code, source="f")) == expected


def test_override_keys_must_be_native_names():
    with pytest.raises(ConfigError, match=r"'calm' is not a native fer2013 label name.*angry"):
        label_scheme("fer2013", {"calm": "neutral"})
    with pytest.raises(ConfigError, match=r"code 'L' is 'boredom'"):
        label_scheme("emodb", {"L": "neutral"})
    with pytest.raises(ConfigError, match=r"label_map\['surprise'\] = 'surprised'"):
        label_scheme("fer2013", {"surprise": "surprised"})
    with pytest.raises(ConfigError, match="unknown dataset 'iemocap'"):
        label_scheme("iemocap")
    assert label_scheme("ravdess", {"calm": "neutral", "happy": None}).canonical("happy") is None


# --------------------------------------------------------------------------- FER-2013


def test_fer_counts_images_and_dropped_surprise(tmp_path, caplog):
    csv_path = write_fer_csv(tmp_path)
    with caplog.at_level(logging.WARNING, logger="mer_gym.datasets"):
        res = load_fer2013(tmp_path)
    assert len(res) == 8
    assert res.counts_by_label() == dict(zip(EMOTIONS, [1, 1, 1, 2, 1, 2], strict=True))
    assert res.counts_by_reason() == {DROPPED.format("surprise"): 2}
    first = res.records[0]
    assert isinstance(first, FaceRecord) and first.subject is None and first.clip_id is None
    assert first.image.shape == (48, 48) and first.image.dtype == np.uint8
    assert first.source == f"{csv_path}:2" and first.meta["usage"] == "Training"
    assert [int(r.image[0, 0]) for r in res.records] == [0, 10, 20, 30, 40, 60, 70, 90]
    assert "skipped 2" in caplog.text and "surprise" in caplog.text


def test_fer_usage_filter_override_limit_and_paths(tmp_path):
    csv_path = write_fer_csv(tmp_path / "fer2013")
    public = load_fer2013(csv_path, usage="PublicTest")
    assert [r.label for r in public.records] == ["sadness", "neutral"]
    assert public.counts_by_reason()["usage 'Training' not selected by usage="] == 4
    both = load_fer2013(
        tmp_path, usage=["PublicTest", "PrivateTest"], label_map={"surprise": "fear"}
    )
    assert len(both) == 6 and both.counts_by_label()["fear"] == 2
    assert both.counts_by_reason() == {"usage 'Training' not selected by usage=": 4}
    short = load_fer2013(tmp_path, limit=3)
    assert len(short) == 3 and short.truncated
    assert not load_fer2013(tmp_path, limit=8).truncated
    with pytest.raises(ConfigError, match="usage = 'Test'"):
        load_fer2013(tmp_path, usage="Test")
    with pytest.raises(ConfigError, match="on_error"):
        load_fer2013(tmp_path, on_error="ignore")


def test_fer_header_with_spaces_and_no_usage_column(tmp_path):
    write_fer_csv(tmp_path, [("3", "Training")], header="emotion, pixels, Usage")
    assert load_fer2013(tmp_path).records[0].label == "happiness"
    path = tmp_path / "train.csv"
    path.write_text(f"\ufeffemotion,pixels\n4,{fer_pixels(7)}\n")  # with a byte-order mark
    rec = load_fer2013(path).records[0]
    assert rec.label == "sadness" and rec.meta["usage"] is None
    with pytest.raises(DatasetError, match=r"missing column.*Usage"):
        load_fer2013(path, usage="Training")


def test_fer_bad_input_names_the_file(tmp_path):
    with pytest.raises(DatasetError, match=f"{at(tmp_path)}.*no fer2013.csv"):
        load_fer2013(tmp_path)
    with pytest.raises(DatasetError, match=r"nowhere.*does not exist"):
        load_fer2013(tmp_path / "nowhere")
    bad_header = write_fer_csv(tmp_path / "h", header="emotion,image,Usage")
    with pytest.raises(DatasetError, match=f"{at(bad_header)}: missing column.*pixels"):
        load_fer2013(bad_header)
    short = write_fer_csv(tmp_path / "s", pixels={2: fer_pixels(1, 2303)})
    with pytest.raises(
        DatasetError, match=rf"{at(short)}:4: pixels field has 2303 values; expected 2304"
    ):
        load_fer2013(short)
    with pytest.raises(DatasetError, match=r"fer2013.csv:2: pixels field holds '1.5'"):
        load_fer2013(write_fer_csv(tmp_path / "f", pixels={0: "1.5 " + fer_pixels(1, 2303)}))
    with pytest.raises(DatasetError, match=r"pixel values span 0..300"):
        load_fer2013(write_fer_csv(tmp_path / "r", pixels={0: "300 " + fer_pixels(0, 2303)}))
    code9 = write_fer_csv(tmp_path / "c", [("3", "Training"), ("9", "Training")])
    with pytest.raises(
        DatasetError, match=rf"{at(code9)}:3: label code '9' is not in the fer2013 label set"
    ):
        load_fer2013(code9)


def test_fer_on_error_skip_accounts_for_every_bad_row(tmp_path):
    rows = [
        ("3", "Training"),
        ("9", "Training"),
        ("4", "Validation"),
        ("5", "Training"),
        ("6", "PublicTest"),
    ]
    path = write_fer_csv(tmp_path, rows, pixels={4: fer_pixels(1, 100)})
    res = load_fer2013(path, on_error="skip")
    assert len(res) == 1 and res.records[0].label == "happiness"
    assert res.counts_by_reason() == {
        "label code '9' outside the fer2013 label set": 1,
        "unknown Usage value": 1,
        DROPPED.format("surprise"): 1,
        "pixels field of wrong length (100)": 1,
    }
    assert {s.source for s in res.skipped} == {f"{path}:{n}" for n in (3, 4, 5, 6)}
    assert "skipped 4" in res.summary()


def test_fer_zero_usable_rows_raises(tmp_path):
    path = write_fer_csv(tmp_path, [("5", "Training"), ("5", "PublicTest")])
    with pytest.raises(
        DatasetError, match=rf"(?s){at(tmp_path)}.*no usable fer2013 samples.*surprise"
    ):
        load_fer2013(path)


# --------------------------------------------------------------------------- CK+

CK_SEQUENCES = [
    ("S005", "001", 4, "3"),  # disgust
    ("S010", "002", 3, "7"),  # surprise: dropped
    ("S010", "003", 3, None),  # unlabelled
    ("S011", "001", 5, "1"),  # anger, stored as RGB
]


def test_ckplus_peak_frames_subjects_and_accounting(tmp_path):
    write_ckplus(tmp_path, CK_SEQUENCES, color=frozenset({"S011_001"}))
    res = load_ckplus(tmp_path)
    assert [(r.subject, r.clip_id, r.label) for r in res.records] == [
        ("S005", "S005_001", "disgust"),
        ("S011", "S011_001", "anger"),
    ]
    peak, rgb = res.records
    assert (
        peak.image.shape == (12, 16)
        and peak.image.dtype == np.uint8
        and int(peak.image[0, 0]) == 80
    )
    assert rgb.image.ndim == 2 and int(rgb.image[0, 0]) == 100 and rgb.meta["stored"] == "bgr"
    assert peak.meta["frame"] == 4 and peak.meta["frame_role"] == "peak"
    assert peak.source.endswith("S005_001_00000004.png")
    assert sorted(res.counts_by_reason().values()) == [1, 1]
    assert DROPPED.format("surprise") in res.counts_by_reason()
    assert any("S010/003" in s.source and "no emotion label" in s.reason for s in res.skipped)
    assert res.users() == ["S005", "S011"]


def test_ckplus_first_frame_neutral_and_override(tmp_path):
    root = tmp_path / "release"
    write_ckplus(root / "extended-cohn-kanade-images", CK_SEQUENCES)  # images one level down
    (root / "Emotion_labels").mkdir()
    (root / "extended-cohn-kanade-images" / "Emotion").rename(root / "Emotion_labels" / "Emotion")
    res = load_ckplus(root, first_frame_neutral=True)
    firsts = [r for r in res.records if r.meta["frame_role"] == "first"]
    assert len(res) == 5 and len(firsts) == 3
    assert all(r.label == "neutral" and int(r.image[0, 0]) == 20 for r in firsts)
    over = load_ckplus(
        root, label_map={"surprise": "fear", "neutral": None}, first_frame_neutral=True
    )
    assert over.counts_by_label()["fear"] == 1 and over.counts_by_label()["neutral"] == 0
    assert over.counts_by_reason()[DROPPED.format("neutral")] == 3
    assert len(load_ckplus(root, first_frame_neutral=True, limit=1)) == 1


def test_ckplus_bad_input(tmp_path):
    write_ckplus(tmp_path, [("S005", "001", 4, None)])
    with pytest.raises(DatasetError, match=f"{at(tmp_path)}: no 'Emotion' folder"):
        load_ckplus(tmp_path)
    write_ckplus(tmp_path, [("S020", "001", 2, "1")], label_text={"S020_001": "happy\n"})
    lab = tmp_path / "Emotion/S020/001/S020_001_00000002_emotion.txt"
    with pytest.raises(DatasetError, match=rf"{at(lab)}: label file holds 'happy'"):
        load_ckplus(tmp_path)
    lab.write_text("9.0000000e+00")
    with pytest.raises(
        DatasetError, match=rf"{at(lab)}: label code '9' is not in the ckplus label set"
    ):
        load_ckplus(tmp_path)
    lab.write_text("1.0000000e+00")
    (tmp_path / "cohn-kanade-images/S020/001/S020_001_00000002.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"S020_001_00000002.png: corrupt or unsupported image"):
        load_ckplus(tmp_path)
    lab.rename(lab.with_name("S020_001_00000009_emotion.txt"))
    with pytest.raises(
        DatasetError, match=r"00000009_emotion.txt: its peak frame .* does not exist"
    ):
        load_ckplus(tmp_path)
    write_ckplus(tmp_path, [("S030", "001", 2, "5")])
    res = load_ckplus(tmp_path, on_error="skip")
    assert [r.subject for r in res.records] == ["S030"]
    assert "peak frame image missing" in res.counts_by_reason()


# --------------------------------------------------------------------------- EMO-DB


def test_emodb_letters_speakers_and_the_a_w_trap(tmp_path):
    write_emodb(tmp_path)
    res = load_emodb(tmp_path)
    clips = by_clip(res)
    assert clips["03a01Wa"].label == "anger" and clips["03a01Aa"].label == "fear"
    assert len(res) == 6 and res.counts_by_reason() == {DROPPED.format("boredom"): 1}
    rec = clips["08b02Ec"]
    assert isinstance(rec, SpeechRecord) and rec.speaker == "08" and rec.meta["sex"] == "female"
    assert rec.label == "disgust" and rec.meta["text"] == "b02" and rec.meta["take"] == "c"
    assert rec.sample_rate == 16_000 and rec.waveform.dtype == np.float32 and rec.waveform.ndim == 1
    assert 0.49 < np.abs(rec.waveform).max() <= 0.5 + 1e-4
    assert res.users() == ["03", "08", "16"]
    assert (
        load_emodb(tmp_path / "wav", label_map={"boredom": "neutral"}).counts_by_label()["neutral"]
        == 2
    )


def test_emodb_stereo_is_averaged_and_loads_are_identical(tmp_path):
    write_wav(tmp_path / "wav/10a07Fa.wav", 16_000, channels=2)
    a, b = load_emodb(tmp_path).records[0], load_emodb(tmp_path).records[0]
    assert a.meta["channels"] == 2 and a.meta["downmix"] == "mean of 2 channels"
    stereo, _ = sf.read(str(tmp_path / "wav/10a07Fa.wav"), dtype="float32")
    np.testing.assert_allclose(a.waveform, stereo.mean(axis=1), atol=1e-6)
    assert np.array_equal(a.waveform, b.waveform)


def test_emodb_bad_input(tmp_path):
    write_emodb(tmp_path, ("03a01Fa",))
    bad = tmp_path / "wav/03a01Xa.wav"
    write_wav(bad, 16_000)
    with pytest.raises(
        DatasetError, match=rf"{at(bad)}: label code 'X' is not in the emodb label set.*W \(anger\)"
    ):
        load_emodb(tmp_path)
    bad.unlink()
    odd = write_wav(tmp_path / "wav/hello.wav", 16_000)
    with pytest.raises(
        DatasetError, match=rf"{at(odd)}: file name does not follow the layout.*03a01Fa.wav"
    ):
        load_emodb(tmp_path)
    odd.unlink()
    speaker = write_wav(tmp_path / "wav/05a01Fa.wav", 16_000)
    with pytest.raises(DatasetError, match=rf"{at(speaker)}.*speaker code in 03, 08"):
        load_emodb(tmp_path)
    speaker.unlink()
    corrupt = tmp_path / "wav/09a02Tb.wav"
    corrupt.write_bytes(b"RIFF but not really a wav file")
    with pytest.raises(DatasetError, match=rf"{at(corrupt)}: unreadable or corrupt audio"):
        load_emodb(tmp_path)
    res = load_emodb(tmp_path, on_error="skip")
    assert len(res) == 1 and res.skipped == [(str(corrupt), "unreadable or corrupt audio")]
    with pytest.raises(DatasetError, match=r"missing does not exist: expected the EMO-DB root"):
        load_emodb(tmp_path / "missing")
    (tmp_path / "nowav").mkdir()
    with pytest.raises(DatasetError, match=rf"{at(tmp_path / 'nowav')}: no 'wav' folder"):
        load_emodb(tmp_path / "nowav")
    (tmp_path / "empty" / "wav").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no usable emodb samples"):
        load_emodb(tmp_path / "empty")


# --------------------------------------------------------------------------- RAVDESS


def test_ravdess_speech_fields_song_and_drops(tmp_path):
    write_ravdess(tmp_path / "deep" / "Audio_Speech_Actors_01-24")
    res = load_ravdess_speech(tmp_path)
    assert [(r.speaker, r.label, r.clip_id) for r in res.records] == [
        ("01", "neutral", "01-01-01-01-01-01"),
        ("01", "anger", "01-05-02-02-01-01"),
        ("02", "fear", "01-06-01-01-02-02"),
    ]
    assert res.counts_by_reason() == {
        DROPPED.format("calm"): 1,
        DROPPED.format("surprised"): 1,
        SONG_EXCLUDED: 1,
    }
    angry = res.records[1]
    assert angry.sample_rate == 48_000 and angry.meta["intensity"] == "strong"
    assert angry.meta["sex"] == "male" and res.records[2].meta["sex"] == "female"
    assert angry.meta["statement"] == "Dogs are sitting by the door"
    song = load_ravdess_speech(tmp_path, include_song=True, label_map={"calm": "neutral"})
    assert song.counts_by_label()["happiness"] == 1 and song.counts_by_label()["neutral"] == 2


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("03-01-09-01-01-01-01", "label code '09' is not in the ravdess label set"),
        ("03-01-05-01-01-01-25", "actor field in 01..24, got 25"),
        ("03-01-05-01-01", "seven two-digit fields"),
        ("01-01-05-01-01-01-01", "modality 03"),
        ("03-01-01-02-01-01-01", "RAVDESS has no strong neutral"),
    ],
)
def test_ravdess_bad_names(tmp_path, name, message):
    write_ravdess(tmp_path, ("03-01-05-01-01-01-01",))
    path = write_wav(tmp_path / "Actor_01" / f"{name}.wav", 48_000)
    with pytest.raises(DatasetError, match=rf"{at(path)}.*{at(message)}"):
        load_ravdess_speech(tmp_path)
    assert len(load_ravdess_speech(tmp_path, on_error="skip").skipped) == 1


def test_ravdess_faces_middle_frame_dedup_and_pairing(tmp_path):
    actor = tmp_path / "Actor_01"
    assert write_video(actor / "01-01-05-02-02-01-01.mp4", 7), "cv2.VideoWriter cannot write mp4v here: the video loaders are untested"
    write_video(actor / "02-01-05-02-02-01-01.mp4", 7)  # the same take, video-only
    write_video(actor / "01-01-02-01-01-01-01.mp4", 3)  # calm: dropped
    write_ravdess(tmp_path, ("03-01-05-02-02-01-01", "03-01-01-01-01-01-01"))
    faces = load_ravdess_faces(tmp_path)
    assert len(faces) == 1
    face = faces.records[0]
    assert face.subject == "01" and face.label == "anger" and face.image.ndim == 2
    assert (
        face.image.shape == (24, 32)
        and face.meta["frame_index"] == 3
        and face.meta["n_frames"] == 7
    )
    assert abs(float(face.image.mean()) - 60) < 4
    assert sorted(faces.counts_by_reason()) == sorted(
        [
            DROPPED.format("calm"),
            "duplicate take (its frames were read from another modality's file)",
        ]
    )
    pairs, unmatched = pair_clips(faces, load_ravdess_speech(tmp_path))
    assert [(f.clip_id, s.source.endswith("03-01-05-02-02-01-01.wav")) for f, s in pairs] == [
        ("01-05-02-02-01-01", True)
    ]
    assert unmatched == ["01-01-01-01-01-01"]
    only02 = load_ravdess_faces(tmp_path, modalities=("02",))
    assert only02.records[0].source.endswith("02-01-05-02-02-01-01.mp4")
    with pytest.raises(ConfigError, match="modalities"):
        load_ravdess_faces(tmp_path, modalities=("03",))


def test_middle_frame_seek_and_sequential_agree_and_corrupt_video_raises(tmp_path):
    path = tmp_path / "v.mp4"
    assert write_video(path, 9), "cv2.VideoWriter cannot write mp4v here: the video loaders are untested"
    sought, meta = read_middle_frame(path)
    decoded, meta2 = read_middle_frame(path, seek=False)
    assert meta["frame_index"] == meta2["frame_index"] == 4 and np.array_equal(sought, decoded)
    bad = tmp_path / "Actor_03" / "01-01-05-01-01-01-03.mp4"
    bad.parent.mkdir()
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(
        DatasetError, match=rf"{at(bad)}: (cannot open video|video has no decodable frames)"
    ):
        load_ravdess_faces(tmp_path)


# --------------------------------------------------------------------------- CREMA-D


def test_cremad_speech_ids_demographics_and_folder(tmp_path):
    write_cremad(tmp_path)
    res = load_cremad_speech(tmp_path)
    assert len(res) == 6 and not res.skipped
    assert res.counts_by_label() == dict.fromkeys(EMOTIONS, 1)
    assert [r.clip_id for r in res.records] == sorted(CREMAD_NAMES)
    first = by_clip(res)["1001_IEO_ANG_HI"]
    assert first.speaker == "1001" and first.label == "anger" and first.sample_rate == 16_000
    assert first.meta["sex"] == "male" and first.meta["age"] == 51 and first.meta["level"] == "high"
    assert first.meta["text"] == "It's eleven o'clock"
    assert "sex" not in by_clip(res)["1091_WSI_SAD_HI"].meta
    assert len(load_cremad_speech(tmp_path / "AudioWAV")) == 6
    assert LOADERS["cremad_speech"](tmp_path, limit=2).truncated


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("0999_IEO_ANG_HI", "actor in 1001..1091"),
        ("1001_XYZ_ANG_HI", "sentence code in IEO"),
        ("1001_IEO_BOR_HI", "label code 'BOR' is not in the cremad label set"),
        ("1001_IEO_ANG_ZZ", "level in LO, MD, HI, XX"),
        ("1001_IEO_ANG", "AAAA_SSS_EEE_LL"),
    ],
)
def test_cremad_bad_names(tmp_path, name, message):
    write_cremad(tmp_path, ("1001_IEO_ANG_HI",), demographics=False)
    path = write_wav(tmp_path / "AudioWAV" / f"{name}.wav", 16_000)
    with pytest.raises(DatasetError, match=rf"{at(path)}.*{at(message)}"):
        load_cremad_speech(tmp_path)


def test_cremad_empty_wav_and_faces(tmp_path):
    write_cremad(tmp_path)
    empty = tmp_path / "AudioWAV" / "1076_MTI_SAD_XX.wav"
    sf.write(str(empty), np.zeros(0, np.float32), 16_000)
    with pytest.raises(DatasetError, match=rf"{at(empty)}: audio file holds no samples"):
        load_cremad_speech(tmp_path)
    assert load_cremad_speech(tmp_path, on_error="skip").counts_by_reason() == {"empty audio": 1}
    video = tmp_path / "VideoFlash"
    assert write_video(video / "1001_IEO_ANG_HI.flv", 5), "cv2.VideoWriter cannot write flv here: the video loaders are untested"
    write_video(video / "1001_IEO_ANG_HI.mp4", 5)
    faces = load_cremad_faces(tmp_path)
    assert [(r.subject, r.label, r.meta["frame_index"]) for r in faces.records] == [
        ("1001", "anger", 2)
    ]
    assert abs(float(faces.records[0].image.mean()) - 40) < 4
    assert faces.skipped[0].source.endswith(".mp4") and "duplicate" in faces.skipped[0].reason
    pairs, unmatched = pair_clips(faces, load_cremad_speech(tmp_path, on_error="skip"))
    assert len(pairs) == 1 and len(unmatched) == 5


# --------------------------------------------------------------------------- records


def test_records_validate_and_pairs_must_agree():
    img = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match="2-D uint8"):
        FaceRecord("x", "s", "anger", np.zeros((4, 4, 3), np.uint8), "f.png")
    with pytest.raises(ValueError, match="'surprise' is not a canonical emotion"):
        FaceRecord("x", "s", "surprise", img, "f.png")
    with pytest.raises(ValueError, match="float32"):
        SpeechRecord("x", "s", "anger", np.zeros(4, np.float64), 16_000, "f.wav")
    face = FaceRecord("x", "01", "anger", img, "f.mp4", "c1")
    voice = SpeechRecord("x", "01", "fear", np.zeros(4, np.float32), 16_000, "f.wav", "c1")
    with pytest.raises(DatasetError, match=r"clip c1: face f\.mp4 .* disagree"):
        pair_clips(LoadResult("x", "r", [face]), LoadResult("x", "r", [voice]))
