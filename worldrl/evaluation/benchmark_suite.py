"""``BenchmarkSuite``: open-loop video, audio and physics quality of a ``multimodal`` model on held-out windows.

Each window holds ``context`` real steps and ``max(horizons)`` more: the model sees the context (frames, audio,
state, the real actions) and rolls out the rest with the ``VideoGenerator`` (greedy by default), and every number
comes with the trivial baselines on the same windows.

Video (``benchmark_video_quality``): PSNR and SSIM (torchmetrics) at each horizon, against "repeat the last
context frame". LPIPS and FVD need pretrained backbones that cannot be downloaded here; they are computed only from
local TorchScript weights the caller points to (``lpips_weights``: ``(pred, target) [N, 3, H, W] in [-1, 1] -> [N]``;
``fvd_weights``: an I3D-style ``videos [N, 3, T, H, W] in [0, 1] -> features [N, D]``). Without them the suite
reports a Fréchet distance and a paired feature distance on a named local encoder, under that encoder's name
(default: the model's own frame tokenizer, ``multimodal-tokenizer``), never labelled FVD or LPIPS.

Physics (``benchmark_physics_consistency``): the physics head's object positions against the recorded states,
against constant position and constant-velocity extrapolation; the audio's log-mel error against silence and
"repeat the last frame's audio"; and contact onsets detected in the predicted audio against the true contacts of
the scene's event log (precision/recall within one frame), beside the same detector on the true audio (its
ceiling), on "repeat the last audio" (no onsets) and on chance onsets (random frames at the windows' true contact
rate, seeded).

Windows come from ``scene_windows`` (a recorded Playground dataset: frames, audio, state, actions and per-frame
contact flags from ``meta/worldrl/episode_*/events.json``) or from any loader of ``create_dataloaders`` batches
(``batch["obs"][key]``; without contact flags the onset metric is reported as not available).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldrl.errors import ConfigError, DataLoadingError
from worldrl.evaluation.audio_onsets import OnsetScores, contact_frames, detect_onsets, match_onsets, random_onsets
from worldrl.evaluation.frechet import frechet_distance_of_features

AUDIO_KEY = "observation.audio"
STATE_KEY = "observation.state"
SILENCE = -10.0
"""log10 mel power of silence in the Playground audio."""
PLAYGROUND_SLOT = 13
"""State values per object slot in Playground recordings: position 3, quaternion 4, velocity 3, angular 3."""

VIDEO_METRICS = ("psnr", "ssim", "frechet", "feature_distance", "lpips", "fvd")
PHYSICS_METRICS = ("audio_mel", "contact_onsets", "physics_state")
VALID_METRICS = VIDEO_METRICS + PHYSICS_METRICS
DEFAULT_METRICS = ("psnr", "ssim", "frechet", "feature_distance", "audio_mel", "contact_onsets", "physics_state")
PRETRAINED_ONLY = {"lpips": "lpips_weights", "fvd": "fvd_weights"}


def check_metrics(metrics: Iterable[str] | None) -> tuple[str, ...]:
    """The requested metric names, or a one-line ConfigError listing the valid ones."""
    names = tuple(DEFAULT_METRICS if metrics is None else metrics)
    unknown = [m for m in names if m not in VALID_METRICS]
    if unknown or not names:
        raise ConfigError(f"unknown metric(s) {unknown or '(none given)'}; valid metrics: {', '.join(VALID_METRICS)}")
    return names


# ====================================================================== windows
@dataclass
class Window:
    """A batch of evaluation windows ``[B, T, ...]`` in raw units."""

    frames: torch.Tensor
    """uint8 ``[B, T, H, W, 3]``."""
    action: torch.Tensor
    """``[B, T, A]`` the action taken at each step."""
    audio: torch.Tensor | None = None
    """``[B, T, F]`` log-mel features."""
    state: torch.Tensor | None = None
    """``[B, T, S]`` recorded states."""
    contact: torch.Tensor | None = None
    """``[B, T]`` bool: a contact onset sounds in this frame (from the event log)."""


def scene_windows(
    root: str | Path, episodes: Sequence[int] | None, length: int, stride: int, batch_size: int = 16
) -> list[Window]:
    """Windows of ``length`` steps every ``stride`` steps of a recorded Playground dataset, with contact flags."""
    from worldrl.data import LeRobotDatasetReader
    from worldrl.data.collect_scenes import episode_dir

    reader = LeRobotDatasetReader(root)
    cameras = reader.camera_keys
    if not cameras:
        raise DataLoadingError(f"dataset {reader.root} has no camera; the benchmark suite scores video")
    features = reader.features
    items: list[dict[str, torch.Tensor]] = []
    for ep in episodes if episodes is not None else range(reader.num_episodes):
        lo, hi = reader.episode_range(int(ep))
        if hi - lo < length:
            continue
        episode = {
            "frames": torch.from_numpy(reader.frames(cameras[0], np.arange(lo, hi))),
            "action": torch.from_numpy(reader.column("action")[lo:hi].astype(np.float32)),
        }
        for name, key in (("audio", AUDIO_KEY), ("state", STATE_KEY)):
            if key in features:
                episode[name] = torch.from_numpy(reader.column(key)[lo:hi].astype(np.float32))
        events = episode_dir(reader.root, int(ep)) / "events.json"
        if events.exists():
            from worldrl.io import read_json

            times = [e["time"] for e in read_json(events)["events"] if e["kind"] == "contact"]
            flags = torch.zeros(hi - lo, dtype=torch.bool)
            flags[torch.from_numpy(contact_frames(times, 1.0 / reader.fps, hi - lo))] = True
            episode["contact"] = flags
        for start in range(0, hi - lo - length + 1, stride):
            items.append({k: v[start : start + length] for k, v in episode.items()})
    if not items:
        raise DataLoadingError(f"no episode of {reader.root} (of those selected) has {length} steps for a window")
    batches = []
    for i in range(0, len(items), batch_size):
        chunk = items[i : i + batch_size]
        batches.append(Window(**{k: torch.stack([c[k] for c in chunk]) for k in chunk[0]}))
    return batches


def as_window(batch: Any, image_key: str | None = None) -> Window:
    """A ``Window`` from a ``Window`` or a ``create_dataloaders`` batch (``batch["obs"][key]``)."""
    if isinstance(batch, Window):
        return batch
    obs = batch["obs"]
    keys = list(obs.keys())
    camera = image_key or next((k for k in keys if k not in (AUDIO_KEY, STATE_KEY)), None)
    if camera is None or camera not in keys:
        raise DataLoadingError(f"the batch has no camera entry under 'obs' (keys: {keys})")
    return Window(
        frames=obs[camera],
        action=batch["action"],
        audio=obs[AUDIO_KEY] if AUDIO_KEY in keys else None,
        state=obs[STATE_KEY] if STATE_KEY in keys else None,
        contact=batch["contact"] if "contact" in batch.keys() else None,
    )


# ====================================================================== encoders for Fréchet / feature distances
@dataclass
class FrameEncoder:
    """A local, named feature extractor: uint8 frames ``[N, H, W, 3]`` -> features ``[N, D]``."""

    name: str
    encode: Callable[[torch.Tensor], torch.Tensor]


def tokenizer_encoder(model: Any) -> FrameEncoder:
    """The model's own frame tokenizer: its quantised code grid, flattened (``multimodal-tokenizer``)."""

    def encode(frames: torch.Tensor) -> torch.Tensor:
        x = model.frames_to_model(frames.to(model.device))[:, None]
        return model.net.encode_frames(x)[1][:, 0].flatten(1).float()

    return FrameEncoder("multimodal-tokenizer", encode)


