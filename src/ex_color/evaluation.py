"""Test sets and the numbers we report for a model, with or without surgery or interventions.

- Per-colour error: mean over RGB channels of `(y − x)²`.
- On the error cube (HSV 240 hues × 48 saturations × 48 values, 552,960 colours): the
  maximum and the median per-colour error.
- The named-colour table: per-colour error of each of the 17 named colours.
- `selectivity_r2`: over an 8×8×8 RGB grid, the squared Pearson correlation between the
  per-colour error and `hsv_similarity(colour, target, hemi=True, mode='angular')³`, the
  target being the concept the edit removes (with several targets, the largest similarity).
  Near 1 means the damage falls on the target and fades with distance from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from ex_color.columns import METRICS, VALIDATION_RECON, evaluation_columns, validation_column
from ex_color.data import ColorCube, arange_cyclic, hsv_to_rgb, named_colors_rgb
from ex_color.data.labels import ConceptLabel
from ex_color.data.target import Target, target_similarity
from ex_color.inference import infer
from ex_color.inference.versions import Version, infer_versions
from ex_color.intervention import InterventionConfig
from ex_color.loss import RegularizerConfig, regularization_loss
from ex_color.variants import ErasureEdit, Variant

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
def selectivity_grid_rgb() -> np.ndarray:
    """The 8³ RGB grid `[512, 3]` (float64) over which selectivity is measured."""
    axis = np.linspace(0, 1, 8)
    return ColorCube.from_rgb(r=axis, g=axis, b=axis).rgb_grid.reshape(-1, 3)


@cache
def selectivity_grid() -> Tensor:
    """The selectivity grid as the models' input `[512, 3]` float32."""
    return torch.tensor(selectivity_grid_rgb(), dtype=torch.float32)


