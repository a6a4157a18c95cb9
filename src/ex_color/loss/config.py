"""Configuration tying a regularizer to the layers and labels it applies to."""

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from torch import Tensor

RECON_TERM = 'recon'
"""Name of the reconstruction term in loss-term dicts; reserved, so no regularizer may use it."""

LR_COLUMN = 'lr'
"""The dopesheet column of the learning rate; reserved, so no regularizer's weight column is the learning rate."""

TOTAL_LOSS = 'loss'
"""The total loss's name (`train_loss` where it is reported); reserved, so no term is reported under it."""

RESERVED_NAMES = {
    RECON_TERM: 'the reconstruction term',
    TOTAL_LOSS: "the total loss (its term would be reported as 'train_loss', the total's name)",
    LR_COLUMN: "the learning rate (the dopesheet's lr column)",
}
"""Names no regularizer may take, with what each already names."""

COMPLEMENT = '~'
"""Prefix of a complement label key: `'~red'` stands for `1 − red` ("not red")."""


def parse_label_key(key: str) -> tuple[str, bool]:
    """A label-affinity key as (label name, is complement): `'red'` → `('red', False)`, `'~red'` → `('red', True)`.

    Raises ValueError for an empty key, a bare `'~'` or a double complement (`'~~red'`: write `'red'`).
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f'label names must be non-empty strings, got {key!r}')
    if not key.startswith(COMPLEMENT):
        return key, False
    name = key[len(COMPLEMENT) :]
    if not name:
        raise ValueError(f"label key {key!r} names no label; expected '~<label>' (the complement of a label)")
    if name.startswith(COMPLEMENT):
        raise ValueError(f'label key {key!r} is a complement of a complement; expected {name.lstrip(COMPLEMENT)!r}')
    return name, True


@dataclass
class RegularizerConfig:
    """A named regularization term.

    Attributes:
        name: unique name; also the key of its schedule weight and of its loss term.
        compute_loss_term: per-sample loss, activations `[..., B, D]` → `[..., B]`.
        label_affinities: label name → affinity. None applies the term to every sample
            (batch mean); otherwise samples are weighted by
            `clamp(Σ_k label_k · affinity_k, 0, 1)`. A key `'~name'` is the complement of
            label `name`: it contributes `(1 − label_name) · affinity`, so `{'~red': 1.0}`
            weighs every sample that is not red (see `ex_color.loss.label_weights`).
        layer_affinities: names of the layers whose activations the term applies to; with
            several layers the term is the sum over them.
        phase: the phase in which the term is active; the trainers train in phase
            `'train'` (a dopesheet's PHASE column does not select regularizers).
        feature_dim: the dim of one model's activations `[B, ...]` that holds the features
            the term reads (the `D` of `[..., B, D]`). The default, -1, takes activations as
            `[..., B, D]`, everything before B being ensemble dims (today's layout). Any
            other value (e.g. 1 for a conv map `[B, C, H, W]`, or -3 for the same) counts in
            the per-model layout `[B, ...]`: positive values from B (so at least 1),
            negative ones from the end. The features are moved last, the term is computed at
            every position (each position's batch as its own batch, so `Separate` compares
            samples at the same position), and a sample's loss is the mean over its
            positions: still `[..., B]`. Leading ensemble dims are located by
            `total_loss` from the reconstruction's shape (`ensemble_dims` of
            `regularization_loss`).
    """

    name: str
    compute_loss_term: Callable[[Tensor], Tensor]
    label_affinities: dict[str, float] | None
    layer_affinities: list[str]
    phase: str = 'train'
    feature_dim: int = -1

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f'RegularizerConfig name must be a non-empty string, got {self.name!r}')
        if self.name in RESERVED_NAMES:
            raise ValueError(
                f'RegularizerConfig name {self.name!r} is reserved for {RESERVED_NAMES[self.name]}; '
                'expected another name, e.g. a prefix like reg-'
            )
        if not callable(self.compute_loss_term):
            raise TypeError(
                f'RegularizerConfig {self.name!r}: compute_loss_term must be callable, '
                f'got {type(self.compute_loss_term).__name__}'
            )
        self.label_affinities = _validated_affinities(self.name, self.label_affinities)
        self.layer_affinities = _validated_layers(self.name, self.layer_affinities)
        if not isinstance(self.phase, str) or not self.phase:
            raise ValueError(f'RegularizerConfig {self.name!r}: phase must be a non-empty string, got {self.phase!r}')
        if isinstance(self.feature_dim, bool) or not isinstance(self.feature_dim, int) or self.feature_dim == 0:
            raise ValueError(
                f'RegularizerConfig {self.name!r}: feature_dim must be a non-zero int (dim 0 is the batch), '
                f'got {self.feature_dim!r}'
            )


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
        try:
            parse_label_key(label)
        except ValueError as e:
            raise ValueError(f'RegularizerConfig {name!r}: {e}') from None
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
