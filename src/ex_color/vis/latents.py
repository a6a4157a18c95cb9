"""Unit-norm latent vectors seen as points on a sphere, from several pairs of dimensions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Circle
from numpy.typing import NDArray

from ex_color.vis.colors import as_array
from ex_color.vis.theme import new_figure, set_title

PANEL_SIZE = 3.5
"""Width and height of one panel, in inches."""
LIMIT = 1.1
"""Half-width of the view: the unit circle plus room for the dots."""


def depth_order(depth: NDArray) -> NDArray[np.intp]:
    """Indices that sort points back to front (ascending depth), so the nearest are drawn last."""
    return np.argsort(depth, kind='stable')


def front_of_cells(xy: NDArray, cell: float) -> NDArray[np.intp]:
    """
    Of points in draw order (back to front), those nearest the viewer in each `cell`-sized square.

    A point with a nearer one in its square lies at most `cell·√2` from it, so its dot is
    covered by the nearer dot but for a rim that thin; drawing it would change nothing visible.

    Args:
        xy: `[N, 2]` positions in draw order.
    Returns: indices into `xy`, ascending (draw order kept).
    """
    keys = np.floor(xy / cell).astype(np.int64)
    _, first_from_front = np.unique(keys[::-1], axis=0, return_index=True)
    return np.sort(len(keys) - 1 - first_from_front)


def fade_toward(rgb: NDArray, background: NDArray, depth: NDArray, strength: float) -> NDArray:
    """
    Blend colours toward the background by how far back they are.

    The blend weight is `strength · (1 − z) / 2` for depth z clipped to [-1, 1]: nothing at the
    front (z = 1), `strength` at the back (z = −1).

    Args:
        rgb: `[N, 3]` colours.
        background: `[3]` colour to fade toward.
        depth: `[N]` depth coordinates.
    """
    weight = strength * (1 - np.clip(depth, -1.0, 1.0)) / 2
    return rgb + (background - rgb) * weight[:, None]


def plot_latent_grid_3d(
    latents: Any,
    colors_pred: Any,
    colors_true: Any,
    title: str,
    dims: Sequence[tuple[int, int, int]],
    dot_radius: float = 10,
    theme: str = 'light',
    ncols: int = 3,
    *,
    depth_fade: float = 0.3,
    hide_within: float = 0.0,
) -> Figure:
    """
    Orthographic views of unit latent vectors, one panel per `(x, y, z)` triple of dimensions.

    Each panel plots latent dim x across and dim y up, looking along dim z: points are drawn
    back to front (ascending z) so nearer points cover farther ones, and farther ones are
    faded toward the background by up to `depth_fade`. Each point is a dot of the
    reconstructed colour with a dot half its radius of the true colour at its centre.

    Each panel holds one scatter collection of 2N markers, interleaved so that depth is
    respected: offsets `[2m]` and `[2m+1]` are the outer and inner dot of the m-th point in
    draw order. The unit circle and the x/y axes are drawn faintly underneath.

    Args:
        latents: `[N, D]` latent vectors (numpy or torch), ideally unit length.
        colors_pred: `[..., 3]` reconstructed RGB, N colours in all (flattened in C order).
        colors_true: `[..., 3]` true RGB, N colours in all.
        title: figure title.
        dims: triples of latent dimensions (x, y, z), one panel each.
        dot_radius: radius of the outer dots, in points.
        theme: 'light' or 'dark'.
        ncols: panels per row.
        depth_fade: how much the farthest points blend into the background (0 = none).
        hide_within: skip points that a nearer point covers to within this distance (in latent
            units; see `front_of_cells`). 0 draws every point. About 0.004 is half a pixel at
            100 dpi and saves much drawing when many colours share a latent position.
    """
    points = as_array(latents, 'latents')
    if points.ndim != 2:
        raise ValueError(f'latents must have shape [N, D], got {list(points.shape)}')
    n_points, n_dims = points.shape
    pred = _flat_rgb(colors_pred, n_points, 'colors_pred')
    true = _flat_rgb(colors_true, n_points, 'colors_true')
    triples = [_check_triple(triple, n_dims) for triple in dims]
    if not triples:
        raise ValueError('dims must name at least one (x, y, z) triple')
    if ncols < 1:
        raise ValueError(f'ncols must be at least 1, got {ncols}')
    if not 0 <= depth_fade <= 1:
        raise ValueError(f'depth_fade must be in [0, 1], got {depth_fade}')
    if not hide_within >= 0:
        raise ValueError(f'hide_within must be >= 0, got {hide_within}')

    ncols = min(ncols, len(triples))
    nrows = math.ceil(len(triples) / ncols)
    fig, axes, palette = new_figure(theme, nrows, ncols, (PANEL_SIZE * ncols, PANEL_SIZE * nrows + 0.4))
    for ax in axes.flat[len(triples) :]:
        ax.remove()
    background = np.array(to_rgb(palette.axes))

    for ax, (dx, dy, dz) in zip(axes.flat, triples, strict=False):
        order = depth_order(points[:, dz])
        if hide_within > 0:
            order = order[front_of_cells(points[order][:, [dx, dy]], hide_within)]
        # Scatter sizes are areas in points²; a circle marker of size s has diameter √s.
        sizes = np.tile([(2 * dot_radius) ** 2, dot_radius**2], len(order))
        depth = points[order, dz]
        outer = fade_toward(pred[order], background, depth, depth_fade)
        inner = fade_toward(true[order], background, depth, depth_fade)
        offsets = np.repeat(points[order][:, [dx, dy]], 2, axis=0)
        facecolors = np.empty((2 * len(order), 3))
        facecolors[0::2] = outer
        facecolors[1::2] = inner

        ax.add_patch(Circle((0, 0), 1.0, fill=False, edgecolor=palette.guide, linewidth=1.0, zorder=0))
        ax.plot([-1, 1], [0, 0], color=palette.guide, linewidth=0.5, zorder=0)
        ax.plot([0, 0], [-1, 1], color=palette.guide, linewidth=0.5, zorder=0)
        ax.scatter(offsets[:, 0], offsets[:, 1], s=sizes, c=np.clip(facecolors, 0, 1), linewidths=0, zorder=1)

        ax.set_xlim(-LIMIT, LIMIT)
        ax.set_ylim(-LIMIT, LIMIT)
        ax.set_aspect('equal')
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(f'x: {dx}, y: {dy}, z: {dz}', fontsize='small')

    set_title(fig, title, palette)
    return fig


def _flat_rgb(colors: Any, n_points: int, name: str) -> NDArray[np.float64]:
    """`[..., 3]` colours flattened to `[N, 3]`, checked against the number of latents."""
    rgb = as_array(colors, name)
    if rgb.ndim < 1 or rgb.shape[-1] != 3 or rgb.size != n_points * 3:
        raise ValueError(f'{name} must have shape [..., 3] with {n_points} colours in all, got {list(rgb.shape)}')
    return np.clip(rgb.reshape(n_points, 3), 0.0, 1.0)


def _check_triple(triple: Sequence[int], n_dims: int) -> tuple[int, int, int]:
    """A triple of distinct latent dimensions, each in [0, n_dims)."""
    if len(triple) != 3:
        raise ValueError(f'each dims entry must be an (x, y, z) triple, got {tuple(triple)}')
    dx, dy, dz = (int(d) for d in triple)
    if not all(0 <= d < n_dims for d in (dx, dy, dz)):
        raise ValueError(f'dims {tuple(triple)} out of range for latents with {n_dims} dimensions')
    if len({dx, dy, dz}) != 3:
        raise ValueError(f'dims {tuple(triple)} must be three different dimensions')
    return dx, dy, dz
