"""RGB ↔ HSV, redness/greenness/blueness and hsv_similarity."""

import colorsys

import matplotlib.colors
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ex_color.data.color import blueness, greenness, hsv_similarity, hsv_to_rgb, redness, rgb_to_hsv
from ex_color.data.cyclic import isclose_cyclic

unit_floats = st.floats(0, 1, allow_nan=False, allow_infinity=False)
leading_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


def color_arrays():
    """Arrays `[..., 3]` with random leading shape; values in [0, 1], with exact 0, 1 and ties likely."""
    channel = st.one_of(st.sampled_from([0.0, 0.5, 1.0]), unit_floats)
    return leading_shapes.flatmap(lambda shape: hnp.arrays(np.float64, (*shape, 3), elements=channel))


@given(color_arrays())
def test_rgb_hsv_rgb_round_trip(rgb):
    hue = rgb_to_hsv(rgb)[..., 0]
    assert np.all((hue >= 0) & (hue < 1))
    np.testing.assert_allclose(hsv_to_rgb(rgb_to_hsv(rgb)), rgb, atol=1e-6)


@given(color_arrays())
def test_rgb_to_hsv_matches_colorsys(rgb):
    expected = np.array([colorsys.rgb_to_hsv(*c) for c in rgb.reshape(-1, 3)]).reshape(rgb.shape)
    actual = rgb_to_hsv(rgb)
    # colorsys returns hue 1.0 (≡ 0) for a hue a hair below 0, e.g. rgb (1, 0, 2e-16): compare on the circle.
    assert np.all(isclose_cyclic(actual[..., 0], expected[..., 0], atol=1e-12))
    np.testing.assert_allclose(actual[..., 1:], expected[..., 1:], atol=1e-12)


@given(color_arrays())
def test_hsv_to_rgb_matches_colorsys(hsv):
    expected = np.array([colorsys.hsv_to_rgb(*c) for c in hsv.reshape(-1, 3)]).reshape(hsv.shape)
    np.testing.assert_allclose(hsv_to_rgb(hsv), expected, atol=1e-12)


@given(color_arrays())
def test_rgb_to_hsv_matches_matplotlib(rgb):
    actual, expected = rgb_to_hsv(rgb), matplotlib.colors.rgb_to_hsv(rgb)
    # matplotlib can return hue 1.0 (≡ 0) for a tiny negative hue, so compare hue on the circle.
    assert np.all(isclose_cyclic(actual[..., 0], expected[..., 0], atol=1e-12))
    np.testing.assert_allclose(actual[..., 1:], expected[..., 1:], atol=1e-12)


def test_known_colors():
    rgb = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0.5, 0], [0.5, 0.5, 0.5], [0, 0, 0]])
    # orange: max r=1, chroma 1, h = (g-b)/c / 6 = 0.5/6 = 1/12 (30°)
    expected = np.array([[0, 1, 1], [1 / 3, 1, 1], [2 / 3, 1, 1], [1 / 12, 1, 1], [0, 0, 0.5], [0, 0, 0]])
    np.testing.assert_allclose(rgb_to_hsv(rgb), expected, atol=1e-12)
    np.testing.assert_allclose(hsv_to_rgb(expected), rgb, atol=1e-12)


def test_hue_wraps_in_hsv_to_rgb():
    np.testing.assert_allclose(hsv_to_rgb(np.array([1.25, 0.7, 0.9])), hsv_to_rgb(np.array([0.25, 0.7, 0.9])))


def test_torch_in_torch_out():
    rgb = torch.tensor([[1.0, 0.5, 0.0], [0.2, 0.4, 0.6]], dtype=torch.float32)
    hsv = rgb_to_hsv(rgb)
    assert isinstance(hsv, torch.Tensor)
    assert hsv.dtype == torch.float32
    np.testing.assert_allclose(hsv.numpy(), rgb_to_hsv(rgb.numpy().astype(np.float64)), atol=1e-7)
    back = hsv_to_rgb(hsv)
    assert isinstance(back, torch.Tensor)
    torch.testing.assert_close(back, rgb)


def test_wrong_channel_count_is_an_error():
    with pytest.raises(ValueError, match=r'\[\.\.\., 3\]'):
        rgb_to_hsv(np.zeros((4, 2)))


