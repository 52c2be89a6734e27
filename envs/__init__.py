"""Gymnasium and TorchRL environments backed by learned world models (installed as ``worldrl.envs``)."""
