"""Multimodal physics head (issue 15) on held-out Playground starts: position error against constant velocity.

Loads a trained multimodal run (``worldrl train --config configs/multimodal_playground_cpu.yaml``), takes the run's
validation episodes (never trained on) and the same evenly spaced starts as ``scripts/benchmark_multimodal.py``
(context ``--context`` real steps), and rolls out for ``--horizons``:

* ``model``: the simulator's open-loop rollout (imagined frames, audio and states: what ``WorldModel-v0`` serves);
* ``head, real-frame features``: the physics head alone on its own states, the transformer's features computed from
  the real frames (isolates what imagined frames cost the head);
* ``head, no features``: the head on its own states with a zero feature (its state-only physics);
* baselines from the last context state: ``constant velocity`` (p + v t) and ``static`` (p).

``--finetune-steps N`` first trains the physics head alone on the frozen transformer's features of the run's
training windows (the question of the head, isolated from the video model) and scores the result. With
``--finetune-dataset ROOT`` it trains on the states and actions of another collection of the same scene instead (a
head that reads the state and the action, ``physics_context: action``, needs no frames): how the head scales with
episodes. For example, 2400 collide episodes (about half an hour):

    worldrl collect --env worldrl/Playground-v0 --scene collide --episodes 2400 --max-episode-steps 80 \
        --seed 100000 --out outputs/datasets/playground_collide_state_e2400

Position error: mean distance (m) over the present objects of a start, then averaged over the starts. Also split
into starts whose truth has a velocity event (``|dv| > event_threshold`` of some object within the horizon:
contacts, sliding friction) and free ones, and the share of object-steps where the head's gate opened. Writes
``--out``/physics.json and ``--out``/trajectories.png (x-y paths of the start where constant velocity errs most).

    OMP_NUM_THREADS=1 python scripts/benchmark_multimodal_physics.py --run runs/multimodal_playground_cpu_v19
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
from worldrl.evaluation.stats import mean_ci
from worldrl.models import load_pretrained
from worldrl.models.multimodal.model import AUDIO_KEY, STATE_KEY
from worldrl.models.multimodal.physics import near_another, positions, present, velocities, velocity_events


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="runs/multimodal_playground_cpu_v19", help="a trained multimodal run directory")
    p.add_argument("--weights", choices=["model", "best"], default="model", help="final or best-validation weights")
    p.add_argument("--dataset", default=None, help="dataset root (default: the run's data.root)")
    p.add_argument("--context", type=int, default=8)
    p.add_argument("--horizons", type=int, nargs="+", default=[1, 5, 10, 20])
    p.add_argument("--starts-per-episode", type=int, default=12)
    p.add_argument("--out", default="outputs/benchmark_multimodal_physics")
    p.add_argument(
        "--finetune-steps",
        type=int,
        default=0,
        help="first train the physics head alone this many steps on the frozen transformer's features of the run's "
        "training windows (physics_terms, batch 32, AdamW 1e-3 cosine); saved to --out/model and scored",
    )
    p.add_argument("--finetune-stride", type=int, default=2, help="window stride of the fine-tuning feature cache")
    p.add_argument(
        "--finetune-dataset",
        default=None,
        help="fine-tune on every episode of this dataset's states instead of the run's training windows: a separate "
        "state-only collection of the same scene (more episodes than the run saw); needs physics_context 'action' "
        "(the head then reads no frames) and no scene shared with the held-out episodes (checked by scene seed)",
    )
    p.add_argument(
        "--data-stats",
        action="store_true",
        help="only print the dataset's per-axis velocity spread and how many velocity events are mostly vertical",
    )
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
    features = model.net.predict_next(real["h"], actions, real["phys"][:, :, -1])["physics_feature"]
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
    step_actions = actions[:, context - 1 : total - 1]
    feature = model.net.physics_input(model.net.predict_next(h, step_actions)["feature"], step_actions)
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
        row["model_minus_cv"] = mean_ci((errors["model"][:, k] - errors["constant_velocity"][:, k]).numpy())
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
        f"Held-out validation episodes {val} ({n} starts), context {context} real steps; position error in mm: "
        "mean distance over the present objects, averaged over the starts.",
        "",
        "| steps | model (simulator rollout) | head, real-frame features | head, no features | constant velocity "
        "| static | starts with an event: model / const-vel | free starts: model / const-vel "
        "| model - const-vel per start, mean [95% t-interval] |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mm = {k: 1000 * v for k, v in r.items() if isinstance(v, float)}
        d, lo, hi = r["model_minus_cv"]
        lines.append(
            f"| {r['h']} | {mm['model']:.2f} | {mm['head_real_features']:.2f} | {mm['head_no_features']:.2f} | "
            f"{mm['constant_velocity']:.2f} | {mm['static']:.2f} | {r['event_starts']}: {mm['model_event']:.2f} / "
            f"{mm['constant_velocity_event']:.2f} | {n - r['event_starts']}: {mm['model_free']:.2f} / "
            f"{mm['constant_velocity_free']:.2f} | {1000 * d:+.2f} [{1000 * lo:+.2f}, {1000 * hi:+.2f}] |"
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


@torch.no_grad()
def frozen_features(model, reader, cfg: dict, stride: int, split: str = "train") -> dict[str, torch.Tensor]:
    """What the physics head reads beside the state (``physics_feature``), normalised states and pair masks of the
    run's training (``split="train"``) or validation windows, teacher-forced on the true frames."""
    from worldrl.data import WindowDataset
    from worldrl.training.trainer import collate_windows, to_task_shapes

    episodes = [int(e["episode_index"]) for e in reader.episodes]
    train, val = split_episodes(episodes, float(cfg["data"].get("val_fraction", 0.1)), int(cfg.get("seed", 0)))
    keys = {f"obs/{k}": k for k in model.task.obs_keys}
    keys.update({"action": "action", "reward": "next.reward", "terminated": "next.terminated"})
    ds = WindowDataset(
        reader, keys=keys, window=int(cfg["data"]["window"]), episodes=train if split == "train" else val, stride=stride
    )
    out: dict[str, list[torch.Tensor]] = {"feature": [], "state": [], "pair": []}
    for i in range(0, len(ds), 32):
        batch = to_task_shapes(collate_windows([ds[j] for j in range(i, min(i + 32, len(ds)))]), model.task)
        mask, first = batch["mask"].bool(), batch["is_first"].bool()
        net, _, _, phys = model.teacher_forced(batch["obs"], batch["action"], mask, first)
        out["feature"].append(net["next"]["physics_feature"])
        out["state"].append(phys)
        out["pair"].append(mask[:, 1:] & mask[:, :-1] & ~first[:, 1:])
        print(f"\rfeatures of {min(i + 32, len(ds))}/{len(ds)} {split} windows", end="", flush=True)
    print()
    return {k: torch.cat(v) for k, v in out.items()}


