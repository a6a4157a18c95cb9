"""Falloff mappers: how strongly an intervention acts as a function of alignment with a concept."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ['BoundedFalloff', 'Mapper']

Mapper = Callable[[Tensor], Tensor]
"""Elementwise map of a tensor of alignments (cosines or dot products) to a tensor of the same shape."""


DEFAULT_THRESHOLD = 0.0
DEFAULT_PEAK = 1.0
DEFAULT_POWER = 1.0
"""`BoundedFalloff`'s defaults, also the experiment file's (`falloff_a`, `falloff_b`, `falloff_power`): no threshold,
full strength at alignment 1, rising linearly."""


class BoundedFalloff:
    """`b·((x − a)/(1 − a))^power` for x > a, else 0 (elementwise; `[...] → [...]`).

    Zero up to the threshold `a`, rising to `b` at x = 1. With `power=0` it is a step: b for
    every x > a. Meant for alignments x in [−1, 1].
    """

    def __init__(self, a: float = DEFAULT_THRESHOLD, b: float = DEFAULT_PEAK, power: float = DEFAULT_POWER) -> None:
        if not a < 1:
            raise ValueError(f'BoundedFalloff: threshold a must be < 1 (it divides by 1 − a), got {a}')
        if power < 0:
            raise ValueError(f'BoundedFalloff: power must be ≥ 0, got {power}')
        self.a = float(a)
        self.b = float(b)
        self.power = float(power)

    def __call__(self, x: Tensor) -> Tensor:
        above = x > self.a
        # Clamp before the power so x ≤ a never raises a negative base to a fractional power.
        ramp = ((x - self.a) / (1 - self.a)).clamp_min(0.0)
        return torch.where(above, self.b * ramp**self.power, torch.zeros_like(x))

    def __repr__(self) -> str:
        return f'BoundedFalloff(a={self.a:g}, b={self.b:g}, power={self.power:g})'
