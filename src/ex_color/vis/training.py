"""The training schedule (dopesheet) and the logged training losses, against the step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.transforms import blended_transform_factory
from numpy.typing import NDArray

from ex_color.columns import train_loss_column
from ex_color.loss import TOTAL_LOSS
from ex_color.vis.theme import Palette, new_figure, set_title

if TYPE_CHECKING:
    import pandas as pd

    from ex_color.temporal import Dopesheet

LR_COLUMN = 'lr'
LOG_LR_DECADES = 2.0
"""The lr panel is log-scaled when the (all positive) lr spans more than this many decades."""
LINE_WIDTH = 1.5
TOTAL_LINE_WIDTH = 2.5
TERM_LINE_WIDTH = 1.2
WEIGHT_LINE_STYLES = ('-', '--', ':', '-.')
"""Cycled over the weight lines, so weights with the same schedule show as overlapping dashes, not one line."""


def themed_legend(ax: Axes, palette: Palette, **kwargs) -> Legend:
    """A legend outside the panel's right edge (so it never covers data), coloured from `palette`."""
    kwargs = {'loc': 'upper left', 'bbox_to_anchor': (1.01, 1.0), 'fontsize': 'small'} | kwargs
    legend = ax.legend(facecolor=palette.axes, edgecolor=palette.guide, labelcolor=palette.text, **kwargs)
    return legend


def lr_is_log_scaled(lr: NDArray) -> bool:
    """Whether a learning rate `[steps]` reads better on a log axis: all positive and spanning > 2 decades."""
    lr = lr[np.isfinite(lr)]
    if lr.size == 0 or np.any(lr <= 0):
        return False
    return bool(np.log10(lr.max() / lr.min()) > LOG_LR_DECADES)


def phase_starts(dopesheet: Dopesheet) -> list[tuple[int, str]]:
    """`(step, name)` of each PHASE cell, in step order."""
    return [(k.step, k.phase) for k in dopesheet.keyframes if k.phase is not None]


def _mark_schedule(ax: Axes, dopesheet: Dopesheet, palette: Palette, *, label_phases: bool) -> None:
    """Faint guides at the keyframe steps, a stronger dashed line at each phase start (named if asked)."""
    for step in dopesheet.steps:
        ax.axvline(step, color=palette.guide, linewidth=0.8, zorder=0)
    to_text = blended_transform_factory(ax.transData, ax.transAxes)  # x in steps, y in panel fraction
    for step, name in phase_starts(dopesheet):
        ax.axvline(step, color=palette.spine, linewidth=1.0, linestyle='--', zorder=1)
        if label_phases:
            ax.annotate(
                name,
                xy=(step, 1.0),
                xycoords=to_text,
                xytext=(3, -3),
                textcoords='offset points',
                ha='left',
                va='top',
                color=palette.text,
                fontsize='small',
            )


def plot_dopesheet(
    dopesheet: Dopesheet,
    *,
    title: str = 'Dopesheet',
    theme: str = 'light',
    figsize: tuple[float, float] = (10, 5),
) -> Figure:
    """
    Plot every property of a dopesheet against the step.

    Top panel: the regularizer weights (every property but `lr`), one line each. Bottom panel,
    sharing the step axis: `lr`, log-scaled when it is all positive and spans more than two
    decades (see `lr_is_log_scaled`). A sheet with only weights, or only `lr`, gets one panel.
    Faint vertical lines mark the keyframe steps; dashed ones mark phase starts, named on the
    top panel. Lines are labelled with the property names (`Line2D.get_label()`).

    Args:
        dopesheet: the schedule; its `table()` `[steps, props]` is what is drawn.
        title: figure title.
        theme: 'light' or 'dark'.
        figsize: figure size in inches.
    """
    names, values = dopesheet.table()
    if not names:
        raise ValueError(f'dopesheet {dopesheet.source} has no properties to plot')
    steps = np.arange(len(dopesheet))
    weights = [n for n in names if n != LR_COLUMN]
    has_lr = LR_COLUMN in names

    nrows = int(bool(weights)) + int(has_lr)
    height_ratios = [3, 2] if nrows == 2 else [1]
    fig, axes, palette = new_figure(theme, nrows, 1, figsize, sharex=True, gridspec_kw={'height_ratios': height_ratios})
    panels = list(axes[:, 0])

    if weights:
        ax = panels[0]
        for n, name in enumerate(weights):
            style = WEIGHT_LINE_STYLES[n % len(WEIGHT_LINE_STYLES)]
            ax.plot(steps, values[:, names.index(name)], linestyle=style, linewidth=LINE_WIDTH, label=name)
        ax.set_ylabel('Weight')
        themed_legend(ax, palette)
    if has_lr:
        ax = panels[-1]
        lr = values[:, names.index(LR_COLUMN)]
        ax.plot(steps, lr, color=palette.text, linewidth=LINE_WIDTH, label=LR_COLUMN)
        ax.set_yscale('log' if lr_is_log_scaled(lr) else 'linear')
        ax.set_ylabel('Learning rate')

    for n, ax in enumerate(panels):
        _mark_schedule(ax, dopesheet, palette, label_phases=n == 0)
        ax.set_xlim(steps[0], max(steps[-1], 1))
    panels[-1].set_xlabel('Step')
    set_title(fig, title, palette)
    return fig