def checkpoint_encoder(directory: str | Path, device: str = "cpu") -> FrameEncoder:
    """A worldrl checkpoint that observes one camera (e.g. a trained ``vjepa2``) as an encoder, through ``embed``."""
    import torch.nn.functional as F

    from worldrl.models import load_pretrained

    encoder = load_pretrained(directory, device=device)
    if encoder.task.is_keyed or len(encoder.task.obs_shape) != 3:
        raise ConfigError(
            f"feature encoder {directory} must observe one camera (its task observes {encoder.task.obs_keys})"
        )
    height, width, _ = encoder.task.obs_shape

    def encode(frames: torch.Tensor) -> torch.Tensor:
        x = frames.to(device)
        if tuple(x.shape[1:3]) != (height, width):
            x = F.interpolate(x.permute(0, 3, 1, 2).float(), size=(height, width), mode="bilinear", antialias=True)
            x = x.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1)
        return encoder.embed(x).flatten(1).float()

    return FrameEncoder(f"{encoder.config.family}:{Path(directory).name}", encode)


# ====================================================================== the suite
class BenchmarkSuite:
    """The document's benchmark suite for ``multimodal`` models (see the module docstring)."""

    def __init__(
        self,
        model: torch.nn.Module,
        device: str = "cpu",
        metrics: list[str] | None = None,
        save_predictions: bool = False,
        output_dir: str | Path = "./results",
        *,
        horizons: Sequence[int] = (1, 5, 10, 20),
        context: int | None = None,
        temperature: float = 0.0,
        top_k: int = 50,
        top_p: float = 0.95,
        feature_encoder: FrameEncoder | None = None,
        lpips_weights: str | Path | None = None,
        fvd_weights: str | Path | None = None,
        onset_tolerance: int = 1,
        progress: bool = False,
    ) -> None:
        from worldrl.models.multimodal.generator import VideoGenerator

        self.metrics = check_metrics(metrics)
        weights = {"lpips_weights": lpips_weights, "fvd_weights": fvd_weights}
        for name, option in PRETRAINED_ONLY.items():
            if name in self.metrics and weights[option] is None:
                raise ConfigError(
                    f"{name} needs pretrained weights that cannot be downloaded here: pass {option}=<local TorchScript "
                    "file>, or use 'frechet' / 'feature_distance' on a named local encoder"
                )
        self.horizons = sorted({int(h) for h in horizons})
        if not self.horizons or self.horizons[0] < 1:
            raise ConfigError(f"horizons must be positive integers, got {list(horizons)}")
        self.model, self.device = model, device
        self.context = int(context or getattr(getattr(model, "config", None), "context_length", 1))
        self.generator = VideoGenerator(
            model, device, temperature=temperature, top_k=top_k, top_p=top_p, max_length=max(self.horizons)
        )
        self.encoder = feature_encoder or tokenizer_encoder(model)
        self.lpips = _load_torchscript(lpips_weights, "lpips_weights", device)
        self.fvd = _load_torchscript(fvd_weights, "fvd_weights", device)
        self.save_predictions, self.output_dir = save_predictions, Path(output_dir)
        self.tolerance, self.progress = onset_tolerance, progress
        self.chance = np.random.default_rng(0)  # chance onsets: the same draws for every model scored
        self.fps = float(getattr(getattr(model, "task", None), "fps", 0.0) or 0.0)

    @property
    def window_length(self) -> int:
        """Steps per window: the context, then the longest horizon."""
        return self.context + max(self.horizons)

    # ------------------------------------------------------------------ the document's methods
    def run_all_benchmarks(self, dataloader: Iterable[Any]) -> dict[str, Any]:
        """Both benchmarks over one pass of rollouts; written to ``output_dir/benchmarks.json`` and ``.md``."""
        results = self._evaluate(dataloader, video=True, physics=True)
        self._write(results)
        return results

    def benchmark_video_quality(self, dataloader: Iterable[Any]) -> dict[str, Any]:
        return self._evaluate(dataloader, video=True, physics=False)

    def benchmark_physics_consistency(self, dataloader: Iterable[Any]) -> dict[str, Any]:
        return self._evaluate(dataloader, video=False, physics=True)

    # ------------------------------------------------------------------ one pass
    def _evaluate(self, dataloader: Iterable[Any], video: bool, physics: bool) -> dict[str, Any]:
        acc = _Accumulator(self.horizons)
        seconds, generated, saved = 0.0, 0, False
        for batch in _progress(dataloader, self.progress):
            window = as_window(batch, getattr(self.model, "image_key", None))
            if window.frames.shape[1] < self.window_length:
                raise DataLoadingError(
                    f"windows have {window.frames.shape[1]} steps; context {self.context} + horizon "
                    f"{max(self.horizons)} needs {self.window_length}"
                )
            acc.windows += window.frames.shape[0]
            start = time.perf_counter()
            out = self._rollout(window)
            seconds += time.perf_counter() - start
            generated += out.generated.shape[0] * out.generated.shape[1]
            if video:
                self._score_video(window, out, acc)
            if physics:
                self._score_physics(window, out, acc)
            if self.save_predictions and not saved:
                self._save_example(window, out)
                saved = True
        results = acc.summary(self.encoder.name)
        results["setup"] = {
            "windows": acc.windows,
            "context": self.context,
            "horizons": self.horizons,
            "temperature": self.generator.settings.temperature,
            "generated_frames": generated,
            "generation_frames_per_second": generated / max(seconds, 1e-9),
            "metrics": list(self.metrics),
            "feature_encoder": self.encoder.name,
        }
        return results

    @torch.no_grad()
    def _rollout(self, w: Window) -> Any:
        C, H = self.context, max(self.horizons)
        return self.generator.generate_from_prompt(
            w.frames[:, :C],
            H,
            prompt_audio=None if w.audio is None else w.audio[:, :C],
            prompt_state=None if w.state is None else w.state[:, :C],
            actions=w.action[:, : C + H - 1],
        )

    # ------------------------------------------------------------------ video
    def _score_video(self, w: Window, out: Any, acc: _Accumulator) -> None:
        from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

        C, H = self.context, max(self.horizons)
        true = w.frames[:, C : C + H]
        pred = torch.from_numpy(out.generated)
        last = w.frames[:, C - 1 : C].expand_as(true)
        for h in self.horizons:
            for name, guess in (("model", pred), ("repeat_last", last)):
                p, t = _unit(guess[:, h - 1]), _unit(true[:, h - 1])
                if "psnr" in self.metrics:
                    acc.add(
                        "psnr", name, h, peak_signal_noise_ratio(p, t, data_range=1.0, reduction="none", dim=(1, 2, 3))
                    )
                if "ssim" in self.metrics:
                    acc.add(
                        "ssim", name, h, structural_similarity_index_measure(p, t, data_range=1.0, reduction="none")
                    )
                if "lpips" in self.metrics:
                    acc.add("lpips", name, h, self.lpips(p * 2 - 1, t * 2 - 1).flatten())
        if {"frechet", "feature_distance"} & set(self.metrics):
            for name, guess in (("model", pred), ("repeat_last", last)):
                f_pred = self.encoder.encode(guess.flatten(0, 1)).cpu()
                f_true = self.encoder.encode(true.flatten(0, 1)).cpu()
                acc.features[name].append(f_pred)
                if name == "model":
                    acc.features["true"].append(f_true)
                acc.add("feature_distance", name, 0, (f_pred - f_true).norm(dim=-1))
        if "fvd" in self.metrics:
            for name, guess in (("model", pred), ("repeat_last", last)):
                acc.clips[name].append(
                    self.fvd(_unit(guess.flatten(0, 1)).unflatten(0, guess.shape[:2]).transpose(1, 2))
                )
            acc.clips["true"].append(self.fvd(_unit(true.flatten(0, 1)).unflatten(0, true.shape[:2]).transpose(1, 2)))

    # ------------------------------------------------------------------ physics and audio
    def _score_physics(self, w: Window, out: Any, acc: _Accumulator) -> None:
        C, H = self.context, max(self.horizons)
        if not self.generator.settings.temperature == 0.0:
            acc.notes.add("sampled rollouts (temperature > 0): errors include sampling noise")
        if w.audio is not None and out.audio is not None:
            true_audio = w.audio[:, C : C + H].numpy()
            pred_audio = out.audio[:, C:]
            if "audio_mel" in self.metrics:
                last = w.audio[:, C - 1 : C].numpy()
                for h in self.horizons:
                    t = true_audio[:, h - 1]
                    for name, guess in (
                        ("model", pred_audio[:, h - 1]),
                        ("repeat_last", last[:, 0]),
                        ("silence", SILENCE),
                    ):
                        acc.add("audio_mel_mae", name, h, torch.from_numpy(np.abs(guess - t).mean(-1)))
            if "contact_onsets" in self.metrics:
                if w.contact is None:
                    acc.notes.add("contact onsets not scored: the windows carry no contact flags (use scene_windows)")
                else:
                    self._score_onsets(w, pred_audio, true_audio, acc)
        if "physics_state" in self.metrics and w.state is not None and out.state is not None:
            self._score_state(w, torch.from_numpy(out.state[:, C:]), acc)

    def _score_onsets(self, w: Window, pred_audio: np.ndarray, true_audio: np.ndarray, acc: _Accumulator) -> None:
        C, H = self.context, max(self.horizons)
        previous = w.audio[:, C - 1].numpy()
        rate = float(w.contact[:, C : C + H].float().mean())
        for b in range(len(pred_audio)):
            true_frames = np.flatnonzero(w.contact[b, C : C + H].numpy())
            for name, audio in (("model", pred_audio[b]), ("true_audio", true_audio[b])):
                onsets = detect_onsets(audio, previous=previous[b])
                acc.onsets[name] = acc.onsets[name] + match_onsets(onsets, true_frames, self.tolerance)
            acc.onsets["repeat_last"] = acc.onsets["repeat_last"] + match_onsets(
                np.zeros(0), true_frames, self.tolerance
            )
            chance = random_onsets(H, rate, self.chance)
            acc.onsets["chance"] = acc.onsets["chance"] + match_onsets(chance, true_frames, self.tolerance)

    def _score_state(self, w: Window, pred: torch.Tensor, acc: _Accumulator) -> None:
        C, H = self.context, max(self.horizons)
        true = w.state[:, C : C + H]
        S = true.shape[-1]
        dt = 1.0 / self.fps if self.fps else 1.0
        if S % PLAYGROUND_SLOT == 0:  # object slots: score positions of present objects
            slots = lambda x: x.reshape(*x.shape[:-1], S // PLAYGROUND_SLOT, PLAYGROUND_SLOT)  # noqa: E731
            t, p, last = slots(true), slots(pred), slots(w.state[:, C - 1])
            present = t.abs().sum(-1).amax(1) > 0  # [B, slots]
            steps = torch.arange(1, H + 1, dtype=torch.float32)[None, :, None, None]
            baselines = {
                "model": p[..., :3],
                "constant_position": last[:, None, :, :3].expand_as(t[..., :3]),
                "constant_velocity": last[:, None, :, :3] + steps * dt * last[:, None, :, 7:10],
            }
            for h in self.horizons:
                for name, guess in baselines.items():
                    err = (guess[:, h - 1] - t[:, h - 1, :, :3]).norm(dim=-1)  # [B, slots]
                    acc.add("position_error", name, h, err[present])
        else:
            for h in self.horizons:
                for name, guess in (("model", pred[:, h - 1]), ("repeat_last", w.state[:, C - 1])):
                    acc.add("state_rmse", name, h, (guess - true[:, h - 1]).pow(2).mean(-1).sqrt())

    # ------------------------------------------------------------------ files
    def _save_example(self, w: Window, out: Any) -> None:
        from worldrl.models.multimodal.generator import GeneratedVideo

        C, H = self.context, max(self.horizons)
        example = GeneratedVideo(
            frames=out.frames[:1],
            context_frames=out.context_frames,
            fps=out.fps,
            log_prob=out.log_prob[:1],
            audio=None if out.audio is None else out.audio[:1],
            audio_is_playground=out.audio_is_playground,
            reference_frames=w.frames[:1, : C + H].numpy(),
        )
        example.save(self.output_dir / "example.mp4")

    def _write(self, results: dict[str, Any]) -> None:
        from worldrl.io import atomic_write_text, write_json

        self.output_dir.mkdir(parents=True, exist_ok=True)
        write_json(self.output_dir / "benchmarks.json", results)
        atomic_write_text(self.output_dir / "benchmarks.md", results_markdown(results))


def _unit(frames: torch.Tensor) -> torch.Tensor:
    """uint8 ``[N, H, W, 3]`` -> float ``[N, 3, H, W]`` in [0, 1]."""
    return frames.permute(0, 3, 1, 2).float() / 255.0


def _load_torchscript(path: str | Path | None, option: str, device: str) -> Callable[..., torch.Tensor] | None:
    if path is None:
        return None
    if not Path(path).is_file():
        raise ConfigError(f"{option} {path} is not a file (a TorchScript module saved with torch.jit.save)")
    try:
        module = torch.jit.load(str(path), map_location=device).eval()
    except RuntimeError as err:
        raise ConfigError(f"{option} {path} is not a TorchScript module ({' '.join(str(err).split())[:200]})") from None

    def run(*args: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(*(a.to(device) for a in args)).float().cpu()

    return run


def _progress(loader: Iterable[Any], enabled: bool) -> Iterable[Any]:
    if not enabled:
        return loader
    from tqdm.auto import tqdm

    return tqdm(loader, desc="benchmark", unit="batch")


class _Accumulator:
    """Per (metric, predictor, horizon) sample lists, features for Fréchet distances, onset counts."""

    def __init__(self, horizons: list[int]) -> None:
        self.horizons = horizons
        self.values: dict[tuple[str, str, int], list[torch.Tensor]] = defaultdict(list)
        self.features: dict[str, list[torch.Tensor]] = defaultdict(list)
        self.clips: dict[str, list[torch.Tensor]] = defaultdict(list)
        self.onsets: dict[str, OnsetScores] = defaultdict(lambda: OnsetScores(0, 0, 0))
        self.notes: set[str] = set()
        self.windows = 0

    def add(self, metric: str, predictor: str, horizon: int, values: torch.Tensor) -> None:
        self.values[(metric, predictor, horizon)].append(values.detach().double().flatten().cpu())

    def summary(self, encoder: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for (metric, predictor, horizon), chunks in sorted(self.values.items()):
            values = torch.cat(chunks)
            values = values[torch.isfinite(values)]  # PSNR of an exact copy is +inf
            key = metric if metric != "feature_distance" else f"feature_distance[{encoder}]"
            cell = out.setdefault(key, {}).setdefault(predictor, {})
            cell[str(horizon) if horizon else "all"] = float(values.mean()) if len(values) else math.nan
        if self.features:
            true = torch.cat(self.features["true"])
            out[f"frechet[{encoder}]"] = {
                name: {"all": frechet_distance_of_features(true, torch.cat(chunks))}
                for name, chunks in self.features.items()
                if name != "true"
            }
        if self.clips:
            true = torch.cat(self.clips["true"])
            out["fvd"] = {
                name: {"all": frechet_distance_of_features(true, torch.cat(chunks))}
                for name, chunks in self.clips.items()
                if name != "true"
            }
        if self.onsets:
            out["contact_onsets"] = {name: scores.to_dict() for name, scores in self.onsets.items()}
        out["notes"] = sorted(self.notes)
        return out


def results_markdown(results: dict[str, Any]) -> str:
    """Tables of ``run_all_benchmarks`` results: one row per (metric, predictor), one column per horizon."""
    setup = results.get("setup", {})
    horizons = [str(h) for h in setup.get("horizons", [])]
    lines = [
        f"{setup.get('windows', '?')} windows, context {setup.get('context', '?')}, temperature "
        f"{setup.get('temperature', '?')}; generation {setup.get('generation_frames_per_second', math.nan):.1f} frames/s",
        "",
        "| metric | predictor | " + " | ".join(f"h={h}" for h in horizons) + " | all |",
        "|---|---|" + "---:|" * (len(horizons) + 1),
    ]
    for metric, by_predictor in results.items():
        if metric in ("setup", "notes", "contact_onsets"):
            continue
        for predictor, cells in by_predictor.items():
            row = [_fmt(cells.get(h)) for h in horizons] + [_fmt(cells.get("all"))]
            lines.append(f"| {metric} | {predictor} | " + " | ".join(row) + " |")
    if "contact_onsets" in results:
        lines += ["", "| contact onsets | precision | recall | predicted | true |", "|---|---:|---:|---:|---:|"]
        for name, s in results["contact_onsets"].items():
            lines.append(f"| {name} | {_fmt(s['precision'])} | {_fmt(s['recall'])} | {s['predicted']} | {s['true']} |")
    lines += [f"note: {n}" for n in results.get("notes", [])]
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    return "" if value is None else (f"{value:.4g}" if isinstance(value, float) else str(value))


__all__ = [
    "DEFAULT_METRICS",
    "VALID_METRICS",
    "BenchmarkSuite",
    "FrameEncoder",
    "Window",
    "as_window",
    "check_metrics",
    "checkpoint_encoder",
    "results_markdown",
    "scene_windows",
    "tokenizer_encoder",
]
