"""Multimodal physics head (issue 15) on held-out Playground starts: position error against constant velocity.

Loads a trained multimodal run (``worldrl train --config configs/multimodal_playground_cpu.yaml``), takes the run's
validation episodes (never trained on) and the same evenly spaced starts as ``scripts/benchmark_multimodal.py``
(context ``--context`` real steps), and rolls out for ``--horizons``:

* ``model``: the simulator's open-loop rollout (imagined frames, audio and states: what ``WorldModel-v0`` serves);
* ``head, real-frame features``: the physics head alone on its own states, the transformer's features computed from
  the real frames (isolates what imagined frames cost the head);
* ``head, no features``: the head on its own states with a zero feature (its state-only physics);
* baselines from the last context state: ``constant velocity`` (p + v t) and ``static`` (p).

Position error: mean distance (m) over the present objects of a start, then averaged over the starts. Also split
into starts whose truth has a velocity event (``|dv| > event_threshold`` of some object within the horizon:
contacts, sliding friction) and free ones, and the share of object-steps where the head's gate opened. Writes
``--out``/physics.json and ``--out``/trajectories.png (x-y paths of the start where constant velocity errs most).

    OMP_NUM_THREADS=1 python scripts/benchmark_multimodal_physics.py --run runs/multimodal_playground_cpu_v5
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import yaml
from tensordict import TensorDict

from worldrl.data import LeRobotDatasetReader, split_episodes
from worldrl.errors import ConfigError
from worldrl.models import load_pretrained
from worldrl.models.multimodal.model import AUDIO_KEY, STATE_KEY
from worldrl.models.multimodal.physics import positions, present, velocities


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="runs/multimodal_playground_cpu_v5", help="a trained multimodal run directory")
    p.add_argument("--weights", choices=["model", "best"], default="model", help="final or best-validation weights")
    p.add_argument("--dataset", default=None, help="dataset root (default: the run's data.root)")
    p.add_argument("--context", type=int, default=8)
    p.add_argument("--horizons", type=int, nargs="+", default=[1, 5, 10, 20])
    p.add_argument("--starts-per-episode", type=int, default=4)
    p.add_argument("--out", default="outputs/benchmark_multimodal_physics")
    return p.parse_args()


def held_out_starts(reader: LeRobotDatasetReader, cfg: dict, context: int, horizon: int, per_episode: int):
    """(validation episodes, first context rows): the run's split, starts evenly spaced in each episode."""
    episodes = [int(e["episode_index"]) for e in reader.episodes]
    _, val = split_episodes(episodes, float(cfg["data"].get("val_fraction", 0.1)), int(cfg.get("seed", 0)))
    starts = []
    for ep in val:
        lo, hi = reader.episode_range(ep)
        last = hi - lo - context - horizon
        if last >= 0:
            starts += [lo + int(o) for o in np.linspace(0, last, per_episode).round().astype(int)]
    return val, starts


def load_windows(reader: LeRobotDatasetReader, camera: str, starts: list[int], length: int) -> dict[str, torch.Tensor]:
    rows = [np.arange(s, s + length) for s in starts]
    out = {camera: torch.stack([torch.as_tensor(reader.frames(camera, r)) for r in rows])}
    for key in (AUDIO_KEY, STATE_KEY, "action"):
        column = reader.column(key)
        out[key] = torch.stack([torch.as_tensor(column[r]) for r in rows])
    return out


@torch.no_grad()
def rollouts(model, w: dict[str, torch.Tensor], context: int, horizon: int) -> dict[str, torch.Tensor]:
    """Real-unit states ``[n, horizon, S]`` of the three model variants (see the module doc) and the gate's
    openings ``[n, horizon, objects]`` in the simulator's rollout."""
    camera, n = model.image_key, w[STATE_KEY].shape[0]
    total = context + horizon
    prev = torch.cat([torch.zeros_like(w["action"][:, :1]), w["action"][:, :-1]], 1)
    is_first = torch.zeros(n, total, dtype=torch.bool)
    is_first[:, 0] = True
    keys = (camera, AUDIO_KEY, STATE_KEY)
    obs = TensorDict({k: w[k][:, :context] for k in keys}, batch_size=[n, context])
    start = model.observe_last(obs, prev[:, :context], is_first[:, :context])
    imagined = model.rollout(start, w["action"][:, context - 1 : total - 1])
    out = {"model": model.decode(imagined)[STATE_KEY].reshape(n, horizon, -1)}
    # the transformer over the real frames (and states) of the whole window: the features a perfect video model gives
    real = model.observe(TensorDict({k: w[k] for k in keys}, batch_size=[n, total]), prev, is_first)
    actions = model.action_norm(w["action"].float())
    features = model.net.predict_next(real["h"], actions, real["phys"][:, :, -1])["feature"]
    head = model.net.physics
    for name, feats in (("head_real_features", features), ("head_no_features", torch.zeros_like(features))):
        guess, states = w[STATE_KEY][:, context - 1].float(), []
        for k in range(horizon):
            guess = head.real_step(feats[:, context - 1 + k], guess)
            states.append(guess)
        out[name] = torch.stack(states, 1)
    # the gate at each imagined step: the state and transformer output that step started from
    phys = head.real(imagined["phys"][:, :, -2])
    h = torch.cat([start["h"][:, None], imagined["h"][:, :-1]], 1)
    feature = model.net.predict_next(h, actions[:, context - 1 : total - 1])["feature"]
    _, gate = head.dynamics(phys, feature)
    out["gate_open"] = (gate > 0) & present(phys, head.layout)
    return out


