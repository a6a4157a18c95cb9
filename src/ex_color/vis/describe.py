"""Alt texts: what each report figure shows, in words, computed from the data it plots.

Each function takes the same arrays as the figure and returns one paragraph: the kind of
chart, its title, its axes and their ranges, and the main feature (where the error is,
which colour sits where in latent space). Screen-reader users and anyone skimming a
report read these instead of the picture.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from ex_color.columns import train_loss_column
from ex_color.data import named_colors_rgb, rgb_to_hsv
from ex_color.evaluation import per_colour_error
from ex_color.loss import TOTAL_LOSS
from ex_color.vis.training import loss_points

HUE_NAMES = ('red', 'orange', 'yellow', 'lime', 'green', 'teal', 'cyan', 'azure', 'blue', 'purple', 'magenta', 'pink')
"""Names of the hues 0°, 30°, …, 330° (the named colours' hues)."""
HIGH_FRACTION = 0.5
"""A hue's error is 'high' at or above this fraction of the largest hue error…"""
MODERATE_FRACTION = 0.02
"""…'moderate' at or above this fraction, and 'near zero' below it."""
SMALL_ERROR = 1e-2
"""Below this largest error, a model reconstructs every colour well: no hue stands out."""


def g(x: float) -> str:
    """A number to two significant figures, as the seed prints them (0.00019, 8.1e-06, 0.26)."""
    return f'{x:.2g}'


def join(words: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    words = list(words)
    if len(words) <= 1:
        return ''.join(words)
    return f'{", ".join(words[:-1])} and {words[-1]}'


def hue_name(hue: float) -> str:
    """Name of the nearest of the 12 named hues; `hue` in turns (0 = red, 1/3 = green)."""
    return HUE_NAMES[round(float(hue) % 1.0 * 12) % 12]


def color_name(rgb: ArrayLike) -> str:
    """Name of the nearest named colour to one RGB colour (Euclidean distance in RGB)."""
    names, table = named_colors_rgb()
    distance = np.linalg.norm(table - np.asarray(rgb, dtype=np.float64), axis=-1)
    return names[int(np.argmin(distance))]


def hue_profile(hsv: NDArray, error: NDArray) -> dict[str, float]:
    """Error of the fully saturated, bright colour nearest each named hue: name → error.

    Args:
        hsv: `[N, 3]` colours (hue in turns), among them some with S = V = 1.
        error: `[N]` per-colour error.
    """
    vivid = np.isclose(hsv[:, 1], 1.0) & np.isclose(hsv[:, 2], 1.0)
    if not vivid.any():
        return {}
    hues, errors = hsv[vivid, 0], error[vivid]
    profile = {}
    for i, name in enumerate(HUE_NAMES):
        distance = np.abs((hues - i / 12 + 0.5) % 1.0 - 0.5)
        profile[name] = float(errors[np.argmin(distance)])
    return profile


def describe_hue_profile(profile: dict[str, float]) -> str:
    """'high at red, moderate at orange and yellow, near zero at …' (or 'small everywhere')."""
    if not profile:
        return ''
    largest = max(profile.values())
    if largest < SMALL_ERROR:
        top = sorted(profile, key=profile.__getitem__, reverse=True)[:3]
        return f'error is small at every hue (at most {g(largest)}), largest at {join(top)}'
    high = [n for n, e in profile.items() if e >= HIGH_FRACTION * largest]
    moderate = [n for n, e in profile.items() if MODERATE_FRACTION * largest <= e < HIGH_FRACTION * largest]
    low = [n for n, e in profile.items() if e < MODERATE_FRACTION * largest]
    parts = [f'high at {join(high)} (up to {g(largest)})']
    if moderate:
        parts.append(f'moderate at {join(moderate)}')
    if low:
        parts.append(f'near zero at {join(low)}')
    return 'error is ' + ', '.join(parts[:-1]) + (' and ' if len(parts) > 1 else '') + parts[-1]


def grey_error(hsv: NDArray, error: NDArray) -> float:
    """The largest error among the greys (saturation 0), black and white included."""
    grey = np.isclose(hsv[:, 1], 0.0) | np.isclose(hsv[:, 2], 0.0)
    return float(error[grey].max()) if grey.any() else float('nan')


def describe_colors(title: str, true: ArrayLike, pred: ArrayLike | None = None, n_slices: int = 4) -> str:
    """Alt text of `plot_colors`: HSV cube slices, reconstructed colours around the true ones.

    Args:
        true: `[..., 3]` the true colours of the patches (any shape; flattened).
        pred: `[..., 3]` the reconstructed colours, or None for a figure of true colours only.
    """
    true = np.asarray(true, dtype=np.float64).reshape(-1, 3)
    layout = (
        f'Plot showing {n_slices} slices of the HSV cube, titled "{title}". Each slice has constant saturation '
        '(0 in the first, 1 in the last); value (brightness) falls from top to bottom and hue runs from red on '
        'the left through yellow, green, cyan, blue and magenta back to red on the right.'
    )
    if pred is None:
        return (
            f'{layout} The first slice is a greyscale gradient from black to white; '
            'the last shows the fully saturated spectrum.'
        )
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 3)
    hsv = rgb_to_hsv(true)
    error = per_colour_error(pred, true)
    layout += (
        ' Each patch shows the colour as reconstructed by the model, with the true colour as a smaller square inside.'
    )
    worst = int(np.argmax(error))
    if error[worst] < SMALL_ERROR:
        return (
            f'{layout} Reconstructed and true colours agree closely everywhere: the largest error is '
            f'{g(error[worst])}, at {_patch_name(hsv[worst])}.'
        )
    off = int((error >= SMALL_ERROR).sum())
    greys = grey_error(hsv, error)
    return (
        f'{layout} They disagree most near {_patch_name(hsv[worst])} (error {g(error[worst])}); '
        f'{off} of {len(error)} patches have error above {g(SMALL_ERROR)}, and the greys, black and white '
        f'are {"almost unchanged" if greys < SMALL_ERROR else "changed"} (largest error {g(greys)}).'
    )


def _patch_name(hsv: NDArray) -> str:
    h, s, v = (float(c) for c in hsv)
    if v < 0.05:
        return 'black'
    if s < 0.05:
        return 'white' if v > 0.95 else 'grey'
    shade = '' if v > 0.95 else 'dark ' if v < 0.5 else 'deep '
    tone = '' if s > 0.95 else 'pale ' if s < 0.5 else 'muted '
    return f'{shade}{tone}{hue_name(h)}'


def describe_error_series(title: str, hsv: ArrayLike, error: ArrayLike) -> str:
    """Alt text of the error figure (`plot_cube_series` of the error cube against hue, saturation, value).

    Args:
        hsv: `[N, 3]` the error cube's colours (hue in turns).
        error: `[N]` their per-colour error.
    """
    hsv = np.asarray(hsv, dtype=np.float64).reshape(-1, 3)
    error = np.asarray(error, dtype=np.float64).reshape(-1)
    profile = describe_hue_profile(hue_profile(hsv, error))
    text = (
        f'Line charts showing loss per color, titled "{title}": one panel each against hue, saturation and '
        'value, each line a slice of the error cube drawn in the colour it traces. Y-axis: mean square error, '
        f'ranging from zero to {g(error.max())}. At full saturation and value, {profile}. '
        f'The greys, black and white have error at most {g(grey_error(hsv, error))}; '
        f'the median over all {len(error):,} colours is {g(float(np.median(error)))}.'
    )
    return text


def describe_latents(
    title: str, latents: ArrayLike, true: ArrayLike, dims: Sequence[tuple[int, int, int]], ncols: int = 3
) -> str:
    """Alt text of `plot_latent_grid_3d`: where each latent dimension points, and which colour sits there.

    Args:
        latents: `[N, D]` latent vectors.
        true: `[N, 3]` (or `[..., 3]`) the true colours they encode.
    """
    points = np.asarray(latents, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64).reshape(-1, 3)
    n_rows = -(-len(dims) // ncols)
    views = '; '.join(f'({x}, {y}, {z})' for x, y, z in dims)
    text = (
        f'{n_rows} row{"s" if n_rows > 1 else ""} of {min(ncols, len(dims))} spherical plots, titled "{title}": '
        f'orthographic views of the {points.shape[1]}-D latent space of {len(points):,} colours, each plotting '
        f'dimension x across and y up while looking along z (x, y, z = {views}). Each dot is the reconstructed '
        'colour, with the true colour at its centre.'
    )
    norms = np.linalg.norm(points, axis=1)
    if np.allclose(norms, 1.0, atol=1e-3):
        text += ' Every latent lies on the unit sphere.'
    for d in range(points.shape[1]):
        column = points[:, d]
        if np.abs(column).max() < 1e-6:
            text += f' Dimension {d} is zero for every colour.'
            continue
        top = int(np.argmax(column))
        text += (
            f' Dimension {d} spans {column.min():.2f} to {column.max():.2f}, '
            f'with {color_name(true[top])} at the top ({column[top]:.2f}).'
        )
    return text


def describe_similarity_scatter(
    title: str, similarity: ArrayLike, error: ArrayLike, colors: ArrayLike, r2: float, target: str = 'the target'
) -> str:
    """Alt text of the selectivity scatter: per-colour error against similarity to the target."""
    similarity = np.asarray(similarity, dtype=np.float64).reshape(-1)
    error = np.asarray(error, dtype=np.float64).reshape(-1)
    colors = np.asarray(colors, dtype=np.float64).reshape(-1, 3)
    worst = int(np.argmax(error))
    far = similarity < 0.1
    far_text = f' Colours with similarity below 0.1 have error at most {g(error[far].max())}.' if far.any() else ''
    trend = 'rises with' if np.corrcoef(similarity, error)[0, 1] > 0 else 'does not rise with'
    return (
        f'Scatter plot titled "{title}": one dot per colour ({len(error)} colours), filled with that colour. '
        f'X-axis: similarity to {target} (cubed), from {similarity.min():.2g} to {similarity.max():.2g}. '
        f'Y-axis: per-colour error, from {g(error.min())} to {g(error.max())}. r² = {r2:.3f}: error {trend} '
        f'similarity to {target}; the largest error is at {color_name(colors[worst])} ({g(error[worst])}).{far_text}'
    )


def describe_dopesheet(title: str, table: pd.DataFrame, phases: dict[str, int]) -> str:
    """Alt text of the dopesheet figure.

    Args:
        table: one row per step (index = step), one column per property (`lr` and the weights).
        phases: phase name → first step.
    """
    steps = table.index
    text = f'Line charts titled "{title}", sharing the x-axis: training step from {steps[0]} to {steps[-1]}.'
    weights = [c for c in table.columns if c != 'lr']
    if weights:
        text += ' Top: regularizer weights.'
        for name in weights:
            text += ' ' + _describe_track(name, table[name])
    if 'lr' in table.columns:
        text += ' Bottom: learning rate. ' + _describe_track('lr', table['lr'])
    if phases:
        text += ' Phases: ' + join([f'{name} from step {start}' for name, start in phases.items()]) + '.'
    return text


def _describe_track(name: str, values: pd.Series) -> str:
    first, peak, last = values.iloc[0], values.max(), values.iloc[-1]
    if peak == first:
        return f'{name} starts at its peak, {g(first)}, and ends at {g(last)}.'
    return f'{name} starts at {g(first)}, peaks at {g(peak)} at step {values.idxmax()} and ends at {g(last)}.'


def describe_training_curves(title: str, metrics: pd.DataFrame) -> str:
    """Alt text of the training-curves figure: each loss term's first and last value, and for a term that is 0
    at some logged steps (a batch without its labels), at how many it was above 0 and its range there."""
    metrics = metrics.sort_values('step', kind='stable')
    text = (
        f'Line chart titled "{title}": each training loss term against step, from {int(metrics["step"].iloc[0])} '
        f'to {int(metrics["step"].iloc[-1])}, on a logarithmic y-axis.'
    )
    for points in loss_points(metrics):
        label = 'the total loss' if points.column == train_loss_column(TOTAL_LOSS) else points.term
        label = label[0].upper() + label[1:]
        if points.everywhere:
            text += f' {label} goes from {g(points.values[0])} to {g(points.values[-1])}.'
        elif len(points.values) == 0:
            text += f' {label} is 0 at every logged step.'
        else:
            text += (
                f' {label} is above 0 at {len(points.values)} of {points.logged} logged steps (0 at the others, as '
                f'in a batch without a sample of its labels), between {g(points.values.min())} and '
                f'{g(points.values.max())}; the last, at step {int(points.steps[-1])}, is {g(points.values[-1])}.'
            )
    return text


def describe_sweep_boxes(title: str, table: pd.DataFrame, columns: Sequence[str], best_seed: int | None) -> str:
    """Alt text of the sweep's box plots: each metric's median and range over seeds, and the best seed."""
    text = f'Box plots titled "{title}", one panel per metric, over {len(table)} seeds (each seed a dot).'
    best = table.set_index('seed').loc[best_seed] if best_seed is not None else None
    for column in columns:
        values = table[column].dropna()
        text += f' {column}: median {g(values.median())}, from {g(values.min())} to {g(values.max())}'
        text += f'; best seed {best_seed}: {g(best[column])}.' if best is not None else '.'
    return text


def describe_pareto(
    title: str, table: pd.DataFrame, x: str, y: str, pareto_seeds: Sequence[int], best_seed: int | None
) -> str:
    """Alt text of the sweep's Pareto scatter: the axes' ranges, the Pareto seeds, the best seed."""
    text = (
        f'Scatter plot titled "{title}": one dot per seed ({len(table)} seeds). '
        f'X-axis: {x}, from {g(table[x].min())} to {g(table[x].max())}. '
        f'Y-axis: {y}, from {g(table[y].min())} to {g(table[y].max())}.'
    )
    if pareto_seeds:
        text += f' The Pareto seeds, labelled: {join([str(s) for s in pareto_seeds])}.'
    if best_seed is not None:
        row = table.set_index('seed').loc[best_seed]
        text += f' The best seed, {best_seed}, is starred at {x} = {g(row[x])}, {y} = {g(row[y])}.'
    return text