def scene_seeds(reader: LeRobotDatasetReader) -> set[int]:
    """The scene seeds of a Playground recording's episodes (their ``scene.json``)."""
    from worldrl.data.collect_scenes import episode_dir

    return {
        int(json.loads((episode_dir(reader.root, int(e["episode_index"])) / "scene.json").read_text())["seed"])
        for e in reader.episodes
    }


def state_windows(model, reader: LeRobotDatasetReader, window: int, stride: int) -> dict[str, torch.Tensor]:
    """``frozen_features``' layout from states and actions alone, every episode of ``reader``: for a head that
    reads the state and the action (``physics_context: action``) this is exactly what training feeds it."""
    if model.config.physics_context != "action":
        raise ConfigError(
            f"--finetune-dataset needs a head that reads the state and the action (physics_context 'action'); "
            f"this run's reads '{model.config.physics_context}', which needs frames"
        )
    states = torch.as_tensor(np.asarray(reader.column(STATE_KEY), dtype=np.float32))
    actions = torch.as_tensor(np.asarray(reader.column("action"), dtype=np.float32))
    if states.shape[-1] != model.state_dim or actions.shape[-1] != model.task.action_dim:
        raise ConfigError(
            f"{reader.root}: states of {states.shape[-1]} and actions of {actions.shape[-1]} values, the model "
            f"takes {model.state_dim} and {model.task.action_dim}"
        )
    rows = []
    for ep in reader.episodes:
        lo, hi = reader.episode_range(int(ep["episode_index"]))
        rows += [np.arange(s, s + window) for s in range(lo, hi - window + 1, stride)]
    idx = torch.as_tensor(np.stack(rows))
    with torch.no_grad():
        normalised = model.action_norm(actions[idx])
        feature = model.net.physics_input(normalised, normalised)
        state = model.state_norm(states[idx])
    return {"feature": feature, "state": state, "pair": torch.ones(len(idx), window - 1, dtype=torch.bool)}


