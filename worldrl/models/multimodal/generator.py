"""``VideoGenerator``: video (+ audio + state) generation from a ``multimodal`` model by sampling its frame codes.

The model predicts, for the frame after a context, one categorical distribution per patch over the frame
tokenizer's codes (``TransformerWorldModel.next_token_logits``), a mixture over the next audio features and the next
state, which are fed back as context; the generated codes are decoded in order, each frame over the one before
(the codes say how it changed), starting from the last prompt frame (``reference_frame``). Each new frame's
codes and the audio mixture's component are chosen by temperature / top-k / top-p sampling (temperature 0 = greedy)
or, with ``beam_size > 1``, the codes by beam search over whole frames (``sampling.beam_search``: never less likely
than greedy; the audio then takes each step's greedy audio (``greedy_audio``), and ``log_prob`` counts the codes).

Three ways to start, as the document's API:

* ``generate_from_prompt(prompt_video, num_frames)``: a prompt clip (a tensor, uint8 frames or an mp4 path; with
  audio and state when known) is continued for ``num_frames`` frames.
* ``generate_unconditional(num_frames)``: the model has no distribution over first frames, so the start is drawn
  from its ``start_states`` (the first observations of its training episodes, which checkpoints keep): the empirical
  distribution of starts times the model's distribution of what follows.
* ``generate_with_physics(initial_state, num_frames)``: a Playground scene (kind + seed, or a ``SceneDescription``,
  optionally with MuJoCo ``qpos``/``qvel``) is built and rendered by MuJoCo, and the model rolls it out; the true
  simulation of the same frames comes back beside it as ``reference_frames``.

``GeneratedVideo.save("out.mp4")`` writes the mp4 (h264), the generated audio as a WAV beside it (``out.wav``,
Griffin-Lim from the log-mel features: the Playground's synthetic audio definition) and a PNG frame strip.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import partial
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldrl.errors import DataLoadingError, ModelConfigurationError
from worldrl.models.multimodal.audio_mixture import component_means, greedy_audio
from worldrl.models.multimodal.sampling import SamplingSettings, Side, beam_search, sample_codes

PLAYGROUND_ID = "worldrl/Playground-v0"
SILENT_LOG_MEL = -10.0
"""log10 mel power of silence in the Playground audio (``worldrl.tasks.scenes.mel.LOG_FLOOR``)."""


@dataclass
class GeneratedVideo:
    """Frames (context, then generated), their audio features and states, and the model's log-likelihood."""

    frames: np.ndarray
    """``[B, T, H, W, 3]`` uint8: the ``context_frames`` prompt frames, then the generated ones."""
    context_frames: int
    """How many leading frames are the prompt."""
    fps: float
    """Frames per second of the model's task (0 when unknown; files are then written at 10 fps)."""
    log_prob: np.ndarray
    """``[B]`` log-likelihood of the generated codes under the model (untempered), a quality score of the draw."""
    audio: np.ndarray | None = None
    """``[B, T, F]`` audio features (log10 mel for Playground models) for every frame, or None without audio."""
    state: np.ndarray | None = None
    """``[B, T, S]`` object states (observed for the prompt, the physics head's for generated frames), or None."""
    audio_is_playground: bool = False
    """The audio features are the Playground's log10 mel (so ``save`` can turn them back into a waveform)."""
    reference_frames: np.ndarray | None = None
    """``[B, T, H, W, 3]`` the true simulation of the same frames (``generate_with_physics``)."""
    info: dict[str, Any] = field(default_factory=dict)
    """How it was made (settings, scene, timings)."""

    @property
    def generated(self) -> np.ndarray:
        """The generated frames only, ``[B, T - context_frames, H, W, 3]``."""
        return self.frames[:, self.context_frames :]

    def save(self, path: str | Path, index: int = 0) -> list[Path]:
        """Write sequence ``index`` as ``path`` (mp4), ``<stem>.wav`` (with audio) and ``<stem>.png``; the files."""
        return write_generation(self, Path(path), index)


