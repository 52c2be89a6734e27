"""Does a PushT pixel world model see the block? Filtering against imagination, blend against paint.

``scripts/benchmark_robot.py pusht-pixels`` trains the vrnn on 96x96 PushT frames; its imagined block stays where
the last real frame had it. This asks where the block is lost, on the validation windows (the trainer's split) in
which the block moves most:

- *filtering*: the model observes every frame of the window and decodes its posterior state, with the window's
  first frame as the reference (as in training). If the block is lost here, the latent never held it.
- *imagined*: the model observes the first frame and rolls the recorded actions out (what planning sees).
- *paint only*: the decoder's own frame without the reference blend (``has_reference`` off), i.e. what the latent
  says the frame is (for a model with ``reference_features`` this also hides the encoded reference from the
  decoder: the latent vector alone); *z zeroed*: the filtering decode with the stochastic latent set to zero (the decoder ignores
  z when this changes nothing, which the training metric ``z_used`` ~1 also says).

The error is measured where the block is, at the start or now (pixels of gym-pusht's block colour), beside
repeating the start frame and the recording's mean frame. Prints a table and writes a PNG of one window.

    python scripts/pusht_pixel_diagnosis.py --model outputs/benchmark_robot/pusht/pixel_model_run/model \\
        --data outputs/benchmark_robot/pusht/pixel_data --png docs/pusht_pixels_diagnosis.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

BLOCK_RGB = np.array([119, 136, 153], dtype=np.float32)
"""gym-pusht draws the T in LightSlateGray."""
BLOCK_TOLERANCE = 40.0
"""Summed absolute RGB distance that still counts as the block (its anti-aliased edges stay out)."""
KEY = "observation.image"
BLOCK_KEYPOINTS = "observation.environment_state"
"""The block's 8 keypoints (x, y in arena pixels) as the pixel copy records them beside the frames."""
MOVED_PX = 1.0
"""A window's block counts as moved when its centre moved more than this many arena pixels."""


def block_mask(frames: np.ndarray) -> np.ndarray:
    """``[..., H, W, 3]`` uint8 frames -> bool ``[..., H, W]``: pixels of the block's colour."""
    return np.abs(frames.astype(np.float32) - BLOCK_RGB).sum(-1) < BLOCK_TOLERANCE


def moving_windows(reader, episodes: list[int], horizon: int, count: int, stride: int = 5) -> list[int]:
    """Global start indices of the ``count`` windows of ``horizon + 1`` frames whose block pixels change most
    between the first and the last frame."""
    scored = []
    for episode in episodes:
        lo, hi = reader.episode_range(episode)
        masks = block_mask(reader.frames(KEY, np.arange(lo, hi)))
        for start in range(0, hi - lo - horizon, stride):
            scored.append((int((masks[start] ^ masks[start + horizon]).sum()), lo + start))
    scored.sort(key=lambda item: -item[0])
    return [start for _, start in scored[:count]]


def filtered_and_imagined(model, frames: torch.Tensor, actions: torch.Tensor):
    """(posterior states of every frame of the window, states imagined from its first frame under the recorded
    actions): what filtering and planning see."""
    batch, steps = frames.shape[:2]
    prev = torch.cat([torch.zeros_like(actions[:, :1]), actions[:, :-1]], 1)
    first = torch.zeros(batch, steps, dtype=torch.bool)
    first[:, 0] = True
    post = model.observe(frames, prev, first)
    return post, model.rollout(model.observe_last(frames[:, :1], prev[:, :1], first[:, :1]), actions[:, :-1])


def decoded_rows(model, frames: torch.Tensor, actions: torch.Tensor) -> dict[str, np.ndarray]:
    """Predictions of frames 1..H of ``frames [B, H+1, 96, 96, 3]`` under ``actions [B, H+1, A]`` (action t leads
    from frame t to t+1), each ``[B, H, 96, 96, 3]`` float."""
    batch, steps = frames.shape[:2]
    with torch.no_grad():
        post, imagined = filtered_and_imagined(model, frames, actions)
        post["reference"] = frames[:, :1].round().to(torch.uint8).expand(-1, steps, -1, -1, -1).clone()
        post["reference_age"] = torch.arange(steps).expand(batch, -1).clone()
        rows = {
            "filtering, blended": model.decode(post)[:, 1:],
            "filtering, paint only": model.decode(_without_reference(post))[:, 1:],
            "filtering, z zeroed": model.decode(_without_z(post))[:, 1:],
            "imagined, blended": model.decode(imagined),
            "imagined, paint only": model.decode(_without_reference(imagined)),
        }
    return {name: value.float().numpy() for name, value in rows.items()}


