"""A sweep over seeds as box plots and a Pareto scatter, and per-colour error against similarity to a target."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from numpy.typing import ArrayLike

from ex_color.vis.colors import as_array, as_rgb
from ex_color.vis.theme import Palette, new_figure, set_title

if TYPE_CHECKING:
    import pandas as pd

JITTER = 0.12
"""Half-width of the horizontal spread of the seed dots, in box widths."""
BOX_WIDTH = 0.5
SEED_COLORS = {'light': '#1f77b4', 'dark': '#7fb8ff'}
"""The seed dots' colour per theme (a lighter blue stays visible on the dark background)."""
HIGHLIGHT_COLOR = 'C1'
PANEL_SIZE = (3.2, 3.6)


def seed_jitter(n: int) -> np.ndarray:
    """Deterministic horizontal offsets `[n]` for the seed dots (the same row gets the same offset in every panel)."""
    return np.random.default_rng(0).uniform(-JITTER, JITTER, n)


def best_star(ax: Axes, x: ArrayLike, y: ArrayLike, seed: int, palette: Palette, size: float) -> Line2D:
    """Mark the best seed with a star labelled 'best seed N' (for the legend)."""
    (star,) = ax.plot(
        x,
        y,
        linestyle='none',
        marker='*',
        markersize=size,
        color=HIGHLIGHT_COLOR,
        markeredgecolor=palette.text,
        markeredgewidth=0.6,
        label=f'best seed {seed}',
        zorder=4,
    )
    return star


def plot_sweep_boxes(
    table: pd.DataFrame,
    columns: Sequence[str],
    *,
    title: str = 'Sweep',
    theme: str = 'light',
    highlight: int | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """
    One box plot per column of a sweep table, with every seed drawn as a dot over its box.

    NaNs are dropped per column. The box's median line has gid 'median', the dots are a
    scatter with gid 'seeds', and the `highlight` seed is a star (a `Line2D` labelled
    'best seed N') at its value in each panel, named in the figure legend.

    Args:
        table: one row per seed `[seeds]`, with a `seed` column (needed for `highlight`) and `columns`.
        columns: the numeric columns to show, one panel each.
        title: figure title.
        theme: 'light' or 'dark'.
        highlight: the `seed` value to mark, e.g. the sweep's best seed; None marks none.
        figsize: figure size in inches (default: 3.2 × 3.6 per panel).
    """
    columns = list(columns)
    if not columns:
        raise ValueError('plot_sweep_boxes needs at least one column')
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f'sweep table has no column {missing[0]!r}: available columns are {list(table.columns)}')
    if len(table) == 0:
        raise ValueError('sweep table has no rows')
    highlighted = np.zeros(len(table), dtype=bool)
    if highlight is not None:
        if 'seed' not in table.columns:
            raise ValueError(f'highlight={highlight} needs a seed column: available columns are {list(table.columns)}')
        highlighted = (table['seed'] == highlight).to_numpy()
        if not highlighted.any():
            raise ValueError(f'highlight seed {highlight} is not in the table: seeds are {table["seed"].tolist()}')

    if figsize is None:
        figsize = (PANEL_SIZE[0] * len(columns), PANEL_SIZE[1])
    fig, axes, palette = new_figure(theme, 1, len(columns), figsize)
    jitter = seed_jitter(len(table))
    line_props = {'color': palette.spine, 'linewidth': 1.2}
    star: Line2D | None = None

    for ax, column in zip(axes.flat, columns, strict=True):
        values = table[column].to_numpy(dtype=np.float64)
        kept = ~np.isnan(values)
        if kept.any():
            boxes = ax.boxplot(
                values[kept],
                positions=[0],
                widths=BOX_WIDTH,
                showfliers=False,  # every seed is drawn as a dot already
                boxprops=line_props,
                whiskerprops=line_props,
                capprops=line_props,
                medianprops={'color': palette.text, 'linewidth': 2.0},
            )
            for median in boxes['medians']:
                median.set_gid('median')
            dots = ax.scatter(
                jitter[kept], values[kept], s=18, color=SEED_COLORS[theme], alpha=0.8, linewidths=0, zorder=3
            )
            dots.set_gid('seeds')
            marked = kept & highlighted
            if marked.any():
                star = best_star(ax, jitter[marked], values[marked], highlight, palette, size=14)
        else:
            ax.text(0, 0.5, 'no values', ha='center', va='center', color=palette.text, transform=ax.transAxes)
        ax.set_xlim(-0.6, 0.6)
        ax.set_xticks([])
        ax.set_xlabel(f'{int(kept.sum())} seeds')
        ax.set_ylabel(column)
        ax.grid(True, axis='y', color=palette.guide, linewidth=0.5)
        ax.set_axisbelow(True)

    if star is not None:
        fig.legend(
            handles=[star],
            loc='outside lower center',
            facecolor=palette.axes,
            edgecolor=palette.guide,
            labelcolor=palette.text,
            fontsize='small',
        )
    set_title(fig, title, palette)
    return fig


