"""plot_colors: one panel per first-axis index, value up, hue across, true colour inside reconstructed."""

import colorsys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from matplotlib.collections import PolyCollection

from ex_color.data import ColorCube, arange_cyclic
from ex_color.vis import plot_colors

from .conftest import luminance, render_png

HUES = arange_cyclic(step_size=1 / 6)  # 0, 1/6, ..., 5/6
SATURATIONS = np.linspace(0, 1, 3)  # 0, 0.5, 1
VALUES = np.linspace(0, 1, 4)  # 0, 1/3, 2/3, 1


@pytest.fixture
def svh_cube() -> ColorCube:
    """3 saturations × 4 values × 6 hues."""
    return ColorCube.from_hsv(h=HUES, s=SATURATIONS, v=VALUES).permute('svh')


def expected_rgb(s: float, v: float, h: float) -> np.ndarray:
    """The colour at (h, s, v), by the standard library rather than the cube."""
    return np.array(colorsys.hsv_to_rgb(h, s, v))


def squares(ax) -> list[PolyCollection]:
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def display_centres(ax, collection: PolyCollection) -> np.ndarray:
    """Centre of each square in display (pixel) coordinates: x grows rightwards, y upwards."""
    centres = np.array([path.vertices[:4].mean(axis=0) for path in collection.get_paths()])
    return ax.transData.transform(centres)


def test_one_panel_per_first_axis_index_and_title(svh_cube, close_figures):
    fig = plot_colors(svh_cube, title='True colors')
    close_figures.append(fig)

    assert len(fig.axes) == 3  # one per saturation
    assert fig.get_suptitle() == 'True colors · V vs H by S'
    assert [ax.get_title() for ax in fig.axes] == ['S = 0', 'S = 0.5', 'S = 1']
    assert fig.axes[0].get_xlabel() == 'Hue'
    assert fig.axes[0].get_ylabel() == 'Value'


def test_title_follows_the_cube_space(close_figures):
    cube = ColorCube.from_rgb(r=[0, 1], g=[0, 0.5, 1], b=[0, 1]).permute('bgr')
    fig = plot_colors(cube, title='RGB')
    close_figures.append(fig)

    assert fig.get_suptitle() == 'RGB · G vs R by B'
    assert len(fig.axes) == 2


def test_default_colours_are_the_cube_colours_in_each_cell(svh_cube, close_figures):
    fig = plot_colors(svh_cube, title='True colors')
    close_figures.append(fig)

    for i, ax in enumerate(fig.axes):
        (collection,) = squares(ax)
        facecolors = collection.get_facecolors()
        assert facecolors.shape == (4 * 6, 4)
        for j, v in enumerate(VALUES):
            for k, h in enumerate(HUES):
                np.testing.assert_allclose(facecolors[j * 6 + k, :3], expected_rgb(SATURATIONS[i], v, h), atol=1e-12)
        np.testing.assert_array_equal(facecolors[:, 3], 1.0)


@pytest.mark.parametrize('value_step', [1, -1])
def test_highest_value_is_at_the_top_and_hue_increases_rightwards(value_step, close_figures):
    # A cube sliced with a negative step stores value high-to-low; the picture must not flip.
    cube = ColorCube.from_hsv(h=HUES, s=SATURATIONS, v=VALUES).permute('svh')[:, ::value_step, :]
    fig = plot_colors(cube, title='T')
    close_figures.append(fig)

    ax = fig.axes[2]  # S = 1
    (collection,) = squares(ax)
    fig.canvas.draw()
    centres = display_centres(ax, collection)
    facecolors = collection.get_facecolors()[:, :3]

    top_left = np.lexsort((centres[:, 0], -centres[:, 1]))[0]  # highest row, then leftmost
    np.testing.assert_allclose(facecolors[top_left], expected_rgb(1, 1, 0), atol=1e-12)  # red at V = 1
    bottom_right = np.lexsort((-centres[:, 0], centres[:, 1]))[0]
    np.testing.assert_allclose(facecolors[bottom_right], expected_rgb(1, 0, 5 / 6), atol=1e-12)  # black
    top_row = np.isclose(centres[:, 1], centres[top_left, 1])
    left_to_right = np.argsort(centres[top_row, 0])
    for k, colour in enumerate(facecolors[top_row][left_to_right]):
        np.testing.assert_allclose(colour, expected_rgb(1, 1, HUES[k]), atol=1e-12)


