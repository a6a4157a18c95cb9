"""A variable of colour cubes drawn as lines along one axis, each line in the colours it passes through."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from numpy.typing import NDArray

from ex_color.vis.colors import as_array, as_rgb
from ex_color.vis.theme import axis_name, new_figure, set_title

if TYPE_CHECKING:
    from ex_color.data.color_cube import ColorCube

LINE_WIDTH = 2.0
Y_HEADROOM = 1.05


def colored_line_segments(x: NDArray, y: NDArray) -> list[NDArray]:
    """
    Split a polyline into one piece per point, so each piece can take that point's colour.

    Piece i runs from the midpoint before point i, through it, to the midpoint after it (the
    first and last pieces start/end at their point), so the pieces join without gaps.

    Args:
        x, y: `[n]` coordinates.

    Returns: n arrays of `[3, 2]` vertices (start, point, end).
    """
    points = np.stack([x, y], axis=-1)
    midpoints = (points[:-1] + points[1:]) / 2
    starts = np.concatenate([points[:1], midpoints])
    ends = np.concatenate([midpoints, points[-1:]])
    return list(np.stack([starts, points, ends], axis=1))


def shared_y_limits(values: list[NDArray]) -> tuple[float, float]:
    """Y range covering every panel: from 0 (or below, for negative data) to the largest value, with headroom."""
    finite = np.concatenate([v[np.isfinite(v)] for v in values])
    if finite.size == 0:
        return 0.0, 1.0
    low = min(0.0, float(finite.min()))
    high = max(0.0, float(finite.max()))
    if high == low:
        return low, low + 1.0
    return low * Y_HEADROOM, high * Y_HEADROOM


def plot_cube_series(
    *cubes: ColorCube,
    title: str,
    var: str = 'MSE',
    figsize: tuple[float, float] | None = None,
    theme: str = 'light',
) -> Figure:
    """
    Plot `var` of each cube against the cube's first axis, one panel per cube in a row.

    Each panel has one line per combination of the cube's other two indices, so slice a cube
    down to the lines you want first (e.g. `cube.permute('hsv')[:, -1:, ::-10]`: hue across,
    full saturation, five values). Each line is a `LineCollection` with one piece per point,
    coloured with that point's RGB colour, so the line shows the colours it traces. Panels
    share one y range, from 0 to the largest value, so they can be compared.

    Args:
        cubes: cubes of shape `[a, b, c]` holding `var` (`[a, b, c]`).
        title: figure title.
        var: name of the variable to plot on the y axis.
        figsize: figure size in inches (default: 4 × 3 per panel).
        theme: 'light' or 'dark'.
    """
    if not cubes:
        raise ValueError('plot_cube_series needs at least one cube')
    values = [as_array(cube[var], f'cube[{var!r}]') for cube in cubes]
    for n, (cube, value) in enumerate(zip(cubes, values, strict=True)):
        if value.shape != tuple(cube.shape):
            raise ValueError(f'cube {n}: {var!r} must have the cube shape {list(cube.shape)}, got {list(value.shape)}')

    if figsize is None:
        figsize = (4 * len(cubes), 3)
    fig, axes, palette = new_figure(theme, 1, len(cubes), figsize, sharey=True)
    y_limits = shared_y_limits(values)

    for n, (ax, cube, value) in enumerate(zip(axes.flat, cubes, values, strict=True)):
        x_letter, b_letter, c_letter = cube.space
        x_coords, b_coords, c_coords = (np.asarray(c, dtype=np.float64) for c in cube.coordinates)
        rgb = as_rgb(cube.rgb_grid, tuple(cube.shape), 'cube.rgb_grid')
        # Sort along x so that a wrapped (cyclic) or reversed axis still draws left to right.
        order = np.argsort(x_coords, kind='stable')
        x = x_coords[order]
        for j in range(len(b_coords)):
            for k in range(len(c_coords)):
                lines = LineCollection(
                    colored_line_segments(x, value[order, j, k]),
                    colors=rgb[order, j, k],
                    linewidths=LINE_WIDTH,
                    capstyle='round',
                    joinstyle='round',
                    label=f'{b_letter.upper()} = {b_coords[j]:.2g}, {c_letter.upper()} = {c_coords[k]:.2g}',
                )
                ax.add_collection(lines)
        if len(x) > 1:
            ax.set_xlim(x[0], x[-1])
        ax.set_ylim(*y_limits)
        ax.grid(True, color=palette.guide, linewidth=0.5)
        ax.set_axisbelow(True)
        ax.set_xlabel(axis_name(x_letter))
        if n == 0:
            ax.set_ylabel(var)

    set_title(fig, title, palette)
    return fig