def plot_error_vs_similarity(
    similarity: ArrayLike,
    error: ArrayLike,
    colors: ArrayLike,
    *,
    r2: float | None = None,
    title: str = 'Error against similarity to the target',
    target: str = 'the target',
    theme: str = 'light',
    figsize: tuple[float, float] = (6, 4.5),
) -> Figure:
    """
    Scatter each colour's error against its similarity to the target, each dot filled with its true colour.

    The title ends with `r² = …`: `r2` if given, else the squared Pearson correlation of the
    finite (similarity, error) pairs (`ex_color.evaluation.squared_correlation`).

    Args:
        similarity: `[N]` similarity of each colour to the target, cubed (the target profile, 0…1).
        error: `[N]` per-colour error.
        colors: `[N, 3]` true RGB colours, clipped to [0, 1].
        r2: the value to report; None computes it.
        title: figure title (before the r²).
        target: what the x-axis label calls the target, e.g. 'red'.
        theme: 'light' or 'dark'.
        figsize: figure size in inches.
    """
    x = as_array(similarity, 'similarity')
    y = as_array(error, 'error')
    if x.ndim != 1:
        raise ValueError(f'similarity must be 1-D [N], got shape {list(x.shape)}')
    if y.shape != x.shape:
        raise ValueError(f'error must have the shape of similarity {list(x.shape)}, got {list(y.shape)}')
    rgb = as_rgb(colors, x.shape, 'colors')
    if x.size == 0:
        raise ValueError('plot_error_vs_similarity needs at least one point')
    if r2 is None:
        # Imported here: ex_color.evaluation pulls in torch, which the figures otherwise do not need.
        from ex_color.evaluation import squared_correlation

        finite = np.isfinite(x) & np.isfinite(y)
        r2 = squared_correlation(x[finite], y[finite])

    fig, axes, palette = new_figure(theme, 1, 1, figsize)
    ax = axes[0, 0]
    ax.scatter(x, y, s=22, c=rgb, edgecolors=palette.spine, linewidths=0.4, zorder=3)
    ax.set_xlabel(f'Similarity to {target} (cubed)')
    ax.set_ylabel('Per-colour error')
    ax.grid(True, color=palette.guide, linewidth=0.5)
    ax.set_axisbelow(True)
    set_title(fig, f'{title} · r² = {r2:.3f}', palette)
    return fig


def plot_pareto(
    table: pd.DataFrame,
    x: str,
    y: str,
    *,
    pareto_seeds: Sequence[int] = (),
    best_seed: int | None = None,
    title: str = 'Seeds: reconstruction against selectivity',
    theme: str = 'light',
    figsize: tuple[float, float] = (6.5, 4.5),
) -> Figure:
    """
    Scatter every seed of a sweep on two of its columns, Pareto seeds labelled, the best one starred.

    The x-axis is logarithmic when its values are positive and span more than a decade.

    Args:
        table: one row per seed `[seeds]`, with `seed`, `x` and `y` columns.
        x, y: the columns to plot (by default: lower is better across, higher is better up).
        pareto_seeds: seeds to draw in the accent colour and label with their number.
        best_seed: the seed to star; None stars none.
    """
    for column in ('seed', x, y):
        if column not in table.columns:
            raise ValueError(f'sweep table has no column {column!r}: available columns are {list(table.columns)}')
    if len(table) == 0:
        raise ValueError('sweep table has no rows')
    seeds = table['seed'].to_numpy()
    xs = table[x].to_numpy(dtype=np.float64)
    ys = table[y].to_numpy(dtype=np.float64)
    on_front = np.isin(seeds, list(pareto_seeds))

    fig, axes, palette = new_figure(theme, 1, 1, figsize)
    ax = axes[0, 0]
    others = ax.scatter(xs[~on_front], ys[~on_front], s=22, color=SEED_COLORS[theme], alpha=0.7, linewidths=0)
    others.set_gid('seeds')
    front = ax.scatter(
        xs[on_front],
        ys[on_front],
        s=40,
        color=HIGHLIGHT_COLOR,
        edgecolors=palette.text,
        linewidths=0.5,
        zorder=3,
        label='Pareto seeds',
    )
    front.set_gid('pareto')
    for seed, px, py in zip(seeds[on_front], xs[on_front], ys[on_front], strict=True):
        ax.annotate(
            str(seed), (px, py), xytext=(4, 4), textcoords='offset points', fontsize='x-small', color=palette.text
        )
    if best_seed is not None and (seeds == best_seed).any():
        i = int(np.flatnonzero(seeds == best_seed)[0])
        best_star(ax, xs[i], ys[i], best_seed, palette, size=16)
    finite = xs[np.isfinite(xs)]
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > 10:
        ax.set_xscale('log')
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(True, color=palette.guide, linewidth=0.5)
    ax.set_axisbelow(True)
    if on_front.any() or best_seed is not None:
        ax.legend(facecolor=palette.axes, edgecolor=palette.guide, labelcolor=palette.text, fontsize='small')
    set_title(fig, title, palette)
    return fig
