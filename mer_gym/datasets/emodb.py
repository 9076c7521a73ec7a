"""EMO-DB (Burkhardt et al. 2005): 535 acted German utterances of 10 speakers, 16 kHz mono.

Layout: ``wav/03a01Fa.wav``: characters 1-2 the speaker, 3-5 the text, 6 the emotion letter (the
German word's initial: W Wut = anger, L Langeweile = boredom, E Ekel = disgust, A Angst = fear,
F Freude = happiness, T Trauer = sadness, N neutral), 7 the take. Note A is *fear* and W is
*anger*: English-initial guesses swap them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from mer_gym.datasets.base import Collector, layout_error, media_folder, sorted_files, speech_record
from mer_gym.datasets.label_maps import label_scheme
from mer_gym.datasets.records import LoadResult

SPEAKER_SEX: dict[str, str] = {
    "03": "male", "10": "male", "11": "male", "12": "male", "15": "male",
    "08": "female", "09": "female", "13": "female", "14": "female", "16": "female",
}  # fmt: skip
"""Speaker code -> sex (P, Burkhardt et al. 2005)."""

TEXTS: tuple[str, ...] = ("a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10")
"""The ten sentence codes (P)."""

_NAME = re.compile(r"^(?P<speaker>\d\d)(?P<text>[ab]\d\d)(?P<emotion>[A-Za-z])(?P<take>[a-z])$")
_EXPECTED = "SSTTTEV.wav, e.g. 03a01Fa.wav (speaker, text, emotion letter, take)"


def parse_name(path: Path) -> dict[str, str]:
    """Split an EMO-DB file name into speaker, text, emotion letter and take.

    Raises:
        DatasetError: If the name does not follow the layout or names an unknown speaker or text.
    """
    m = _NAME.match(path.stem)
    if m is None:
        raise layout_error(path, _EXPECTED, reason="file name does not follow the EMO-DB layout")
    if m["speaker"] not in SPEAKER_SEX:
        raise layout_error(
            path,
            f"a speaker code in {', '.join(sorted(SPEAKER_SEX))}",
            reason="unknown EMO-DB speaker",
        )
    if m["text"] not in TEXTS:
        raise layout_error(
            path, f"a text code in {', '.join(TEXTS)}", reason="unknown EMO-DB text code"
        )
    return m.groupdict()


def load_emodb(
    root: str | Path,
    *,
    label_map: Mapping[str, str | None] | None = None,
    on_error: str = "raise",
    limit: int | None = None,
) -> LoadResult:
    """Load EMO-DB utterances as mono float32 waveforms at their native rate (16 kHz).

    Args:
        root: The EMO-DB folder holding ``wav/`` (or the ``wav`` folder itself).
        label_map: Overrides, EMO-DB native name -> canonical emotion or None; native names are
            anger, boredom, disgust, fear, happiness, sadness, neutral.
        on_error: ``"raise"`` on a bad file, or ``"skip"`` it and account for it.
        limit: Stop after this many records.

    Returns:
        Records with ``speaker="03"``, ``clip_id`` the file stem and ``meta`` holding ``text``,
        ``take``, ``sex``, ``code`` (the letter), ``native_label``, ``channels``, ``downmix``.

    Raises:
        DatasetError: Missing folder, no usable file; with ``on_error="raise"`` a name off the
            layout, an emotion letter outside W L E A F T N, an unreadable or corrupt wav.
    """
    root = Path(root)
    folder = media_folder(root, "wav", (".wav",), what="EMO-DB")
    col = Collector(label_scheme("emodb", label_map), folder, on_error=on_error, limit=limit)
    for path in sorted_files(folder, "*.wav"):
        if col.stop():
            break
        with col.guard(path):
            f = parse_name(path)
            native, label = col.label(f["emotion"], path)
            if label is None:
                continue
            meta = {
                "text": f["text"],
                "take": f["take"],
                "sex": SPEAKER_SEX[f["speaker"]],
                "code": f["emotion"],
                "native_label": native,
            }
            col.add(speech_record("emodb", f["speaker"], label, path, path.stem, meta))
    return col.finish()
