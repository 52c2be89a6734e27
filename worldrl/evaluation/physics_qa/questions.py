"""Question makers: one function per type, each turning a rollout into items whose answers the simulation decides.

Types (``QUESTION_TYPES``), after the benchmarks VLM papers report: ``predictive`` (Physion's "will A touch B within
1 s?" from the first frames), ``temporal`` ("which happens first?"), ``descriptive`` (counts, colours, first mover;
CLEVRER), ``explanatory`` ("which object made X move?"), ``counterfactual`` (answered by re-simulating with one object
removed), ``quantitative`` (where X will be after N frames, within a tolerance) and ``plausibility`` (IntPhys pairs:
the clip as simulated, and edited so an object vanishes, teleports or passes through another).

A maker returns ``Draft`` items; ``generate`` balances them, assigns splits and writes media. ``evidence`` holds the
event-log entries that decide the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from worldrl.evaluation.physics_qa.simulate import Edit, Rollout, simulate
from worldrl.tasks.scenes.events import Event
from worldrl.tasks.scenes.materials import COLOURS

YES_NO = ("yes", "no")
QUESTION_TYPES = (
    "predictive",
    "temporal",
    "descriptive",
    "explanatory",
    "counterfactual",
    "quantitative",
    "plausibility",
)
BINARY_TYPES = ("predictive", "counterfactual", "plausibility")
CHOICE_TYPES = ("temporal", "descriptive", "explanatory")
CONTEXT_FRAMES = 8
"""Frames shown as context (0.16 s at 50 frames/s)."""
HORIZON_S = 1.0
TOLERANCE_M = 0.1
"""Quantitative answers are right within this distance (m) of the simulated position."""


@dataclass
class Draft:
    type: str
    question: str
    choices: list[str]
    answer: str
    evidence: list[dict[str, Any]] = field(default_factory=list)
    tolerance: float = float("nan")
    clip: str = "clip"
    """Which clip of the scene the item shows: ``clip`` (as simulated) or an edit's name."""
    pair_id: str = ""
    target: list[float] = field(default_factory=list)
    """Quantitative items: the exact answer as numbers."""
    baseline: list[float] = field(default_factory=list)
    """Quantitative items: the stay-put guess (the position in the last context frame)."""


def label(name: str) -> str:
    """``red_sphere`` -> ``the red sphere``; fixtures (``floor``) -> ``the floor``."""
    return "the " + name.replace("_", " ")


def _is_object(rollout: Rollout, name: str) -> bool:
    return name in rollout.scene.names()


def _first_contacts(rollout: Rollout) -> list[Event]:
    seen, out = set(), []
    for e in rollout.events:
        if e.kind == "contact" and e.objects not in seen:
            seen.add(e.objects)
            out.append(e)
    return out


def predictive(rollout: Rollout, rng: np.random.Generator) -> list[Draft]:
    start = CONTEXT_FRAMES * rollout.dt
    names, out = rollout.scene.names(), []
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    rng.shuffle(pairs)
    for a, b in pairs[:3]:
        t = rollout.contact_time(a, b)
        if t is not None and t <= start:
            continue  # already touching within the context: nothing to predict
        yes = t is not None and t <= start + HORIZON_S
        evidence = [e.to_dict() for e in rollout.events if e.kind == "contact" and set(e.objects) == {a, b}][:1]
        out.append(
            Draft(
                "predictive",
                f"Will {label(a)} touch {label(b)} within {HORIZON_S:g} second after the last context frame?",
                list(YES_NO),
                "yes" if yes else "no",
                evidence,
            )
        )
    return out


def _phrase(e: Event) -> str:
    if e.kind == "contact":
        return f"{label(e.objects[0])} touches {label(e.objects[1])}"
    return {
        "motion": f"{label(e.objects[0])} starts moving",
        "fall": f"{label(e.objects[0])} falls over",
        "left_table": f"{label(e.objects[0])} leaves the table",
        "entered_goal": f"{label(e.objects[0])} enters the goal zone",
    }[e.kind]


def temporal(rollout: Rollout, rng: np.random.Generator) -> list[Draft]:
    events = [e for e in _first_contacts(rollout) if e.objects[0] != "floor" and e.objects[1] != "floor"]
    events += [e for e in rollout.events if e.kind in ("fall", "left_table", "motion")]
    gap = 2 * rollout.dt
    pairs = [
        (x, y)
        for i, x in enumerate(events)
        for y in events[i + 1 :]
        if abs(x.time - y.time) >= gap and _phrase(x) != _phrase(y)
    ]
    if not pairs:
        return []
    x, y = pairs[int(rng.integers(len(pairs)))]
    first = x if x.time < y.time else y
    return [
        Draft("temporal", "Which happens first?", [_phrase(x), _phrase(y)], _phrase(first), [x.to_dict(), y.to_dict()])
    ]


def _options(answer: str, pool: list[str], k: int, rng: np.random.Generator) -> list[str]:
    others = [p for p in dict.fromkeys(pool) if p != answer]
    picked = [str(p) for p in rng.choice(others, min(k - 1, len(others)), replace=False)] if others else []
    return [answer, *picked]


def descriptive(rollout: Rollout, rng: np.random.Generator) -> list[Draft]:
    names = rollout.scene.names()
    moved = [n for n in names if rollout.moved(n)]
    motion = [e.to_dict() for e in rollout.events if e.kind == "motion"]
    count = str(len(moved))
    out = [
        Draft(
            "descriptive",
            "How many objects move during the video?",
            _options(count, [str(i) for i in range(7)], 4, rng),
            count,
            motion,
        )
    ]
    onsets = [e for e in rollout.events if e.kind == "motion"]
    if len(onsets) >= 2 and onsets[1].time - onsets[0].time >= 2 * rollout.dt:
        colour = rollout.scene.object(onsets[0].objects[0]).colour
        pool = [rollout.scene.object(n).colour for n in names] + list(COLOURS)
        out.append(
            Draft(
                "descriptive",
                "What colour is the object that starts moving first, among those at rest at the start?",
                _options(colour, pool, 4, rng),
                colour,
                [onsets[0].to_dict(), onsets[1].to_dict()],
            )
        )
    return out


