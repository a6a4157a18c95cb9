"""Test sets and the numbers we report for a model, with or without surgery or interventions.

- Per-colour error: mean over RGB channels of `(y − x)²`.
- On the error cube (HSV 240 hues × 48 saturations × 48 values, 552,960 colours): the
  maximum and the median per-colour error.
- The named-colour table: per-colour error of each of the 17 named colours.
- `selectivity_r2`: over an 8×8×8 RGB grid, the squared Pearson correlation between the
  per-colour error and `hsv_similarity(colour, red, hemi=True, mode='angular')³`. Near 1
  means the damage falls on red and fades with distance from red.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cache
from typing import TypeVar

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from ex_color.data import ColorCube, arange_cyclic, hsv_similarity, named_colors_rgb, rgb_to_hsv
from ex_color.inference import infer
from ex_color.intervention import InterventionConfig
from ex_color.loss import RegularizerConfig, regularization_loss

RED_HSV = (0.0, 1.0, 1.0)
ArrayT = TypeVar('ArrayT', Tensor, np.ndarray)


@cache
def error_cube() -> ColorCube:
    """HSV 240 (cyclic) × 48 × 48: where max and median error are measured."""
    return ColorCube.from_hsv(h=arange_cyclic(step_size=1 / 240), s=np.linspace(0, 1, 48), v=np.linspace(0, 1, 48))


@cache
def display_cube() -> ColorCube:
    """HSV 24 hues × 4 saturations × 8 values, shown as 'svh' slices."""
    return ColorCube.from_hsv(h=arange_cyclic(step_size=1 / 24), s=np.linspace(0, 1, 4), v=np.linspace(0, 1, 8))


@cache
def latent_cube() -> ColorCube:
    """RGB 20³: the colours whose latents the sphere plots show."""
    axis = np.linspace(0, 1, 20)
    return ColorCube.from_rgb(r=axis, g=axis, b=axis)


@cache
def selectivity_grid() -> tuple[Tensor, np.ndarray]:
    """The 8³ RGB grid `[512, 3]` and its target profile `similarity_to_red³` `[512]`."""
    axis = np.linspace(0, 1, 8)
    colours = ColorCube.from_rgb(r=axis, g=axis, b=axis).rgb_grid.reshape(-1, 3)
    similarity = hsv_similarity(rgb_to_hsv(colours), np.array(RED_HSV), hemi=True, mode='angular')
    return torch.tensor(colours, dtype=torch.float32), np.asarray(similarity, dtype=np.float64) ** 3


def per_colour_error(outputs: ArrayT, targets: ArrayT) -> ArrayT:
    """Mean over RGB of the squared error: `[..., 3]` → `[...]` (tensors or numpy arrays)."""
    return ((outputs - targets) ** 2).mean(-1)


def squared_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Squared Pearson correlation of two 1-D arrays; 0 when either is constant."""
    a = np.asarray(a, dtype=np.float64) - np.mean(a)
    b = np.asarray(b, dtype=np.float64) - np.mean(b)
    denominator = np.sqrt(np.sum(a * a) * np.sum(b * b))
    if denominator == 0:
        return 0.0
    return float(np.sum(a * b) / denominator) ** 2


@dataclass(frozen=True)
class Evaluation:
    """The reported figures for one model variant."""

    mse_max: float
    mse_median: float
    selectivity_r2: float
    named_colors: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate(model: nn.Module, interventions: Sequence[InterventionConfig] = ()) -> Evaluation:
    """Error-cube max and median, the named-colour table and selectivity, in three large passes."""
    cube_colours = torch.tensor(error_cube().rgb_grid.reshape(-1, 3), dtype=torch.float32)
    cube_error = per_colour_error(infer(model, cube_colours, interventions).outputs, cube_colours)

    names, named_rgb = named_colors_rgb()
    named = torch.tensor(named_rgb, dtype=torch.float32)
    named_error = per_colour_error(infer(model, named, interventions).outputs, named)

    grid, target = selectivity_grid()
    grid_error = per_colour_error(infer(model, grid, interventions).outputs, grid)

    return Evaluation(
        mse_max=float(cube_error.max()),
        mse_median=float(cube_error.median()),
        selectivity_r2=squared_correlation(grid_error.numpy(), target),
        named_colors={name: float(e) for name, e in zip(names, named_error.tolist(), strict=True)},
    )


@cache
def validation_set() -> tuple[Tensor, dict[str, Tensor]]:
    """Held-out colours `[520, 3]` with exact labels `{name: [520]}`.

    The centres of the cells of an 8×8×8 RGB grid (never seen in training, whose cube is
    HSV) plus the cube's 8 corners. Labels are exact, not sampled: `red` = 1 only for pure
    red, `vibrant` = 1 where S·V = 1, `desaturated` = 1 where S·V = 0.
    """
    centres = (np.arange(8) + 0.5) / 8
    cells = ColorCube.from_rgb(r=centres, g=centres, b=centres).rgb_grid.reshape(-1, 3)
    corners = ColorCube.from_rgb(r=[0, 1], g=[0, 1], b=[0, 1]).rgb_grid.reshape(-1, 3)
    colours = torch.tensor(np.concatenate([cells, corners]), dtype=torch.float32)
    chroma = colours.amax(-1) - colours.amin(-1)
    labels = {
        'red': (colours == torch.tensor([1.0, 0.0, 0.0])).all(-1).float(),
        'vibrant': (chroma == 1).float(),
        'desaturated': (chroma == 0).float(),
    }
    return colours, labels


def validation_column(regularizer_name: str) -> str:
    """`'reg-anchor'` → `'val_anchor'`."""
    return 'val_' + regularizer_name.removeprefix('reg-')


def validation_losses(model: nn.Module, regularizers: Sequence[RegularizerConfig]) -> dict[str, float]:
    """Reconstruction MSE and each given regularizer's (unweighted) term on `validation_set()`.

    Keys: `val_recon` and `val_<name>` (see `validation_column`). A term whose labels
    select no validation colour is NaN.
    """
    colours, labels = validation_set()
    layers = sorted({layer for r in regularizers for layer in r.layer_affinities})
    result = infer(model, colours, capture_layers=layers)
    losses = {'val_recon': float(per_colour_error(result.outputs, colours).mean())}
    for r in regularizers:
        _, terms = regularization_loss([r], result.captured, labels, {})
        losses[validation_column(r.name)] = float(terms[r.name]) if r.name in terms else float('nan')
    return losses


def pareto_front(table: pd.DataFrame, minimise: Sequence[str], maximise: Sequence[str]) -> pd.Series:
    """Which rows no other row dominates (at least as good on every column, better on one)."""
    scores = np.concatenate([table[list(minimise)].to_numpy(float), -table[list(maximise)].to_numpy(float)], axis=1)
    no_worse = (scores[:, None, :] <= scores[None, :, :]).all(-1)  # [i, j]: i is no worse than j everywhere
    better = (scores[:, None, :] < scores[None, :, :]).any(-1)
    dominated = (no_worse & better).any(axis=0)
    return pd.Series(~dominated, index=table.index)
