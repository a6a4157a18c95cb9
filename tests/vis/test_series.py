"""plot_cube_series: one panel per cube, one line per remaining index pair, lines coloured by what they trace."""

import colorsys
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.collections import LineCollection

from ex_color.data import ColorCube, arange_cyclic
from ex_color.vis import plot_cube_series

from .conftest import luminance, render_png


def error_by_formula(h, s, v):
    """A made-up per-colour error with a different slope per axis, so each panel's lines are known."""
    return h + 10 * s + 100 * v


@pytest.fixture
def loss_cube() -> ColorCube:
    """12 hues × 3 saturations × 4 values with MSE = h + 10 s + 100 v."""
    cube = ColorCube.from_hsv(h=arange_cyclic(step_size=1 / 12), s=np.linspace(0, 1, 3), v=np.linspace(0, 1, 4))
    H, S, V = np.meshgrid(*cube.coordinates, indexing='ij')
    return cube.assign('MSE', error_by_formula(H, S, V))


def lines(ax) -> list[LineCollection]:
    return [c for c in ax.collections if isinstance(c, LineCollection)]


def traced_points(collection: LineCollection) -> np.ndarray:
    """The data point of each piece: its middle vertex."""
    return np.array([segment[1] for segment in collection.get_segments()])


def test_one_panel_per_cube_one_line_per_index_pair(loss_cube, close_figures):
    hsv = loss_cube.permute('hsv')[:, -1:, :]  # 1 × 4 lines of 12 points
    svh = loss_cube.permute('svh')[:, :, ::4]  # 4 × 3 lines of 3 points
    fig = plot_cube_series(hsv, svh, title='Reconstruction error', var='MSE')
    close_figures.append(fig)

    assert len(fig.axes) == 2
    assert fig.get_suptitle() == 'Reconstruction error'
    assert len(lines(fig.axes[0])) == 1 * 4
    assert len(lines(fig.axes[1])) == 4 * 3
    assert [ax.get_xlabel() for ax in fig.axes] == ['Hue', 'Saturation']
    assert fig.axes[0].get_ylabel() == 'MSE'


def test_lines_trace_the_variable_in_the_colours_of_the_cube(loss_cube, close_figures):
    svh = loss_cube.permute('svh')[:, 1:3, ::5]  # v in {1/3, 2/3}, h in {0, 5/12, 10/12}
    fig = plot_cube_series(svh, title='T')
    close_figures.append(fig)

    collections = lines(fig.axes[0])
    s_values = np.linspace(0, 1, 3)
    for n, (v, h) in enumerate([(v, h) for v in (1 / 3, 2 / 3) for h in (0, 5 / 12, 10 / 12)]):
        collection = collections[n]
        points = traced_points(collection)
        np.testing.assert_allclose(points[:, 0], s_values)
        np.testing.assert_allclose(points[:, 1], error_by_formula(h, s_values, v))
        expected_colours = [colorsys.hsv_to_rgb(h, s, v) for s in s_values]
        np.testing.assert_allclose(collection.get_colors()[:, :3], expected_colours, atol=1e-12)


def test_pieces_join_into_one_continuous_line(loss_cube, close_figures):
    fig = plot_cube_series(loss_cube.permute('vhs')[:, :1, :1], title='T')
    close_figures.append(fig)

    (collection,) = lines(fig.axes[0])
    segments = collection.get_segments()
    assert len(segments) == 4  # one piece per value
    for before, after in itertools.pairwise(segments):
        np.testing.assert_allclose(before[-1], after[0])
        # the joint lies half-way between the two data points
        np.testing.assert_allclose(before[-1], (before[1] + after[1]) / 2)


def test_panels_share_a_y_range_from_zero_to_the_largest_value(loss_cube, close_figures):
    small = loss_cube.permute('hsv')[:, 1:2, :1]  # s = 0.5, v = 0: MSE = h + 5, never 0
    large = loss_cube.permute('vsh')[:, -1:, -1:]  # s = 1, h = 11/12: MSE up to 100 + 10 + 11/12
    fig = plot_cube_series(small, large, title='T')
    close_figures.append(fig)

    low, high = fig.axes[0].get_ylim()
    assert fig.axes[1].get_ylim() == (low, high)
    assert low == 0
    largest = 100 + 10 + 11 / 12
    assert largest <= high <= 1.1 * largest


