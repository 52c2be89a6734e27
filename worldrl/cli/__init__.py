"""The ``worldrl`` command: one module per subcommand, found through a registry (no if-chains).

Errors are handled here once: a ``WorldRLError`` (bad input, or a run that failed for a reason the user must
know) becomes one line on stderr and its ``exit_code``; Ctrl-C exits 130 with one line; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from worldrl.errors import WorldRLError

EXIT_INTERRUPTED = 130
# name -> module defining ``add_arguments(parser)`` and ``run(args) -> int``; imported lazily so
# `worldrl --help` stays fast and a broken optional dependency only affects its own subcommand.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "collect": ("worldrl.cli.collect", "record rollouts of a Gymnasium env into a LeRobot v3.0 dataset"),
    "info": ("worldrl.cli.info", "summarise a LeRobot dataset (local path or Hub id)"),
    "train": ("worldrl.cli.train", "train a world model from a YAML config with key=value overrides"),
    "evaluate": ("worldrl.cli.evaluate", "open-loop fidelity (multimodal: benchmark suite) on held-out episodes"),
    "generate": ("worldrl.cli.generate", "video + audio from a multimodal checkpoint (prompt clip, scene or start)"),
    "train-agent": ("worldrl.cli.train_agent", "online loop: collect, fit the model, improve the agent, evaluate"),
    "evaluate-agent": ("worldrl.cli.evaluate_agent", "a trained agent's return on the real env (re-planning options)"),
    "qa": ("worldrl.cli.qa", "physics questions with exact answers from MuJoCo scenes (generate, show)"),
    "configs": ("worldrl.cli.configs", "list the YAML presets shipped in the package, or show one"),
    "plan-goal": ("worldrl.cli.plan_goal", "plan toward goal images in a latent model (mpc-goal) on the real env"),
    "train-vlm": ("worldrl.cli.train_vlm", "fine-tune a Gemma 3 fusion model (world tokens) on a question set"),
    "evaluate-vlm": ("worldrl.cli.evaluate_vlm", "VLM accuracy per question type with CIs and baselines"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported (all of them when ``command`` is None)."""
    parser = argparse.ArgumentParser(prog="worldrl", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if command is None or name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(sp)
            sp.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # Importing a subcommand pulls in torch, gymnasium, SB3...: import only the one being run, so
    # `worldrl --help` and `worldrl info` start fast.
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in SUBCOMMANDS else "")
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except WorldRLError as err:
        print(f"worldrl {args.command}: error: {one_line(err)}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"worldrl {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `worldrl configs list | head`: the reader left; Python's documented recipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def one_line(err: BaseException) -> str:
    """The error's message with its whitespace folded, so a wrapped message still prints as one line."""
    return " ".join(str(err).split())


if __name__ == "__main__":
    sys.exit(main())
