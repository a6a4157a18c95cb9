"""Timing functions and value spaces: how a property moves from one keyframe to the next.

A timing function maps normalised time τ ∈ [0, 1] between two keyframes to an eased
fraction of the way from the first value to the second. The space says in which
coordinates that fraction is taken: `linear` mixes the values themselves, `log` mixes
their logarithms (so a learning rate going from 1e-8 to 1e-2 spends equal time per decade).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Literal, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

TimingName: TypeAlias = Literal['minjerk', 'linear', 'step-end']
SpaceName: TypeAlias = Literal['linear', 'log']
FloatOrArray: TypeAlias = float | NDArray[np.float64]
"""A Python float for scalar input (the fast path for one step), else a float64 array."""
TimingFunction: TypeAlias = Callable[[float | ArrayLike], FloatOrArray]

DEFAULT_TIMING: TimingName = 'minjerk'
DEFAULT_SPACE: SpaceName = 'linear'
SPACES: tuple[SpaceName, ...] = ('linear', 'log')
LOG_FLOOR = 1e-10
"""Values are clamped to at least this before taking logs, so zero can be keyed in log space."""


def _as_tau(tau: float | ArrayLike) -> FloatOrArray:
    """τ clipped to [0, 1] (so rounding never extrapolates): a float for Python scalars, else float64."""
    if isinstance(tau, int | float):
        return min(max(float(tau), 0.0), 1.0)
    return np.clip(np.asarray(tau, dtype=np.float64), 0.0, 1.0)


def minjerk(tau: float | ArrayLike) -> FloatOrArray:
    """Minimum-jerk easing `10τ³ − 15τ⁴ + 6τ⁵`: zero velocity and acceleration at both ends.

    Vectorised: `tau` of shape `[...]` gives `[...]` (a float for a float); τ is clipped to [0, 1].
    """
    tau = _as_tau(tau)
    # Horner form of 10τ³ − 15τ⁴ + 6τ⁵; exact at τ = 0, 0.5 and 1. Products only, no `**`: a power is a
    # libm call for a float and a SIMD kernel for an array, which differ in the last bit on some CPUs,
    # while a product rounds the same everywhere, so the easing is the same number on every path.
    eased = tau * tau * tau * (10.0 + tau * (-15.0 + 6.0 * tau))
    # Rounding can overshoot 1 by an ulp or two just below τ = 1; an overshoot would push a
    # weight easing down to 0 slightly negative.
    if isinstance(eased, float):
        return min(eased, 1.0)
    return np.minimum(eased, 1.0)


def linear(tau: float | ArrayLike) -> FloatOrArray:
    """Constant-speed timing `τ` (clipped to [0, 1]); shape `[...]` → `[...]`."""
    return _as_tau(tau)


def step_end(tau: float | ArrayLike) -> FloatOrArray:
    """Hold the start value until the end: 0 for τ < 1, 1 at τ = 1; shape `[...]` → `[...]`."""
    return 1.0 * (_as_tau(tau) >= 1.0)


TIMING_FUNCTIONS: Mapping[str, TimingFunction] = MappingProxyType(
    {'minjerk': minjerk, 'linear': linear, 'step-end': step_end, 'step': step_end}
)
"""Timing functions by the name used in dopesheet headers (`step` is an alias of `step-end`)."""

_CANONICAL_TIMING: Mapping[str, TimingName] = MappingProxyType(
    {'minjerk': 'minjerk', 'linear': 'linear', 'step-end': 'step-end', 'step': 'step-end'}
)


def canonical_timing(name: str) -> TimingName:
    """The canonical name of timing `name` (resolving aliases); ValueError if unknown."""
    try:
        return _CANONICAL_TIMING[name]
    except KeyError:
        raise ValueError(f'unknown timing {name!r}: expected one of {", ".join(TIMING_FUNCTIONS)}') from None


def get_timing(name: str) -> TimingFunction:
    """The timing function called `name` (`minjerk`, `linear`, `step-end` or `step`)."""
    return TIMING_FUNCTIONS[canonical_timing(name)]


def interpolate(
    v0: float | ArrayLike, v1: float | ArrayLike, eased: float | ArrayLike, space: SpaceName
) -> FloatOrArray:
    """Mix `v0` and `v1` by the eased fraction `eased` in `space`; all broadcast to `[...]`.

    At `eased == 0` the result is exactly `v0` and at `eased == 1` exactly `v1` (keyed values
    come back bit for bit, even in log space, where a keyed 0 stays 0). Three Python floats
    give a float (the per-step path); anything else gives a float64 array.
    """
    if space not in SPACES:
        raise ValueError(f'unknown space {space!r}: expected one of {", ".join(SPACES)}')
    if isinstance(v0, float) and isinstance(v1, float) and isinstance(eased, float):
        if eased == 0.0:
            return v0
        if eased == 1.0:
            return v1
        if space == 'linear':
            return v0 + (v1 - v0) * eased
        log0, log1 = math.log(max(v0, LOG_FLOOR)), math.log(max(v1, LOG_FLOOR))
        return math.exp(log0 + (log1 - log0) * eased)
    v0 = np.asarray(v0, dtype=np.float64)
    v1 = np.asarray(v1, dtype=np.float64)
    eased = np.asarray(eased, dtype=np.float64)
    if space == 'linear':
        mixed = v0 + (v1 - v0) * eased
    else:
        log0 = np.log(np.maximum(v0, LOG_FLOOR))
        log1 = np.log(np.maximum(v1, LOG_FLOOR))
        mixed = np.exp(log0 + (log1 - log0) * eased)
    return np.where(eased == 0.0, v0, np.where(eased == 1.0, v1, mixed))
