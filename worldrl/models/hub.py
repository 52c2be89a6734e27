"""Publishing world models on the Hugging Face Hub: ``push_to_hub`` and the model card it writes.

``push_to_hub(model_or_dir, "user/name")`` uploads a checkpoint (``save_pretrained``'s files) and a model card
(``README.md``) in huggingface_hub's conventions: ``HfApi.create_repo(exist_ok=True)``, ``create_branch`` for a
``revision`` that does not exist yet, one ``upload_folder`` commit. The card's YAML metadata says
``library_name: worldrl``, the tags (family, task), the task id, the family, the training dataset and, when a
fidelity report lies beside the checkpoint (``<checkpoint>/eval/fidelity.json``, where ``worldrl evaluate``
writes it), the open-loop errors as ``model-index`` results; the report itself is uploaded too.
``load_pretrained("user/name", revision=...)`` reads it back.

Pushing a checkpoint directory finds its run's resolved config (``<run>/config.yaml``, beside ``<run>/model``)
and names the dataset it was trained on; pushing an in-memory model writes its checkpoint to a temporary
directory and states what it is given (``dataset=``, ``fidelity=``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from worldrl.config_loading import load_yaml
from worldrl.errors import CheckpointError, ConfigError
from worldrl.models.base import WorldModel
from worldrl.models.checkpoint import CHECKPOINT_FILES, CONFIG_NAME, TASK_NAME, load_pretrained, save_pretrained
from worldrl.models.task_spec import TaskSpec

CARD_NAME = "README.md"
FIDELITY_PATH = "eval/fidelity.json"
"""Where ``worldrl evaluate`` writes its report by default, relative to the checkpoint; uploaded with it."""
RUN_CONFIG = "config.yaml"
"""The trainer's resolved config, in the run directory that holds the checkpoint (``<run>/model``)."""
BASE_TAGS = ("worldrl", "world-model", "model-based-reinforcement-learning", "reinforcement-learning")
_METRICS = (
    ("nrmse", "nRMSE", True),
    ("psnr", "PSNR (dB)", False),
    ("ssim", "SSIM", False),
    ("latent_error", "latent error", True),
)
"""(report field, display name, lower is better) of the per-horizon observation errors."""


def push_to_hub(
    model: WorldModel | str | os.PathLike,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool | None = None,
    token: str | bool | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    dataset: str | None = None,
    fidelity: str | os.PathLike | dict[str, Any] | None = None,
    tags: tuple[str, ...] | list[str] = (),
    endpoint: str | None = None,
) -> Any:
    """Upload a world model (object or checkpoint directory) with its model card; returns the ``CommitInfo``.

    ``revision``: the branch to commit to (created from main when missing; default main). ``dataset``: the
    training dataset (a Hub id or a description; default: the ``data.root`` of the run's ``config.yaml``).
    ``fidelity``: a ``fidelity.json`` path or its dict (default: ``eval/fidelity.json`` in the checkpoint).
    ``token``, ``private``, ``create_pr``, ``endpoint``: as in ``huggingface_hub.HfApi``.
    """
    try:
        from huggingface_hub import HfApi
    except ImportError:  # a declared dependency; kept lazy so importing worldrl.models does not pull it in
        raise CheckpointError("push_to_hub needs huggingface_hub: `pip install huggingface_hub`") from None
    with tempfile.TemporaryDirectory(prefix="worldrl-push-") as tmp:
        staging = Path(tmp) / "repo"
        if isinstance(model, WorldModel):
            save_pretrained(model, staging)
            source, run_config = None, {}
        else:
            source = Path(model)
            load_pretrained(source)  # a complete, loadable checkpoint, or a CheckpointError naming the problem
            staging.mkdir()
            for name in CHECKPOINT_FILES:
                if (source / name).exists():
                    shutil.copy2(source / name, staging / name)
            run_config = _run_config(source)
        report = _fidelity(fidelity, source)
        if report is not None:
            (staging / FIDELITY_PATH).parent.mkdir(parents=True, exist_ok=True)
            (staging / FIDELITY_PATH).write_text(json.dumps(report, indent=2) + "\n")
        data = run_config.get("data") or {}
        card = model_card(
            staging,
            repo_id,
            dataset=dataset or data.get("root"),
            collect=data.get("collect"),
            fidelity=report,
            tags=tags,
            revision=revision,
        )
        (staging / CARD_NAME).write_text(card)
        api = HfApi(endpoint=endpoint, token=token)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            if revision is not None and not create_pr:
                api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
            return api.upload_folder(  # a branch starts as a copy of main: drop what this upload does not hold
                repo_id=repo_id,
                folder_path=staging,
                repo_type="model",
                revision=revision,
                create_pr=create_pr,
                delete_patterns=[*CHECKPOINT_FILES, FIDELITY_PATH],
                commit_message=commit_message or f"Upload {_describe(staging)} world model with worldrl",
            )
        except Exception as err:  # offline mode, no token, no network, refused: the user must know which
            raise CheckpointError(
                f"could not push the world model to the Hugging Face Hub as {repo_id!r} ({type(err).__name__}: "
                f"{' '.join(str(err).split())[:500]}). Log in with `hf auth login` (or pass token=) and check that "
                "HF_HUB_OFFLINE is not set"
            ) from None


