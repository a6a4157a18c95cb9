"""ColorCube: construction, bias, permute, slicing, assign."""

import colorsys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ex_color.data.color_cube import ColorCube
from ex_color.data.cyclic import arange_cyclic

# 6 hues, 3 saturations, 4 values: small enough to check every cell.
H = arange_cyclic(step_size=1 / 6)
S = np.linspace(0, 1, 3)
V = np.linspace(0, 1, 4)


@pytest.fixture
def hsv_cube() -> ColorCube:
    return ColorCube.from_hsv(H, S, V)


def test_hsv_cube_layout(hsv_cube):
    assert hsv_cube.space == 'hsv'
    assert hsv_cube.canonical_space == 'hsv'
    assert hsv_cube.shape == (6, 3, 4)
    assert hsv_cube.variables == ('color', 'bias')
    assert hsv_cube.rgb_grid.shape == (6, 3, 4, 3)
    assert hsv_cube.bias.shape == (6, 3, 4)
    for actual, expected in zip(hsv_cube.coordinates, (H, S, V), strict=True):
        np.testing.assert_array_equal(actual, expected)


def test_hsv_cube_colors_match_colorsys(hsv_cube):
    for i, h in enumerate(H):
        for j, s in enumerate(S):
            for k, v in enumerate(V):
                np.testing.assert_allclose(hsv_cube.rgb_grid[i, j, k], colorsys.hsv_to_rgb(h, s, v), atol=1e-12)


def test_hsv_bias_corners(hsv_cube):
    n_h, n_s = 6, 3
    bias = hsv_cube.bias
    # vibrant (s=1, v=1): 0 + 0 + 1·1 = 1
    np.testing.assert_allclose(bias[:, -1, -1], 1.0)
    # white (s=0, v=1): 0 + 1·1/n_h + 0 = 1/6
    np.testing.assert_allclose(bias[:, 0, -1], 1 / n_h)
    # black (v=0), any s: 1/(n_s·n_h) + 0 + 0 = 1/18
    np.testing.assert_allclose(bias[:, :, 0], 1 / (n_s * n_h))
    # s=.5, v=2/3: (1/3)/18 + .5·(2/3)/6 + .5·(2/3) = 1/54 + 3/54 + 18/54 = 22/54
    np.testing.assert_allclose(bias[:, 1, 2], 22 / 54)


def test_rgb_cube():
    r, g, b = np.linspace(0, 1, 2), np.linspace(0, 1, 3), np.linspace(0, 1, 4)
    cube = ColorCube.from_rgb(r, g, b)
    assert cube.space == cube.canonical_space == 'rgb'
    assert cube.shape == (2, 3, 4)
    np.testing.assert_array_equal(cube.bias, np.ones((2, 3, 4)))
    for i, j, k in np.ndindex(cube.shape):
        np.testing.assert_array_equal(cube.rgb_grid[i, j, k], [r[i], g[j], b[k]])