class VideoGenerator:
    """The document's generator over a ``MultimodalWorldModel`` (or a bare ``TransformerWorldModel``)."""

    def __init__(
        self,
        model: torch.nn.Module,
        device: str | torch.device = "cpu",
        temperature: float = 1.0,
        top_k: int = 50,
        top_p: float = 0.95,
        beam_size: int = 1,
        max_length: int = 100,
        generator: torch.Generator | None = None,
    ) -> None:
        self.settings = SamplingSettings(temperature, top_k, top_p, beam_size)
        if int(max_length) != max_length or max_length < 1:
            raise ModelConfigurationError(f"max_length must be an integer >= 1, got {max_length}")
        self.max_length = int(max_length)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.model_io = ModelIO.of(self.model)
        self.generator = generator

    # ------------------------------------------------------------------ the document's methods
    def generate_from_prompt(
        self,
        prompt_video: Any,
        num_frames: int,
        *,
        prompt_audio: Any | None = None,
        prompt_state: Any | None = None,
        actions: Any | None = None,
        generator: torch.Generator | None = None,
    ) -> GeneratedVideo:
        """Continue ``prompt_video`` for ``num_frames`` frames.

        ``prompt_video``: float ``[B, T, C, H, W]`` in [0, 1] (the document's form), uint8 frames ``[B, T, H, W, C]``
        or ``[T, H, W, C]``, or a path to a video file (its audio features are read from a WAV of the same stem when
        there is one). ``prompt_audio`` ``[B, T, F]`` and ``prompt_state`` ``[B, T, S]`` are raw features (silence /
        the data mean when missing); ``actions``: raw actions ``[B, num_frames, A]`` of the generated steps, or
        ``[B, T + num_frames - 1, A]`` with the prompt's steps' too (zeros when missing).
        """
        if isinstance(prompt_video, str | Path):
            prompt_video, wav_audio = read_prompt_file(Path(prompt_video), self.model_io)
            prompt_audio = wav_audio if prompt_audio is None else prompt_audio
        frames = self.model_io.prompt_frames(prompt_video, self.device)
        return self._generate(frames, prompt_audio, prompt_state, actions, num_frames, generator or self.generator)

    def generate_unconditional(
        self, num_frames: int, *, batch_size: int = 1, generator: torch.Generator | None = None
    ) -> GeneratedVideo:
        """``batch_size`` sequences started from random training-episode starts (``model.start_states``)."""
        generator = generator or self.generator
        starts = getattr(self.model, "start_states", None)
        if starts is None:
            raise ModelConfigurationError(
                "generate_unconditional needs the model's start_states (a trained checkpoint keeps the first "
                "observations of its training episodes); this model has none: use generate_from_prompt"
            )
        picks = torch.randint(len(starts), (batch_size,), generator=generator)
        frames, audio, state = self.model_io.split_observation(starts[picks])
        return self._generate(
            frames[:, None].to(self.device), _add_time(audio), _add_time(state), None, num_frames, generator
        )

    def generate_with_physics(
        self, initial_state: Any, num_frames: int, *, context_steps: int = 1, generator: torch.Generator | None = None
    ) -> GeneratedVideo:
        """Render a Playground scene state with MuJoCo, observe ``context_steps`` real frames, then generate.

        ``initial_state``: a scene kind (``"collide"``), a ``SceneDescription``, or a dict with ``scene`` (kind or
        description), ``scene_seed`` and optionally ``qpos`` / ``qvel`` (MuJoCo state at t=0).
        """
        if context_steps < 1:
            raise ModelConfigurationError(f"context_steps must be >= 1, got {context_steps}")
        height, width = self.model_io.frame_hw
        real = simulate_scene(initial_state, context_steps + num_frames, height, width)
        c = context_steps
        out = self.generate_from_prompt(
            real["frames"][None, :c],
            num_frames,
            prompt_audio=real["audio"][None, :c] if self.model_io.has_audio else None,
            prompt_state=real["state"][None, :c] if self.model_io.state_dim else None,
            generator=generator,
        )
        out.reference_frames = real["frames"][None]
        out.info.update(scene=real["scene"], reference_audio=real["audio"][None], contact_times=real["contact_times"])
        return out

    # ------------------------------------------------------------------ the loop
    @torch.no_grad()
    def _generate(
        self,
        frames: torch.Tensor,
        audio: Any,
        state: Any,
        actions: Any,
        num_frames: int,
        generator: torch.Generator | None,
    ) -> GeneratedVideo:
        if int(num_frames) != num_frames or not 1 <= num_frames <= self.max_length:
            raise ModelConfigurationError(f"num_frames must be an integer in [1, max_length={self.max_length}]")
        mio, net = self.model_io, self.model_io.net
        B, T = frames.shape[:2]
        codes, _ = net.encode_frames(frames)
        side = mio.side_values(frames, audio, state, self.device)
        acts = mio.actions(actions, B, T, num_frames, self.device)
        s = self.settings
        # beams and temperature 0 take the greedy audio (deterministic given their codes); sampling samples it too
        choose_audio = (
            None
            if s.beam_size > 1 or s.temperature == 0
            else partial(sample_codes, temperature=s.temperature, top_k=s.top_k, top_p=s.top_p, generator=generator)
        )
        step = mio.step_function(acts, choose_audio, frames)
        start = time.perf_counter()
        if self.settings.beam_size > 1:
            codes, side, log_prob = self._beam(step, codes, side, num_frames)
        else:
            codes, side, log_prob = self._sample(step, codes, side, num_frames, generator)
        seconds = time.perf_counter() - start
        generated = mio.to_user_frames(net.decode_codes(codes[:, T:], reference=frames[:, -1]))
        prompt = mio.to_user_frames(frames)
        return GeneratedVideo(
            frames=np.concatenate([prompt, generated], axis=1),
            context_frames=T,
            fps=mio.fps,
            log_prob=log_prob.cpu().numpy(),
            audio=mio.audio_out(side["audio"]) if mio.has_audio else None,
            audio_is_playground=mio.has_audio and mio.task_id == PLAYGROUND_ID,
            state=mio.state_out(side["state"]) if "state" in side else None,
            info={
                "temperature": self.settings.temperature,
                "top_k": self.settings.top_k,
                "top_p": self.settings.top_p,
                "beam_size": self.settings.beam_size,
                "seconds": seconds,
                "frames_per_second": B * num_frames / max(seconds, 1e-9),
            },
        )

    def _sample(
        self, step: Any, codes: torch.Tensor, side: Side, num_frames: int, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, Side, torch.Tensor]:
        s = self.settings
        log_prob = torch.zeros(codes.shape[0], dtype=torch.float64, device=codes.device)
        for _ in range(num_frames):
            log_probs, new = step(codes, side)
            chosen = sample_codes(log_probs, s.temperature, s.top_k, s.top_p, generator)
            log_prob += log_probs.double().gather(-1, chosen[..., None]).squeeze(-1).sum(-1)
            codes = torch.cat([codes, chosen[:, None]], 1)
            side = {name: torch.cat([side[name], new[name][:, None]], 1) for name in side}
        return codes, side, log_prob

    def _beam(
        self, step: Any, codes: torch.Tensor, side: Side, num_frames: int
    ) -> tuple[torch.Tensor, Side, torch.Tensor]:
        """One beam search per sequence of the batch (the model's step runs on that sequence's beams)."""
        results = []
        for b in range(codes.shape[0]):
            results.append(
                beam_search(
                    lambda c, s, b=b: step(c, s, row=b),
                    codes[b],
                    {name: value[b] for name, value in side.items()},
                    num_frames,
                    self.settings.beam_size,
                )
            )
        out_side = {name: torch.stack([r.side[name] for r in results]) for name in side}
        log_prob = torch.tensor([r.log_prob for r in results], dtype=torch.float64)
        return torch.stack([r.codes for r in results]), out_side, log_prob


