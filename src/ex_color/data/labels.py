"""
Concept labels for colours, declared by kind: how likely a colour is to be labelled with
a concept.

A label's probability is `scale × formula^power`, with one formula per kind:

- `primary`: `c·(1 − o₁/2 − o₂/2)` for colour channel c (red, green or blue) and the other
  two channels o₁, o₂ — the seed's `redness` for red;
- `vibrancy`: `s·v` of the colour's HSV;
- `desaturation`: `1 − s·v`;
- `similarity`: `hsv_similarity(colour, target)` (angular, hemi) to a target HSV colour.

Drawing Bernoulli labels from the probabilities (`soft=False`) gives deliberately noisy
labels, like the labelling of text found on the internet. Ex 2.9's labels are `primary`
red (power 10, scale 0.5), `vibrancy` (100, 0.5) and `desaturation` (10, 0.5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor

from ex_color.data.color import hsv_similarity, primary_ness, rgb_to_hsv
from ex_color.data.cube_sampler import vibrancy
from ex_color.data.named_colors import NAMED_COLORS_HSV

LabelKind = Literal['primary', 'vibrancy', 'desaturation', 'similarity']
PRIMARY_CHANNELS = {'red': 0, 'green': 1, 'blue': 2}
"""The colours a `primary` label can name, and their RGB channel."""
VALIDATION_THRESHOLD = 0.5
"""A validation colour carries a label when the label's formula (before scale) is at least this."""


@dataclass(frozen=True)
class ConceptLabel:
    """One label's definition: its kind, target colour (if any), power and scale.

    `hsv` is the concept's colour (hue in turns): the named primary for `primary`, the
    target for `similarity`, None for `vibrancy` and `desaturation`.
    """

    kind: LabelKind
    power: float
    scale: float
    hsv: tuple[float, float, float] | None = None
    channel: int | None = None
    """The RGB channel of a `primary` label."""

    def __post_init__(self) -> None:
        if not (np.isfinite(self.power) and self.power >= 0):
            raise ValueError(f'power must be finite and >= 0, got {self.power}')
        if not 0 <= self.scale <= 1:
            raise ValueError(f'scale must be in [0, 1], got {self.scale}')
        if (self.kind == 'primary') != (self.channel is not None):
            raise ValueError('a primary label needs a channel (0, 1 or 2), and only a primary label has one')
        if (self.kind in ('primary', 'similarity')) != (self.hsv is not None):
            raise ValueError(
                f'a {self.kind} label {"needs" if self.kind in ("primary", "similarity") else "has no"} hsv'
            )

    @classmethod
    def primary(cls, color: str, *, power: float, scale: float) -> ConceptLabel:
        """How much of one primary a colour holds; `color` is 'red', 'green' or 'blue'."""
        if color not in PRIMARY_CHANNELS:
            raise ValueError(f'a primary label names red, green or blue, got {color!r}')
        return cls('primary', power, scale, hsv=NAMED_COLORS_HSV[color], channel=PRIMARY_CHANNELS[color])

    @classmethod
    def similarity(cls, target: str | Sequence[float], *, power: float, scale: float) -> ConceptLabel:
        """HSV similarity to a named colour or an `[h, s, v]` triple (h in turns, each in [0, 1])."""
        return cls('similarity', power, scale, hsv=target_hsv(target))

    def formula(self, colors: Tensor, vibrancies: Tensor | None = None) -> Tensor:
        """The kind's formula in [0, 1], before power and scale: `[..., 3]` → `[...]`."""
        match self.kind:
            case 'primary':
                return primary_ness(colors, self.channel)  # type: ignore[arg-type]
            case 'vibrancy':
                return vibrancy(colors) if vibrancies is None else vibrancies
            case 'desaturation':
                return 1 - (vibrancy(colors) if vibrancies is None else vibrancies)
            case 'similarity':
                similarity = hsv_similarity(rgb_to_hsv(colors.detach()), np.array(self.hsv))
                return torch.as_tensor(similarity, dtype=colors.dtype, device=colors.device)
        raise AssertionError(self.kind)

    def probabilities(self, colors: Tensor, vibrancies: Tensor | None = None) -> Tensor:
        """`scale × formula^power` per colour: `[..., 3]` → `[...]`."""
        return self.formula(colors, vibrancies) ** self.power * self.scale

    def validation_labels(self, colors: Tensor) -> Tensor:
        """Exact 0/1 labels for held-out colours: 1 where the formula^power is at least 0.5 `[..., 3]` → `[...]`."""
        return (self.formula(colors) ** self.power >= VALIDATION_THRESHOLD).to(colors.dtype)


def target_hsv(target: str | Sequence[float]) -> tuple[float, float, float]:
    """A named colour's HSV, or an `[h, s, v]` triple checked to lie in [0, 1]."""
    if isinstance(target, str):
        if target not in NAMED_COLORS_HSV:
            raise ValueError(f'unknown colour {target!r}; expected one of {", ".join(NAMED_COLORS_HSV)}')
        return NAMED_COLORS_HSV[target]
    values = tuple(float(x) for x in target)
    if len(values) != 3 or not all(0 <= x <= 1 for x in values):
        raise ValueError(f'hsv must be three numbers in [0, 1] (h in turns), got {list(target)}')
    return values  # type: ignore[return-value]


