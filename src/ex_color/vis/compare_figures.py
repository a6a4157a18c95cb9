"""Figures of a comparison of models: each method's spread over seeds, and its error along hue.

Every method is drawn in the colour of the model it edits (the prepared model blue, the
others orange, green, purple and brown in the order the comparison lists them, in both
themes), so the models read apart across figures; the
unedited models (kind 'baseline') are drawn hollow or dotted, for reference. The figures
take the tables `ex-color compare` writes (`compare.csv`, `hue_error.csv`) as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ex_color.comparedir import BASELINE_KIND
from ex_color.config import PREPARED
from ex_color.statistics import bootstrap_interval
from ex_color.vis.describe import g, hue_name, join
from ex_color.vis.sweep import seed_jitter
from ex_color.vis.theme import Palette, get_palette, new_figure, set_title

MODEL_COLORS: list[tuple[str, dict[str, str]]] = [
    ('blue', {'light': '#1f77b4', 'dark': '#7fb8ff'}),
    ('orange', {'light': '#d95f02', 'dark': '#ffa657'}),
    ('green', {'light': '#2ca02c', 'dark': '#7ee787'}),
    ('purple', {'light': '#7b3294', 'dark': '#d2a8ff'}),
    ('brown', {'light': '#8c564b', 'dark': '#e0a98f'}),
]
"""The colours of the models' methods per theme (lighter on the dark background): the prepared model's first,
then each other model's in the order the comparison lists them."""
OTHER_MODEL_COLOR = ('grey', {'light': '#777777', 'dark': '#aaaaaa'})
"""A model past the end of MODEL_COLORS."""
LOG_FIGURES = ('target_error', 'collateral_max', 'collateral_median')
"""Figures of merit drawn on a logarithmic axis (errors span several decades)."""
FIGURE_LABELS = {
    'target_error': 'Target error',
    'selectivity_r2': 'Selectivity r²',
    'collateral_max': 'Collateral max',
    'collateral_median': 'Collateral median',
    'baseline_median': 'Unedited median error',
}
FIGURE_HINTS = {
    'target_error': 'higher: target removed',
    'selectivity_r2': 'higher: damage on target',
    'collateral_max': 'lower: less damage',
    'collateral_median': 'lower: less damage',
}
LINE_STYLES = ('-', '--', '-.', (0, (1, 1.5)), (0, (5, 1, 1, 1, 1, 1)))
"""Dash patterns telling apart the methods of one model in the hue figure."""
SHADE_STEP = 0.22
"""How far each further method of a model moves its line colour towards the text colour."""
LOG_FLOOR = 1e-8
"""Where an error of exactly 0 is drawn on a log axis (said on the panel)."""
BAND_RESAMPLES = 1000
"""Bootstrap resamples for the hue figure's band (240 medians per resample: fewer than summary.csv's)."""


def figure_label(figure: str) -> str:
    """'target_error' → 'Target error' (unknown names are shown as they are)."""
    return FIGURE_LABELS.get(figure, figure)


def model_colors(models: Mapping[str, str]) -> dict[str, tuple[str, dict[str, str]]]:
    """Each model's (colour name, {theme: colour}), for `models` (method → model): the prepared model blue, the
    others in order of first appearance."""
    others = [m for m in dict.fromkeys(models.values()) if m != PREPARED]
    chosen = {PREPARED: MODEL_COLORS[0]}
    for i, model in enumerate(others, start=1):
        chosen[model] = MODEL_COLORS[i] if i < len(MODEL_COLORS) else OTHER_MODEL_COLOR
    return chosen


def model_color(model: str, theme: str, models: Mapping[str, str]) -> str:
    """The colour of `model`'s methods in `theme`, among the models of `models` (method → model)."""
    return model_colors(models)[model][1][theme]


def method_order(summary: pd.DataFrame) -> list[str]:
    """The methods grouped by model (in order of appearance), each model's unedited row first.

    Args:
        summary: one row per method, with `method`, `model` and `kind` columns.
    """
    models = list(dict.fromkeys(summary['model']))
    order = []
    for model in models:
        rows = summary[summary['model'] == model]
        order += list(rows.loc[rows['kind'] == BASELINE_KIND, 'method'])
        order += list(rows.loc[rows['kind'] != BASELINE_KIND, 'method'])
    return order