def _single_seed(metrics: pd.DataFrame) -> pd.DataFrame:
    """The rows of one seed; several seeds are an error (their curves would interleave)."""
    if 'seed' not in metrics.columns:
        return metrics
    seeds = sorted(metrics['seed'].dropna().unique().tolist())
    if len(seeds) > 1:
        raise ValueError(f'metrics hold several seeds {seeds}: select one first, e.g. metrics[metrics.seed == seed]')
    return metrics


@dataclass(frozen=True)
class LossPoints:
    """One loss column's positive values: what a log axis can show."""

    column: str
    term: str
    """The column without its `train_` prefix (`loss` for the total)."""
    steps: NDArray[np.float64]
    values: NDArray[np.float64]
    logged: int
    """How many steps the table logged."""

    @property
    def everywhere(self) -> bool:
        """Positive at every logged step."""
        return len(self.steps) == self.logged


def loss_points(metrics: pd.DataFrame) -> list[LossPoints]:
    """The total loss and each `train_<term>` column of one seed's table (sorted by step), each without its
    values that are 0, negative or NaN (a label-weighted term is 0 in a batch with no sample of its labels)."""
    steps = metrics['step'].to_numpy(dtype=np.float64)
    total = train_loss_column(TOTAL_LOSS)
    columns = [total, *(c for c in metrics.columns if c.startswith('train_') and c != total)]
    points = []
    for column in columns:
        values = metrics[column].to_numpy(dtype=np.float64)
        shown = values > 0  # False for NaN too
        term = column.removeprefix('train_')
        points.append(LossPoints(column, term, steps[shown], values[shown], len(values)))
    return points


def plot_training_curves(
    metrics: pd.DataFrame,
    *,
    title: str = 'Training losses',
    theme: str = 'light',
    figsize: tuple[float, float] = (10, 4),
) -> Figure:
    """
    Plot the total loss and each loss term against the step, on a log y axis.

    Every `train_*` column is drawn: `train_loss` (the total, thicker, labelled 'total') and
    each `train_<term>` (labelled `<term>`). A log axis cannot show 0, and a label-weighted
    term is exactly 0 in a batch without a sample of its labels, so each line joins the
    term's positive values only; a term that is positive at only some logged steps is drawn
    with a dot at each and says in its legend at how many (see `loss_points`).

    Args:
        metrics: one seed's training log `[rows]` with columns `step`, `train_loss` and
            `train_<term>`; other columns (`lr`, `weight_<name>`, a single-valued `seed`) are ignored.
        title: figure title.
        theme: 'light' or 'dark'.
        figsize: figure size in inches.
    """
    total = train_loss_column(TOTAL_LOSS)
    missing = [c for c in ('step', total) if c not in metrics.columns]
    if missing:
        raise ValueError(f'metrics lack column(s) {missing}: got {list(metrics.columns)}')
    if len(metrics) == 0:
        raise ValueError('metrics have no rows')
    metrics = _single_seed(metrics).sort_values('step', kind='stable')

    fig, axes, palette = new_figure(theme, 1, 1, figsize)
    ax = axes[0, 0]
    for points in loss_points(metrics):
        if points.column == total:
            ax.plot(
                points.steps, points.values, color=palette.text, linewidth=TOTAL_LINE_WIDTH, label='total', zorder=3
            )
            continue
        label = points.term if points.everywhere else f'{points.term} ({len(points.steps)} of {points.logged} steps)'
        marker = None if points.everywhere else 'o'
        ax.plot(points.steps, points.values, linewidth=TERM_LINE_WIDTH, marker=marker, markersize=3, label=label)
    ax.set_yscale('log')
    ax.grid(True, which='major', color=palette.guide, linewidth=0.5)
    ax.set_axisbelow(True)
    ax.set_xlabel('Step')
    ax.set_ylabel('Loss (log scale)')
    themed_legend(ax, palette)
    set_title(fig, title, palette)
    return fig