def _add_time(x: torch.Tensor | None) -> torch.Tensor | None:
    return None if x is None else x[:, None]


class ModelIO:
    """How frames, audio, state and actions move between the user's units and the transformer's.

    A ``MultimodalWorldModel`` (the family) brings its frame resizing and its audio/state/action normalisers; a bare
    ``TransformerWorldModel`` takes frames of ``img_size`` in [0, 1] and raw features as they are.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        family = hasattr(model, "net") and hasattr(model, "frames_to_model")
        self.family = family
        self.net = model.net if family else model
        cfg = self.net.config
        self.img_size, self.audio_dim = cfg.img_size, cfg.audio_dim
        self.window = (
            min(getattr(model, "config", cfg).context_length, cfg.audio_seq_len) if family else cfg.audio_seq_len
        )
        self.frame_hw = tuple(model.frame_hw) if family else (cfg.img_size, cfg.img_size)
        self.has_audio = bool(model.has_audio) if family else True
        self.state_dim = int(model.state_dim) if family else 0
        self.action_dim = int(self.net.action_dim)
        task = getattr(model, "task", None)
        self.fps = float(getattr(task, "fps", 0.0) or 0.0)
        self.task_id = getattr(task, "task_id", None)

    @classmethod
    def of(cls, model: torch.nn.Module) -> ModelIO:
        if not hasattr(model, "next_token_logits") and not hasattr(getattr(model, "net", None), "next_token_logits"):
            raise ModelConfigurationError(
                f"VideoGenerator needs a multimodal model (MultimodalWorldModel or TransformerWorldModel), got "
                f"{type(model).__name__}"
            )
        return cls(model)

    # ------------------------------------------------------------------ frames
    def prompt_frames(self, video: Any, device: torch.device) -> torch.Tensor:
        """Model-space frames ``[B, T, C, img, img]`` in [0, 1] from any accepted prompt form."""
        x = torch.as_tensor(np.asarray(video) if not isinstance(video, torch.Tensor) else video)
        if x.dim() == 4:
            x = x[None]
        if x.dim() != 5:
            raise ModelConfigurationError(
                f"prompt_video must be [B, T, C, H, W] floats or [B, T, H, W, C] uint8 frames, got shape {tuple(x.shape)}"
            )
        channels = self.net.config.in_channels
        if x.dtype == torch.uint8 or (x.shape[-1] == channels and x.shape[2] != channels):
            if not self.family:
                x = x.permute(0, 1, 4, 2, 3).float() / 255.0
            else:
                x = self.model.frames_to_model(x.to(device))
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ModelConfigurationError(f"prompt_video has no frames (shape {tuple(x.shape)})")
        x = x.float().to(device)
        self.net.check_inputs(x)
        return x[:, -self.window :]

    def to_user_frames(self, x: torch.Tensor) -> np.ndarray:
        """Model-space frames ``[B, T, C, img, img]`` -> uint8 ``[B, T, H, W, C]`` at the task's frame size."""
        if self.family:
            out = self.model.model_to_frames(x)
        else:
            out = (x.clamp(0, 1) * 255).round().permute(0, 1, 3, 4, 2)
        return out.to(torch.uint8).cpu().numpy()

    def split_observation(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(model-space frames ``[B, C, img, img]``, raw audio ``[B, F]`` or None, raw state ``[B, S]`` or None)."""
        model = self.model
        if not getattr(model.task, "is_keyed", False):
            return model.frames_to_model(obs.to(self.net.latent_queries.device)), None, None
        image = model.frames_to_model(obs[model.image_key].to(self.net.latent_queries.device))
        audio = obs["observation.audio"].float() if self.has_audio else None
        state = obs["observation.state"].float().reshape(len(image), -1) if self.state_dim else None
        return image, audio, state

    # ------------------------------------------------------------------ audio, state, actions
    def side_values(self, frames: torch.Tensor, audio: Any, state: Any, device: torch.device) -> Side:
        """The step function's per-step values of a prompt of ``frames [B, T, C, H, W]`` (model space): the frame
        before each step (``reference``; the first frame's is itself), normalised audio (and state), ``[B, T, ...]``;
        silence / the data mean when missing."""
        B, T = frames.shape[:2]
        side: Side = {"reference": torch.cat([frames[:, :1], frames[:, :-1]], 1).to(device)}
        if audio is None:
            raw = torch.full((B, T, self.audio_dim), SILENT_LOG_MEL if self.has_audio else 0.0)
        else:
            raw = torch.as_tensor(np.asarray(audio), dtype=torch.float32)
            if raw.dim() == 2:
                raw = raw[None]
            raw = raw[:, -T:]
            self.net.check_audio(raw, (B, T))
        side["audio"] = (
            self.audio_in(raw.to(device)) if self.has_audio else torch.zeros(B, T, self.audio_dim, device=device)
        )
        if self.state_dim:
            if state is None:
                side["state"] = torch.zeros(B, T, self.state_dim, device=device)  # normalised 0: the data mean
            else:
                raw_state = torch.as_tensor(np.asarray(state), dtype=torch.float32).reshape(B, -1, self.state_dim)
                side["state"] = self.model.state_norm(raw_state[:, -T:].to(device))
        return side

    def audio_in(self, raw: torch.Tensor) -> torch.Tensor:
        return self.model.audio_norm(raw) if self.family else raw

    def audio_out(self, audio: torch.Tensor) -> np.ndarray:
        out = self.model.audio_norm.denormalize(audio) if self.family else audio
        return out.float().cpu().numpy()

    def state_out(self, state: torch.Tensor) -> np.ndarray:
        return self.model.state_norm.denormalize(state).float().cpu().numpy()

    def actions(self, actions: Any, B: int, T: int, num_frames: int, device: torch.device) -> torch.Tensor | None:
        """Normalised actions ``[B, T + num_frames - 1, A]`` from raw ``actions``: ``[B, num_frames, A]`` (the
        generated steps'; the prompt's steps get zeros) or ``[B, T + num_frames - 1, A]`` (the prompt's too)."""
        if not self.action_dim:
            return None
        full = T + num_frames - 1
        raw = torch.zeros(B, full, self.action_dim)
        if actions is not None:
            given = torch.as_tensor(np.asarray(actions), dtype=torch.float32)
            if given.dim() != 3 or given.shape[0] != B or given.shape[1] not in (num_frames, full):
                raise ModelConfigurationError(
                    f"actions must be [B={B}, num_frames={num_frames} or prompt + num_frames - 1 = {full}, "
                    f"{self.action_dim}], got {tuple(given.shape)}"
                )
            raw[:, full - given.shape[1] :] = given[:, -full:]
        norm = self.model.action_norm if self.family else (lambda a: a)
        normalised = norm(raw.to(device))
        if actions is None or given.shape[1] == num_frames:
            normalised[:, : T - 1] = 0.0  # unknown past actions: the "no action" of an episode start
        return normalised

    # ------------------------------------------------------------------ the model's step
    def step_function(
        self, actions: torch.Tensor | None, choose_audio: Any = None, prompt: torch.Tensor | None = None
    ) -> Any:
        """``step(codes [beams, t, N], side, row=None) -> (log-probs [beams, N, V], next side)`` over the last
        ``window`` steps; ``row`` picks one sequence's actions for all beams (beam search). The next audio is the
        mean of the mixture component ``choose_audio(logits [beams, K]) -> [beams]`` picks (None: the greedy audio of
        the model's ``greedy_audio`` rule).
        ``side["reference"]`` holds the frame before each step (the frame its codes change): the model reads each
        step's frame, so the step decodes the newest one (its codes over its reference; the real frame when it is the
        last of ``prompt [B, T, C, H, W]``) and hands it on as the next step's reference; a side value per step keeps
        beams' frames apart like their audio."""
        net, window = self.net, self.window

        def step(codes: torch.Tensor, side: Side, row: int | None = None) -> tuple[torch.Tensor, Side]:
            t = codes.shape[1]
            lo = max(0, t - window)
            acts = None
            if actions is not None:
                acts = actions[:, lo:t] if row is None else actions[row : row + 1, lo:t].expand(codes.shape[0], -1, -1)
            state = side["state"][:, lo:] if "state" in side else None
            if prompt is not None and t == prompt.shape[1]:
                newest = prompt[:, -1] if row is None else prompt[row : row + 1, -1].expand(codes.shape[0], -1, -1, -1)
            else:  # over the frame before; the prompt's last frame is the anchor, t - T - 1 steps before that
                anchor = None
                if prompt is not None:
                    last = prompt[:, -1] if row is None else prompt[row : row + 1, -1]
                    anchor = last.expand(codes.shape[0], -1, -1, -1)
                age = torch.full_like(codes[:, 0, 0], t - (prompt.shape[1] if prompt is not None else 0) - 1)
                newest = net.decode_step(codes[:, -1], side["reference"][:, -1], anchor, age)
            frames = torch.cat([side["reference"][:, lo + 1 :], newest[:, None]], 1)
            nxt = net.next_token_logits(codes[:, lo:], frames, side["audio"][:, lo:], acts, state)
            if choose_audio is None:
                sound = greedy_audio(nxt.audio_logits, nxt.audio_components, net.config.greedy_audio)
            else:
                sound = component_means(nxt.audio_components, choose_audio(nxt.audio_logits))
            new = {"audio": sound, "reference": newest}
            if "state" in side:
                new["state"] = nxt.state if nxt.state is not None else side["state"][:, -1]
            return nxt.logits.float().log_softmax(-1), new

        return step


def read_prompt_file(path: Path, mio: ModelIO) -> tuple[np.ndarray, np.ndarray | None]:
    """(uint8 frames ``[T, H, W, 3]``, log-mel audio ``[T, F]`` from ``<stem>.wav`` or None) of a prompt video file."""
    import av

    if not path.is_file():
        raise DataLoadingError(f"prompt {path} does not exist")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataLoadingError(f"prompt {path} has no video stream")
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except av.error.FFmpegError as err:
        raise DataLoadingError(f"prompt {path} is not a readable video ({' '.join(str(err).split())})") from None
    if not frames:
        raise DataLoadingError(f"prompt {path} holds no frames")
    return np.stack(frames), _wav_features(path.with_suffix(".wav"), len(frames), mio)


def _wav_features(wav: Path, num_frames: int, mio: ModelIO) -> np.ndarray | None:
    """Playground log-mel features of a WAV beside the prompt (the format ``GeneratedVideo.save`` writes)."""
    if not (wav.is_file() and mio.has_audio and mio.task_id == PLAYGROUND_ID and mio.fps > 0):
        return None
    from worldrl.data.collect_scenes import read_wav
    from worldrl.tasks.scenes.mel import frame_log_mel

    waveform, rate = read_wav(wav)
    samples = int(round(rate / mio.fps))
    mel = frame_log_mel(waveform, samples, rate, n_mels=mio.audio_dim)
    if len(mel) < num_frames:
        mel = np.concatenate([mel, np.full((num_frames - len(mel), mio.audio_dim), SILENT_LOG_MEL, np.float32)])
    return mel[:num_frames]


# ====================================================================== physics starts (Playground scenes)
_START_KEYS = ("scene", "scene_seed", "seed", "qpos", "qvel")


def simulate_scene(initial_state: Any, num_frames: int, height: int, width: int) -> dict[str, Any]:
    """``num_frames`` observations of a Playground scene under zero actions, rendered by MuJoCo at height x width:
    ``frames [T, H, W, 3]`` uint8, ``audio [T, F]`` log-mel, ``state [T, S]``, the ``scene`` dict and the contact
    onset times (s)."""
    import os

    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("MUJOCO_GL", "egl")  # headless: MuJoCo renders offscreen through EGL
    import mujoco

    from worldrl.tasks.scenes.env import PlaygroundEnv
    from worldrl.tasks.scenes.mel import silence

    spec = dict(initial_state) if isinstance(initial_state, dict) else {"scene": initial_state}
    unknown = sorted(set(spec) - set(_START_KEYS))
    if unknown:
        raise ModelConfigurationError(f"initial_state has unknown key(s) {unknown}; known: {list(_START_KEYS)}")
    scene = spec.get("scene", "collide")
    seed = int(spec.get("scene_seed", 0))
    env = PlaygroundEnv(scene, scene_seed=seed if isinstance(scene, str) else None, width=width, height=height)
    try:
        obs, _ = env.reset(seed=int(spec.get("seed", seed)))
        if "qpos" in spec or "qvel" in spec:
            data = env.data
            for key in ("qpos", "qvel"):
                if key in spec:
                    value = np.asarray(spec[key], np.float64)
                    if value.shape != getattr(data, key).shape:
                        raise ModelConfigurationError(
                            f"initial_state {key} has shape {value.shape}, the scene's is {getattr(data, key).shape}"
                        )
                    getattr(data, key)[:] = value
            mujoco.mj_forward(env.model, data)
            env.detector.reset(data)  # contacts resting in the new state are not onsets
            obs = {"pixels": env.render_frame(), "state": env.state(), "audio": silence()}
        observations = [obs]
        for _ in range(num_frames - 1):
            observations.append(env.step(np.zeros(2, np.float32))[0])
        return {
            "frames": np.stack([o["pixels"] for o in observations]),
            "audio": np.stack([o["audio"] for o in observations]),
            "state": np.stack([o["state"] for o in observations]),
            "scene": env.scene.to_dict(),
            "contact_times": [e.time for e in env.events if e.kind == "contact"],
            "dt": env.dt,
        }
    finally:
        env.close()


# ====================================================================== files: mp4, wav, png
def write_generation(video: GeneratedVideo, path: Path, index: int = 0) -> list[Path]:
    """``path`` (h264 mp4), ``<stem>.wav`` (Playground audio only) and ``<stem>.png`` (a frame strip), atomically."""
    from worldrl.data.video import VideoSettings, encode_video
    from worldrl.io import atomic_path, atomic_write_bytes

    if not 0 <= index < len(video.frames):
        raise ModelConfigurationError(f"index {index} is outside the batch of {len(video.frames)} sequences")
    fps = int(round(video.fps)) or 10
    frames = video.frames[index]
    with atomic_path(path) as tmp:
        encode_video(frames, tmp, fps, VideoSettings(vcodec="libx264", crf=18))
    written = [path]
    if video.audio is not None and video.audio_is_playground:
        from worldrl.data.collect_scenes import wav_bytes
        from worldrl.tasks.scenes.audio import SAMPLE_RATE

        wave = log_mel_to_waveform(video.audio[index], SAMPLE_RATE, int(round(SAMPLE_RATE / fps)))
        atomic_write_bytes(path.with_suffix(".wav"), wav_bytes(wave, SAMPLE_RATE))
        written.append(path.with_suffix(".wav"))
    reference = None if video.reference_frames is None else video.reference_frames[index]
    atomic_write_bytes(path.with_suffix(".png"), frame_strip_png(frames, video.context_frames, reference))
    written.append(path.with_suffix(".png"))
    return written


def frame_strip_png(frames: np.ndarray, context: int, reference: np.ndarray | None = None, columns: int = 10) -> bytes:
    """PNG of up to ``columns`` frames evenly spaced in time (prompt frames framed in blue), the true frames below."""
    from PIL import Image

    picks = np.unique(np.linspace(0, len(frames) - 1, min(columns, len(frames))).round().astype(int))
    rows = [frames] if reference is None else [frames, reference[: len(frames)]]
    tiles = []
    for row in rows:
        cells = []
        for t in picks:
            cell = np.pad(row[t], ((2, 2), (2, 2), (0, 0)), constant_values=255)
            if t < context:
                cell[:2], cell[-2:], cell[:, :2], cell[:, -2:] = (
                    (40, 90, 220),
                    (40, 90, 220),
                    (40, 90, 220),
                    (40, 90, 220),
                )
            cells.append(cell)
        tiles.append(np.concatenate(cells, axis=1))
    buffer = BytesIO()
    Image.fromarray(np.concatenate(tiles, axis=0).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def log_mel_to_waveform(
    log_mel: np.ndarray, sample_rate: int, samples_per_frame: int, iterations: int = 32, seed: int = 0
) -> np.ndarray:
    """A waveform whose per-frame log10 mel power approximates ``log_mel [T, F]`` (Playground framing: two windows of
    ``samples_per_frame`` per frame, hop half of it): mel power -> linear power by non-negative KL factorisation
    against the filterbank (the pseudo-inverse goes negative and loses quiet onsets), then Griffin-Lim phase
    recovery. An audible rendering of the features, not the original sound."""
    from worldrl.tasks.scenes.mel import LOG_FLOOR, mel_filter_bank

    log_mel = np.asarray(log_mel, np.float64)
    n_fft, hop = samples_per_frame, samples_per_frame // 2
    filters = mel_filter_bank(n_fft // 2 + 1, log_mel.shape[1], sample_rate)  # [freqs, mels]
    power = torch.from_numpy(np.where(log_mel <= math.log10(LOG_FLOOR) + 1e-3, 0.0, 10.0**log_mel))
    linear = mel_power_to_linear(power, filters)
    magnitude = linear.sqrt().repeat_interleave(2, dim=0)  # each frame owns two windows
    magnitude = torch.cat([magnitude, magnitude[-1:]]).T  # [freqs, 2T + 1]: a centred STFT of T frames' samples
    window = torch.hann_window(n_fft, dtype=torch.float64)
    length = len(log_mel) * samples_per_frame
    g = torch.Generator().manual_seed(seed)
    angles = 2 * math.pi * torch.rand(magnitude.shape, generator=g, dtype=torch.float64)
    phase = torch.polar(torch.ones_like(magnitude), angles)
    wave = torch.zeros(length, dtype=torch.float64)
    for _ in range(iterations):
        wave = torch.istft(magnitude * phase, n_fft, hop, window=window, center=True, length=length)
        spec = torch.stft(wave, n_fft, hop, window=window, center=True, return_complex=True)
        phase = spec / spec.abs().clamp_min(1e-12)
    return np.clip(wave.numpy(), -1.0, 1.0).astype(np.float32)


def mel_power_to_linear(power: torch.Tensor, filters: torch.Tensor, iterations: int = 200) -> torch.Tensor:
    """Non-negative linear power ``[T, freqs]`` whose mel projection ``@ filters [freqs, mels]`` matches ``power
    [T, mels]`` in KL divergence (Lee-Seung multiplicative updates from each bin spread over its filter)."""
    norm = filters.sum(1).clamp_min(1e-12)
    linear = (power @ filters.T) / norm
    for _ in range(iterations):
        linear = linear * ((power / (linear @ filters).clamp_min(1e-30)) @ filters.T) / norm
    return linear


__all__ = [
    "GeneratedVideo",
    "ModelIO",
    "VideoGenerator",
    "frame_strip_png",
    "log_mel_to_waveform",
    "mel_power_to_linear",
    "read_prompt_file",
    "simulate_scene",
    "write_generation",
]
