"""Ranges and comparisons on a circle (e.g. hue, which wraps at 1)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

# A step count within this (relative) distance of an integer is treated as that integer,
# so that e.g. 1 / (10/360) = 35.99999999999999 gives 36 steps, not 35 or 37.
_STEP_COUNT_RTOL = 1e-9


def arange_cyclic(
    lower: float = 0.0,
    upper: float | None = None,
    step_size: float = 1 / 12,
    period: float = 1.0,
    inclusive: bool = False,
) -> NDArray[np.float64]:
    """
    Evenly spaced values from `lower`, wrapped into `[0, period)`.

    The range runs from `lower` up to `upper` (default: one period after `lower`). If
    `upper < lower` the range runs forward around the circle to `upper`, so
    `arange_cyclic(330/360, 30/360, 10/360)` gives the six hues around red. `upper` is
    excluded unless `inclusive` is true and it falls on the grid.

    Values are computed as `lower + step_size * i` (not by accumulation), so
    `arange_cyclic(step_size=10/360)` has exactly 36 values.

    Returns: `[n]` float64.
    """
    if not step_size > 0:
        raise ValueError(f'step_size must be positive, got {step_size}')
    if not period > 0:
        raise ValueError(f'period must be positive, got {period}')
    if upper is None:
        upper = lower + period
    elif upper < lower:
        upper = lower + (upper - lower) % period

    n_steps = (upper - lower) / step_size
    nearest = round(n_steps)
    on_grid = math.isclose(n_steps, nearest, rel_tol=_STEP_COUNT_RTOL, abs_tol=_STEP_COUNT_RTOL)
    # Off the grid, `upper` can't be reached, so `inclusive` has nothing to add.
    n_values = (nearest + int(inclusive)) if on_grid else math.ceil(n_steps)

    values = np.mod(lower + step_size * np.arange(n_values, dtype=np.float64), period)
    # Rounding can leave a value a hair below the period (e.g. -1e-17 % 1); it belongs at 0.
    values[np.isclose(values, period, rtol=0, atol=period * 1e-12)] = 0.0
    return values


def isclose_cyclic(a: ArrayLike, b: ArrayLike, period: float = 1.0, atol: float = 1e-8) -> NDArray[np.bool_]:
    """
    Whether `a` and `b` are within `atol` of each other, measured around the circle.

    E.g. with `period=1`, 0.999 and 0.001 are 0.002 apart. Broadcasts like numpy.
    """
    distance = np.mod(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)), period)
    return np.minimum(distance, period - distance) <= atol