def test_compare_colours_are_smaller_squares_inside(svh_cube, close_figures):
    reconstructed = svh_cube.rgb_grid * 0.5  # darker, so the two are distinguishable
    fig = plot_colors(svh_cube, title='Predicted', colors=reconstructed, colors_compare=svh_cube.rgb_grid)
    close_figures.append(fig)

    for i, ax in enumerate(fig.axes):
        outer, inner = squares(ax)
        assert inner.get_zorder() >= outer.get_zorder()
        np.testing.assert_allclose(outer.get_facecolors()[:, :3], reconstructed[i].reshape(-1, 3), atol=1e-12)
        np.testing.assert_allclose(inner.get_facecolors()[:, :3], svh_cube.rgb_grid[i].reshape(-1, 3), atol=1e-12)
        for outer_path, inner_path in zip(outer.get_paths(), inner.get_paths(), strict=True):
            o_lo, o_hi = outer_path.vertices.min(axis=0), outer_path.vertices.max(axis=0)
            i_lo, i_hi = inner_path.vertices.min(axis=0), inner_path.vertices.max(axis=0)
            assert np.all(i_lo > o_lo) and np.all(i_hi < o_hi)


def test_accepts_torch_tensors(svh_cube, close_figures):
    colors = torch.tensor(svh_cube.rgb_grid, dtype=torch.float32, requires_grad=True)
    fig = plot_colors(svh_cube, title='T', colors=colors, colors_compare=colors * 0 + 1)
    close_figures.append(fig)

    outer, inner = squares(fig.axes[1])
    np.testing.assert_allclose(outer.get_facecolors()[:, :3], svh_cube.rgb_grid[1].reshape(-1, 3), atol=1e-6)
    np.testing.assert_array_equal(inner.get_facecolors()[:, :3], 1.0)


@settings(max_examples=15, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5), st.just(3)),
        elements=st.floats(-0.5, 1.5),
    )
)
def test_any_colours_land_in_their_cell_clipped_to_gamut(colors):
    a, b, c, _ = colors.shape
    cube = ColorCube.from_rgb(r=np.linspace(0, 1, a), g=np.linspace(0, 1, b), b=np.linspace(0, 1, c))
    fig = plot_colors(cube, title='T', colors=colors)
    try:
        assert len(fig.axes) == a
        for i, ax in enumerate(fig.axes):
            (collection,) = squares(ax)
            facecolors = collection.get_facecolors()[:, :3]
            for j in range(b):
                for k in range(c):
                    expected = [min(max(x, 0.0), 1.0) for x in colors[i, j, k]]
                    np.testing.assert_allclose(facecolors[j * c + k], expected, atol=1e-12)
    finally:
        fig.clear()


def test_wrong_colour_shape_is_an_error(svh_cube):
    with pytest.raises(ValueError, match=r'colors must have shape \[3, 4, 6, 3\]'):
        plot_colors(svh_cube, title='T', colors=np.zeros((4, 3, 6, 3)))
    with pytest.raises(ValueError, match='colors_compare'):
        plot_colors(svh_cube, title='T', colors_compare=np.zeros((3 * 4 * 6, 3)))


def test_unknown_theme_is_an_error(svh_cube):
    with pytest.raises(ValueError, match="theme must be 'light' or 'dark'"):
        plot_colors(svh_cube, title='T', theme='blue')


def test_dark_theme_has_dark_background_and_light_text(svh_cube, close_figures):
    light = plot_colors(svh_cube, title='T')
    dark = plot_colors(svh_cube, title='T', theme='dark')
    close_figures.extend([light, dark])

    assert luminance(light.get_facecolor()) > 0.9
    assert luminance(dark.get_facecolor()) < 0.2
    assert luminance(dark.axes[0].get_facecolor()) < 0.2
    assert luminance(dark._suptitle.get_color()) > 0.7
    assert luminance(dark.axes[0].title.get_color()) > 0.7


@pytest.mark.parametrize('theme', ['light', 'dark'])
def test_seed_display_cube_renders(theme, close_figures):
    # The seed's display cube: 24 hues × 4 saturations × 8 values, shown 'svh'.
    cube = ColorCube.from_hsv(h=arange_cyclic(step_size=1 / 24), s=np.linspace(0, 1, 4), v=np.linspace(0, 1, 8))
    cube = cube.permute('svh')
    fig = plot_colors(cube, title='Predicted', colors=cube.rgb_grid * 0.9, colors_compare=cube.rgb_grid, theme=theme)
    close_figures.append(fig)

    png = render_png(fig)
    assert png.startswith(b'\x89PNG')
    assert len(fig.axes) == 4
