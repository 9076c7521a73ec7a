"""Builders of tiny corpora in the real datasets' on-disk layouts, for tests/test_datasets.py.

Every file's content encodes where it came from, so a test can check that a record holds the right
file: FER row ``i`` has every pixel ``= 10 * i``; a CK+ frame ``k`` is filled with ``20 * k``; a
wav is a sine whose frequency is given; video frame ``k`` is filled with ``20 * k``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import soundfile as sf

# (emotion code, Usage) of the 10 FER rows: every code 0-6 once, surprise (5) twice.
FER_ROWS: list[tuple[str, str]] = [
    ("0", "Training"),
    ("1", "Training"),
    ("2", "Training"),
    ("3", "Training"),
    ("4", "PublicTest"),
    ("5", "PublicTest"),
    ("6", "PublicTest"),
    ("3", "PrivateTest"),
    ("5", "PrivateTest"),
    ("6", "PrivateTest"),
]


def fer_pixels(value: int, n: int = 48 * 48) -> str:
    """A pixels field of ``n`` copies of ``value``."""
    return " ".join([str(value)] * n)


def write_fer_csv(
    folder: Path,
    rows: list[tuple[str, str]] | None = None,
    *,
    header: str = "emotion,pixels,Usage",
    pixels: dict[int, str] | None = None,
) -> Path:
    """Write ``folder/fer2013.csv``; row ``i`` has every pixel ``10 * i`` unless ``pixels[i]`` is given."""
    rows = FER_ROWS if rows is None else rows
    pixels = pixels or {}
    lines = [header]
    for i, (code, usage) in enumerate(rows):
        lines.append(f"{code},{pixels.get(i, fer_pixels(10 * i))},{usage}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "fer2013.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_ckplus(
    root: Path,
    sequences: list[tuple[str, str, int, str | None]],
    *,
    color: frozenset[str] = frozenset(),
    label_text: dict[str, str] | None = None,
) -> Path:
    """Write CK+ sequences ``(subject, seq, n_frames, label code or None)`` under ``root``.

    Frame ``k`` (1-based) is a 12x16 image filled with ``20 * k``; sequences whose
    ``f"{subject}_{seq}"`` is in ``color`` are written as 3-channel PNGs. The label file holds the
    code as CK+ writes it (``"   3.0000000e+00"``) unless ``label_text`` gives other text.
    """
    label_text = label_text or {}
    for subject, seq, n_frames, code in sequences:
        img_dir = root / "cohn-kanade-images" / subject / seq
        img_dir.mkdir(parents=True, exist_ok=True)
        sid = f"{subject}_{seq}"
        for k in range(1, n_frames + 1):
            img = np.full((12, 16), 20 * k, np.uint8)
            if sid in color:
                img = np.stack([img, img, img], axis=-1)
            assert cv2.imwrite(str(img_dir / f"{sid}_{k:08d}.png"), img)
        if code is not None:
            lab_dir = root / "Emotion" / subject / seq
            lab_dir.mkdir(parents=True, exist_ok=True)
            text = label_text.get(sid, f"   {float(code):.7e}\n")
            (lab_dir / f"{sid}_{n_frames:08d}_emotion.txt").write_text(text)
    return root


def write_wav(
    path: Path, sample_rate: int, *, freq: float = 220.0, seconds: float = 0.05, channels: int = 1
) -> Path:
    """A sine of ``freq`` Hz at amplitude 0.5, 16-bit PCM; extra channels are scaled copies."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    mono = 0.5 * np.sin(2 * np.pi * freq * t)
    data = (
        mono
        if channels == 1
        else np.stack([mono * (c + 1) / channels for c in range(channels)], axis=1)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, sample_rate, subtype="PCM_16")
    return path


def write_video(
    path: Path, n_frames: int, *, size: tuple[int, int] = (32, 24), fps: float = 10.0
) -> bool:
    """Write a video whose frame ``k`` (0-based) is filled with ``20 * k``; False if no writer works."""
    fourcc = "mp4v" if path.suffix == ".mp4" else "FLV1"
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size, True)
    if not writer.isOpened():
        return False
    for k in range(n_frames):
        writer.write(np.full((size[1], size[0], 3), 20 * k, np.uint8))
    writer.release()
    return path.is_file() and path.stat().st_size > 0


EMODB_NAMES: tuple[str, ...] = (
    "03a01Wa",  # anger (W = Wut), male speaker 03
    "03a01Aa",  # fear  (A = Angst)
    "03a01Fa",  # happiness
    "08b02Lb",  # boredom: dropped by default
    "08b02Ec",  # disgust, female speaker 08
    "08b02Ta",  # sadness
    "16a05Nc",  # neutral
)


def write_emodb(root: Path, names: tuple[str, ...] = EMODB_NAMES) -> Path:
    """``root/wav/<name>.wav`` at 16 kHz; file ``i`` is a sine of ``100 * (i + 1)`` Hz."""
    for i, name in enumerate(names):
        write_wav(root / "wav" / f"{name}.wav", 16_000, freq=100.0 * (i + 1))
    return root


RAVDESS_NAMES: tuple[str, ...] = (
    "03-01-01-01-01-01-01",  # neutral, actor 01 (male)
    "03-01-02-02-01-01-01",  # calm: dropped by default
    "03-01-05-02-02-01-01",  # angry, strong
    "03-01-06-01-01-02-02",  # fearful, actor 02 (female)
    "03-01-08-01-01-01-02",  # surprised: dropped by default
    "03-02-03-01-01-01-02",  # song, happy: excluded by default
)


def write_ravdess(root: Path, names: tuple[str, ...] = RAVDESS_NAMES) -> Path:
    """``root/Actor_XX/<name>.wav`` at 48 kHz, in the actor's folder."""
    for name in names:
        write_wav(root / f"Actor_{name[-2:]}" / f"{name}.wav", 48_000)
    return root


CREMAD_NAMES: tuple[str, ...] = (
    "1001_IEO_ANG_HI",
    "1001_TIE_DIS_LO",
    "1001_DFA_FEA_MD",
    "1002_IOM_HAP_XX",
    "1002_IWW_NEU_XX",
    "1091_WSI_SAD_HI",
)


def write_cremad(
    root: Path, names: tuple[str, ...] = CREMAD_NAMES, *, demographics: bool = True
) -> Path:
    """``root/AudioWAV/<name>.wav`` at 16 kHz and, optionally, ``root/VideoDemographics.csv``."""
    for name in names:
        write_wav(root / "AudioWAV" / f"{name}.wav", 16_000)
    if demographics:
        (root / "VideoDemographics.csv").write_text(
            "ActorID,Age,Sex,Race,Ethnicity\n"
            "1001,51,Male,Caucasian,Not Hispanic\n"
            "1002,21,Female,Caucasian,Not Hispanic\n"
        )
    return root