def finetune_head(model, data: dict[str, torch.Tensor], steps: int, horizon: int) -> None:
    """Train the physics head alone on frozen features (the transformer is untouched)."""
    from worldrl.models.multimodal.physics import physics_terms

    head = model.net.physics.train()
    opt = torch.optim.AdamW(head.parameters(), 1e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(0)
    n = len(data["state"])
    for step in range(steps):
        idx = torch.randint(0, n, (32,), generator=g)
        terms = physics_terms(head, data["feature"][idx], data["state"][idx], data["pair"][idx], horizon)
        loss = sum(terms.values())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
        opt.step()
        schedule.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"head step {step}: " + ", ".join(f"{k} {float(v):.4f}" for k, v in terms.items()), flush=True)
    head.eval()


NEAR = 0.25
"""Metres between object centres within which a velocity event counts as a contact with another object."""


@torch.no_grad()
def contact_table(model, data: dict[str, torch.Tensor]) -> list[dict]:
    """Teacher-forced one-step view of the head on ``data`` (``frozen_features``): per kind of true velocity event
    (another object's centre within ``NEAR``; none near and the object moving faster than 5 cm/s; none near and
    slower), how many there are, how often the gate opens on them, and the error of the head's predicted velocity
    change against predicting no change (|dv|)."""
    head, layout = model.net.physics, model.layout
    now_n, nxt_n = data["state"][:, :-1], data["state"][:, 1:]
    pair = data["pair"]
    now, nxt = head.real(now_n)[pair], head.real(nxt_n)[pair]
    change, gate = head.dynamics(now, data["feature"][:, :-1][pair])
    here = present(now, layout)
    dv = velocities(nxt, layout) - velocities(now, layout)
    event = velocity_events(now, nxt, layout) & here
    near, speed = near_another(now, layout, NEAR), velocities(now, layout).norm(dim=-1)
    kinds = {
        "near another object": near,
        "alone, moving": ~near & (speed > 0.05),
        "alone, slow": ~near & (speed <= 0.05),
    }
    predicted = change[..., layout.velocity[0] : layout.velocity[1]]
    applied = predicted * (gate > 0)[..., None]  # what a rollout step adds: the change where the gate opens
    rows = []
    for name, where in kinds.items():
        m = event & where
        rows.append(
            {
                "kind": name,
                "events": int(m.sum()),
                "gate_recall": float(((gate > 0) & m).sum() / m.sum().clamp_min(1)),
                "dv": float(dv[m].norm(dim=-1).mean()) if m.any() else float("nan"),
                "error": float((predicted - dv)[m].norm(dim=-1).mean()) if m.any() else float("nan"),
                "applied_error": float((applied - dv)[m].norm(dim=-1).mean()) if m.any() else float("nan"),
            }
        )
    free = here & ~event
    rows.append(
        {
            "kind": "no event",
            "events": int(free.sum()),
            "gate_recall": float(((gate > 0) & free).sum() / free.sum().clamp_min(1)),
        }
    )
    return rows