def supervision_rows(
    model, frames: torch.Tensor, actions: torch.Tensor, start: dict[str, np.ndarray]
) -> dict[str, dict[str, np.ndarray]]:
    """For a model with ``supervision_keys``: what its heads read at steps 1..H, filtering and imagined (as in
    ``decoded_rows``), ``{row: {key: [B, H, size]}}``; empty for a model without them. A head trained on motions
    (``supervision_motion``) is read on the imagined states only, as the ``start`` values ``{key: [B, 1, size]}``
    plus the motion it predicts since then."""
    if getattr(model, "supervision", None) is None:
        return {}
    with torch.no_grad():
        post, imagined = filtered_and_imagined(model, frames, actions)
        if model.supervision.motion:
            moved = model.predict_supervision(imagined)
            return {"imagined: start + predicted motion": {k: start[k] + v.float().numpy() for k, v in moved.items()}}
        rows = {"filtering": model.predict_supervision(post[:, 1:]), "imagined": model.predict_supervision(imagined)}
    return {name: {k: v.float().numpy() for k, v in row.items()} for name, row in rows.items()}


def print_supervision_table(rows: dict[str, dict[str, np.ndarray]], truth: dict[str, np.ndarray], horizons) -> None:
    """RMSE per key (dataset units; PushT keypoints in pixels of its 512x512 arena) at ``horizons``, beside
    repeating the start's values."""
    for key, values in truth.items():
        table = {"repeat the start": np.repeat(values[:, :1], values.shape[1] - 1, 1)}
        table.update({name: row[key] for name, row in rows.items()})
        header = " | ".join(f"{h} step{'s' * (h > 1)}" for h in horizons)
        print(f"\n{key} read from the latent (supervision heads), RMSE:\n\n| prediction | {header} |")
        print("|---" * (len(horizons) + 1) + "|")
        for name, pred in table.items():
            err = np.sqrt(((pred - values[:, 1:]) ** 2).mean(axis=(0, 2)))
            print(f"| {name} | " + " | ".join(f"{err[h - 1]:.1f}" for h in horizons) + " |")
        if key == BLOCK_KEYPOINTS:
            print(
                f"\nDirection of the block's motion since the start (cosine, predicted against recorded centre "
                f"displacement, windows where it moved > {MOVED_PX} px):\n\n| prediction | {header} |"
            )
            print("|---" * (len(horizons) + 1) + "|")
            for name, row in rows.items():
                found = [motion_direction_cosine(row[key], values, h) for h in horizons]
                print(f"| {name} | " + " | ".join(f"{c:+.2f} (n={n})" for c, n in found) + " |")


def motion_direction_cosine(pred: np.ndarray, values: np.ndarray, horizon: int) -> tuple[float, int]:
    """Mean cosine between the predicted and the recorded displacement of the block's centre (the mean of its 8
    keypoints) from the start to step ``horizon``, over the windows where the recorded centre moved more than
    ``MOVED_PX``; ``pred [B, H, 16]`` are steps 1..H, ``values [B, H + 1, 16]`` steps 0..H. (nan, 0) if none moved."""
    centre = lambda x: x.reshape(*x.shape[:-1], -1, 2).mean(-2)  # noqa: E731
    start = centre(values[:, 0])
    moved, guessed = centre(values[:, horizon]) - start, centre(pred[:, horizon - 1]) - start
    length = np.linalg.norm(moved, axis=-1)
    keep = length > MOVED_PX
    if not keep.any():
        return float("nan"), 0
    dots = (moved[keep] * guessed[keep]).sum(-1)
    cosines = dots / (length[keep] * np.linalg.norm(guessed[keep], axis=-1)).clip(min=1e-9)
    return float(cosines.mean()), int(keep.sum())


def _without_reference(states):
    states = states.clone()
    states["has_reference"] = torch.zeros_like(states["has_reference"])
    return states


def _without_z(states):
    states = states.clone()
    states["z"] = torch.zeros_like(states["z"])
    return states


