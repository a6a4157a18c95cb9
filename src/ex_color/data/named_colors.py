"""The 17 named colours used to report per-colour error: 12 vibrant hues 30° apart and 5 greys."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

NAMED_COLORS: dict[str, tuple[float, float, float]] = {
    'red': (1.0, 0.0, 0.0),  # 0°
    'orange': (1.0, 0.5, 0.0),  # 30°
    'yellow': (1.0, 1.0, 0.0),  # 60°
    'lime': (0.5, 1.0, 0.0),  # 90°
    'green': (0.0, 1.0, 0.0),  # 120°
    'teal': (0.0, 1.0, 0.5),  # 150°
    'cyan': (0.0, 1.0, 1.0),  # 180°
    'azure': (0.0, 0.5, 1.0),  # 210°
    'blue': (0.0, 0.0, 1.0),  # 240°
    'purple': (0.5, 0.0, 1.0),  # 270°
    'magenta': (1.0, 0.0, 1.0),  # 300°
    'pink': (1.0, 0.0, 0.5),  # 330°
    'black': (0.0, 0.0, 0.0),
    'dark gray': (0.25, 0.25, 0.25),
    'gray': (0.5, 0.5, 0.5),
    'light gray': (0.75, 0.75, 0.75),
    'white': (1.0, 1.0, 1.0),
}
"""Name → RGB, in display order (hues by angle, then greys dark to light)."""

NAMED_COLORS_HSV: dict[str, tuple[float, float, float]] = {
    **{
        name: (degrees / 360, 1.0, 1.0)
        for name, degrees in zip(list(NAMED_COLORS)[:12], range(0, 360, 30), strict=True)
    },
    'black': (0.0, 0.0, 0.0),
    'dark gray': (0.0, 0.0, 0.25),
    'gray': (0.0, 0.0, 0.5),
    'light gray': (0.0, 0.0, 0.75),
    'white': (0.0, 0.0, 1.0),
}
"""Name → HSV (hue in turns), same order as `NAMED_COLORS`."""


def named_colors_rgb() -> tuple[list[str], NDArray[np.float64]]:
    """The names and RGB values of the named colours, as a list and a `[17, 3]` array."""
    return list(NAMED_COLORS), np.array(list(NAMED_COLORS.values()), dtype=np.float64)


def named_colors_hsv() -> tuple[list[str], NDArray[np.float64]]:
    """The names and HSV values of the named colours, as a list and a `[17, 3]` array."""
    return list(NAMED_COLORS_HSV), np.array(list(NAMED_COLORS_HSV.values()), dtype=np.float64)