def model_card(
    checkpoint: str | os.PathLike,
    repo_id: str,
    *,
    dataset: str | None = None,
    collect: dict[str, Any] | None = None,
    fidelity: dict[str, Any] | None = None,
    tags: tuple[str, ...] | list[str] = (),
    revision: str | None = None,
) -> str:
    """The ``README.md`` of a pushed checkpoint: YAML metadata (huggingface_hub's ``ModelCardData``) and a body."""
    from huggingface_hub import ModelCardData

    config, task = _read(Path(checkpoint) / CONFIG_NAME), TaskSpec.from_dict(_read(Path(checkpoint) / TASK_NAME))
    family, task_id = config["family"], task.task_id
    hub_dataset = dataset if _is_hub_id(dataset) else None
    results = _eval_results(fidelity, task_id, hub_dataset) if fidelity else None
    data = ModelCardData(
        library_name="worldrl",
        pipeline_tag="reinforcement-learning",
        tags=_unique([*BASE_TAGS, family, task_id, *tags]),
        datasets=[hub_dataset] if hub_dataset else None,
        model_name=repo_id.split("/")[-1] if results else None,
        eval_results=results,
        task_id=task_id,
        family=family,
        training_dataset=dataset,
        observation_keys=list(task.obs_keys),
    )
    load = f'"{repo_id}"' + (f', revision="{revision}"' if revision else "")
    lines = [
        "---",
        data.to_yaml(),
        "---",
        "",
        f"# {repo_id.split('/')[-1]}",
        "",
        f"A learned simulator of **{task_id}** (worldrl's `{family}` family). It serves as a Gymnasium environment "
        "(`WorldModel-v0`) with the real task's observation and action spaces, and as a TorchRL environment.",
        "",
        "```python",
        "import gymnasium as gym",
        "import worldrl  # registers WorldModel-v0",
        "from worldrl.models import load_pretrained",
        "",
        f"model = load_pretrained({load})",
        'env = gym.make("WorldModel-v0", model=model)',
        "obs, info = env.reset(seed=0)",
        "```",
        "",
        "## Model",
        "",
        f"- family: `{family}`",
        f"- task: `{task_id}` (observations {', '.join(f'`{k}`' for k in data.observation_keys)}"
        + (f"; {task.max_episode_steps} steps per episode" if task.max_episode_steps else "")
        + (f" at {task.fps:g} steps/s" if task.fps else "")
        + ")",
        f"- config: `{CONFIG_NAME}`; weights: `model.safetensors` (no pickle)",
        "",
        "## Training data",
        "",
        _data_line(dataset, collect),
        "",
    ]
    if fidelity:
        lines += ["## Open-loop fidelity", "", *_fidelity_table(fidelity), ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- helpers
def _fidelity(value: str | os.PathLike | dict[str, Any] | None, source: Path | None) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    path = Path(value) if value is not None else (source / FIDELITY_PATH if source is not None else None)
    if path is None or (value is None and not path.exists()):
        return None
    try:
        report = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is not a readable fidelity report ({err})") from None
    if not isinstance(report, dict) or not isinstance(report.get("horizons"), list):
        raise CheckpointError(f"{path} is not a fidelity report (no 'horizons' list); `worldrl evaluate` writes one")
    return report


def _run_config(checkpoint: Path) -> dict[str, Any]:
    path = checkpoint.resolve().parent / RUN_CONFIG
    try:
        config = load_yaml(path.read_text(), str(path)) if path.exists() else {}
    except (OSError, ConfigError):
        return {}
    return config if isinstance(config, dict) else {}


def _eval_results(report: dict[str, Any], task_id: str, dataset: str | None) -> list[Any]:
    from huggingface_hub import EvalResult

    results = []
    for horizon in report.get("horizons", []):
        for key, name, _ in _METRICS:
            if horizon.get(key) is not None:
                results.append(
                    EvalResult(
                        task_type="world-modeling",
                        task_name=f"open-loop prediction of {task_id}",
                        dataset_type=dataset or task_id,
                        dataset_name=dataset or f"{task_id} held-out episodes",
                        metric_type=key,
                        metric_name=f"{name} at horizon {horizon['horizon']}",
                        metric_value=float(horizon[key]),
                    )
                )
    return results


def _fidelity_table(report: dict[str, Any]) -> list[str]:
    horizons = report.get("horizons", [])
    metrics = [(key, name, lower) for key, name, lower in _METRICS if any(h.get(key) is not None for h in horizons)]
    baselines = report.get("baselines") or {}
    first_name = metrics[0][1] if metrics else ""
    header = ["horizon", *(name for _, name, _ in metrics), *(f"{first_name}, {b} baseline" for b in baselines)]
    rows = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for i, h in enumerate(horizons):
        cells = [str(h.get("horizon"))] + [_number(h.get(key)) for key, _, _ in metrics]
        first = metrics[0][0] if metrics else None
        cells += [_number((b[i] if i < len(b) else {}).get(first)) for b in baselines.values()]
        rows.append("| " + " | ".join(cells) + " |")
    where = f"{report.get('num_starts')} starts of episodes {_episodes(report.get('episodes'))}"
    mode = "sampled" if report.get("stochastic") else "mean prediction"
    return [
        *rows,
        "",
        f"`{report.get('obs_key')}`, after {report.get('context')} observed step(s), {mode}, "
        f"{where}; baselines: the same error of trivial predictors. From `{FIDELITY_PATH}` (`worldrl evaluate`).",
    ]


def _data_line(dataset: str | None, collect: dict[str, Any] | None) -> str:
    if not dataset:
        return "Not recorded with the checkpoint."
    where = f"[`{dataset}`](https://huggingface.co/datasets/{dataset})" if _is_hub_id(dataset) else f"`{dataset}`"
    line = f"A LeRobot v3.0 dataset: {where}"
    if collect:
        details = ", ".join(f"{k} {v}" for k, v in collect.items() if k in ("env_id", "episodes", "policy", "seed"))
        line += f", recorded by `worldrl collect` ({details})"
    return line + "."


def _is_hub_id(value: str | None) -> bool:
    return bool(value) and value.count("/") == 1 and not value.startswith((".", "/", "~")) and not Path(value).exists()


def _describe(checkpoint: Path) -> str:
    config, task = _read(checkpoint / CONFIG_NAME), _read(checkpoint / TASK_NAME)
    return f"{config['family']} {task['task_id']}"


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is not readable JSON ({err})") from None


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def _episodes(episodes: Any) -> str:
    if not isinstance(episodes, list) or len(episodes) <= 6:
        return str(episodes)
    return f"{episodes[:3]}...{episodes[-1]} ({len(episodes)})"


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
