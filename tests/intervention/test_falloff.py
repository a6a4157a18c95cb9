import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ex_color.intervention import BoundedFalloff


def test_values_by_hand():
    falloff = BoundedFalloff(a=0.5, b=2.0, power=2)
    x = torch.tensor([0.2, 0.5, 0.75, 1.0])
    # 0.2, 0.5: not > a → 0;  0.75: 2·(0.25/0.5)² = 2·0.25 = 0.5;  1.0: 2·(0.5/0.5)² = 2
    torch.testing.assert_close(falloff(x), torch.tensor([0.0, 0.0, 0.5, 2.0]))


def test_linear_by_hand():
    falloff = BoundedFalloff(a=0.2, b=1.0)
    # 0.6: (0.6 − 0.2)/0.8 = 0.5;  0.4: 0.2/0.8 = 0.25;  −0.5: 0
    torch.testing.assert_close(falloff(torch.tensor([0.6, 0.4, -0.5])), torch.tensor([0.5, 0.25, 0.0]))


def test_power_zero_is_a_step():
    falloff = BoundedFalloff(a=0.0, b=1.0, power=0)
    # x > 0 → b = 1; x = 0 and x < 0 → 0
    assert torch.equal(falloff(torch.tensor([-0.2, 0.0, 1e-6, 0.3, 1.0])), torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0]))


@given(
    st.floats(-0.9, 0.9),
    st.floats(0.0, 3.0),
    st.floats(0.0, 4.0),
    st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=20),
)
def test_matches_scalar_formula(a, b, power, xs):
    falloff = BoundedFalloff(a, b, power)
    expected = [b * ((x - a) / (1 - a)) ** power if x > a else 0.0 for x in xs]
    torch.testing.assert_close(
        falloff(torch.tensor(xs, dtype=torch.float64)), torch.tensor(expected, dtype=torch.float64)
    )


@pytest.mark.parametrize(('a', 'power'), [(1.0, 1), (1.5, 1), (0.0, -1)])
def test_rejects_bad_parameters(a, power):
    with pytest.raises(ValueError, match='BoundedFalloff'):
        BoundedFalloff(a, 1.0, power)