def region_errors(pred: np.ndarray, truth: np.ndarray, region: np.ndarray, horizons: tuple[int, ...]) -> list[float]:
    """Mean squared error (uint8 units squared, over RGB) inside ``region [B, H, h, w]`` at each of ``horizons``
    (1-based), then over every step."""
    err = ((pred - truth) ** 2).mean(-1)
    at = [float((err[:, h - 1] * region[:, h - 1]).sum() / max(region[:, h - 1].sum(), 1)) for h in horizons]
    return [*at, float((err * region).sum() / max(region.sum(), 1))]


def save_strip(rows: dict[str, np.ndarray], truth: np.ndarray, path: Path, steps: tuple[int, ...]) -> Path:
    """The first window's real frames over each decoded row (the baselines left out) at ``steps`` (1-based)."""
    from worldrl.evaluation.plots import plot_frame_rows

    baselines = ("repeat the start frame", "mean frame of the recording")
    shown = {"real": truth, **{name: value for name, value in rows.items() if name not in baselines}}
    picked = {name: frames[0, [step - 1 for step in steps]] for name, frames in shown.items()}
    title = "PushT pixel vrnn: where the block is lost (held-out window)"
    return plot_frame_rows(picked, path, [f"t+{step}" for step in steps], title)


def main(argv: list[str] | None = None) -> int:
    from worldrl.data import LeRobotDatasetReader, split_episodes
    from worldrl.models.checkpoint import load_pretrained

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="checkpoint directory of a PushT pixel vrnn")
    parser.add_argument("--data", required=True, help="its PushT pixel dataset (LeRobot layout)")
    parser.add_argument("--png", type=Path, default=Path("outputs/pusht_pixels_diagnosis.png"))
    parser.add_argument("--windows", type=int, default=24, help="held-out windows where the block moves most")
    parser.add_argument("--horizon", type=int, default=10)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    model = load_pretrained(args.model)
    if not getattr(model, "uses_reference", False):
        raise SystemExit(f"{args.model}: not a pixel vrnn with a reference frame (reference_frame: true)")
    reader = LeRobotDatasetReader(args.data, video_cache_mb=1024)
    _, val = split_episodes([int(e["episode_index"]) for e in reader.episodes], 0.1, 0)
    starts = moving_windows(reader, val, args.horizon, args.windows)
    span = np.arange(args.horizon + 1)
    frames = np.stack([reader.frames(KEY, start + span) for start in starts])
    actions = reader.column("action")[np.array(starts)[:, None] + span]
    print(f"{len(starts)} held-out windows of {args.horizon} steps (episodes {val}), the block moving most", flush=True)
    sample = np.random.default_rng(0).choice(reader.num_frames, min(2000, reader.num_frames), replace=False)
    mean_frame = reader.frames(KEY, np.sort(sample)).astype(np.float32).mean(0)
    rows = {
        "repeat the start frame": np.repeat(frames[:, :1], args.horizon, 1).astype(np.float32),
        "mean frame of the recording": np.broadcast_to(mean_frame, frames[:, 1:].shape),
    }
    rows.update(decoded_rows(model, torch.from_numpy(frames).float(), torch.from_numpy(actions).float()))
    truth = frames[:, 1:].astype(np.float32)
    masks = block_mask(frames)
    region = masks[:, 1:] | masks[:, :1]  # the block now or where it started
    horizons = tuple(h for h in (1, 5, 10) if h <= args.horizon)
    header = " | ".join(f"{h} step{'s' * (h > 1)}" for h in horizons)
    print(f"\nError where the block is (MSE, uint8 units squared):\n\n| prediction | {header} | all steps |")
    print("|---" * (len(horizons) + 2) + "|")
    for name, pred in rows.items():
        print(f"| {name} | " + " | ".join(f"{e:.0f}" for e in region_errors(pred, truth, region, horizons)) + " |")
    keys = getattr(getattr(model, "supervision", None), "keys", [])
    recorded = {k: reader.column(k)[np.array(starts)[:, None] + span].astype(np.float32) for k in keys}
    start = {k: v[:, :1] for k, v in recorded.items()}
    supervised = supervision_rows(model, torch.from_numpy(frames).float(), torch.from_numpy(actions).float(), start)
    if supervised:
        print_supervision_table(supervised, recorded, horizons)
    save_strip(rows, truth, args.png, tuple(h for h in (1, 3, 6, 10) if h <= args.horizon))
    print(f"\nwrote {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
