"""Configuration tying a regularizer to the layers and labels it applies to."""

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from torch import Tensor

RECON_TERM = 'recon'
"""Name of the reconstruction term in loss-term dicts; reserved, so no regularizer may use it."""


@dataclass
class RegularizerConfig:
    """A named regularization term.

    Attributes:
        name: unique name; also the key of its schedule weight and of its loss term.
        compute_loss_term: per-sample loss, activations `[..., B, D]` → `[..., B]`.
        label_affinities: label name → affinity. None applies the term to every sample
            (batch mean); otherwise samples are weighted by
            `clamp(Σ_k label_k · affinity_k, 0, 1)`.
        layer_affinities: names of the layers whose activations the term applies to; with
            several layers the term is the sum over them.
        phase: the phase in which the term is active (e.g. 'train').
    """

    name: str
    compute_loss_term: Callable[[Tensor], Tensor]
    label_affinities: dict[str, float] | None
    layer_affinities: list[str]
    phase: str = 'train'

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f'RegularizerConfig name must be a non-empty string, got {self.name!r}')
        if self.name == RECON_TERM:
            raise ValueError(f'RegularizerConfig name {RECON_TERM!r} is reserved for the reconstruction term')
        if not callable(self.compute_loss_term):
            raise TypeError(
                f'RegularizerConfig {self.name!r}: compute_loss_term must be callable, '
                f'got {type(self.compute_loss_term).__name__}'
            )
        self.label_affinities = _validated_affinities(self.name, self.label_affinities)
        self.layer_affinities = _validated_layers(self.name, self.layer_affinities)
        if not isinstance(self.phase, str) or not self.phase:
            raise ValueError(f'RegularizerConfig {self.name!r}: phase must be a non-empty string, got {self.phase!r}')


def _validated_affinities(name: str, affinities: Mapping[str, float] | None) -> dict[str, float] | None:
    if affinities is None:
        return None
    if not isinstance(affinities, Mapping) or not affinities:
        raise ValueError(
            f'RegularizerConfig {name!r}: label_affinities must be None or a non-empty mapping of label → affinity, '
            f'got {affinities!r}'
        )
    validated: dict[str, float] = {}
    for label, affinity in affinities.items():
        if not isinstance(label, str) or not label:
            raise ValueError(f'RegularizerConfig {name!r}: label names must be non-empty strings, got {label!r}')
        if isinstance(affinity, bool) or not isinstance(affinity, numbers.Real) or not math.isfinite(affinity):
            raise ValueError(
                f'RegularizerConfig {name!r}: affinity for label {label!r} must be a finite number, got {affinity!r}'
            )
        validated[label] = float(affinity)
    return validated


def _validated_layers(name: str, layers: list[str]) -> list[str]:
    if isinstance(layers, str):
        raise ValueError(f'RegularizerConfig {name!r}: layer_affinities must be a list of layer names, got {layers!r}')
    layers = list(layers)
    if not layers:
        raise ValueError(f'RegularizerConfig {name!r}: layer_affinities must name at least one layer')
    for layer in layers:
        if not isinstance(layer, str) or not layer:
            raise ValueError(f'RegularizerConfig {name!r}: layer names must be non-empty strings, got {layer!r}')
    if len(set(layers)) != len(layers):
        raise ValueError(f'RegularizerConfig {name!r}: layer_affinities repeats a layer: {layers}')
    return layers