def position_errors(pred: torch.Tensor, truth: torch.Tensor, here: torch.Tensor, layout) -> torch.Tensor:
    """``[n, H]`` mean distance over each start's present objects."""
    err = (positions(pred, layout) - positions(truth, layout)).norm(dim=-1)
    return (err * here[:, None]).sum(-1) / here.sum(-1).clamp_min(1)[:, None]


def score(model, w: dict[str, torch.Tensor], context: int, horizons: list[int]) -> tuple[list[dict], dict]:
    layout, H = model.layout, max(horizons)
    states = w[STATE_KEY].float()
    last, truth = states[:, context - 1], states[:, context:]
    here = present(last, layout)
    steps = torch.arange(1, H + 1, dtype=torch.float32)[None, :, None, None]
    p0, v0 = positions(last, layout)[:, None], velocities(last, layout)[:, None]
    baselines = {"constant_velocity": p0 + v0 * layout.dt * steps, "static": p0.expand(-1, H, -1, -1)}
    out = rollouts(model, w, context, H)
    dv = (velocities(truth, layout) - torch.cat([v0, velocities(truth, layout)[:, :-1]], 1)).norm(dim=-1)
    event = ((dv > layout.event_threshold) & here[:, None]).any(-1).cumsum(1) > 0  # [n, H]: one happened by step k
    errors = {name: position_errors(out[name], truth, here, layout) for name in out if name != "gate_open"}
    for name, pos in baselines.items():
        err = (pos - positions(truth, layout)).norm(dim=-1)
        errors[name] = (err * here[:, None]).sum(-1) / here.sum(-1).clamp_min(1)[:, None]
    rows = []
    for h in horizons:
        k = h - 1
        row = {"h": h, **{name: float(e[:, k].mean()) for name, e in errors.items()}}
        hit = event[:, k]  # a velocity event happened within the first h steps
        for name in ("model", "constant_velocity"):
            row[f"{name}_event"] = float(errors[name][hit, k].mean()) if hit.any() else float("nan")
            row[f"{name}_free"] = float(errors[name][~hit, k].mean()) if (~hit).any() else float("nan")
        row["event_starts"] = int(hit.sum())
        rows.append(row)
    gate = out["gate_open"]
    extra = {
        "gate_open_share": float(gate.sum() / (here[:, None].expand_as(gate).sum()).clamp_min(1)),
        "worst_start": int(errors["constant_velocity"][:, -1].argmax()),
        "paths": {name: positions(out[name], layout) for name in ("model", "head_no_features")},
        "cv": baselines["constant_velocity"],
    }
    return rows, extra


def render(rows: list[dict], n: int, val: list[int], gate_share: float, context: int) -> str:
    lines = [
        f"Held-out validation episodes {val} ({n} starts), context {context} real steps; position error (m): mean "
        "distance over the present objects, averaged over the starts.",
        "",
        "| steps | model (simulator rollout) | head, real-frame features | head, no features | constant velocity "
        "| static | starts with an event: model / const-vel | free starts: model / const-vel |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['h']} | {r['model']:.4f} | {r['head_real_features']:.4f} | {r['head_no_features']:.4f} | "
            f"{r['constant_velocity']:.4f} | {r['static']:.4f} | {r['event_starts']}: {r['model_event']:.4f} / "
            f"{r['constant_velocity_event']:.4f} | {n - r['event_starts']}: {r['model_free']:.4f} / "
            f"{r['constant_velocity_free']:.4f} |"
        )
    lines += ["", f"Gate open on {100 * gate_share:.1f}% of present object-steps of the simulator rollouts."]
    return "\n".join(lines)


def save_paths(w: dict[str, torch.Tensor], extra: dict, context: int, layout, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    i = extra["worst_start"]
    states = w[STATE_KEY].float()[i]
    here = present(states[context - 1], layout)
    truth = positions(states[context - 1 :], layout)
    fig, ax = plt.subplots(figsize=(6, 5))
    for j in torch.nonzero(here).flatten().tolist():
        ax.plot(truth[:, j, 0], truth[:, j, 1], "k-", lw=2, label="truth" if j == 0 else None)
        start = truth[:1, j]
        for name, style in (("model", "C0-"), ("head_no_features", "C2:")):
            path = torch.cat([start, extra["paths"][name][i, :, j]])
            ax.plot(path[:, 0], path[:, 1], style, label=name if j == 0 else None)
        cv = torch.cat([start, extra["cv"][i, :, j]])
        ax.plot(cv[:, 0], cv[:, 1], "C3--", label="constant velocity" if j == 0 else None)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_aspect("equal")
    ax.legend()
    ax.set_title("held-out start with the largest constant-velocity error")
    fig.tight_layout()
    fig.savefig(out / "trajectories.png", dpi=100)
    plt.close(fig)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    run = Path(args.run)
    weights = run / args.weights if (run / args.weights / "config.json").exists() else run / "model"
    model = load_pretrained(weights).eval()
    if model.layout is None or model.net.physics is None:
        raise ConfigError(f"{weights}: not a multimodal model with a physics head on a known state layout")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    reader = LeRobotDatasetReader(args.dataset or cfg["data"]["root"])
    H = max(args.horizons)
    val, starts = held_out_starts(reader, cfg, args.context, H, args.starts_per_episode)
    print(f"weights {weights}; held-out episodes {val}: {len(starts)} starts", flush=True)
    w = load_windows(reader, model.image_key, starts, args.context + H)
    rows, extra = score(model, w, args.context, args.horizons)
    table = render(rows, len(starts), val, extra["gate_open_share"], args.context)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"weights": str(weights), "rows": rows, "gate_open_share": extra["gate_open_share"]}
    (out / "physics.json").write_text(json.dumps(record, indent=1))
    save_paths(w, extra, args.context, model.layout, out)


if __name__ == "__main__":
    main()
