"""``worldrl generate``: video (+ audio) from a ``multimodal`` checkpoint, continued from a prompt clip, a Playground
scene rendered by MuJoCo, or one of the model's training-episode starts.

    worldrl generate --checkpoint DIR --prompt clip.mp4 --output out.mp4 --frames 100 --temperature 0.8
    worldrl generate --checkpoint DIR --scene collide --scene-seed 3 --output out.mp4 --frames 50
    worldrl generate --checkpoint DIR --output out.mp4 --frames 50          # from a training-episode start

Writes ``out.mp4``, the generated audio as ``out.wav`` beside it (Playground models) and a frame strip ``out.png``
(with ``--scene``, the true simulation below the generated frames).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from worldrl.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="multimodal checkpoint directory (or Hub id)")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--prompt", default=None, help="prompt video file (mp4; a WAV of the same stem adds audio)")
    start.add_argument("--scene", default=None, help="Playground scene kind to render and roll out (e.g. collide)")
    parser.add_argument("--scene-seed", type=int, default=0, help="seed of the --scene layout")
    parser.add_argument("--context-steps", type=int, default=1, help="real frames of the --scene the model observes")
    parser.add_argument("--output", required=True, help="output mp4 (a .wav and .png are written beside it)")
    parser.add_argument("--frames", type=int, default=100, help="frames to generate")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (0 = greedy)")
    parser.add_argument("--top-k", type=int, default=50, help="keep the k most likely codes (0 = all)")
    parser.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling mass, in (0, 1]")
    parser.add_argument("--beam-size", type=int, default=1, help="> 1: beam search over frames (deterministic)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampler")
    parser.add_argument("--device", default="cpu", help="torch device")


def run(args: argparse.Namespace) -> int:
    from worldrl.models import load_pretrained
    from worldrl.models.multimodal.generator import VideoGenerator

    output = Path(args.output)
    if output.suffix.lower() != ".mp4":
        raise ConfigError(f"--output must name an .mp4 file, got {output}")
    if args.frames < 1:
        raise ConfigError(f"--frames must be >= 1, got {args.frames}")
    model = load_pretrained(args.checkpoint, device=args.device)
    if model.config.family != "multimodal":
        raise ConfigError(
            f"worldrl generate needs a multimodal checkpoint; {args.checkpoint} is a {model.config.family} model"
        )
    generator = VideoGenerator(
        model,
        args.device,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        beam_size=args.beam_size,
        max_length=args.frames,
        generator=torch.Generator().manual_seed(args.seed),
    )
    if args.prompt is not None:
        video = generator.generate_from_prompt(Path(args.prompt), args.frames)
        source = f"prompt {args.prompt}"
    elif args.scene is not None:
        start = {"scene": args.scene, "scene_seed": args.scene_seed}
        video = generator.generate_with_physics(start, args.frames, context_steps=args.context_steps)
        source = f"scene {args.scene} (seed {args.scene_seed}), {args.context_steps} real frame(s)"
    else:
        video = generator.generate_unconditional(args.frames)
        source = "a training-episode start"
    files = video.save(output)
    info = video.info
    print(
        f"generated {args.frames} frames from {source} in {info['seconds']:.1f}s "
        f"({info['frames_per_second']:.1f} frames/s), log-likelihood {float(video.log_prob[0]):.1f} nats"
    )
    print(f"wrote {', '.join(str(f) for f in files)}")
    return 0
