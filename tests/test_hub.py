"""Hub publishing: ``push_to_hub`` and ``load_pretrained(..., revision=)`` against a local mock of the Hub's HTTP API
(``tests/_hub_server.py`` on 127.0.0.1, reached through ``HF_ENDPOINT``; no network), and the model card."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from _hub_server import MockHub
from _models import tiny_model
from huggingface_hub import ModelCard
from safetensors.torch import load_file

from worldrl.evaluation.fidelity import FidelityReport, HorizonMetrics
from worldrl.models import CheckpointError, push_to_hub
from worldrl.models.hub import model_card

REPO_ID = "someone/pendulum-world-model"


def _trained_run(root: Path) -> Path:
    """A run directory as ``worldrl train`` + ``worldrl evaluate`` leave it: model/, model/eval/, config.yaml."""
    checkpoint = root / "run" / "model"
    tiny_model().save_pretrained(str(checkpoint))
    (root / "run" / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "data": {
                    "root": "someone/pendulum-demos",
                    "collect": {"env_id": "Pendulum-v1", "episodes": 60, "policy": "ou"},
                }
            }
        )
    )
    horizons = [HorizonMetrics(horizon=1, count=40, nrmse=0.021), HorizonMetrics(horizon=10, count=40, nrmse=0.13)]
    report = FidelityReport(
        model="ensemble",
        task_id="Pendulum-v1",
        obs_key="observation.state",
        episodes=[54, 55],
        num_starts=40,
        context=1,
        horizons=horizons,
        curve=horizons,
        baselines={
            "last_observation": [
                HorizonMetrics(horizon=1, count=40, nrmse=0.09),
                HorizonMetrics(horizon=10, count=40, nrmse=0.8),
            ]
        },
    )
    (checkpoint / "eval").mkdir()
    report.to_json(checkpoint / "eval" / "fidelity.json")
    return checkpoint


# Pushes the run's checkpoint to main, a changed copy of the model to branch "v2", and loads both back by id.
_ROUND_TRIP = r"""
import json, sys, torch
from worldrl.models import CheckpointError, WorldModel, load_pretrained, push_to_hub

checkpoint, repo_id = sys.argv[1], sys.argv[2]
info = push_to_hub(checkpoint, repo_id, token="hf_test")
changed = load_pretrained(checkpoint)
with torch.no_grad():
    next(changed.parameters()).add_(1.0)
info_v2 = changed.push_to_hub(repo_id, revision="v2", token="hf_test", dataset="someone/pendulum-demos")
main, v2 = WorldModel.from_pretrained(repo_id), load_pretrained(repo_id, revision="v2")
try:
    load_pretrained(repo_id, revision="no-such-branch")
    missing = None
except CheckpointError as err:
    missing = str(err)
import gymnasium as gym, worldrl
env = gym.make("WorldModel-v0", model=repo_id, revision="v2")  # the env option, as load_pretrained's
first = lambda m: next(m.parameters()).sum().item()
print(json.dumps({"oid": info.oid, "oid_v2": info_v2.oid, "main": first(main), "v2": first(v2),
                  "env_v2": first(env.unwrapped.model),
                  "original": first(load_pretrained(checkpoint)), "task": v2.task.task_id, "missing": missing}))
"""


def test_push_to_hub_then_load_by_id_and_revision(tmp_path: Path) -> None:
    checkpoint = _trained_run(tmp_path)
    with MockHub(token="hf_test") as hub:
        env = {
            **os.environ,
            "HF_ENDPOINT": hub.url,
            "HF_HUB_OFFLINE": "0",
            "HF_HOME": str(tmp_path / "hf"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_ETAG_TIMEOUT": "5",
            "HF_HUB_DOWNLOAD_TIMEOUT": "5",
        }
        env.pop("HF_TOKEN", None)
        out = subprocess.run(
            [sys.executable, "-c", _ROUND_TRIP, str(checkpoint), REPO_ID],
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        result = json.loads(out.stdout.strip().splitlines()[-1])
        main, v2 = hub.files(REPO_ID, "main"), hub.files(REPO_ID, "v2")
        branches = hub.repos[REPO_ID].branches
        assert branches["main"] == result["oid"] and branches["v2"] == result["oid_v2"]

    # what main holds: the checkpoint byte for byte, the fidelity report, a card
    for name in ("config.json", "task.json", "model.safetensors", "start_states.safetensors"):
        if (checkpoint / name).exists():
            assert main[name] == (checkpoint / name).read_bytes(), name
    assert json.loads(main["eval/fidelity.json"]) == json.loads((checkpoint / "eval" / "fidelity.json").read_text())
    card = ModelCard(main["README.md"].decode())
    assert card.data.library_name == "worldrl" and card.data.pipeline_tag == "reinforcement-learning"
    assert {"worldrl", "ensemble", "Pendulum-v1"} <= set(card.data.tags)
    assert card.data.task_id == "Pendulum-v1" and card.data.family == "ensemble"
    assert card.data.training_dataset == "someone/pendulum-demos" and card.data.datasets == ["someone/pendulum-demos"]
    scores = {(r.metric_type, r.metric_name): r.metric_value for r in card.data.eval_results}
    assert scores == {("nrmse", "nRMSE at horizon 1"): 0.021, ("nrmse", "nRMSE at horizon 10"): 0.13}
    assert "| 1 | 0.021 | 0.09 |" in card.text and "Pendulum-v1, episodes 60, policy ou" in card.text
    # v2: the changed in-memory model, its card without fidelity numbers (none were given)
    assert load_file(str(checkpoint / "model.safetensors")).keys() == load_file_bytes(v2["model.safetensors"]).keys()
    assert "eval/fidelity.json" not in v2 and ModelCard(v2["README.md"].decode()).data.eval_results is None
    # loading by id follows the revision
    assert result["main"] == pytest.approx(result["original"]) and result["v2"] != pytest.approx(result["original"])
    assert result["env_v2"] == result["v2"]
    assert result["task"] == "Pendulum-v1"
    assert "hf download someone/pendulum-world-model --revision no-such-branch --local-dir DIR" in result["missing"]


def load_file_bytes(data: bytes) -> dict:
    from safetensors.torch import load

    return load(data)


def test_push_without_the_hub_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline (the suite runs with HF_HUB_OFFLINE=1): one CheckpointError naming the repo and the remedy."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CheckpointError, match=r"could not push .*someone/x.*HF_HUB_OFFLINE"):
        push_to_hub(tiny_model(), "someone/x", token="hf_test")
    with pytest.raises(CheckpointError, match="revision='v2' applies to Hub repo ids"):
        tiny_model().save_pretrained(str(tmp_path / "ckpt"))
        from worldrl.models import load_pretrained

        load_pretrained(tmp_path / "ckpt", revision="v2")


def test_model_card_of_a_checkpoint_without_evaluation(tmp_path: Path) -> None:
    tiny_model().save_pretrained(str(tmp_path / "ckpt"))
    card = ModelCard(model_card(tmp_path / "ckpt", REPO_ID, dataset="outputs/datasets/pendulum"))
    assert card.data.library_name == "worldrl" and card.data.task_id == "Pendulum-v1"
    assert card.data.datasets is None and card.data.training_dataset == "outputs/datasets/pendulum"  # local: no link
    assert card.data.eval_results is None and "Open-loop fidelity" not in card.text
    assert f'load_pretrained("{REPO_ID}")' in card.text
