"""Batched sampling planners over action sequences (CEM, MPPI), found by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worldrl.agents.planners.cem import CEMConfig, CEMPlanner
from worldrl.agents.planners.common import PlannerConfig, PlanResult, SamplingPlanner, shift_plan
from worldrl.agents.planners.mppi import MPPIConfig, MPPIPlanner
from worldrl.config_loading import config_from_dict
from worldrl.errors import ConfigError


@dataclass(frozen=True)
class _PlannerEntry:
    planner_class: type[SamplingPlanner]
    config_class: type[PlannerConfig]


PLANNERS: dict[str, _PlannerEntry] = {
    "cem": _PlannerEntry(CEMPlanner, CEMConfig),
    "mppi": _PlannerEntry(MPPIPlanner, MPPIConfig),
}


def planner_config(name: str, config: PlannerConfig | dict[str, Any] | None = None, **overrides: Any) -> PlannerConfig:
    """The named planner's config from a dict / config object / defaults, with keyword overrides applied."""
    entry = _entry(name)
    if isinstance(config, PlannerConfig):
        if not isinstance(config, entry.config_class):
            raise TypeError(f"planner {name!r} needs a {entry.config_class.__name__}, got {type(config).__name__}")
        config = config.to_dict()
    return config_from_dict(entry.config_class, {**(config or {}), **overrides}, "planner")


def make_planner(name: str, config: PlannerConfig | dict[str, Any] | None = None, **kwargs: Any) -> SamplingPlanner:
    """``make_planner("cem", horizon=8, value_fn=v)``: config fields and planner arguments by keyword."""
    extra = {k: kwargs.pop(k) for k in ("value_fn", "policy_prior", "action_space") if k in kwargs}
    return _entry(name).planner_class(planner_config(name, config, **kwargs), **extra)


def _entry(name: str) -> _PlannerEntry:
    if name not in PLANNERS:
        raise ConfigError(f"unknown planner {name!r}; known planners: {sorted(PLANNERS)}")
    return PLANNERS[name]


__all__ = [
    "CEMConfig",
    "CEMPlanner",
    "MPPIConfig",
    "MPPIPlanner",
    "PLANNERS",
    "PlanResult",
    "PlannerConfig",
    "SamplingPlanner",
    "make_planner",
    "planner_config",
    "shift_plan",
]
