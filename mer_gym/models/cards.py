"""Model cards: ``<name>.card.json`` (machine-readable) and ``<name>.md`` (a short summary) beside
each model, and the headline table the README shows (``mer-gym models table``).

A card holds the model file's sha256 (checked on every load), its parameter count, the training
corpus and its manifest hash, the full training configuration, the training log (epochs, wall
time) and the held-out evaluation of :func:`mer_gym.models.evaluate.evaluate_all`; the edge
export adds an ``edge`` section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mer_gym.labels import EMOTIONS
from mer_gym.models.evaluate import headline_rows
from mer_gym.models.frozen import MODEL_NAMES, card_path, read_card, write_card

_DESCRIPTION = {
    "face_cnn": (
        "Face CNN, paper Table 5: 112x112x1 gray crop (Haar cascade, histogram equalization) -> "
        "conv 32/64/128 with BatchNorm, two max-pools -> global average pooling (the 128-d face "
        "embedding, layer `face_embedding`) -> Dense 256 ReLU -> Dropout 0.4 -> softmax over the "
        "six canonical emotions. With the paper's 7 classes it has 128,391 parameters (Table 5's "
        "rows; its printed total 128,395 misadds by 4); with 6 classes 128,134."
    ),
    "speech_lstm": (
        "Speech LSTM, paper Table 6: 120 frames x 13 MFCC (16 kHz, pre-emphasis 0.95, 25 ms Hamming "
        "frames, 10 ms hop, 40 Mel bands, CMVN; the middle 120 frames of longer utterances) -> "
        "Masking(0.0) -> LSTM 128 -> LSTM 64 (dropout 0.3 each) -> Dense 128 ReLU (the 128-d speech "
        "embedding, layer `speech_embedding`) -> softmax. 131,335 parameters with 7 classes "
        "(Table 6), 131,206 with 6."
    ),
    "fusion_head": (
        "Fusion head, paper §6.3: [w_face * face embedding, (1 - w_face) * speech embedding] "
        "(256) -> Dense 128 ReLU -> softmax. Trained on the frozen embeddings with w_face drawn "
        "uniformly per sample and whole-modality dropout, so every weight an agent picks gives a "
        "calibrated output. 33,670 parameters with 6 classes."
    ),
}
_MODALITY = {"face_cnn": "face", "speech_lstm": "speech", "fusion_head": "fusion"}


def write_cards(
    models_dir: str | Path,
    *,
    evaluation: dict[str, Any],
    training: dict[str, Any],
    train_config: dict[str, Any],
) -> list[Path]:
    """Write the three cards (JSON + Markdown) into ``models_dir``; returns the JSON paths."""
    models_dir = Path(models_dir)
    paths = []
    corpus = {
        "path": training.get("corpus"),
        "manifest_sha256": training.get("manifest_sha256"),
        "n_train": training.get("n_train"),
        "n_val": training.get("n_val"),
        "n_train_persons": training.get("n_train_persons"),
        "split": "subject-independent: train/val/test identities are disjoint",
    }
    for name in MODEL_NAMES:
        modality = _MODALITY[name]
        log = training.get(modality, {})
        ev = dict(evaluation[modality])
        if modality == "fusion":
            ev["unimodal_agreement"] = evaluation.get("agreement", {})
        fields = {
            "description": _DESCRIPTION[name],
            "classes": list(EMOTIONS),
            "corpus": corpus,
            "preprocessing": {
                "face": training.get("face_preprocessing"),
                "speech": training.get("speech_preprocessing"),
            },
            "train_config": train_config,
            "training": {
                k: log.get(k) for k in ("epochs_run", "best_epoch", "best_val_loss", "wall_time_s")
            }
            | {"val_loss_curve": log.get("history", {}).get("val_loss")},
            "machine": training.get("machine"),
            "evaluation": ev,
        }
        paths.append(write_card(name, models_dir, fields))
        (models_dir / f"{name}.md").write_text(card_markdown(read_card(name, models_dir)))
    return paths


def add_card_section(models_dir: str | Path, name: str, key: str, value: Any) -> Path:
    """Set one top-level section (e.g. ``edge``) of an existing card, keeping the rest."""
    read_card(name, models_dir)  # raises a clear error when there is no card yet
    path = write_card(name, models_dir, {key: value})
    (Path(models_dir) / f"{name}.md").write_text(card_markdown(read_card(name, models_dir)))
    return path


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def card_markdown(card: dict[str, Any]) -> str:
    """The short human-readable card."""
    name = card["name"]
    ev = card.get("evaluation", {})
    lines = [
        f"# Model card: {name}",
        "",
        card.get("description", ""),
        "",
        f"- file: `{card['file']}` ({card['size_bytes'] / 1024:.0f} KiB), sha256 `{card['sha256']}`",
        f"- parameters: {card['params']:,}",
    ]
    corpus = card.get("corpus", {})
    if corpus:
        lines.append(
            f"- trained on: `{corpus.get('path')}` (manifest sha256 `{str(corpus.get('manifest_sha256'))[:16]}…`), "
            f"{corpus.get('n_train')} training / {corpus.get('n_val')} validation samples, "
            f"{corpus.get('n_train_persons')} training identities; {corpus.get('split')}"
        )
    tr = card.get("training", {})
    if tr:
        lines.append(
            f"- training: {tr.get('epochs_run')} epochs (best {tr.get('best_epoch')}, early stopping on "
            f"validation loss), {tr.get('wall_time_s')} s wall time"
        )
    lines += ["", "## Held-out identities", ""]
    if name == "fusion_head":
        lines += _fusion_tables(ev)
    elif ev:
        lines += ["| condition | n | accuracy % | macro-F1 % |", "|---|---:|---:|---:|"]
        lines.append(
            f"| test (conditions as sampled) | {ev['test']['n']} | {_pct(ev['test']['accuracy'])} | "
            f"{_pct(ev['test']['macro_f1'])} |"
        )
        for cond, m in ev.get("conditions", {}).items():
            lines.append(f"| {cond} | {m['n']} | {_pct(m['accuracy'])} | {_pct(m['macro_f1'])} |")
        lines += ["", "Per class (test, conditions as sampled):", ""]
        lines += ["| class | precision % | recall % | F1 % |", "|---|---:|---:|---:|"]
        for cls, m in ev["test"]["per_class"].items():
            lines.append(f"| {cls} | {_pct(m['precision'])} | {_pct(m['recall'])} | {_pct(m['f1'])} |")
        lines += ["", "Confusion matrix (rows true, columns predicted; " + ", ".join(EMOTIONS) + "):", ""]
        lines += ["```", *(" ".join(f"{v:4d}" for v in row) for row in ev["test"]["confusion_matrix"]), "```"]
    edge = card.get("edge")
    if edge:
        lines += ["", "## Edge exports", "", _edge_table(edge)]
    lines += ["", f"The full numbers are in `{name}.card.json`.", ""]
    return "\n".join(lines)


def _fusion_tables(ev: dict[str, Any]) -> list[str]:
    if not ev:
        return []
    weights = list(ev["test"])
    lines = [
        "Accuracy % by face weight w_face (speech weight 1 - w_face):",
        "",
        "| face + speech condition | " + " | ".join(f"w={w}" for w in weights) + " |",
        "|---|" + "---:|" * len(weights),
        "| test (as sampled) | " + " | ".join(_pct(ev["test"][w]["accuracy"]) for w in weights) + " |",
    ]
    for pair, by_w in ev.get("condition_pairs", {}).items():
        lines.append(f"| {pair} | " + " | ".join(_pct(by_w[w]["accuracy"]) for w in weights) + " |")
    ag = ev.get("unimodal_agreement")
    if ag:
        lines += [
            "",
            f"Unimodal models on the test split: both right {_pct(ag['both_right'])} %, only face "
            f"{_pct(ag['only_face_right'])} %, only speech {_pct(ag['only_speech_right'])} %, both wrong "
            f"{_pct(ag['both_wrong'])} %.",
        ]
    return lines


def _edge_table(edge: dict[str, Any]) -> str:
    rows = [
        "| format | size KiB | accuracy % | Δ accuracy (points) | latency median ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for fmt, m in edge.items():
        if not isinstance(m, dict):
            continue
        rows.append(
            f"| {fmt} | {m.get('size_kib', '–')} | {m.get('accuracy', '–')} | "
            f"{m.get('accuracy_change_points', '–')} | {m.get('latency_ms_median', '–')} |"
        )
    return "\n".join(rows)


def headline_table(models_dir: str | Path | None = None) -> str:
    """The README's headline table from the cards: accuracy and macro-F1 per model and condition."""
    cards = {name: read_card(name, models_dir) for name in ("face_cnn", "speech_lstm", "fusion_head")}
    evaluation = {
        "face": cards["face_cnn"]["evaluation"],
        "speech": cards["speech_lstm"]["evaluation"],
        "fusion": cards["fusion_head"]["evaluation"],
    }
    df = headline_rows(evaluation)
    return _markdown(df)


def edge_table(models_dir: str | Path | None = None) -> str:
    """The README's edge table from the cards: size, accuracy, accuracy change and latency per
    model and format. Raises ``KeyError`` when the cards have no ``edge`` section yet."""
    rows = []
    for name in ("face_cnn", "speech_lstm"):
        edge = read_card(name, models_dir)["edge"]
        for fmt, m in edge.items():
            rows.append(
                (
                    name,
                    fmt,
                    m["size_kib"],
                    m["accuracy"],
                    m["accuracy_change_points"],
                    m.get("latency_ms_median", "–"),
                    m.get("latency_ms_p95", "–"),
                )
            )
    df = pd.DataFrame(
        rows,
        columns=["model", "format", "size KiB", "accuracy %", "Δ points", "latency ms (median)", "p95"],
    )
    return _markdown(df)


def _markdown(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


__all__ = [
    "add_card_section",
    "card_markdown",
    "card_path",
    "edge_table",
    "headline_table",
    "write_cards",
]
