"""Timing functions and interpolation between keyframes, against the formulas worked by hand."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ex_color.temporal import TIMING_FUNCTIONS, get_timing, interpolate, linear, minjerk, step_end

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


def test_minjerk_hand_values():
    assert minjerk(0.0) == 0.0
    assert minjerk(1.0) == 1.0
    # 10/8 − 15/16 + 6/32 = 1.25 − 0.9375 + 0.1875 = 0.5 (exact in binary)
    assert minjerk(0.5) == 0.5
    # 10/64 − 15/256 + 6/1024 = 0.15625 − 0.05859375 + 0.005859375 = 0.103515625 (exact in binary)
    assert minjerk(0.25) == 0.103515625
    # symmetry of the above: 1 − 0.103515625
    assert minjerk(0.75) == 0.896484375


@given(unit)
def test_minjerk_matches_polynomial(tau):
    assert minjerk(tau) == pytest.approx(10 * tau**3 - 15 * tau**4 + 6 * tau**5, abs=1e-12)


@given(unit)
def test_minjerk_is_point_symmetric(tau):
    # The curve is symmetric about (0.5, 0.5): f(1 − τ) = 1 − f(τ).
    assert minjerk(1 - tau) == pytest.approx(1 - minjerk(tau), abs=1e-12)


@given(st.lists(unit, min_size=1, max_size=20))
def test_timing_functions_vectorise_like_scalars(taus):
    array = np.array(taus)
    for name, function in TIMING_FUNCTIONS.items():
        vectorised = function(array)
        assert isinstance(vectorised, np.ndarray), name
        assert vectorised.shape == array.shape
        assert vectorised.dtype == np.float64
        for tau, value in zip(taus, vectorised, strict=True):
            assert value == pytest.approx(function(tau), abs=1e-15), (name, tau)


@given(st.lists(unit, min_size=2, max_size=20))
def test_minjerk_is_monotone(taus):
    values = minjerk(np.sort(np.array(taus)))
    # non-decreasing up to rounding (a few ulps)
    assert np.all(np.diff(values) >= -1e-15)


@given(unit)
def test_minjerk_stays_in_unit_interval(tau):
    # just below τ = 1 the polynomial evaluates to 1 + 1e-15 in floats; the result must not overshoot
    assert 0.0 <= minjerk(tau) <= 1.0
    assert 0.0 <= minjerk(np.array([tau]))[0] <= 1.0


def test_minjerk_does_not_overshoot_next_to_one():
    below_one = np.nextafter(1.0, 0.0)
    assert minjerk(below_one) <= 1.0


def test_timing_keeps_shape():
    grid = np.linspace(0, 1, 12).reshape(3, 4)
    assert minjerk(grid).shape == (3, 4)
    assert step_end(grid).shape == (3, 4)
    np.testing.assert_array_equal(linear(grid), grid)


def test_linear_is_identity():
    assert linear(0.3) == 0.3
    assert linear(1.0) == 1.0


def test_step_end_jumps_only_at_one():
    assert step_end(0.0) == 0.0
    assert step_end(0.999999) == 0.0
    assert step_end(1.0) == 1.0
    np.testing.assert_array_equal(step_end(np.array([0.0, 0.5, 1.0])), [0.0, 0.0, 1.0])


@pytest.mark.parametrize('function', [minjerk, linear, step_end])
def test_tau_is_clipped_to_unit_interval(function):
    assert function(-0.5) == 0.0
    assert function(1.5) == 1.0
    np.testing.assert_array_equal(function(np.array([-2.0, 3.0])), [0.0, 1.0])


def test_registry_names_and_alias():
    assert set(TIMING_FUNCTIONS) == {'minjerk', 'linear', 'step-end', 'step'}
    assert get_timing('minjerk') is minjerk
    assert get_timing('linear') is linear
    assert get_timing('step-end') is step_end
    assert get_timing('step') is step_end


def test_unknown_timing_lists_choices():
    with pytest.raises(ValueError, match='bounce') as caught:
        get_timing('bounce')
    assert 'minjerk' in str(caught.value)


def test_interpolate_linear_space_by_hand():
    # 2 + (10 − 2)·0.25 = 4
    assert interpolate(2.0, 10.0, 0.25, 'linear') == 4.0
    np.testing.assert_allclose(interpolate(np.array([0.0, 1.0]), np.array([4.0, 3.0]), 0.5, 'linear'), [2.0, 2.0])


def test_interpolate_log_space_is_geometric():
    # exp(log 1 + (log 100 − log 1)·0.5) = exp(log 10) = 10: the geometric midpoint
    assert interpolate(1.0, 100.0, 0.5, 'log') == pytest.approx(10.0, rel=1e-14)
    # a keyed 0 is floored at 1e-10 in log space: midpoint of 1e-10 and 1 is 1e-5
    assert interpolate(0.0, 1.0, 0.5, 'log') == pytest.approx(1e-5, rel=1e-12)


@pytest.mark.parametrize('space', ['linear', 'log'])
def test_interpolate_returns_keyed_values_exactly_at_the_ends(space):
    assert interpolate(0.01, 0.1, 0.0, space) == 0.01
    assert interpolate(0.01, 0.1, 1.0, space) == 0.1
    assert interpolate(0.0, 0.1, 0.0, space) == 0.0
    np.testing.assert_array_equal(
        interpolate(np.array([0.01, 0.0]), np.array([0.1, 3.0]), np.array([0.0, 1.0]), space), [0.01, 3.0]
    )


@given(
    st.floats(min_value=-100, max_value=100),
    st.floats(min_value=-100, max_value=100),
    unit,
    st.sampled_from(['linear', 'log']),
)
def test_interpolate_scalar_and_array_paths_agree(v0, v1, eased, space):
    scalar = interpolate(v0, v1, eased, space)
    array = interpolate(np.array([v0]), np.array([v1]), np.array([eased]), space)
    assert isinstance(scalar, float)
    assert math.isclose(scalar, float(array[0]), rel_tol=1e-12, abs_tol=1e-300)


def test_interpolate_rejects_unknown_space():
    with pytest.raises(ValueError, match='cubic'):
        interpolate(0.0, 1.0, 0.5, 'cubic')  # type: ignore[arg-type]