def explanatory(rollout: Rollout, rng: np.random.Generator) -> list[Draft]:
    out = []
    for m in (e for e in rollout.events if e.kind == "motion"):
        x = m.objects[0]
        causes = [
            e
            for e in rollout.events
            if e.kind == "contact" and x in e.objects and m.time - 0.1 <= e.time <= m.time + rollout.dt / 2
        ]
        movers = {o for e in causes for o in e.objects if o != x and _is_object(rollout, o)}
        if len(movers) != 1:
            continue
        cause = label(movers.pop())
        pool = [label(n) for n in rollout.scene.names() if n != x] + ["none of the objects", "the floor"]
        out.append(
            Draft(
                "explanatory",
                f"Which object made {label(x)} start moving?",
                _options(cause, pool, 3, rng),
                cause,
                [c.to_dict() for c in causes] + [m.to_dict()],
            )
        )
    return out[:2]


def counterfactual(rollout: Rollout, rng: np.random.Generator, steps: int) -> list[Draft]:
    scene = rollout.scene
    if len(scene.objects) < 3:
        return []
    moved = [
        n
        for n in scene.names()
        if rollout.moved(n) and any(e.kind == "motion" and e.objects == (n,) for e in rollout.events)
    ]
    if not moved:
        return []
    b = moved[int(rng.integers(len(moved)))]
    removable = [n for n in scene.names() if n != b]
    a = removable[int(rng.integers(len(removable)))]
    alternative = simulate(scene.without(a), steps)
    still = alternative.moved(b)
    evidence = [e.to_dict() for e in rollout.events if e.kind == "motion" and e.objects == (b,)]
    evidence += [
        {**e.to_dict(), "counterfactual": True} for e in alternative.events if e.kind == "motion" and e.objects == (b,)
    ]
    return [
        Draft(
            "counterfactual",
            f"If {label(a)} were removed from the scene, would {label(b)} still move?",
            list(YES_NO),
            "yes" if still else "no",
            evidence,
        )
    ]


def quantitative(rollout: Rollout, rng: np.random.Generator) -> list[Draft]:
    names = rollout.scene.names()
    moved = [n for n in names if rollout.moved(n)]
    name = (moved or names)[int(rng.integers(len(moved or names)))]
    frames = int(rng.choice([25, 50]))
    t = min(CONTEXT_FRAMES - 1 + frames, len(rollout.positions) - 1)
    i = names.index(name)
    x, y = rollout.positions[t, i, :2]
    bx, by = rollout.positions[CONTEXT_FRAMES - 1, i, :2]
    return [
        Draft(
            "quantitative",
            f"Where will the centre of {label(name)} be {t - CONTEXT_FRAMES + 1} frames after "
            f"the last context frame ({(t - CONTEXT_FRAMES + 1) * rollout.dt:.2f} s)? Answer 'x, y' in metres "
            f"on the floor (x right, y away from the camera); within {TOLERANCE_M} m counts as right.",
            [],
            f"{x:.3f}, {y:.3f}",
            tolerance=TOLERANCE_M,
            target=[float(x), float(y)],
            baseline=[float(bx), float(by)],
        )
    ]


def plausibility_edits(rollout: Rollout, rng: np.random.Generator) -> list[tuple[str, Edit | tuple[str, str]]]:
    """The impossible versions of this scene worth rendering: (name, Edit or an object pair to pass through)."""
    moved = [n for n in rollout.scene.names() if rollout.moved(n)]
    if not moved:
        return []
    options: list[tuple[str, Edit | tuple[str, str]]] = []
    obj = moved[int(rng.integers(len(moved)))]
    frame = int(rng.integers(CONTEXT_FRAMES, max(CONTEXT_FRAMES + 1, len(rollout.qpos) // 2)))
    options.append(("vanish", Edit("vanish", obj, frame)))
    angle = float(rng.uniform(0, 2 * np.pi))
    options.append(("teleport", Edit("teleport", obj, frame, (0.35 * np.cos(angle), 0.35 * np.sin(angle), 0.0))))
    touching = [e.objects for e in _first_contacts(rollout) if all(_is_object(rollout, o) for o in e.objects)]
    if touching:
        options.append(("pass_through", touching[0]))
    name, edit = options[int(rng.integers(len(options)))]
    return [(name, edit)]


def plausibility(rollout: Rollout, edit_name: str, edit: Any, pair_id: str) -> list[Draft]:
    q = "Is this video physically possible?"
    how = edit.__dict__ if isinstance(edit, Edit) else {"kind": "pass_through", "objects": list(edit)}
    return [
        Draft("plausibility", q, list(YES_NO), "yes", [], clip="clip", pair_id=pair_id),
        Draft("plausibility", q, list(YES_NO), "no", [{"edit": edit_name, **how}], clip=edit_name, pair_id=pair_id),
    ]


__all__ = [
    "BINARY_TYPES",
    "CHOICE_TYPES",
    "CONTEXT_FRAMES",
    "QUESTION_TYPES",
    "TOLERANCE_M",
    "YES_NO",
    "Draft",
    "counterfactual",
    "descriptive",
    "explanatory",
    "label",
    "plausibility",
    "plausibility_edits",
    "predictive",
    "quantitative",
    "temporal",
]