def render_contacts(rows: list[dict]) -> str:
    lines = [
        "Teacher-forced, one step, held-out windows (true states in, the head's predicted velocity change out; "
        f"events: |dv| > event_threshold; near: another object's centre within {NEAR} m):",
        "",
        "| true step | object-steps | gate open | mean abs dv (m/s) | error of the predicted dv (m/s) "
        "| error of the applied (gated) dv (m/s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        dv, err, applied = r.get("dv"), r.get("error"), r.get("applied_error")
        tail = f"{dv:.3f} | {err:.3f} | {applied:.3f}" if dv is not None else "- | - | -"
        lines.append(f"| {r['kind']} | {r['events']} | {100 * r['gate_recall']:.1f}% | {tail} |")
    return "\n".join(lines)


def velocity_event_stats(reader: LeRobotDatasetReader, layout) -> str:
    """Per-axis spread (std over present objects) of the recorded velocities, and the velocity events
    (``|dv| > event_threshold`` between consecutive steps of one episode) whose vertical change exceeds the
    horizontal one: with one scale per axis these weigh (spread_xy / spread_z)^2 more per unit of error."""
    state = torch.as_tensor(reader.column(STATE_KEY), dtype=torch.float32)
    episode = torch.as_tensor(reader.episode_of(np.arange(len(state))))
    here = present(state, layout)
    v = velocities(state, layout)
    spread = v[here].std(0)
    same = episode[1:] == episode[:-1]
    dv = (v[1:] - v[:-1])[same]
    event = (dv.norm(dim=-1) > layout.event_threshold) & here[:-1][same] & here[1:][same]
    vertical = event & (dv[..., 2].abs() > dv[..., :2].norm(dim=-1))
    return (
        f"velocity spread per axis (m/s): x {spread[0]:.3f}, y {spread[1]:.3f}, z {spread[2]:.3f}; "
        f"velocity events: {int(event.sum())}, mostly vertical: {int(vertical.sum())}"
    )


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
    if args.data_stats:
        print(velocity_event_stats(reader, model.layout))
        return
    out = Path(args.out)
    if args.finetune_steps:
        torch.manual_seed(0)
        if args.finetune_dataset:
            extra = LeRobotDatasetReader(args.finetune_dataset)
            shared = scene_seeds(extra) & scene_seeds(reader)
            if shared:
                raise ConfigError(f"{args.finetune_dataset} repeats {len(shared)} scenes of {reader.root}")
            data = state_windows(model, extra, int(cfg["data"]["window"]), args.finetune_stride)
            print(f"fine-tuning on {len(data['state'])} state windows of {args.finetune_dataset}", flush=True)
        else:
            data = frozen_features(model, reader, cfg, args.finetune_stride)
        finetune_head(model, data, args.finetune_steps, model.config.physics_rollout_steps)
        from worldrl.models import save_pretrained

        weights = save_pretrained(model, out / "model")
        print(f"fine-tuned head saved with the model in {weights}", flush=True)
    H = max(args.horizons)
    val, starts = held_out_starts(reader, cfg, args.context, H, args.starts_per_episode)
    print(f"weights {weights}; held-out episodes {val}: {len(starts)} starts", flush=True)
    w = load_windows(reader, model.image_key, starts, args.context + H)
    rows, extra = score(model, w, args.context, args.horizons)
    table = render(rows, len(starts), val, extra["gate_open_share"], args.context)
    stride = int(cfg["data"]["window"]) - 1  # consecutive windows share one step: each transition once
    contacts = contact_table(model, frozen_features(model, reader, cfg, stride, split="val"))
    print(table + "\n\n" + render_contacts(contacts))
    out.mkdir(parents=True, exist_ok=True)
    record = {"weights": str(weights), "rows": rows, "gate_open_share": extra["gate_open_share"], "contacts": contacts}
    (out / "physics.json").write_text(json.dumps(record, indent=1))
    save_paths(w, extra, args.context, model.layout, out)


if __name__ == "__main__":
    main()