def test_redness_greenness_blueness_by_hand():
    rgb = np.array(
        [
            [1.0, 0.0, 0.0],  # red:    r(1 - 0 - 0) = 1;  g, b = 0
            [1.0, 0.5, 0.0],  # orange: 1·(1 - .25 - 0) = .75;  .5·(1 - .5 - 0) = .25;  b = 0
            [0.2, 0.4, 0.6],  # .2·(1 - .2 - .3) = .1;  .4·(1 - .1 - .3) = .24;  .6·(1 - .1 - .2) = .42
            [1.0, 1.0, 1.0],  # white: 1·(1 - .5 - .5) = 0 for each
        ]
    )
    np.testing.assert_allclose(redness(rgb), [1, 0.75, 0.1, 0], atol=1e-12)
    np.testing.assert_allclose(greenness(rgb), [0, 0.25, 0.24, 0], atol=1e-12)
    np.testing.assert_allclose(blueness(rgb), [0, 0, 0.42, 0], atol=1e-12)


def test_redness_on_tensors_keeps_gradients():
    rgb = torch.tensor([0.2, 0.4, 0.6], requires_grad=True)
    value = redness(rgb)
    value.backward()
    # d/dr r(1 - g/2 - b/2) = 1 - .2 - .3 = .5;  d/dg = -r/2 = -.1;  d/db = -.1
    torch.testing.assert_close(value, torch.tensor(0.1))
    torch.testing.assert_close(rgb.grad, torch.tensor([0.5, -0.1, -0.1]))


RED = (0.0, 1.0, 1.0)


@pytest.mark.parametrize(
    ('other', 'hemi', 'expected'),
    [
        # identical: a = 0, hs = 1, sim = (r + 1 - r)·1·1 = 1
        (RED, True, 1.0),
        # orange 30°: a = 30, hs = (90-30)/90 = 2/3, r = 1 → sim = 2/3
        ((30 / 360, 1.0, 1.0), True, 2 / 3),
        # orange, not hemi: hs = (180-30)/180 = 5/6, r = 1 → 5/6
        ((30 / 360, 1.0, 1.0), False, 5 / 6),
        # cyan 180°: hemi hs = max(0, -1) = 0, r = 1 → sim = 0
        ((0.5, 1.0, 1.0), True, 0.0),
        # azure 210° (= 150° away): hemi 0; not hemi hs = 30/180 = 1/6 → 1/6
        ((210 / 360, 1.0, 1.0), True, 0.0),
        ((210 / 360, 1.0, 1.0), False, 1 / 6),
        # pale red s=.5: a=0, hs=1, r=(1+.5)/2=.75 → (.75+.25)·(1-.5)·(1-0) = .5
        ((0.0, 0.5, 1.0), True, 0.5),
        # white: r = (1+0)/2 = .5, hs = 1 → (.5 + .5)·(1 - 1)·1 = 0
        ((0.0, 0.0, 1.0), True, 0.0),
        # dark yellow (60°, s=1, v=.5): hs = 30/90 = 1/3, r = (1 + .5)/2 = .75
        #   → (.75/3 + .25)·(1 - 0)·(1 - .5) = .5·.5 = .25
        ((60 / 360, 1.0, 0.5), True, 0.25),
        # pink-ish hue 342° = 18° from red across the wrap: hs = 72/90 = .8, r = 1 → .8
        ((342 / 360, 1.0, 1.0), True, 0.8),
    ],
)
def test_hsv_similarity_by_hand(other, hemi, expected):
    assert hsv_similarity(RED, other, hemi=hemi) == pytest.approx(expected, abs=1e-12)
    # symmetric
    assert hsv_similarity(other, RED, hemi=hemi) == pytest.approx(expected, abs=1e-12)


def test_hsv_similarity_broadcasts_over_leading_dims():
    rng = np.random.default_rng(0)
    colors = rng.random((4, 5, 3))
    result = hsv_similarity(colors, np.array(RED))
    assert result.shape == (4, 5)
    loop = np.array([[hsv_similarity(colors[i, j], RED) for j in range(5)] for i in range(4)])
    np.testing.assert_allclose(result, loop)


def test_hsv_similarity_with_tensors():
    colors = torch.tensor([[30 / 360, 1.0, 1.0], [0.5, 1.0, 1.0]], dtype=torch.float64)
    result = hsv_similarity(colors, RED)
    assert isinstance(result, torch.Tensor)
    torch.testing.assert_close(result, torch.tensor([2 / 3, 0.0], dtype=torch.float64))


def test_hsv_similarity_rejects_unknown_mode():
    with pytest.raises(ValueError, match='mode'):
        hsv_similarity(RED, RED, mode='euclidean')  # type: ignore[arg-type]