def test_cyclic_hue_that_wraps_is_drawn_left_to_right(close_figures):
    # Hues from 0.5 round to 0.25: stored as 0.5, 0.75, 0, 0.25.
    cube = ColorCube.from_hsv(h=arange_cyclic(0.5, step_size=0.25), s=[1], v=[1])
    assert list(cube.coordinates[0]) == [0.5, 0.75, 0, 0.25]
    fig = plot_cube_series(cube.assign('MSE', np.arange(4.0).reshape(4, 1, 1)), title='T')
    close_figures.append(fig)

    (collection,) = lines(fig.axes[0])
    points = traced_points(collection)
    np.testing.assert_allclose(points, [[0, 2], [0.25, 3], [0.5, 0], [0.75, 1]])
    np.testing.assert_allclose(
        collection.get_colors()[:, :3], [colorsys.hsv_to_rgb(h, 1, 1) for h in (0, 0.25, 0.5, 0.75)], atol=1e-12
    )


@settings(max_examples=10, deadline=None)
@given(
    n_points=st.integers(2, 6),
    n_b=st.integers(1, 3),
    n_c=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_point_of_every_line_is_plotted(n_points, n_b, n_c, seed):
    cube = ColorCube.from_rgb(r=np.linspace(0, 1, n_points), g=np.linspace(0, 1, n_b), b=np.linspace(0, 1, n_c))
    mse = np.random.default_rng(seed).uniform(0, 3, cube.shape)
    fig = plot_cube_series(cube.assign('err', mse), title='T', var='err')
    try:
        collections = lines(fig.axes[0])
        assert len(collections) == n_b * n_c
        for j in range(n_b):
            for k in range(n_c):
                points = traced_points(collections[j * n_c + k])
                np.testing.assert_allclose(points[:, 0], np.linspace(0, 1, n_points))
                np.testing.assert_allclose(points[:, 1], mse[:, j, k])
        assert fig.axes[0].get_ylabel() == 'err'
        assert fig.axes[0].get_xlabel() == 'Red'
        assert fig.axes[0].get_ylim()[1] >= mse.max()
    finally:
        fig.clear()


def test_seed_call_renders(close_figures):
    # The seed's error cube (240 × 48 × 48) and its exact slicing.
    hd = ColorCube.from_hsv(h=arange_cyclic(step_size=1 / 240), s=np.linspace(0, 1, 48), v=np.linspace(0, 1, 48))
    loss_cube = hd.assign('MSE', ((hd.rgb_grid - [1, 0, 0]) ** 2).mean(axis=-1))
    fig = plot_cube_series(
        loss_cube.permute('hsv')[:, -1:, :: (loss_cube.shape[2] // -5)],
        loss_cube.permute('svh')[:, -1:, :: -(loss_cube.shape[0] // -3)],
        loss_cube.permute('vsh')[:, -1:, :: -(loss_cube.shape[0] // -3)],
        title='Reconstruction error · no intervention',
        var='MSE',
        figsize=(12, 3),
    )
    close_figures.append(fig)

    # 48 // -5 = -10 → v indices 47, 37, 27, 17, 7 (5 lines); -(240 // -3) = 80 → h 0, 80, 160 (3 lines).
    assert [len(lines(ax)) for ax in fig.axes] == [5, 3, 3]
    assert [len(lines(ax)[0].get_segments()) for ax in fig.axes] == [240, 48, 48]
    np.testing.assert_allclose(fig.get_size_inches(), (12, 3))
    assert render_png(fig).startswith(b'\x89PNG')


def test_dark_theme(loss_cube, close_figures):
    fig = plot_cube_series(loss_cube[:, :1, :1], title='T', theme='dark')
    close_figures.append(fig)

    assert luminance(fig.get_facecolor()) < 0.2
    assert luminance(fig.axes[0].get_facecolor()) < 0.2
    assert luminance(fig.axes[0].xaxis.label.get_color()) > 0.7
    assert render_png(fig).startswith(b'\x89PNG')


def test_bad_input_is_an_error(loss_cube):
    with pytest.raises(ValueError, match='at least one cube'):
        plot_cube_series(title='T')
    with pytest.raises(KeyError, match='loss'):
        plot_cube_series(loss_cube, title='T', var='loss')
    with pytest.raises(ValueError, match="theme must be 'light' or 'dark'"):
        plot_cube_series(loss_cube, title='T', theme='sepia')
