"""InterventionConfig: what to do to activations, and at which layers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import Tensor

__all__ = ['InterventionConfig']


@dataclass
class InterventionConfig:
    """An activation intervention bound to layers, for `apply_interventions` and inference."""

    apply: Callable[[Tensor], Tensor]
    """Maps a layer's output `[..., D]` to its replacement `[..., D]` (e.g. a Suppression)."""

    layer_affinities: list[str]
    """Module paths (e.g. `'bottleneck'`) whose outputs `apply` replaces."""

    def __post_init__(self) -> None:
        if not callable(self.apply):
            raise TypeError(f'InterventionConfig: apply must be callable, got {type(self.apply).__name__}')
        if isinstance(self.layer_affinities, str) or not isinstance(self.layer_affinities, Sequence):
            raise TypeError(
                f'InterventionConfig: layer_affinities must be a list of layer names, got {self.layer_affinities!r}'
            )
        if not all(isinstance(name, str) for name in self.layer_affinities):
            raise TypeError(f'InterventionConfig: layer names must be strings, got {self.layer_affinities!r}')
        self.layer_affinities = list(self.layer_affinities)
