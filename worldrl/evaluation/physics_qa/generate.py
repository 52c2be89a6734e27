"""Generate a physics question set: scenes -> rollouts -> balanced items -> parquet + images + clips.

``generate(QAConfig(scenes=("drop", "collide"), items=700, out="qa"))`` writes::

    qa/data/{train,val,test}.parquet   one row per item (load with pyarrow or datasets.load_dataset("parquet"))
    qa/scenes/<kind>-<seed>/context_00.png ... the first CONTEXT_FRAMES frames; clip.mp4 (the whole rollout),
                                        <edit>.mp4 (impossible versions), scene.xml (the generated MJCF)
    qa/meta.json                        counts per type, split and answer; chance and answer-prior baselines

Balance: each type gets ``items / 7`` items (the remainder to the first types), shared 80/10/10 over the splits;
yes/no types keep an answer only while it is under half its split's quota, so scenes are drawn until yes and no are
equal in every split; multiple-choice answers are put at each position in turn within each split, so answer
positions are uniform. Splits are by scene seed (a hash of it: 80% train, 10% val, 10% test); every item of a scene
lands in that scene's split.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from worldrl.config_loading import check_fields
from worldrl.data.video import VideoSettings, encode_video
from worldrl.errors import OutputExistsError
from worldrl.evaluation.physics_qa import questions as Q
from worldrl.evaluation.physics_qa.simulate import (
    FPS,
    Edit,
    Rollout,
    render_clip,
    simulate,
)
from worldrl.io import atomic_write_text, write_json
from worldrl.tasks.scenes.kinds import check_kind, sample_scene

SPLITS = ("train", "val", "test")
FLOOR_AREA = 3.0 * 3.0
"""Where a uniform guess of a position would land (m^2), for the quantitative chance level."""


@dataclass
class QAConfig:
    """What to generate and where."""

    out: str | Path
    """Output directory."""
    items: int = 700
    """Items in total, split evenly across the seven question types."""
    scenes: tuple[str, ...] = ("drop", "collide", "roll", "dominoes", "support")
    """Scene kinds, drawn in turn."""
    seed: int = 0
    """Scene seeds are ``seed * 1_000_003 + k`` for the k-th scene."""
    steps: int = 100
    """Frames simulated per scene after the first (2 s at 50 frames/s)."""
    image_size: int = 64
    max_scenes: int | None = None
    """Give up after this many scenes (default: 20 x items); the summary says which quotas stayed short."""
    overwrite: bool = False
    vcodec: str = "libx264"

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.scenes = tuple(self.scenes)
        for kind in self.scenes:
            check_kind(kind)
        check_fields(
            self,
            {
                "items": (self.items >= 1, ">= 1"),
                "scenes": (len(self.scenes) >= 1, "at least one scene kind"),
                "steps": (self.steps >= Q.CONTEXT_FRAMES + 10, f">= {Q.CONTEXT_FRAMES + 10}"),
                "image_size": (self.image_size >= 16 and self.image_size % 2 == 0, "an even number >= 16"),
                "max_scenes": (self.max_scenes is None or self.max_scenes >= 1, ">= 1 or None"),
            },
        )


def split_of(seed: int) -> str:
    """train / val / test (80/10/10) from a hash of the scene seed, independent of the kind drawn in turn."""
    bucket = int(hashlib.sha256(str(seed).encode()).hexdigest(), 16) % 10
    return "train" if bucket < 8 else ("val" if bucket == 8 else "test")


def quotas(items: int) -> dict[str, int]:
    """Items per type; plausibility items come in pairs, so its quota is even."""
    n = len(Q.QUESTION_TYPES)
    out = {t: items // n + (i < items % n) for i, t in enumerate(Q.QUESTION_TYPES)}
    if out["plausibility"] % 2:
        out["plausibility"] -= 1
        out["quantitative"] += 1
    return out


SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}


def split_quotas(units: int) -> dict[str, int]:
    """``units`` shared 80/10/10 over the splits (rounded; the remainder to train)."""
    val, test = round(0.1 * units), round(0.1 * units)
    return {"train": units - val - test, "val": val, "test": test}


class _Budget:
    """What each type, split and answer still needs: every split gets its share of each type's quota, yes/no types
    an equal number of yes and no in every split (the odd item of an odd quota is a train yes)."""

    def __init__(self, items: int):
        self.quota = quotas(items)
        self.caps: dict[tuple, int] = {}
        for kind, q in self.quota.items():
            if kind in Q.BINARY_TYPES:
                for split, n in split_quotas(q // 2).items():
                    self.caps[(kind, split, "yes")] = n + (q % 2 if split == "train" else 0)
                    self.caps[(kind, split, "no")] = n
            else:
                for split, n in split_quotas(q).items():
                    self.caps[(kind, split)] = n
        self.kept: Counter = Counter()

    def _key(self, draft: Q.Draft, split: str) -> tuple:
        return (draft.type, split, draft.answer) if draft.type in Q.BINARY_TYPES else (draft.type, split)

    def room(self, draft: Q.Draft, split: str) -> bool:
        key = self._key(draft, split)
        return self.kept[key] < self.caps[key]

    def take(self, draft: Q.Draft, split: str) -> None:
        self.kept[self._key(draft, split)] += 1

    def full(self, kind: str, split: str | None = None) -> bool:
        return all(self.kept[k] >= n for k, n in self.caps.items() if k[0] == kind and (split is None or k[1] == split))

    def done(self) -> bool:
        return all(self.kept[k] >= n for k, n in self.caps.items())


def _save_png(frame: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame).save(path)


def _drafts(
    rollout: Rollout, budget: _Budget, rng: np.random.Generator, config: QAConfig, scene_id: str, split: str
) -> tuple[list[Q.Draft], dict[str, Any]]:
    """The drafts of one scene that still fit the budget, and the impossible edits they need rendered."""
    makers = {
        "predictive": lambda: Q.predictive(rollout, rng),
        "temporal": lambda: Q.temporal(rollout, rng),
        "descriptive": lambda: Q.descriptive(rollout, rng),
        "explanatory": lambda: Q.explanatory(rollout, rng),
        "counterfactual": lambda: Q.counterfactual(rollout, rng, config.steps),
        "quantitative": lambda: Q.quantitative(rollout, rng),
    }
    kept, edits = [], {}
    for kind, make in makers.items():
        if budget.full(kind, split):
            continue
        for draft in make():
            if budget.room(draft, split):
                budget.take(draft, split)
                kept.append(draft)
    if not budget.full("plausibility", split):
        for name, edit in Q.plausibility_edits(rollout, rng):
            pair = Q.plausibility(rollout, name, edit, f"{scene_id}/{name}")
            if all(budget.room(d, split) for d in pair):
                for d in pair:
                    budget.take(d, split)
                kept += pair
                edits[name] = edit
    return kept, edits


def _render_scene(rollout: Rollout, edits: dict[str, Any], folder: Path, config: QAConfig) -> list[str]:
    """Context PNGs, the clip, the edited clips and the MJCF; returns the context frame paths (relative)."""
    settings = VideoSettings(vcodec=config.vcodec)
    frames = render_clip(rollout, config.image_size)
    context = []
    for i in range(Q.CONTEXT_FRAMES):
        _save_png(frames[i], folder / f"context_{i:02d}.png")
        context.append(f"{folder.parent.name}/{folder.name}/context_{i:02d}.png")
    encode_video(frames, folder / "clip.mp4", FPS, settings)
    for name, edit in edits.items():
        if isinstance(edit, Edit):
            edited = render_clip(rollout, config.image_size, edit=edit)
        else:  # pass through: the same scene simulated without contacts between the two objects
            edited = render_clip(simulate(rollout.scene, config.steps, exclude=edit), config.image_size)
        encode_video(edited, folder / f"{name}.mp4", FPS, settings)
    atomic_write_text(folder / "scene.xml", rollout.xml)
    return context


def _place_answer(draft: Q.Draft, position: int, rng: np.random.Generator) -> tuple[list[str], int]:
    """The choices with the answer at ``position`` (cyclic per type: uniform answer positions)."""
    if not draft.choices:
        return [], -1
    if draft.type in Q.BINARY_TYPES:
        return list(draft.choices), draft.choices.index(draft.answer)
    others = [c for c in draft.choices if c != draft.answer]
    rng.shuffle(others)
    pos = position % len(draft.choices)
    return others[:pos] + [draft.answer] + others[pos:], pos


def _baselines(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Chance level and answer-prior baseline per type, scored on test: the most common train answer when it is among
    the choices, else the most common train answer position; quantitative: the object stays where it was in the last
    context frame."""
    out = {}
    for kind in Q.QUESTION_TYPES:
        rows = [r for r in records if r["type"] == kind]
        if not rows:
            continue
        test = [r for r in rows if r["split"] == "test"] or rows
        train = [r for r in rows if r["split"] == "train"] or rows
        if kind == "quantitative":
            chance = float(np.mean([math.pi * r["tolerance"] ** 2 / FLOOR_AREA for r in rows]))
            hits = [math.dist(r["target"], r["baseline"]) <= r["tolerance"] for r in test]
            prior, how = float(np.mean(hits)), "stay-put: the position in the last context frame"
        else:  # blind guess: the most common train answer when offered, else the most common train position
            chance = float(np.mean([1.0 / len(r["choices"]) for r in rows]))
            majority = Counter(r["answer"] for r in train).most_common(1)[0][0]
            position = Counter(r["answer_index"] for r in train).most_common(1)[0][0]
            guesses = [
                majority if majority in r["choices"] else r["choices"][min(position, len(r["choices"]) - 1)]
                for r in test
            ]
            prior = float(np.mean([g == r["answer"] for g, r in zip(guesses, test)]))
            how = f"{majority!r} when offered, else choice {position}"
        out[kind] = {"chance": chance, "answer_prior": prior, "answer_prior_rule": how, "scored_on": len(test)}
    return out


