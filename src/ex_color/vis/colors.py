"""Colour-cube slices drawn as grids of coloured squares (true vs reconstructed colours)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from numpy.typing import NDArray

from ex_color.vis.theme import axis_name, new_figure, set_title

if TYPE_CHECKING:
    from ex_color.data.color_cube import ColorCube

OUTER_SIZE = 0.92
"""Side of a cell's square, in cells (the rest is a gap that separates neighbours)."""
INNER_SIZE = 0.46
"""Side of the inner comparison square, in cells."""
MAX_X_TICKS = 5
MAX_Y_TICKS = 3


def as_array(values: Any, name: str) -> NDArray[np.float64]:
    """A float64 numpy copy of an array-like or a torch tensor (detached, on CPU)."""
    if hasattr(values, 'detach'):
        values = values.detach().cpu().numpy()
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f'{name} must be a numeric array or tensor, got {type(values).__name__}') from error


def as_rgb(values: Any, shape: tuple[int, ...], name: str) -> NDArray[np.float64]:
    """
    RGB colours of exactly `[*shape, 3]`, clipped to [0, 1] so matplotlib accepts them.

    Reconstructed colours may stray slightly outside the gamut; they are shown at its edge.
    """
    rgb = as_array(values, name)
    expected = (*shape, 3)
    if rgb.shape != expected:
        raise ValueError(f'{name} must have shape {list(expected)}, got {list(rgb.shape)}')
    return np.clip(rgb, 0.0, 1.0)


def is_descending(coordinates: NDArray) -> bool:
    """Whether a coordinate axis runs from high to low (e.g. a cube sliced with a negative step)."""
    return len(coordinates) > 1 and bool(np.all(np.diff(coordinates) < 0))


def square_vertices(n_rows: int, n_cols: int, size: float) -> NDArray[np.float64]:
    """
    Corners of one square per grid cell, centred on (column, row).

    Returns: `[n_rows * n_cols, 4, 2]` in row-major order (cell `(j, k)` at index `j * n_cols + k`).
    """
    rows, cols = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing='ij')
    centres = np.stack([cols.ravel(), rows.ravel()], axis=-1).astype(np.float64)
    half = size / 2
    corners = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
    return centres[:, None, :] + corners[None, :, :]


def set_sparse_ticks(ax: Axes, which: str, coordinates: NDArray, max_ticks: int) -> None:
    """Put at most `max_ticks` evenly spread ticks on an index axis, labelled with the coordinate values."""
    n = len(coordinates)
    positions = np.unique(np.round(np.linspace(0, n - 1, min(n, max_ticks))).astype(int))
    labels = [f'{coordinates[p]:.2g}' for p in positions]
    if which == 'x':
        ax.set_xticks(positions, labels)
    else:
        ax.set_yticks(positions, labels)


def plot_colors(
    cube: ColorCube,
    title: str,
    colors: Any = None,
    colors_compare: Any = None,
    theme: str = 'light',
    *,
    ncols: int | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """
    Draw a colour cube as slices of coloured squares, one panel per index of its first axis.

    Within a panel the second axis runs vertically (highest coordinate at the top) and the
    third horizontally (increasing to the right). E.g. for a cube in 'svh' space there is one
    panel per saturation, value up, hue across, and the title ends in '· V vs H by S'.

    Each cell is a square filled with `colors` (default: the cube's own colours). With
    `colors_compare`, a smaller square inside each cell shows that colour, e.g. reconstructed
    colours outside and true colours inside.

    Each panel holds one `PolyCollection` of `[b*c]` squares in row-major cell order (index
    `j * c + k` for cell `[i, j, k]`), plus a second one for the inner squares if any.

    Args:
        cube: the cube that places the colours; shape `[a, b, c]`.
        title: start of the figure title.
        colors: `[a, b, c, 3]` RGB (numpy or torch) filling the squares.
        colors_compare: `[a, b, c, 3]` RGB drawn as inner squares.
        theme: 'light' or 'dark'.
        ncols: panels per row (default: all in one row).
        figsize: figure size in inches (default: from the cube's shape).
    """
    shape = tuple(cube.shape)
    n_panels, n_rows, n_cols = shape
    panel_letter, row_letter, col_letter = cube.space
    panel_coords, row_coords, col_coords = (np.asarray(c) for c in cube.coordinates)
    fill = as_rgb(cube.rgb_grid if colors is None else colors, shape, 'colors')
    inner = None if colors_compare is None else as_rgb(colors_compare, shape, 'colors_compare')

    ncols = n_panels if ncols is None else ncols
    if ncols < 1:
        raise ValueError(f'ncols must be at least 1, got {ncols}')
    ncols = min(ncols, n_panels)
    nrows = math.ceil(n_panels / ncols)
    if figsize is None:
        cell = min(max(10 / (ncols * n_cols), 0.08), 0.4)
        figsize = (ncols * n_cols * cell + 0.8, nrows * (n_rows * cell + 0.7) + 0.5)
    fig, axes, palette = new_figure(theme, nrows, ncols, figsize)
    for ax in axes.flat[n_panels:]:
        ax.remove()

    outer_vertices = square_vertices(n_rows, n_cols, OUTER_SIZE)
    inner_vertices = square_vertices(n_rows, n_cols, INNER_SIZE)
    for i, ax in enumerate(axes.flat[:n_panels]):
        ax.add_collection(
            PolyCollection(outer_vertices, facecolors=fill[i].reshape(-1, 3), edgecolors='none', linewidths=0)
        )
        if inner is not None:
            ax.add_collection(
                PolyCollection(inner_vertices, facecolors=inner[i].reshape(-1, 3), edgecolors='none', linewidths=0)
            )
        ax.set_xlim(-0.5, n_cols - 0.5)
        ax.set_ylim(-0.5, n_rows - 0.5)
        if is_descending(col_coords):
            ax.invert_xaxis()
        if is_descending(row_coords):
            ax.invert_yaxis()
        ax.set_aspect('equal')
        for spine in ax.spines.values():
            spine.set_visible(False)
        set_sparse_ticks(ax, 'x', col_coords, MAX_X_TICKS)
        set_sparse_ticks(ax, 'y', row_coords, MAX_Y_TICKS)
        ax.tick_params(length=2, labelsize='x-small')
        ax.set_title(f'{panel_letter.upper()} = {panel_coords[i]:.2g}', fontsize='small')
        ax.set_xlabel(axis_name(col_letter), fontsize='small')
        if i % ncols == 0:
            ax.set_ylabel(axis_name(row_letter), fontsize='small')
        else:
            ax.tick_params(labelleft=False)

    set_title(fig, f'{title} · {row_letter.upper()} vs {col_letter.upper()} by {panel_letter.upper()}', palette)
    return fig
