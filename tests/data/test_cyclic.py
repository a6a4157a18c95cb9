"""arange_cyclic and isclose_cyclic."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ex_color.data.cyclic import arange_cyclic, isclose_cyclic


@pytest.mark.parametrize(
    ('step_size', 'expected_length'),
    [
        (10 / 360, 36),  # 360° / 10°; 1 / (10/360) is 35.99999999999999 in floats
        (1 / 240, 240),
        (1 / 12, 12),  # the default step
        (0.1, 10),  # 1 / 0.1 = 10, but 0.1 * 9 accumulates error
    ],
)
def test_length_of_one_period(step_size, expected_length):
    assert len(arange_cyclic(step_size=step_size)) == expected_length


def test_default_is_twelve_hues_30_degrees_apart():
    expected = np.array([0, 30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 330]) / 360
    np.testing.assert_allclose(arange_cyclic(), expected, atol=1e-12)


def test_values_wrap_into_period():
    # From 0.9, one period later with step 0.1: 0.9, 1.0→0, 1.1→0.1, ..., 1.8→0.8
    values = arange_cyclic(lower=0.9, step_size=0.1)
    expected = [0.9, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    np.testing.assert_allclose(values, expected, atol=1e-12)
    assert np.all((values >= 0) & (values < 1))


def test_upper_bound_exclusive_and_inclusive():
    # 0, 0.25, 0.5 (0.75 excluded); inclusive adds 0.75
    np.testing.assert_allclose(arange_cyclic(0, 0.75, 0.25), [0, 0.25, 0.5])
    np.testing.assert_allclose(arange_cyclic(0, 0.75, 0.25, inclusive=True), [0, 0.25, 0.5, 0.75])


def test_inclusive_full_period_repeats_the_start():
    # 0 .. 1 inclusive in quarters: 0, .25, .5, .75, 1→0
    np.testing.assert_allclose(arange_cyclic(step_size=0.25, inclusive=True), [0, 0.25, 0.5, 0.75, 0])


def test_upper_below_lower_goes_around_the_circle():
    # 330° to 30°, 10° steps: 330, 340, 350, 0, 10, 20
    values = arange_cyclic(330 / 360, 30 / 360, 10 / 360) * 360
    np.testing.assert_allclose(values, [330, 340, 350, 0, 10, 20], atol=1e-9)


def test_other_period():
    # Degrees: 0..360 in 90° steps, starting at 300: 300, 390→30, 480→120, 570→210
    np.testing.assert_allclose(arange_cyclic(300, step_size=90, period=360), [300, 30, 120, 210])


def test_off_grid_upper_rounds_count_up():
    # 0 .. 0.5 in steps of 0.2: 0, 0.2, 0.4 (0.6 > 0.5)
    np.testing.assert_allclose(arange_cyclic(0, 0.5, 0.2), [0, 0.2, 0.4])


@pytest.mark.parametrize('step_size', [0, -0.1])
def test_non_positive_step_is_an_error(step_size):
    with pytest.raises(ValueError, match='step_size'):
        arange_cyclic(step_size=step_size)


@given(
    lower=st.floats(-3, 3, allow_nan=False),
    n=st.integers(1, 400),
)
def test_property_n_values_evenly_spaced_on_the_circle(lower, n):
    values = arange_cyclic(lower=lower, step_size=1 / n)
    assert len(values) == n
    assert np.all((values >= 0) & (values < 1))
    # Consecutive values are 1/n apart around the circle.
    assert np.all(isclose_cyclic(np.diff(values), 1 / n, atol=1e-9))


def test_isclose_cyclic_across_the_wrap():
    assert isclose_cyclic(0.999, 0.001, atol=0.005)  # 0.002 apart around the circle
    assert not isclose_cyclic(0.999, 0.001, atol=0.001)
    assert not isclose_cyclic(0.25, 0.75, atol=0.4)  # 0.5 apart either way
    assert isclose_cyclic(1.25, 0.25)  # a whole period apart
    assert isclose_cyclic(350, 10, period=360, atol=20)


def test_isclose_cyclic_broadcasts():
    result = isclose_cyclic(np.array([0.0, 0.5, 0.99]), 0.0, atol=0.02)
    np.testing.assert_array_equal(result, [True, False, True])
