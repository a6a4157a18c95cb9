"""plot_latent_grid_3d: orthographic sphere views, drawn back to front, true colour inside reconstructed."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.collections import PathCollection
from matplotlib.patches import Circle

from ex_color.vis import plot_latent_grid_3d
from ex_color.vis.latents import front_of_cells

from .conftest import luminance, render_png

SEED_DIMS = [(1, 0, 2), (2, 0, 1), (3, 0, 1), (4, 1, 2), (3, 2, 4), (4, 3, 0)]


def unit(rows) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def dots(ax) -> PathCollection:
    (collection,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    return collection


@pytest.fixture
def five_points() -> np.ndarray:
    """Five 3-D unit vectors whose dim-2 (depth) values are 0.6, -0.8, 0, 0.8, -0.6."""
    return np.array(
        [
            [0.8, 0.0, 0.6],
            [0.6, 0.0, -0.8],
            [0.0, 1.0, 0.0],
            [0.0, 0.6, 0.8],
            [0.0, -0.8, -0.6],
        ]
    )


def test_points_are_drawn_back_to_front(five_points, close_figures):
    pred = np.linspace(1, 0, 15).reshape(5, 3)
    true = np.linspace(0, 1, 15).reshape(5, 3)
    fig = plot_latent_grid_3d(five_points, pred, true, title='T', dims=[(0, 1, 2)], depth_fade=0)
    close_figures.append(fig)

    collection = dots(fig.axes[0])
    # depth 0.6, -0.8, 0, 0.8, -0.6 ascending → points 1, 4, 2, 0, 3
    order = [1, 4, 2, 0, 3]
    offsets = collection.get_offsets()
    assert offsets.shape == (10, 2)
    np.testing.assert_allclose(offsets[0::2], five_points[order][:, [0, 1]])
    np.testing.assert_allclose(offsets[1::2], five_points[order][:, [0, 1]])  # inner dot at the centre
    facecolors = collection.get_facecolors()[:, :3]
    np.testing.assert_allclose(facecolors[0::2], pred[order])
    np.testing.assert_allclose(facecolors[1::2], true[order])


def test_axes_follow_the_dims_triple(five_points, close_figures):
    colours = np.full((5, 3), 0.5)
    fig = plot_latent_grid_3d(five_points, colours, colours, title='T', dims=[(2, 0, 1)], depth_fade=0)
    close_figures.append(fig)

    offsets = dots(fig.axes[0]).get_offsets()[0::2]
    # depth = dim 1: 0, 0, 1, 0.6, -0.8 ascending (stable) → points 4, 0, 1, 3, 2; x = dim 2, y = dim 0
    np.testing.assert_allclose(offsets, five_points[[4, 0, 1, 3, 2]][:, [2, 0]])
    assert fig.axes[0].get_title() == 'x: 2, y: 0, z: 1'


def test_dot_sizes_are_radius_in_points(five_points, close_figures):
    colours = np.zeros((5, 3))
    fig = plot_latent_grid_3d(five_points, colours, colours, title='T', dims=[(0, 1, 2)], dot_radius=10)
    close_figures.append(fig)

    sizes = dots(fig.axes[0]).get_sizes()
    # scatter sizes are areas in points², diameter √s: radius 10 → (2·10)² = 400; inner radius 5 → 100
    np.testing.assert_allclose(sizes[0::2], 400)
    np.testing.assert_allclose(sizes[1::2], 100)


def test_far_points_fade_toward_the_background(close_figures):
    points = np.array([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0]])
    pred = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    true = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    fig = plot_latent_grid_3d(points, pred, true, title='T', dims=[(0, 1, 2)], depth_fade=0.3)
    close_figures.append(fig)

    facecolors = dots(fig.axes[0]).get_facecolors()[:, :3]
    # back point (z = -1) blends 0.3 of the way to white: black → 0.3 grey, red → (1, 0.3, 0.3)
    np.testing.assert_allclose(facecolors[0], [0.3, 0.3, 0.3])
    np.testing.assert_allclose(facecolors[1], [1.0, 0.3, 0.3])
    # front point (z = 1) keeps its colours
    np.testing.assert_allclose(facecolors[2], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(facecolors[3], [1.0, 0.0, 0.0])


@settings(max_examples=15, deadline=None)
@given(
    n_points=st.integers(1, 25),
    n_dims=st.integers(3, 6),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_every_point_is_drawn_once_in_depth_order(n_points, n_dims, seed, data):
    latents = unit(np.random.default_rng(seed).normal(size=(n_points, n_dims)))
    dx, dy, dz = data.draw(st.permutations(range(n_dims)))[:3]
    # Colour each point by its index so the drawn dots can be traced back to their points.
    ids = np.arange(n_points) / max(n_points - 1, 1)
    colours = np.stack([ids, np.zeros(n_points), np.ones(n_points)], axis=-1)
    fig = plot_latent_grid_3d(latents, colours, colours, title='T', dims=[(dx, dy, dz)], depth_fade=0)
    try:
        collection = dots(fig.axes[0])
        drawn = np.rint(collection.get_facecolors()[0::2, 0] * max(n_points - 1, 1)).astype(int)
        assert sorted(drawn) == list(range(n_points))
        np.testing.assert_allclose(collection.get_offsets()[0::2], latents[drawn][:, [dx, dy]])
        assert np.all(np.diff(latents[drawn, dz]) >= 0)
    finally:
        fig.clear()


def test_grid_has_one_panel_per_triple(close_figures):
    latents = unit(np.random.default_rng(0).normal(size=(40, 5)))
    colours = np.random.default_rng(1).uniform(size=(40, 3))
    six = plot_latent_grid_3d(latents, colours, colours, title='Latents', dims=SEED_DIMS)
    four = plot_latent_grid_3d(latents, colours, colours, title='Latents', dims=SEED_DIMS[:4])
    close_figures.extend([six, four])

    assert len(six.axes) == 6
    assert {(ax.get_subplotspec().rowspan.start, ax.get_subplotspec().colspan.start) for ax in six.axes} == {
        (r, c) for r in range(2) for c in range(3)
    }
    assert len(four.axes) == 4  # the two spare cells of the 2 × 3 grid are removed
    assert six.get_suptitle() == 'Latents'
    assert [ax.get_title() for ax in six.axes] == [f'x: {x}, y: {y}, z: {z}' for x, y, z in SEED_DIMS]


def test_unit_circle_is_drawn(five_points, close_figures):
    fig = plot_latent_grid_3d(five_points, np.zeros((5, 3)), np.zeros((5, 3)), title='T', dims=[(0, 1, 2)])
    close_figures.append(fig)

    circles = [p for p in fig.axes[0].patches if isinstance(p, Circle)]
    assert len(circles) == 1
    assert circles[0].center == (0, 0)
    assert circles[0].radius == 1
    assert not circles[0].get_fill()


def test_seed_shapes_torch_inputs_and_dark_theme(close_figures):
    # As in the seed: latents [8000, 5] tensor, colours [20, 20, 20, 3] tensors (here 6³ for speed).
    latents = torch.nn.functional.normalize(torch.randn(216, 5, generator=torch.Generator().manual_seed(0)), dim=-1)
    grid = torch.stack(torch.meshgrid(*[torch.linspace(0, 1, 6)] * 3, indexing='ij'), dim=-1)
    fig = plot_latent_grid_3d(latents, grid * 0.9, grid, title='Latents', dims=SEED_DIMS, theme='dark', depth_fade=0)
    close_figures.append(fig)

    facecolors = dots(fig.axes[0]).get_facecolors()[:, :3]
    first = int(torch.argmin(latents[:, 2]))  # panel 0 looks along dim 2; the deepest point is drawn first
    np.testing.assert_allclose(facecolors[0], grid.reshape(-1, 3)[first].numpy() * 0.9, atol=1e-6)
    np.testing.assert_allclose(facecolors[1], grid.reshape(-1, 3)[first].numpy(), atol=1e-6)
    assert luminance(fig.get_facecolor()) < 0.2
    assert luminance(fig.axes[0].get_facecolor()) < 0.2
    assert luminance(fig._suptitle.get_color()) > 0.7
    assert render_png(fig).startswith(b'\x89PNG')


def test_bad_input_is_an_error(five_points):
    colours = np.zeros((5, 3))
    with pytest.raises(ValueError, match=r'latents must have shape \[N, D\]'):
        plot_latent_grid_3d(five_points[0], colours, colours, title='T', dims=[(0, 1, 2)])
    with pytest.raises(ValueError, match='colors_pred must have shape'):
        plot_latent_grid_3d(five_points, np.zeros((4, 3)), colours, title='T', dims=[(0, 1, 2)])
    with pytest.raises(ValueError, match='out of range'):
        plot_latent_grid_3d(five_points, colours, colours, title='T', dims=[(0, 1, 3)])
    with pytest.raises(ValueError, match='three different'):
        plot_latent_grid_3d(five_points, colours, colours, title='T', dims=[(0, 0, 1)])
    with pytest.raises(ValueError, match='at least one'):
        plot_latent_grid_3d(five_points, colours, colours, title='T', dims=[])


def test_front_of_cells_keeps_the_nearest_point_of_each_cell():
    # Draw order is back to front: of 0 and 2 (same cell) keep 2, the nearer; 1 and 3 are alone.
    xy = np.array([[0.01, 0.01], [0.5, 0.5], [0.02, 0.015], [-0.01, 0.01]])
    np.testing.assert_array_equal(front_of_cells(xy, cell=0.1), [1, 2, 3])
    np.testing.assert_array_equal(front_of_cells(xy, cell=0.001), [0, 1, 2, 3])


def test_hide_within_skips_points_hidden_under_nearer_ones(close_figures):
    # Two points at almost the same place (the nearer, z = 0.9, drawn last) and one apart.
    latents = np.array([[0.605, 0.0, 0.8], [0.6051, 0.0, 0.9], [-0.6, 0.0, 0.8]])
    colours = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    fig = plot_latent_grid_3d(latents, colours, colours, title='t', dims=[(0, 1, 2)], hide_within=0.01)
    close_figures.append(fig)
    collection = dots(fig.axes[0])
    np.testing.assert_allclose(collection.get_offsets()[0::2], [[-0.6, 0.0], [0.6051, 0.0]])
    np.testing.assert_allclose(collection.get_facecolors()[0::2, :3], [[0, 0, 1], [0, 1, 0]], atol=0.2)
    assert len(collection.get_sizes()) == 4
    with pytest.raises(ValueError, match='hide_within'):
        plot_latent_grid_3d(latents, colours, colours, title='t', dims=[(0, 1, 2)], hide_within=-1)