def target_profile(targets: Sequence[Target]) -> np.ndarray:
    """The selectivity grid's target profile: similarity to the nearest target, cubed `[512]`."""
    return target_similarity(selectivity_grid_rgb(), targets) ** 3


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
    targets: list[str] = field(default_factory=list)
    """The concepts selectivity is measured against."""
    edit: ErasureEdit | None = None
    """How a fitted edit came out (an erasure's kind, label, whether it renormalises); None otherwise."""

    def to_dict(self) -> dict[str, Any]:
        """As results.json and seed files hold it (an edit as a dict, {} for none)."""
        return {**asdict(replace(self, edit=None)), 'edit': self.edit.to_dict() if self.edit is not None else {}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        edit = data.get('edit') or None
        return cls(**{**data, 'edit': ErasureEdit.from_dict(edit) if edit is not None else None})

    def mean_error(self, colours: Sequence[str]) -> float | None:
        """The mean of these named colours' errors; None unless every one is a named colour measured here."""
        if not colours or any(c not in self.named_colors for c in colours):
            return None
        return sum(self.named_colors[c] for c in colours) / len(colours)

    def row(self, name: str) -> dict[str, float]:
        """This variant's columns of a sweep's table (see `evaluation_columns`)."""
        values = [getattr(self, metric) for metric in METRICS] + list(self.named_colors.values())
        return dict(zip(evaluation_columns(name, self.named_colors), values, strict=True))


def evaluate(
    model: nn.Module, interventions: Sequence[InterventionConfig] = (), targets: Sequence[Target] = ()
) -> Evaluation:
    """Error-cube max and median, the named-colour table and selectivity against `targets`."""
    return evaluate_versions([Version(model, interventions)], [targets])[0]


def evaluate_versions(versions: Sequence[Version], targets: Sequence[Sequence[Target]]) -> list[Evaluation]:
    """`evaluate` of several versions of one model (each measured against its own targets), computing the layers
    they share once per colour (`infer_versions`): the figures are exactly those of evaluating each alone."""
    if len(versions) != len(targets):
        raise ValueError(f'evaluate_versions: {len(versions)} versions but {len(targets)} lists of targets')
    names, named_rgb = named_colors_rgb()
    cube = torch.tensor(error_cube().rgb_grid.reshape(-1, 3), dtype=torch.float32)
    named = torch.tensor(named_rgb, dtype=torch.float32)
    colours = torch.cat([cube, named, selectivity_grid()])  # one pass: each row's output does not depend on the others
    errors = [
        per_colour_error(output, colours).split([len(cube), len(named), len(selectivity_grid())])
        for output in infer_versions(versions, colours)
    ]
    return [
        Evaluation(
            mse_max=float(cube_error.max()),
            mse_median=float(cube_error.median()),
            selectivity_r2=squared_correlation(grid_error.numpy(), target_profile(version_targets)),
            named_colors={name: float(e) for name, e in zip(names, named_error.tolist(), strict=True)},
            targets=[t.name for t in version_targets],
        )
        for (cube_error, named_error, grid_error), version_targets in zip(errors, targets, strict=True)
    ]


def evaluate_variants(variants: Mapping[str, Variant]) -> dict[str, Evaluation]:
    """Each variant's figures (with its `edit`), in the variants' order.

    A `same_as` variant gets its twin's figures without a pass of its own; the others are measured
    together (`evaluate_versions`), so the layers they share run once per colour.
    """
    measured = {name: v for name, v in variants.items() if v.same_as is None}
    figures = evaluate_versions(
        [Version(v.model, v.interventions) for v in measured.values()],
        [v.targets for v in measured.values()],
    )
    evaluations = {name: replace(f, edit=v.edit) for (name, v), f in zip(measured.items(), figures, strict=True)}
    return {name: evaluations[v.same_as if v.same_as is not None else name] for name, v in variants.items()}


COLLATERAL_SIMILARITY = 0.2
"""Colours less similar than this to every target are collateral: an edit that removes the target should spare them."""
HUE_RING_STEPS = 240


@cache
def hue_ring() -> Tensor:
    """Fully saturated, full-value colours at 240 hues (1.5° apart) `[240, 3]`: where error along hue is drawn."""
    hues = arange_cyclic(step_size=1 / HUE_RING_STEPS)
    hsv = np.stack([hues, np.ones_like(hues), np.ones_like(hues)], axis=-1)
    return torch.tensor(hsv_to_rgb(hsv), dtype=torch.float32)


@dataclass(frozen=True)
class Removal:
    """How much an edit removes its target and what else it damages."""

    target_error: float
    """Per-colour error at the target colours (their mean, for several targets)."""
    collateral_max: float
    """Largest per-colour error over the selectivity grid's collateral colours (see `COLLATERAL_SIMILARITY`)."""
    collateral_median: float
    hue_error: np.ndarray
    """Per-colour error along `hue_ring()`, `[240]`."""


def measure_removal(
    model: nn.Module, interventions: Sequence[InterventionConfig], targets: Sequence[Target]
) -> Removal:
    """Target error, collateral error (max and median over the grid's colours far from every target) and
    error along hue, in one pass over the target colours, the selectivity grid and the hue ring."""
    if not targets:
        raise ValueError('measure_removal needs at least one target')
    grid = selectivity_grid()
    target_rgb = torch.tensor(hsv_to_rgb(np.array([t.hsv for t in targets])), dtype=torch.float32)
    ring = hue_ring()
    colours = torch.cat([target_rgb, grid, ring])
    error = per_colour_error(infer(model, colours, interventions).outputs, colours).numpy()
    target_error, grid_error, ring_error = np.split(error, [len(targets), len(targets) + len(grid)])
    collateral = grid_error[target_similarity(selectivity_grid_rgb(), targets) < COLLATERAL_SIMILARITY]
    if collateral.size == 0:
        raise ValueError(f'no grid colour is less than {COLLATERAL_SIMILARITY} similar to {[t.name for t in targets]}')
    return Removal(
        target_error=float(target_error.mean()),
        collateral_max=float(collateral.max()),
        collateral_median=float(np.median(collateral)),
        hue_error=ring_error,
    )


@cache
def validation_colors() -> Tensor:
    """Held-out colours `[520, 3]`: the centres of the cells of an 8×8×8 RGB grid (never seen in
    training, whose cube is HSV) plus the cube's 8 corners."""
    centres = (np.arange(8) + 0.5) / 8
    cells = ColorCube.from_rgb(r=centres, g=centres, b=centres).rgb_grid.reshape(-1, 3)
    corners = ColorCube.from_rgb(r=[0, 1], g=[0, 1], b=[0, 1]).rgb_grid.reshape(-1, 3)
    return torch.tensor(np.concatenate([cells, corners]), dtype=torch.float32)


def validation_set(labels: Mapping[str, ConceptLabel]) -> tuple[Tensor, dict[str, Tensor]]:
    """The held-out colours `[520, 3]` with exact labels `{name: [520]}` from the label definitions.

    Labels are hard, not sampled: a colour carries a label when the label's formula raised
    to its power (before scale) is at least 0.5 (`ConceptLabel.validation_labels`). Labels
    turned off (scale 0) are left out, as in training. For
    Ex 2.9 that is pure red alone for `red`, S·V = 1 for `vibrant` and S·V = 0 for
    `desaturated`.
    """
    colors = validation_colors()
    return colors, {name: label.validation_labels(colors) for name, label in labels.items() if label.scale}


def validation_losses(
    model: nn.Module, regularizers: Sequence[RegularizerConfig], labels: Mapping[str, ConceptLabel]
) -> dict[str, float]:
    """Reconstruction MSE and each given regularizer's (unweighted) term on `validation_set(labels)`.

    Keys: `val_recon` and `val_<name>` (see `validation_column`). A term is NaN when none of
    its labels is on (scale 0), and 0 when no validation colour carries them.
    """
    colours, labels = validation_set(labels)
    layers = sorted({layer for r in regularizers for layer in r.layer_affinities})
    result = infer(model, colours, capture_layers=layers)
    losses = {VALIDATION_RECON: float(per_colour_error(result.outputs, colours).mean())}
    for r in regularizers:
        _, terms = regularization_loss([r], result.captured, labels, {})
        losses[validation_column(r.name)] = float(terms[r.name]) if r.name in terms else float('nan')
    return losses