SEED_LABELS = {
    'red': lambda scale: ConceptLabel.primary('red', power=10, scale=scale),
    'vibrant': lambda scale: ConceptLabel('vibrancy', power=100, scale=scale),
    'desaturated': lambda scale: ConceptLabel('desaturation', power=10, scale=scale),
}
"""The seed notebook's three labels, by the keyword that scales each."""


def seed_labels(
    red: float | None = 0.5, vibrant: float | None = 0.5, desaturated: float | None = 0.5
) -> dict[str, ConceptLabel]:
    """The seed's labels with the given scales; a scale of None or 0 leaves that label out."""
    scales = {'red': red, 'vibrant': vibrant, 'desaturated': desaturated}
    return {name: SEED_LABELS[name](scale) for name, scale in scales.items() if scale}


def probabilities_of(
    labels: Mapping[str, ConceptLabel], colors: Tensor | ArrayLike, vibrancies: Tensor | ArrayLike | None = None
) -> dict[str, Tensor]:
    """Each label's probability for each colour: `[..., 3]` (and S·V `[...]`) → {name: `[...]`}.

    Labels with scale 0 are left out.
    """
    colors = torch.as_tensor(colors)
    if not colors.is_floating_point():
        colors = colors.to(torch.get_default_dtype())
    if colors.ndim < 1 or colors.shape[-1] != 3:
        raise ValueError(f'colors must have shape [..., 3], got {tuple(colors.shape)}')
    if vibrancies is not None:
        vibrancies = torch.as_tensor(vibrancies, dtype=colors.dtype, device=colors.device)
        if vibrancies.shape != colors.shape[:-1]:
            raise ValueError(
                f'vibrancies must have shape {tuple(colors.shape[:-1])} to match colors, got {tuple(vibrancies.shape)}'
            )
    return {name: label.probabilities(colors, vibrancies) for name, label in labels.items() if label.scale}


def label_probabilities(
    colors: Tensor | ArrayLike,
    vibrancies: Tensor | ArrayLike | None = None,
    *,
    red: float | None = 0.5,
    vibrant: float | None = 0.5,
    desaturated: float | None = 0.5,
) -> dict[str, Tensor]:
    """
    Probability of each of the seed's labels for each colour.

    - `red = redness¹⁰ · red`
    - `vibrant = vibrancy¹⁰⁰ · vibrant`
    - `desaturated = (1 - vibrancy)¹⁰ · desaturated`

    The keyword arguments scale each label's probability (the defaults, 0.5, are those
    of Ex 2.9); a label whose scale is None or 0 is left out of the result.

    Args:
        colors: RGB `[..., 3]`.
        vibrancies: S·V of each colour `[...]`; computed from `colors` if None.

    Returns: label name → probability `[...]`, in the order red, vibrant, desaturated.
    """
    return probabilities_of(seed_labels(red, vibrant, desaturated), colors, vibrancies)


def sample_labels(probabilities: dict[str, Tensor], generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Draw a 0/1 label from each probability (Bernoulli); same keys, shapes and dtypes."""
    return {name: torch.bernoulli(p, generator=generator) for name, p in probabilities.items()}


def collate_with_labels(
    batch: Sequence[Sequence[Tensor] | Tensor],
    labels: Mapping[str, ConceptLabel],
    soft: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """
    Collate `(colour, vibrancy)` pairs into a batch of colours and their labels.

    Made to be a DataLoader `collate_fn` over `TensorDataset(colours, vibrancies)`, with
    the labels bound by `functools.partial` (a partial of this module-level function
    pickles, so worker processes work). Items may also be `(colour,)` or a bare colour
    tensor, in which case vibrancy is computed.

    Args:
        batch: B items of `(colour [3], vibrancy [])`.
        labels: label name → definition.
        soft: True: labels are probabilities. False: a fresh Bernoulli draw per sample,
            from `generator` or else torch's global RNG (so `torch.manual_seed` fixes it).

    Returns: colours `[B, 3]`, label name → `[B]`.
    """
    if len(batch) == 0:
        raise ValueError('cannot collate an empty batch')
    colors = torch.stack([_item_color(item) for item in batch])
    vibrancies = None
    if all(not isinstance(item, Tensor) and len(item) > 1 for item in batch):
        vibrancies = torch.stack([torch.as_tensor(item[1]) for item in batch]).reshape(len(batch))
    probabilities = probabilities_of(labels, colors, vibrancies)
    return colors, probabilities if soft else sample_labels(probabilities, generator)


def collate_with_generated_labels(
    batch: Sequence[Sequence[Tensor] | Tensor],
    soft: bool = True,
    red: float | None = 0.5,
    vibrant: float | None = 0.5,
    desaturated: float | None = 0.5,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """
    The seed notebook's collate function: `collate_with_labels` with its three labels.

    Args:
        batch: B items of `(colour [3], vibrancy [])`.
        soft: True: labels are probabilities. False: a fresh Bernoulli draw per sample.
        red, vibrant, desaturated: label scales, as in `label_probabilities`.

    Returns: colours `[B, 3]`, label name → `[B]`.
    """
    return collate_with_labels(batch, seed_labels(red, vibrant, desaturated), soft=soft, generator=generator)


def _item_color(item: Sequence[Tensor] | Tensor) -> Tensor:
    return item if isinstance(item, Tensor) else torch.as_tensor(item[0])
