"""Scene variations: how the simulated tabletop looks (lighting, table, cube colours), by number.

Variation 0 is the original look, bit for bit; every other number is a seeded, reproducible
variation of the same scene: the key light's direction, strength and colour, the table top (wood,
plain paint or a checker cloth, with or without the green mat) and the cubes' colours. Geometry
and motion never change, so episodes of different variations share one script and one glove.
A model trained across variations has to look at what moves, not at the table it was shown.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from devices.sim_world.rng import KeyedRandom

#: Table tops a variation can draw.
TABLE_FINISHES = ("wood", "paint", "checker")
_KEY = 613  # separates the look's random stream from the world's


@dataclass(frozen=True)
class SceneLook:
    """Everything about the scene's appearance that a variation may change."""

    #: Direction towards the (distant) key light, table frame, unit length.
    light: tuple[float, float, float] = (-0.35, -0.25, 1.0)
    #: Overall brightness and the light's colour (per channel gain).
    gain: float = 1.0
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    #: Centre (x, y, metres) of the pool of light on the table.
    spot: tuple[float, float] = (0.1, -0.05)
    table: str = "wood"
    #: Base colour of the table top (wood's mid tone, the paint, the checker's light squares).
    table_color: tuple[float, float, float] = (150.0, 102.0, 62.0)
    #: Wood grain frequency (per metre) or checker square size (metres).
    table_scale: float = 38.0
    mat: bool = True
    mat_color: tuple[float, float, float] = (88.0, 108.0, 96.0)
    wall_color: tuple[float, float, float] = (205.0, 200.0, 188.0)
    #: Cube colours, in the world's cube order; ``None``: the world's own.
    cube_colors: tuple[tuple[int, int, int], ...] | None = None

    def __post_init__(self) -> None:
        if self.table not in TABLE_FINISHES:
            raise ValueError(f"table must be one of {', '.join(TABLE_FINISHES)}, got {self.table!r}")
        if self.gain <= 0:
            raise ValueError(f"gain must be > 0, got {self.gain}")

    @property
    def light_direction(self) -> np.ndarray:
        v = np.asarray(self.light, float)
        return v / np.linalg.norm(v)


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    return tuple(255.0 * c for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def scene_look(variation: int) -> SceneLook:
    """The look of scene variation ``variation`` (0: the original; any other int >= 1: seeded)."""
    if variation < 0:
        raise ValueError(f"variation must be >= 0, got {variation}")
    if variation == 0:
        return SceneLook()
    rng = KeyedRandom(_KEY, variation)
    azimuth = rng.uniform(0, 2 * np.pi)
    elevation = rng.uniform(0.9, 1.45)  # from 52 deg above the horizon to almost overhead
    light = (float(np.cos(azimuth) * np.cos(elevation)), float(np.sin(azimuth) * np.cos(elevation)),
             float(np.sin(elevation)))
    warmth = rng.signed(0.12)
    tint = (1.0 + warmth, 1.0 + rng.signed(0.04), 1.0 - warmth)
    table = TABLE_FINISHES[int(rng.random() * len(TABLE_FINISHES))]
    if table == "wood":
        table_color, scale = _hsv(rng.uniform(0.05, 0.11), rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.75)), \
            rng.uniform(20, 60)
    elif table == "paint":
        table_color, scale = _hsv(rng.random(), rng.uniform(0.0, 0.35), rng.uniform(0.3, 0.9)), 0.0
    else:
        table_color, scale = _hsv(rng.random(), rng.uniform(0.0, 0.4), rng.uniform(0.55, 0.9)), \
            rng.uniform(0.03, 0.08)
    hue0 = rng.random()
    # Three well-separated hues (the cubes stay tellable apart), strongly saturated.
    cube_colors = tuple(tuple(int(c) for c in _hsv(hue0 + i / 3 + rng.signed(0.06),
                                                     rng.uniform(0.6, 0.95), rng.uniform(0.55, 0.9)))
                        for i in range(3))
    order = rng.permutation(3)
    return SceneLook(light=light, gain=rng.uniform(0.65, 1.3), tint=tint,
                     spot=(rng.signed(0.25), rng.signed(0.2)), table=table, table_color=table_color,
                     table_scale=scale, mat=rng.random() < 0.5,
                     mat_color=_hsv(rng.random(), rng.uniform(0.1, 0.5), rng.uniform(0.25, 0.6)),
                     wall_color=_hsv(rng.random(), rng.uniform(0.0, 0.25), rng.uniform(0.55, 0.9)),
                     cube_colors=tuple(cube_colors[i] for i in order))