def _balance(records: list[dict[str, Any]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for kind in Q.QUESTION_TYPES:
        for split in SPLITS:
            rows = [r for r in records if r["type"] == kind and r["split"] == split]
            key = "answer_index" if kind in Q.CHOICE_TYPES else "answer"
            table.setdefault(kind, {})[split] = (
                dict(sorted(Counter(str(r[key]) for r in rows).items()))
                if kind != "quantitative"
                else {"items": len(rows)}
            )
    return table


SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("split", pa.string()),
        ("type", pa.string()),
        ("question", pa.string()),
        ("choices", pa.list_(pa.string())),
        ("answer", pa.string()),
        ("answer_index", pa.int32()),
        ("tolerance", pa.float64()),
        ("target", pa.list_(pa.float64())),
        ("baseline", pa.list_(pa.float64())),
        ("context_frames", pa.list_(pa.string())),
        ("clip", pa.string()),
        ("pair_id", pa.string()),
        ("scene_kind", pa.string()),
        ("scene_seed", pa.int64()),
        ("scene", pa.string()),
        ("initial_state", pa.string()),
        ("mjcf", pa.string()),
        ("evidence", pa.string()),
    ]
)


@dataclass(frozen=True)
class QASummary:
    out: Path
    items: int
    scenes: int
    seconds: float
    per_type: dict[str, int]
    short: dict[str, int]
    """Types whose quota was not met (scene budget exhausted): how many items they lack."""

    @property
    def items_per_second(self) -> float:
        return self.items / max(self.seconds, 1e-9)


