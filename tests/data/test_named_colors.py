"""The 17 named colours."""

import colorsys

import numpy as np

from ex_color.data.named_colors import NAMED_COLORS, NAMED_COLORS_HSV, named_colors_hsv, named_colors_rgb

EXPECTED_NAMES = [
    'red', 'orange', 'yellow', 'lime', 'green', 'teal', 'cyan', 'azure', 'blue', 'purple', 'magenta', 'pink',
    'black', 'dark gray', 'gray', 'light gray', 'white',
]  # fmt: skip


def test_names_and_order():
    assert list(NAMED_COLORS) == EXPECTED_NAMES
    assert list(NAMED_COLORS_HSV) == EXPECTED_NAMES


def test_hues_are_30_degrees_apart_at_full_saturation_and_value():
    # Independent route: colorsys from the hue angle, 0°, 30°, ..., 330°.
    for i, name in enumerate(EXPECTED_NAMES[:12]):
        expected = colorsys.hsv_to_rgb(i * 30 / 360, 1.0, 1.0)
        np.testing.assert_allclose(NAMED_COLORS[name], expected, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(NAMED_COLORS_HSV[name], (i * 30 / 360, 1, 1), err_msg=name)


def test_greys():
    for name, level in [('black', 0), ('dark gray', 0.25), ('gray', 0.5), ('light gray', 0.75), ('white', 1)]:
        assert NAMED_COLORS[name] == (level, level, level)
        assert NAMED_COLORS_HSV[name] == (0, 0, level)


def test_rgb_and_hsv_agree():
    names, rgb = named_colors_rgb()
    hsv_names, hsv = named_colors_hsv()
    assert names == hsv_names == EXPECTED_NAMES
    assert rgb.shape == hsv.shape == (17, 3)
    from_hsv = np.array([colorsys.hsv_to_rgb(*c) for c in hsv])
    np.testing.assert_allclose(rgb, from_hsv, atol=1e-12)


def test_arrays_are_fresh_copies():
    _, rgb = named_colors_rgb()
    rgb[0] = 0.0
    assert NAMED_COLORS['red'] == (1.0, 0.0, 0.0)
    assert named_colors_rgb()[1][0].tolist() == [1.0, 0.0, 0.0]
