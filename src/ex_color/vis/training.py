"""The training schedule (dopesheet) and the logged training losses, against the step."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.transforms import blended_transform_factory
from numpy.typing import NDArray

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


def plot_training_curves(
    metrics: pd.DataFrame,
    *,
    title: str = 'Training losses',
    theme: str = 'light',
    figsize: tuple[float, float] = (10, 4),
) -> Figure:
    """
    Plot the total loss and each loss term against the step, on a log y axis.

    Every column starting with `loss` is drawn: `loss` (the total, thicker, labelled 'total')
    and each `loss_<term>` (labelled `<term>`). Values that are not positive (a term can be
    exactly 0) cannot be shown on a log axis, so they are masked to NaN and leave a gap.

    Args:
        metrics: one seed's training log `[rows]` with columns `step`, `loss` and `loss_<term>`;
            other columns (`lr`, `weight_<name>`, a single-valued `seed`) are ignored.
        title: figure title.
        theme: 'light' or 'dark'.
        figsize: figure size in inches.
    """
    missing = [c for c in ('step', 'loss') if c not in metrics.columns]
    if missing:
        raise ValueError(f'metrics lack column(s) {missing}: got {list(metrics.columns)}')
    if len(metrics) == 0:
        raise ValueError('metrics have no rows')
    metrics = _single_seed(metrics).sort_values('step', kind='stable')
    steps = metrics['step'].to_numpy(dtype=np.float64)
    loss_columns = ['loss', *[c for c in metrics.columns if c.startswith('loss_')]]

    fig, axes, palette = new_figure(theme, 1, 1, figsize)
    ax = axes[0, 0]
    for column in loss_columns:
        values = metrics[column].to_numpy(dtype=np.float64)
        values = np.where(values > 0, values, np.nan)  # NaN stays NaN; 0 and below would break the log axis
        if column == 'loss':
            ax.plot(steps, values, color=palette.text, linewidth=TOTAL_LINE_WIDTH, label='total', zorder=3)
        else:
            ax.plot(steps, values, linewidth=TERM_LINE_WIDTH, label=column.removeprefix('loss_'))
    ax.set_yscale('log')
    ax.grid(True, which='major', color=palette.guide, linewidth=0.5)
    ax.set_axisbelow(True)
    ax.set_xlabel('Step')
    ax.set_ylabel('Loss (log scale)')
    themed_legend(ax, palette)
    set_title(fig, title, palette)
    return fig