def generate(config: QAConfig, *, progress: bool = False) -> QASummary:
    out = Path(config.out)
    if (out / "meta.json").exists() and not config.overwrite:
        raise OutputExistsError(f"{out} already holds a question set; pass overwrite to replace it")
    start = time.time()
    budget, records, scenes = _Budget(config.items), [], 0
    max_scenes = config.max_scenes or 20 * config.items
    positions: Counter = Counter()
    for k in range(max_scenes):
        if budget.done():
            break
        kind = config.scenes[k % len(config.scenes)]
        seed = config.seed * 1_000_003 + k
        split = split_of(seed)
        if all(budget.full(t, split) for t in Q.QUESTION_TYPES):
            continue  # this scene's split is full: draw the next one
        scene = sample_scene(kind, seed)
        rollout = simulate(scene, config.steps)
        rng = np.random.default_rng([seed, 7])
        scene_id = f"{kind}-{seed}"
        drafts, edits = _drafts(rollout, budget, rng, config, scene_id, split)
        scenes += 1
        if not drafts:
            continue
        folder = out / "scenes" / scene_id
        context = _render_scene(rollout, edits, folder, config)
        qpos0 = rollout.qpos[0]
        init = json.dumps(
            {
                "qpos": qpos0.tolist(),
                "qvel": [float(v) for v in np.concatenate([np.asarray(o.velocity) for o in scene.objects])],
            }
        )
        for j, d in enumerate(drafts):
            choices, index = _place_answer(d, positions[(d.type, split)], rng)
            positions[(d.type, split)] += 1
            records.append(
                {
                    "id": f"{scene_id}-{j}",
                    "split": split,
                    "type": d.type,
                    "question": d.question,
                    "choices": choices,
                    "answer": d.answer,
                    "answer_index": index,
                    "tolerance": d.tolerance,
                    "target": d.target,
                    "baseline": d.baseline,
                    "context_frames": context,
                    "clip": f"scenes/{scene_id}/{d.clip}.mp4",
                    "pair_id": d.pair_id,
                    "scene_kind": kind,
                    "scene_seed": seed,
                    "scene": json.dumps(scene.to_dict()),
                    "initial_state": init,
                    "mjcf": f"scenes/{scene_id}/scene.xml",
                    "evidence": json.dumps(d.evidence),
                }
            )
        if progress:
            print(f"\rscenes {scenes}  items {len(records)}/{config.items}", end="", flush=True)
    if progress:
        print()
    (out / "data").mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        rows = [r for r in records if r["split"] == split]
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), out / "data" / f"{split}.parquet")
    seconds = time.time() - start
    per_type = dict(Counter(r["type"] for r in records))
    short = {t: q - per_type.get(t, 0) for t, q in budget.quota.items() if per_type.get(t, 0) < q}
    # (a split whose quota is 0 for a type, e.g. val and test of a tiny set, is simply not asked for)
    write_json(
        out / "meta.json",
        {
            "items": len(records),
            "scenes_simulated": scenes,
            "scene_kinds": list(config.scenes),
            "seed": config.seed,
            "context_frames": Q.CONTEXT_FRAMES,
            "fps": FPS,
            "seconds": seconds,
            "per_type": per_type,
            "short": short,
            "balance": _balance(records),
            "baselines": _baselines(records),
            "note": "answers are facts of the MuJoCo simulation; audio is not used here",
        },
    )
    return QASummary(out, len(records), scenes, seconds, per_type, short)


__all__ = ["SCHEMA", "SPLITS", "QAConfig", "QASummary", "generate", "quotas", "split_of"]