def test_hue_wraps_and_s_v_clip():
    cube = ColorCube.from_hsv(h=[1.25, -0.25], s=[-0.5, 0.5, 1.5], v=[2.0])
    np.testing.assert_allclose(cube.coordinates[0], [0.25, 0.75])
    np.testing.assert_allclose(cube.coordinates[1], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(cube.coordinates[2], [1.0])
    # h=.25 (90°, lime), s=1, v=1 → (.5, 1, 0)
    np.testing.assert_allclose(cube.rgb_grid[0, 2, 0], [0.5, 1.0, 0.0])


def test_coordinates_must_be_1d():
    with pytest.raises(ValueError, match='1-D'):
        ColorCube.from_hsv(h=[[0.0, 0.5]], s=[1.0], v=[1.0])


def test_permute(hsv_cube):
    svh = hsv_cube.permute('svh')
    assert svh.space == 'svh'
    assert svh.canonical_space == 'hsv'
    assert svh.shape == (3, 4, 6)
    for actual, expected in zip(svh.coordinates, (S, V, H), strict=True):
        np.testing.assert_array_equal(actual, expected)
    np.testing.assert_array_equal(svh.coordinate('h'), H)
    # cell (s=j, v=k, h=i) of the permuted cube is cell (i, j, k) of the original
    for i, j, k in np.ndindex(hsv_cube.shape):
        np.testing.assert_array_equal(svh.rgb_grid[j, k, i], hsv_cube.rgb_grid[i, j, k])
        assert svh.bias[j, k, i] == hsv_cube.bias[i, j, k]
    # and back again
    back = svh.permute('hsv')
    assert back.space == 'hsv'
    np.testing.assert_array_equal(back.rgb_grid, hsv_cube.rgb_grid)
    assert hsv_cube.space == 'hsv'  # original untouched


@pytest.mark.parametrize('space', ['hsx', 'hs', 'hhs', 'rgb', 'hsvh'])
def test_permute_rejects_non_permutations(hsv_cube, space):
    with pytest.raises(ValueError, match='permute'):
        hsv_cube.permute(space)


def test_read_variable_by_name(hsv_cube):
    assert hsv_cube['bias'] is hsv_cube.bias
    assert hsv_cube['color'] is hsv_cube.rgb_grid
    with pytest.raises(KeyError, match='MSE'):
        hsv_cube['MSE']


def test_int_index_keeps_three_axes(hsv_cube):
    sliced = hsv_cube[2, -1, 0]
    assert sliced.shape == (1, 1, 1)
    assert sliced.space == 'hsv'
    np.testing.assert_array_equal(sliced.rgb_grid[0, 0, 0], hsv_cube.rgb_grid[2, 2, 0])
    np.testing.assert_array_equal(sliced.coordinates[1], [S[-1]])
    assert hsv_cube[1].shape == (1, 3, 4)
    with pytest.raises(IndexError, match='axis'):
        hsv_cube[6]


def test_seed_style_negative_step_slicing(hsv_cube):
    # As in the seed: cube.permute('hsv')[:, -1:, :: (cube.shape[2] // -5)]
    step = hsv_cube.shape[2] // -5  # 4 // -5 = -1
    sliced = hsv_cube.permute('hsv')[:, -1:, ::step]
    assert sliced.shape == (6, 1, 4)
    np.testing.assert_array_equal(sliced.coordinates[2], V[::-1])
    np.testing.assert_array_equal(sliced['bias'], hsv_cube.bias[:, -1:, ::-1])
    np.testing.assert_array_equal(sliced.rgb_grid, hsv_cube.rgb_grid[:, -1:, ::-1])


optional_ints = st.one_of(st.none(), st.integers(-8, 8))
slices = st.builds(slice, optional_ints, optional_ints, st.one_of(st.none(), st.integers(-3, 3).filter(bool)))


@given(st.tuples(slices, slices, slices))
def test_slicing_matches_numpy(key):
    cube = ColorCube.from_hsv(H, S, V).assign('index', np.arange(6 * 3 * 4).reshape(6, 3, 4))
    sliced = cube[key]
    np.testing.assert_array_equal(sliced['index'], cube['index'][key])
    np.testing.assert_array_equal(sliced.rgb_grid, cube.rgb_grid[key])
    for axis in range(3):
        np.testing.assert_array_equal(sliced.coordinates[axis], cube.coordinates[axis][key[axis]])
    assert sliced.shape == cube['index'][key].shape


def test_assign_returns_new_cube(hsv_cube):
    errors = np.arange(6 * 3 * 4, dtype=float).reshape(6, 3, 4)
    with_errors = hsv_cube.assign('MSE', errors)
    assert with_errors.variables == ('color', 'bias', 'MSE')
    np.testing.assert_array_equal(with_errors['MSE'], errors)
    assert hsv_cube.variables == ('color', 'bias')  # original untouched
    # replace an existing variable
    flat = hsv_cube.assign('bias', np.ones((6, 3, 4)))
    np.testing.assert_array_equal(flat.bias, 1.0)
    assert hsv_cube.bias[0, 0, 0] == pytest.approx(1 / 18)
    # assigned variables follow permute and slicing
    np.testing.assert_array_equal(with_errors.permute('vhs')['MSE'], errors.transpose(2, 0, 1))
    np.testing.assert_array_equal(with_errors[:, 1:2, ::-1]['MSE'], errors[:, 1:2, ::-1])


def test_assign_with_channels(hsv_cube):
    hsv_grid = np.zeros((6, 3, 4, 3))
    cube = hsv_cube.assign('hsv', hsv_grid)
    assert cube.permute('svh')['hsv'].shape == (3, 4, 6, 3)


@pytest.mark.parametrize('shape', [(6, 3), (3, 4, 6), (6, 3, 5), ()])
def test_assign_rejects_wrong_shape(hsv_cube, shape):
    with pytest.raises(ValueError, match=r"'MSE'.*\(6, 3, 4\)"):
        hsv_cube.assign('MSE', np.zeros(shape))


def test_repr_names_axes_and_variables(hsv_cube):
    text = repr(hsv_cube.permute('svh'))
    assert text.startswith('ColorCube(s=3')
    assert 'h=6' in text
    assert "'bias'" in text
