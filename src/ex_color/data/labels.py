"""
Generated concept labels for colours: `red`, `vibrant` and `desaturated`.

Each label has a probability that falls off steeply away from its concept; drawing
Bernoulli labels from it (`soft=False`) gives deliberately noisy labels, like the
labelling of text found on the internet.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from numpy.typing import ArrayLike
from torch import Tensor

from ex_color.data.color import redness
from ex_color.data.cube_sampler import vibrancy


def label_probabilities(
    colors: Tensor | ArrayLike,
    vibrancies: Tensor | ArrayLike | None = None,
    *,
    red: float | None = 0.5,
    vibrant: float | None = 0.5,
    desaturated: float | None = 0.5,
) -> dict[str, Tensor]:
    """
    Probability of each label for each colour.

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
    colors = torch.as_tensor(colors)
    if not colors.is_floating_point():
        colors = colors.to(torch.get_default_dtype())
    if colors.ndim < 1 or colors.shape[-1] != 3:
        raise ValueError(f'colors must have shape [..., 3], got {tuple(colors.shape)}')
    if vibrancies is None:
        vibrancies = vibrancy(colors)
    else:
        vibrancies = torch.as_tensor(vibrancies, dtype=colors.dtype, device=colors.device)
        if vibrancies.shape != colors.shape[:-1]:
            raise ValueError(
                f'vibrancies must have shape {tuple(colors.shape[:-1])} to match colors, got {tuple(vibrancies.shape)}'
            )

    probabilities: dict[str, Tensor] = {}
    if red:
        probabilities['red'] = redness(colors) ** 10 * red
    if vibrant:
        probabilities['vibrant'] = vibrancies**100 * vibrant
    if desaturated:
        probabilities['desaturated'] = (1 - vibrancies) ** 10 * desaturated
    return probabilities


def sample_labels(probabilities: dict[str, Tensor], generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Draw a 0/1 label from each probability (Bernoulli); same keys, shapes and dtypes."""
    return {name: torch.bernoulli(p, generator=generator) for name, p in probabilities.items()}


def collate_with_generated_labels(
    batch: Sequence[Sequence[Tensor] | Tensor],
    soft: bool = True,
    red: float | None = 0.5,
    vibrant: float | None = 0.5,
    desaturated: float | None = 0.5,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """
    Collate `(colour, vibrancy)` pairs into a batch of colours and their labels.

    Made to be a DataLoader `collate_fn` over `TensorDataset(colours, vibrancies)`, with
    the label scales bound by `functools.partial` (a partial of this module-level function
    pickles, so worker processes work). Items may also be `(colour,)` or a bare colour
    tensor, in which case vibrancy is computed.

    Args:
        batch: B items of `(colour [3], vibrancy [])`.
        soft: True: labels are probabilities. False: a fresh Bernoulli draw per sample,
            from `generator` or else torch's global RNG (so `torch.manual_seed` fixes it).
        red, vibrant, desaturated: label scales, as in `label_probabilities`.

    Returns: colours `[B, 3]`, label name → `[B]`.
    """
    if len(batch) == 0:
        raise ValueError('cannot collate an empty batch')
    colors = torch.stack([_item_color(item) for item in batch])
    vibrancies = None
    if all(not isinstance(item, Tensor) and len(item) > 1 for item in batch):
        vibrancies = torch.stack([torch.as_tensor(item[1]) for item in batch]).reshape(len(batch))
    probabilities = label_probabilities(colors, vibrancies, red=red, vibrant=vibrant, desaturated=desaturated)
    labels = probabilities if soft else sample_labels(probabilities, generator)
    return colors, labels


def _item_color(item: Sequence[Tensor] | Tensor) -> Tensor:
    return item if isinstance(item, Tensor) else torch.as_tensor(item[0])
