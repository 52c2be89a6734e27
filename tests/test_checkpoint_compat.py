"""Checkpoints written before keyed observations and the protocol's roles (format 1, written by worldrl at commit
727f0b8 into tests/fixtures/checkpoint-format1-*) keep loading and predicting exactly as they did; a family whose
weights changed meaning refuses its old checkpoints with a message that says why."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from worldrl.models import CheckpointError, load_pretrained

DEFAULT_WEIGHTS_SHA256 = "9383a9f3460f6635ebb45957713666a0cf7659e8aadac0fbbb8415aa22ab74a6"
"""sha256 of worldrl/assets/default_model/model.safetensors as scripts/make_default_model.py wrote it at 727f0b8."""
FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "checkpoint-format1-expected.json").read_text())


def test_format1_ensemble_checkpoint_loads_and_predicts_as_it_did() -> None:
    model = load_pretrained(FIXTURES / "checkpoint-format1-ensemble")
    assert not model.task.is_keyed and model.task.obs_key == "observation.state"
    assert torch.equal(model.start_states, torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.5]]))
    with torch.no_grad():
        state = model.observe_last(
            torch.tensor([[[0.6, 0.8, -1.0]]]), torch.zeros(1, 1, 1), torch.ones(1, 1, dtype=torch.bool)
        )
        nxt = model.imagine(state, torch.tensor([[0.5]]))
    assert model.decode(nxt).tolist() == pytest.approx(EXPECTED["ensemble"]["decoded"][0][:], abs=0) or torch.allclose(
        model.decode(nxt), torch.tensor(EXPECTED["ensemble"]["decoded"]), atol=1e-7, rtol=0
    )
    assert torch.allclose(model.reward(nxt), torch.tensor(EXPECTED["ensemble"]["reward"]), atol=1e-7, rtol=0)


def test_format1_vrnn_checkpoint_is_refused_with_the_reason() -> None:
    with pytest.raises(CheckpointError, match="architecture version 1.*builds version 2.*retrain"):
        load_pretrained(FIXTURES / "checkpoint-format1-vrnn")


def test_the_bundled_default_model_is_unchanged() -> None:
    """The shipped checkpoint's bytes are the ones scripts/make_default_model.py produced before this change."""
    from worldrl.envs.default_model import default_model_path

    weights = default_model_path() / "model.safetensors"
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == DEFAULT_WEIGHTS_SHA256
    assert load_pretrained(default_model_path()).task.task_id == "Pendulum-v1"
