"""One property's keyframes and its value at any step, one at a time or for all steps at once."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np
from numpy.typing import NDArray

from ex_color.temporal.keyframes import PropertySpec
from ex_color.temporal.timing import get_timing, interpolate


class Track:
    """A property's keyframes `(step, value)`, sorted by step, and the curve through them.

    Before the first keyframe the value is the first keyed value; after the last, the last.
    Between keyframes (t0, v0) → (t1, v1) it is `interpolate(v0, v1, timing(τ), space)` with
    τ = (t − t0)/(t1 − t0).
    """

    def __init__(self, spec: PropertySpec, steps: Sequence[int], values: Sequence[float]) -> None:
        if not steps or len(steps) != len(values):
            raise ValueError(f'track {spec.name!r} needs one value per keyframe step and at least one keyframe')
        if any(b <= a for a, b in pairwise(steps)):
            raise ValueError(f'track {spec.name!r}: keyframe steps must be strictly increasing, got {list(steps)}')
        self.spec = spec
        self.steps: tuple[int, ...] = tuple(int(s) for s in steps)
        self.values: tuple[float, ...] = tuple(float(v) for v in values)
        self._timing = get_timing(spec.timing)
        self._step_array = np.asarray(self.steps, dtype=np.int64)
        self._value_array = np.asarray(self.values, dtype=np.float64)

    def value_at(self, t: int) -> float:
        """The value at step `t` (any integer; outside the keyframes it holds the end values).

        Computed by `values_at`, the code that fills `sample`, so it is `sample(n)[t]` bit for bit.
        """
        return float(self.values_at(np.array([t], dtype=np.int64))[0])

    def sample(self, length: int) -> NDArray[np.float64]:
        """Values at steps `0 … length − 1` in one vectorised pass: `[length]` float64."""
        if len(self.steps) == 1:
            return np.full(length, self.values[0], dtype=np.float64)
        return self.values_at(np.arange(length, dtype=np.int64))

    def values_at(self, t: NDArray[np.int64]) -> NDArray[np.float64]:
        """Values at the integer steps `t [n]`: `[n]` float64. Every per-step value is computed here."""
        if len(self.steps) == 1:
            return np.full(t.shape, self.values[0], dtype=np.float64)
        # Segment i spans steps[i] .. steps[i + 1]; steps outside all segments clamp to the end ones,
        # where τ clipped to 0 or 1 gives exactly the first or last keyed value.
        i = np.clip(np.searchsorted(self._step_array, t, side='right') - 1, 0, len(self.steps) - 2)
        t0 = self._step_array[i]
        t1 = self._step_array[i + 1]
        tau = np.clip((t - t0) / (t1 - t0), 0.0, 1.0)
        return interpolate(self._value_array[i], self._value_array[i + 1], self._timing(tau), self.spec.space)

    def __repr__(self) -> str:
        return (
            f'Track({self.spec.name!r}, space={self.spec.space!r}, timing={self.spec.timing!r}, keys={len(self.steps)})'
        )