def median_band(errors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The median over seeds and its 95% percentile-bootstrap interval, at each point: `[S, H]` → 3 × `[H]`."""
    errors = np.asarray(errors, dtype=np.float64)
    if errors.ndim != 2 or errors.shape[0] == 0:
        raise ValueError(f'errors must be [seeds, points] with at least one seed, got shape {list(errors.shape)}')
    low, high = bootstrap_interval(errors, np.median, resamples=BAND_RESAMPLES)
    return np.median(errors, axis=0), low, high


def _style(palette: Palette) -> dict:
    return {'facecolor': palette.axes, 'edgecolor': palette.guide, 'labelcolor': palette.text, 'fontsize': 'small'}


def plot_method_boxes(
    table: pd.DataFrame,
    figures: Sequence[str],
    *,
    order: Sequence[str],
    models: Mapping[str, str],
    kinds: Mapping[str, str],
    removal_threshold: float | None = None,
    title: str = 'Methods across seeds',
    theme: str = 'light',
) -> Figure:
    """
    One panel per figure of merit, one box per method over seeds, each seed a dot.

    Errors (LOG_FIGURES) are drawn on a logarithmic axis, where non-positive values are left
    out. Boxes and dots take the colour of the method's model; unedited models are hollow.
    Each method's dots are a scatter with gid `seeds:<method>`, in the order of its rows.

    Args:
        table: one row per seed × method (compare.csv), with `method` and the `figures` columns.
        figures: the columns to draw, one panel each (two panels a row).
        order: the methods, left to right.
        models: method → the model it edits ('prepared' or 'control').
        kinds: method → its kind ('baseline' for an unedited model).
        removal_threshold: target error at which a method counts as removing the target (a dashed line).
        title: figure title.
        theme: 'light' or 'dark'.
    """
    figures = list(figures)
    if not figures:
        raise ValueError('plot_method_boxes needs at least one figure of merit')
    missing = [c for c in ('method', *figures) if c not in table.columns]
    if missing:
        raise ValueError(f'table has no column {missing[0]!r}: available columns are {list(table.columns)}')
    order = list(order)
    ncols = min(2, len(figures))
    nrows = -(-len(figures) // ncols)
    width = max(4.0, 0.5 * len(order) + 1.6)
    fig, axes, palette = new_figure(theme, nrows, ncols, (width * ncols, 3.9 * nrows))
    for ax in axes.flat[len(figures) :]:
        ax.set_visible(False)
    for ax, figure in zip(axes.flat, figures, strict=False):
        _method_panel(ax, table, figure, order, models, kinds, palette, theme)
        if figure == 'target_error' and removal_threshold is not None:
            ax.axhline(removal_threshold, color=palette.spine, linestyle='--', linewidth=1, zorder=1)

    handles: list = [
        Patch(facecolor=model_color(m, theme, models), edgecolor=model_color(m, theme, models), label=f'{m} model')
        for m in dict.fromkeys(models[name] for name in order)
    ]
    if any(kinds[name] == BASELINE_KIND for name in order):
        handles.append(
            Line2D(
                [], [], linestyle='none', marker='o', markerfacecolor='none', color=palette.text, label='unedited model'
            )
        )
    if removal_threshold is not None and 'target_error' in figures:
        handles.append(
            Line2D([], [], color=palette.spine, linestyle='--', label=f'removal threshold {g(removal_threshold)}')
        )
    fig.legend(handles=handles, loc='outside lower center', ncols=len(handles), **_style(palette))
    set_title(fig, title, palette)
    return fig


def _method_panel(
    ax: Axes,
    table: pd.DataFrame,
    figure: str,
    order: list[str],
    models: Mapping[str, str],
    kinds: Mapping[str, str],
    palette: Palette,
    theme: str,
) -> None:
    log = figure in LOG_FIGURES
    floored = False
    for i, method in enumerate(order):
        values = table.loc[table['method'] == method, figure].to_numpy(dtype=np.float64)
        if log:  # an error of exactly 0 (outputs are clamped to valid colours) is drawn at the floor
            floored |= bool((values <= 0).any())
            values = np.where(values <= 0, LOG_FLOOR, values)
        kept = np.isfinite(values)
        color = model_color(models[method], theme, models)
        reference = kinds[method] == BASELINE_KIND
        if kept.any():
            ax.boxplot(
                values[kept],
                positions=[i],
                widths=0.55,
                showfliers=False,  # every seed is a dot already
                patch_artist=True,
                boxprops={'facecolor': (*to_rgb(color), 0.0 if reference else 0.25), 'edgecolor': color},
                whiskerprops={'color': color},
                capprops={'color': color},
                medianprops={'color': palette.text, 'linewidth': 1.8},
            )
        dots = ax.scatter(
            i + seed_jitter(len(values))[kept],
            values[kept],
            s=16,
            facecolors='none' if reference else color,
            edgecolors=color,
            linewidths=0.8 if reference else 0,
            alpha=0.85,
            zorder=3,
        )
        dots.set_gid(f'seeds:{method}')
    # A faint rule between the models' groups.
    for i in range(1, len(order)):
        if models[order[i]] != models[order[i - 1]]:
            ax.axvline(i - 0.5, color=palette.guide, linewidth=1)
    if log:
        ax.set_yscale('log')
        if floored:
            ax.annotate(
                f'0 drawn at {LOG_FLOOR:g}',
                (0.01, 0.01),
                xycoords='axes fraction',
                fontsize='x-small',
                color=palette.text,
                alpha=0.8,
            )
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set_xticks(range(len(order)), order, rotation=35, ha='right', rotation_mode='anchor', fontsize='small')
    hint = FIGURE_HINTS.get(figure)
    ax.set_title(f'{figure_label(figure)} ({hint})' if hint else figure_label(figure), fontsize='medium')
    ax.title.set_color(palette.text)
    ax.grid(True, axis='y', color=palette.guide, linewidth=0.5)
    ax.set_axisbelow(True)


def method_styles(order: Sequence[str], models: Mapping[str, str], kinds: Mapping[str, str], theme: str) -> dict:
    """Each method's line in the hue figure: its model's colour (each further method a shade nearer the text
    colour) and a dash pattern of its own; the unedited models dotted in the model's colour.

    Returns: method → {'color', 'linestyle', 'linewidth'}.
    """
    styles = {}
    count: dict[str, int] = {}
    for method in order:
        model = models[method]
        if kinds[method] == BASELINE_KIND:
            styles[method] = {'color': model_color(model, theme, models), 'linestyle': ':', 'linewidth': 1.2}
            continue
        i = count[model] = count.get(model, -1) + 1
        styles[method] = {
            'color': _shade(model_color(model, theme, models), get_palette(theme).text, min(SHADE_STEP * i, 0.5)),
            'linestyle': LINE_STYLES[i % len(LINE_STYLES)],
            'linewidth': 1.8,
        }
    return styles


def _shade(color: str, toward: str, amount: float) -> str:
    """`color` moved `amount` of the way to `toward` (the text colour: darker in light theme, lighter in dark)."""
    a, b = np.array(to_rgb(color)), np.array(to_rgb(toward))
    return to_hex((1 - amount) * a + amount * b)


def hue_matrix(hue_table: pd.DataFrame, method: str) -> tuple[np.ndarray, np.ndarray]:
    """One method's rows of hue_error.csv as (hues `[H]`, errors `[S, H]`), seeds and hues sorted."""
    rows = hue_table[hue_table['method'] == method]
    wide = rows.pivot_table(index='seed', columns='hue', values='error', aggfunc='mean').sort_index(axis=1)
    return wide.columns.to_numpy(dtype=np.float64), wide.to_numpy(dtype=np.float64)


def plot_hue_error(
    hue_table: pd.DataFrame,
    *,
    order: Sequence[str],
    models: Mapping[str, str],
    kinds: Mapping[str, str],
    target_hues: Mapping[str, float] | None = None,
    title: str = 'Error along hue',
    theme: str = 'light',
    figsize: tuple[float, float] = (10, 5.2),
) -> Figure:
    """
    Per-colour error of the fully saturated, full-value colours against hue: one line per method.

    Each line is the median over seeds, shaded with a 95% bootstrap interval of that median
    (`median_band`). Lines have gid `median:<method>`, bands `band:<method>`.

    Args:
        hue_table: hue_error.csv: `seed`, `method`, `hue` (degrees), `error`.
        order: the methods to draw, in legend order.
        models: method → the model it edits.
        kinds: method → its kind ('baseline' for an unedited model).
        target_hues: target name → hue in degrees, marked with a vertical line; None marks none.
    """
    missing = [c for c in ('seed', 'method', 'hue', 'error') if c not in hue_table.columns]
    if missing:
        raise ValueError(f'hue table has no column {missing[0]!r}: available columns are {list(hue_table.columns)}')
    fig, axes, palette = new_figure(theme, 1, 1, figsize)
    ax = axes[0, 0]
    styles = method_styles(order, models, kinds, theme)
    lowest_median = np.inf
    for method in order:
        hues, errors = hue_matrix(hue_table, method)
        if errors.size == 0:
            continue
        median, low, high = median_band(errors)
        lowest_median = min(lowest_median, float(np.min(median[median > 0], initial=np.inf)))
        style = styles[method]
        reference = kinds[method] == BASELINE_KIND
        band = ax.fill_between(hues, low, high, color=style['color'], alpha=0.08 if reference else 0.18, linewidth=0)
        band.set_gid(f'band:{method}')
        label = f'{method} ({models[method]}, unedited)' if reference else f'{method} ({models[method]})'
        (line,) = ax.plot(hues, median, label=label, zorder=3, **style)
        line.set_gid(f'median:{method}')
    for name, hue in (target_hues or {}).items():
        ax.axvline(hue, color=palette.text, linewidth=0.8, alpha=0.6, zorder=1)
        ax.annotate(
            name,
            (hue, 1),
            xycoords=('data', 'axes fraction'),
            xytext=(3, -12),
            textcoords='offset points',
            color=palette.text,
            fontsize='small',
        )
    ax.set_yscale('log')
    if np.isfinite(lowest_median):  # a band can reach far below every median: keep the axis on the medians
        ax.set_ylim(bottom=lowest_median / 10)
    ax.set_xlim(0, 360)
    ax.set_xticks(range(0, 361, 60))
    ax.set_xlabel('Hue (degrees), at full saturation and value')
    ax.set_ylabel('Per-colour error (median over seeds)')
    ax.grid(True, color=palette.guide, linewidth=0.5)
    ax.set_axisbelow(True)
    fig.legend(loc='outside lower center', ncols=min(4, max(1, len(order))), **_style(palette))
    set_title(fig, title, palette)
    return fig


def _model_words(models: Mapping[str, str], order: Sequence[str]) -> str:
    colors = model_colors(models)
    words = [f'{m}-model methods in {colors[m][0]}' for m in dict.fromkeys(models[n] for n in order)]
    return join(words)


def describe_method_boxes(
    title: str,
    table: pd.DataFrame,
    figures: Sequence[str],
    *,
    order: Sequence[str],
    models: Mapping[str, str],
    kinds: Mapping[str, str],
    removal_threshold: float | None = None,
) -> str:
    """Alt text of `plot_method_boxes`: each panel's median per method, over how many seeds."""
    seeds = table['seed'].nunique() if 'seed' in table.columns else len(table)
    logs = [figure_label(f).lower() for f in figures if f in LOG_FIGURES]
    text = (
        f'Box plots titled "{title}", one panel per figure of merit, one box per method over {seeds} seeds '
        f'(each seed a dot); {_model_words(models, order)}, the unedited models hollow, for reference.'
    )
    if logs:
        text += f' The y-axes of {join(logs)} are logarithmic.'
    for figure in figures:
        medians = table.groupby('method', sort=False)[figure].median()
        parts = [f'{m} {g(medians[m])}' for m in order if m in medians.index and np.isfinite(medians[m])]
        hint = FIGURE_HINTS.get(figure)
        text += f' {figure_label(figure)}{f" ({hint})" if hint else ""}, median: {", ".join(parts)}.'
        if figure == 'target_error' and removal_threshold is not None:
            text += f' A dashed line marks the removal threshold, {g(removal_threshold)}.'
    return text


def describe_hue_error(
    title: str,
    hue_table: pd.DataFrame,
    *,
    order: Sequence[str],
    models: Mapping[str, str],
    kinds: Mapping[str, str],
    target_hues: Mapping[str, float] | None = None,
) -> str:
    """Alt text of `plot_hue_error`: each method's peak error and where, and its median over hue."""
    seeds = hue_table['seed'].nunique()
    hues = np.sort(hue_table['hue'].unique())
    text = (
        f'Line chart titled "{title}": per-colour error of {len(hues)} fully saturated, full-value colours '
        f'against hue (x-axis, {hues.min():g}° to {hues.max():g}°), on a logarithmic y-axis. One line per method: '
        f'the median over {seeds} seeds, shaded with a 95% bootstrap interval of that median; '
        f'{_model_words(models, order)}, the unedited models dotted.'
    )
    if target_hues:
        text += ' Vertical lines mark the targets: ' + join([f'{n} at {h:g}°' for n, h in target_hues.items()]) + '.'
    for method in order:
        hue_values, errors = hue_matrix(hue_table, method)
        if errors.size == 0:
            continue
        median = np.median(errors, axis=0)
        peak = int(np.argmax(median))
        unedited = ', unedited' if kinds[method] == BASELINE_KIND else ''
        text += (
            f' {method} ({models[method]}{unedited}): highest {g(median[peak])} at {hue_values[peak]:g}° '
            f'({hue_name(hue_values[peak] / 360)}), median over hues {g(float(np.median(median)))}.'
        )
    return text


__all__ = [
    'BASELINE_KIND',
    'MODEL_COLORS',
    'describe_hue_error',
    'describe_method_boxes',
    'figure_label',
    'median_band',
    'method_order',
    'method_styles',
    'plot_hue_error',
    'plot_method_boxes',
]
