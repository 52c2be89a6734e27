"""``evaluate_vlm``: a fusion (or plain Gemma 3) checkpoint on a question set's split -> predictions, the accuracy
table with baselines, a plot; everything written into ``out`` (atomically, file by file)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worldrl.evaluation.vlm.items import VLMItem, read_vlm_items
from worldrl.evaluation.vlm.metrics import accuracy_table, fit_answer_prior, format_table
from worldrl.evaluation.vlm.scoring import predict
from worldrl.io import atomic_path, atomic_write_text, write_json


@dataclass
class VLMEvaluation:
    table: dict[str, dict[str, float]]
    records: list[dict[str, Any]]
    out: Path | None

    def summary(self) -> str:
        return format_table(self.table)


def training_items(questions: str | Path | list, split: str) -> list[VLMItem]:
    """The items the answer prior is fitted on: the train split (or, lacking one, the evaluated split itself)."""
    for name in ("train", split):
        try:
            return read_vlm_items(questions, name)
        except Exception:  # noqa: BLE001 - a set without that split: try the next
            continue
    return []


def plot_accuracy(table: dict[str, dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(table)
    x = range(len(kinds))
    acc = [table[k]["accuracy"] for k in kinds]
    err = [[a - table[k]["ci_low"] for a, k in zip(acc, kinds)], [table[k]["ci_high"] - a for a, k in zip(acc, kinds)]]
    fig, ax = plt.subplots(figsize=(1.2 * len(kinds) + 2, 3.5))
    ax.bar(x, acc, yerr=err, capsize=3, color="tab:blue", label="model (95% CI)")
    ax.scatter(
        x, [table[k]["answer_prior"] for k in kinds], marker="D", color="tab:orange", label="answer prior", zorder=3
    )
    chance = [table[k]["chance"] for k in kinds]
    ax.scatter([i for i, c in zip(x, chance) if not math.isnan(c)], [c for c in chance if not math.isnan(c)],
               marker="_", s=400, color="black", label="chance", zorder=3)  # fmt: skip
    ax.set_xticks(list(x), kinds, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def evaluate_vlm(
    model: Any, questions: str | Path | list, split: str = "test", out: str | Path | None = None, batch_size: int = 32
) -> VLMEvaluation:
    items = read_vlm_items(questions, split)
    prior = fit_answer_prior(training_items(questions, split))
    records = predict(model, items, batch_size=batch_size)
    table = accuracy_table(records, items, prior)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "predictions.jsonl", "".join(json.dumps(r) + "\n" for r in records))
        write_json(out / "results.json", {"questions": str(questions), "split": split, "per_type": table})
        atomic_write_text(out / "results.md", format_table(table) + "\n")
        names = questions if isinstance(questions, (list, tuple)) else [questions]
        plot_accuracy(table, out / "accuracy.png", f"{' + '.join(Path(str(q)).name for q in names)} / {split}")
    return VLMEvaluation(table, records, Path(out) if out is not None else None)


__all__ = ["VLMEvaluation", "evaluate_vlm", "plot_accuracy"]
