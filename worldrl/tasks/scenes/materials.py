"""Materials (density, friction, contact softness, and the modes their impacts ring at) and named colours.

``solref`` is MuJoCo's (time constant, damping ratio): a lower damping ratio gives a bouncier, restitution-like
contact. The modes are (frequency Hz, decay time s, gain) triples used by the synthetic audio derived from contacts.
"""

from __future__ import annotations

from dataclasses import dataclass

from worldrl.errors import ConfigError


@dataclass(frozen=True)
class Material:
    name: str
    density: float
    """kg/m^3, for an object's default mass."""
    friction: float
    """Sliding friction coefficient."""
    solref: tuple[float, float]
    """MuJoCo contact (time constant, damping ratio); damping ratio < 1 bounces."""
    modes: tuple[tuple[float, float, float], ...]
    """(frequency Hz, decay time s, gain) of the damped sinusoids an impact excites."""


MATERIALS: dict[str, Material] = {
    "rubber": Material("rubber", 1100.0, 1.0, (0.02, 0.25), ((180.0, 0.03, 1.0), (410.0, 0.02, 0.5))),
    "wood": Material("wood", 600.0, 0.6, (0.02, 1.0), ((520.0, 0.05, 1.0), (1250.0, 0.03, 0.4), (2300.0, 0.02, 0.2))),
    "metal": Material(
        "metal", 7800.0, 0.3, (0.01, 1.0), ((1800.0, 0.4, 1.0), (3900.0, 0.25, 0.6), (5600.0, 0.15, 0.3))
    ),
    "plastic": Material("plastic", 950.0, 0.4, (0.015, 0.6), ((900.0, 0.06, 1.0), (2100.0, 0.04, 0.5))),
    "stone": Material("stone", 2500.0, 0.9, (0.02, 1.0), ((320.0, 0.04, 1.0), (760.0, 0.03, 0.5))),
}
"""Object materials; ``stone`` is the floor, walls, ramp and table."""

OBJECT_MATERIALS = ("rubber", "wood", "metal", "plastic")
STATIC_MATERIAL = "stone"

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.15, 0.15),
    "green": (0.15, 0.7, 0.2),
    "blue": (0.15, 0.3, 0.9),
    "yellow": (0.95, 0.85, 0.1),
    "purple": (0.6, 0.2, 0.75),
    "cyan": (0.1, 0.8, 0.85),
    "orange": (0.95, 0.5, 0.1),
    "brown": (0.5, 0.3, 0.15),
}
"""Named object colours; a scene uses each at most once, so "the red sphere" names one object."""

SHAPES = ("sphere", "box", "cylinder")


def material(name: str) -> Material:
    if name not in MATERIALS:
        raise ConfigError(f"unknown material {name!r}; known: {', '.join(MATERIALS)}")
    return MATERIALS[name]


__all__ = ["COLOURS", "MATERIALS", "OBJECT_MATERIALS", "SHAPES", "STATIC_MATERIAL", "Material", "material"]
