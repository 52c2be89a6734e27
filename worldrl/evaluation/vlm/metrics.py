"""Accuracy per question type with 95% Wilson intervals, beside the chance level and an answer-prior baseline.

The answer prior is fitted on the training items: per type, the most common training answer when the item
offers it, else the most common answer position; free-form numeric items use their trivial guess (physics QA's
stay-put position). Chance is the mean of 1/len(choices) (free-form items: none is defined, shown as NaN).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from statistics import NormalDist
from typing import Any

from worldrl.evaluation.vlm.items import VLMItem


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (sound at 0% and 100%, unlike the normal approximation)."""
    if n == 0:
        return math.nan, math.nan
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def fit_answer_prior(train: list[VLMItem]) -> dict[str, tuple[str | None, int]]:
    """Per type: (most common training answer, most common answer position)."""
    answers: dict[str, Counter] = defaultdict(Counter)
    positions: dict[str, Counter] = defaultdict(Counter)
    for item in train:
        if item.choices:
            answers[item.type][item.answer] += 1
            positions[item.type][item.choices.index(item.answer) if item.answer in item.choices else 0] += 1
    return {t: (answers[t].most_common(1)[0][0], positions[t].most_common(1)[0][0]) for t in answers}


def prior_guess(item: VLMItem, prior: dict[str, tuple[str | None, int]]) -> str:
    if not item.choices:
        return ", ".join(f"{v:.3f}" for v in item.baseline) if item.baseline else ""
    answer, position = prior.get(item.type, (None, 0))
    return answer if answer in item.choices else item.choices[min(position, len(item.choices) - 1)]


def accuracy_table(records: list[dict[str, Any]], items: list[VLMItem], prior: dict) -> dict[str, dict[str, float]]:
    """Per type (and ``all``): n, accuracy with its 95% interval, chance, and the prior's accuracy with its own."""
    by_id = {item.id: item for item in items}
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[r["type"]].append(r)
        groups["all"].append(r)
    table = {}
    for kind in sorted(groups, key=lambda k: (k == "all", k)):
        rows = groups[kind]
        n, hits = len(rows), sum(r["correct"] for r in rows)
        prior_hits = sum(by_id[r["id"]].is_correct(prior_guess(by_id[r["id"]], prior)) for r in rows)
        chances = [1 / len(by_id[r["id"]].choices) for r in rows if by_id[r["id"]].choices]
        low, high = wilson_interval(hits, n)
        p_low, p_high = wilson_interval(prior_hits, n)
        table[kind] = {
            "n": n,
            "accuracy": hits / n,
            "ci_low": low,
            "ci_high": high,
            "chance": sum(chances) / len(chances) if len(chances) == n else math.nan,
            "answer_prior": prior_hits / n,
            "prior_ci_low": p_low,
            "prior_ci_high": p_high,
        }
    return table


def format_table(table: dict[str, dict[str, float]]) -> str:
    lines = [
        "| type | n | accuracy [95% CI] | chance | answer prior [95% CI] |",
        "|---|---:|---|---:|---|",
    ]
    for kind, row in table.items():
        chance = "-" if math.isnan(row["chance"]) else f"{row['chance']:.2f}"
        lines.append(
            f"| {kind} | {row['n']} | {row['accuracy']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}] | {chance} | "
            f"{row['answer_prior']:.2f} [{row['prior_ci_low']:.2f}, {row['prior_ci_high']:.2f}] |"
        )
    return "\n".join(lines)


__all__ = ["accuracy_table", "fit_answer_prior", "format_table", "prior_guess", "wilson_interval"]
