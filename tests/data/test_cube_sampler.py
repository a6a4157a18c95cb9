"""vibrancy and cube_training_tensors."""

import colorsys

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch.utils.data import WeightedRandomSampler

from ex_color.data.color_cube import ColorCube
from ex_color.data.cube_sampler import cube_training_tensors, vibrancy
from ex_color.data.cyclic import arange_cyclic


def test_vibrancy_by_hand():
    rgb = np.array(
        [
            [1.0, 0.0, 0.0],  # red: S=1, V=1 → 1
            [0.5, 0.5, 0.5],  # grey: S=0 → 0
            [0.2, 0.4, 0.6],  # V=.6, S=(.6-.2)/.6=2/3 → .4
            [0.5, 0.25, 0.5],  # V=.5, S=.25/.5=.5 → .25
        ]
    )
    np.testing.assert_allclose(vibrancy(rgb), [1.0, 0.0, 0.4, 0.25], atol=1e-12)


@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 5), st.just(3)), elements=st.floats(0, 1)))
def test_vibrancy_is_s_times_v_per_colorsys(rgb):
    expected = [s * v for _, s, v in (colorsys.rgb_to_hsv(*c) for c in rgb)]
    np.testing.assert_allclose(vibrancy(rgb), expected, atol=1e-12)


def test_vibrancy_of_tensor_is_tensor():
    rgb = torch.tensor([[[1.0, 0.0, 0.0], [0.2, 0.4, 0.6]]], requires_grad=True)
    result = vibrancy(rgb)
    assert isinstance(result, torch.Tensor)
    assert result.shape == (1, 2)
    torch.testing.assert_close(result, torch.tensor([[1.0, 0.4]]))
    result.sum().backward()  # differentiable
    assert rgb.grad is not None


def test_vibrancy_of_cube_is_s_times_v_of_its_grid():
    s, v = np.linspace(0, 1, 3), np.linspace(0, 1, 4)
    cube = ColorCube.from_hsv(arange_cyclic(step_size=1 / 6), s, v)
    result = vibrancy(cube)
    assert result.shape == (6, 3, 4)
    expected = np.broadcast_to(s[None, :, None] * v[None, None, :], (6, 3, 4))
    np.testing.assert_allclose(result, expected, atol=1e-12)
    # follows permutation
    np.testing.assert_allclose(vibrancy(cube.permute('vhs')), expected.transpose(2, 0, 1), atol=1e-12)


def test_cube_training_tensors_flatten_in_c_order():
    cube = ColorCube.from_hsv(arange_cyclic(step_size=1 / 4), np.linspace(0, 1, 2), np.linspace(0, 1, 3))
    samples = cube_training_tensors(cube)
    assert samples.colors.shape == (24, 3)
    assert samples.colors.dtype == torch.float32
    assert samples.vibrancies.shape == samples.weights.shape == (24,)
    # row n is cell (i, j, k) with n = (i·2 + j)·3 + k
    for n, (i, j, k) in enumerate(np.ndindex(cube.shape)):
        np.testing.assert_allclose(samples.colors[n].numpy(), cube.rgb_grid[i, j, k], atol=1e-7)
        assert samples.weights[n].item() == cube.bias[i, j, k]
        assert samples.vibrancies[n].item() == np.float32(vibrancy(cube)[i, j, k])
    # usable as sampler weights
    assert len(list(WeightedRandomSampler(samples.weights, num_samples=10))) == 10
