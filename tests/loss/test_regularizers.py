"""Tests for the per-sample regularizers `[..., B, D] → [..., B]`."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ex_color.loss import (
    Anchor,
    AngularAnchor,
    AntiAnchor,
    AxisAlignedSubspace,
    Planarity,
    Regularizer,
    Separate,
    Unitarity,
)

ATOL = 1e-6  # the 1e-8 added to norms shifts hand values by ~1e-8


def t(*rows: tuple[float, ...]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def assert_close(actual: torch.Tensor, expected: list[float]) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype), atol=ATOL, rtol=0)


# --- hand-worked values ---


def test_unitarity_by_hand():
    # (3,4): ‖x‖ = 5 → (5 − 1)² = 16;  (0.6,0.8): ‖x‖ = 1 → 0;  (0,0): (0 − 1)² = 1
    assert_close(Unitarity()(t((3, 4), (0.6, 0.8), (0, 0))), [16.0, 0.0, 1.0])


def test_anchor_by_hand():
    # p = (1,0).  (1,0) → 0;  (4,4) → 3² + 4² = 25;  (0,−1) → 1² + 1² = 2
    assert_close(Anchor(torch.tensor([1.0, 0.0]))(t((1, 0), (4, 4), (0, -1))), [0.0, 25.0, 2.0])


def test_angular_anchor_by_hand():
    # p = (1,0).  (0,2): cos 0 → 1;  (1,1): cos 1/√2 → 1 − 1/√2;  (−3,0): cos −1 → 2;
    # (5,0): cos 1 → 0 (length doesn't matter);  (0,0): cos 0 by the 1e-8 convention → 1
    out = AngularAnchor(torch.tensor([1.0, 0.0]))(t((0, 2), (1, 1), (-3, 0), (5, 0), (0, 0)))
    assert_close(out, [1.0, 1 - 1 / math.sqrt(2), 2.0, 0.0, 1.0])


def test_anti_anchor_by_hand():
    x = t((-1, 0), (1, 1), (2, 0), (0, 1))
    # hemi: max(cos, 0).  (−1,0): max(−1,0) = 0;  (1,1): 1/√2;  (2,0): 1;  (0,1): 0
    assert_close(AntiAnchor(torch.tensor([1.0, 0.0]))(x), [0.0, 1 / math.sqrt(2), 1.0, 0.0])
    # full: (cos + 1)/2.  (−1,0): 0;  (1,1): (1/√2 + 1)/2;  (2,0): 1;  (0,1): 0.5
    full = AntiAnchor(torch.tensor([1.0, 0.0]), hemi=False)(x)
    assert_close(full, [0.0, (1 / math.sqrt(2) + 1) / 2, 1.0, 0.5])


def test_separate_by_hand_shifted():
    # u: (1,0), (0,1), (−1,0).  cos: C01 = 0, C02 = −1, C12 = 0; self-pairs masked.
    # shift: C01 = (0+1)/2 = .5, C02 = (−1+1)/2 = 0, C12 = .5
    # power 1: loss0 = C01 + C02 = .5, loss1 = C01 + C12 = 1, loss2 = C02 + C12 = .5
    x = t((1, 0), (0, 1), (-1, 0))
    assert_close(Separate(power=1.0, shift=True)(x), [0.5, 1.0, 0.5])
    # power 2: loss0 = .25 + 0 = .25, loss1 = .25 + .25 = .5, loss2 = .25
    assert_close(Separate(power=2.0, shift=True)(x), [0.25, 0.5, 0.25])
    # lengths don't matter: same directions scaled by 2, 3, 5
    assert_close(Separate(power=2.0)(t((2, 0), (0, 3), (-5, 0))), [0.25, 0.5, 0.25])


def test_separate_by_hand_unshifted():
    # no shift, power 2: C01 = 0, C02 = −1, C12 = 0 → loss0 = 0 + (−1)² = 1, loss1 = 0, loss2 = 1
    x = t((1, 0), (0, 1), (-1, 0))
    assert_close(Separate(power=2.0, shift=False)(x), [1.0, 0.0, 1.0])
    # power 1: loss0 = 0 − 1 = −1, loss1 = 0, loss2 = −1
    assert_close(Separate(power=1.0, shift=False)(x), [-1.0, 0.0, -1.0])


@pytest.mark.parametrize(
    'batch',
    [
        ((1, 0), (0, 1), (1, 0)),  # exact duplicate of sample 0
        ((1, 0), (0, 1), (4, 0)),  # same direction, other length
        ((1e-3, 0), (0, 1e-3), (1e-3, 0)),  # short vectors: u is shorter than 1 because of the 1e-8
    ],
)
def test_separate_ignores_duplicates(batch):
    # Samples 0 and 2 point the same way, so their pair is masked like a self-pair.
    # shift, power 1: loss0 = C01 = (0+1)/2 = .5 (C02 masked); loss1 = C10 + C12 = .5 + .5 = 1; loss2 = C21 = .5
    # Without masking the pair, samples 0 and 2 would get .5 + (1+1)/2 = 1.5.
    assert_close(Separate(power=1.0, shift=True)(t(*batch)), [0.5, 1.0, 0.5])


def test_separate_masked_entries_contribute_nothing_at_high_power():
    # Two identical samples and nothing else: the only pair is masked → loss 0 for both,
    # even though the shifted value of a masked entry would have been (1+1)/2 = 1.
    assert_close(Separate(power=100.0, shift=True)(t((1, 2), (1, 2))), [0.0, 0.0])


def test_separate_channels_selection():
    # On channels (0, 1) the vectors are (1,0), (0,1), (−1,0) → same as the shifted hand case: .5, 1, .5
    x = t((1, 0, 5), (0, 1, 5), (-1, 0, -7))
    assert_close(Separate(channels=(0, 1), power=1.0)(x), [0.5, 1.0, 0.5])
    # On channel 2 only: directions +, +, − → C01 = 1 (masked as duplicate), C02 = (−1+1)/2 = 0, C12 = 0
    assert_close(Separate(channels=[2], power=1.0)(x), [0.0, 0.0, 0.0])
    # All channels: cos01 = 25/(√26·√26) = 25/26, cos12 = −35/(√26·√50) = −35/√1300
    # loss1 = (25/26 + 1)/2 + (1 − 35/√1300)/2
    expected_loss1 = (25 / 26 + 1) / 2 + (1 - 35 / math.sqrt(1300)) / 2
    assert_close(Separate(power=1.0)(x)[1:2], [expected_loss1])


def test_axis_aligned_subspace_by_hand():
    x = t((1, 2, 3, 4, 5))
    # dims (2,3,4) kept; penalise dims 0, 1: 1² + 2² = 5
    assert_close(AxisAlignedSubspace((2, 3, 4))(x), [5.0])
    # invert: penalise dims 2, 3, 4: 3² + 4² + 5² = 50
    assert_close(AxisAlignedSubspace((2, 3, 4), invert=True)(x), [50.0])


def test_planarity_by_hand():
    x = t((1, 2, 3), (0, 0, -2))
    # penalise dim 2: 3² = 9; (−2)² = 4
    assert_close(Planarity()(x), [9.0, 4.0])
    # invert: penalise dims 0, 1: 1 + 4 = 5; 0
    assert_close(Planarity(invert=True)(x), [5.0, 0.0])


# --- ensembles: a stacked [S, B, D] input equals the stack of per-member results ---


def all_regularizers(dims: int = 5) -> list[torch.nn.Module]:
    point = torch.zeros(dims)
    point[0] = 1.0
    return [
        Unitarity(),
        Anchor(point),
        AngularAnchor(point),
        AntiAnchor(-point),
        AntiAnchor(point, hemi=False),
        Separate(),
        Separate(power=100.0, shift=True),
        Separate(channels=(0, 2), power=3.0, shift=False),
        AxisAlignedSubspace((2, 3, 4)),
        AxisAlignedSubspace((2, 3, 4), invert=True),
        Planarity(),
    ]


@pytest.mark.parametrize('regularizer', all_regularizers(), ids=lambda r: repr(r))
def test_stacked_equals_per_member(regularizer):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 7, 5, generator=generator)
    x[1, 4] = x[1, 2]  # a duplicate within one member only
    x[2, 0] = 0.0  # a zero vector
    stacked = regularizer(x)
    per_member = torch.stack([regularizer(x[s]) for s in range(x.shape[0])])
    assert stacked.shape == (3, 7)
    assert torch.equal(stacked, per_member)


def test_separate_non_integer_power_stacked_matches_to_rounding():
    # torch.pow may round differently by position in the tensor, so only closeness is promised.
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(3, 7, 5, generator=generator)
    separate = Separate(power=2.5)
    per_member = torch.stack([separate(x[s]) for s in range(3)])
    torch.testing.assert_close(separate(x), per_member, rtol=1e-6, atol=0)


def test_separate_does_not_mix_ensemble_members():
    # Member 1 is a copy of member 0's first sample repeated; if Separate compared across
    # members, member 0's result would change when member 1 changes.
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]])
    # member 0: C01 = (0+1)/2 = .5 each; member 1: its only pair is a duplicate → 0
    assert_close(Separate()(x), [[0.5, 0.5], [0.0, 0.0]])


@settings(max_examples=25, deadline=None)
@given(
    data=st.data(),
    n_members=st.integers(1, 4),
    batch=st.integers(1, 6),
)
def test_stacked_equals_per_member_property(data, n_members, batch):
    values = data.draw(arrays(np.float32, (n_members, batch, 5), elements=st.floats(-10, 10, width=32)))
    x = torch.from_numpy(values)
    for regularizer in all_regularizers():
        per_member = torch.stack([regularizer(x[s]) for s in range(n_members)])
        assert torch.equal(regularizer(x), per_member), repr(regularizer)


# --- properties on random inputs ---

leading_shapes = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)


@settings(max_examples=50, deadline=None)
@given(
    data=st.data(),
    leading=leading_shapes,
    batch=st.integers(1, 6),
    dims=st.integers(5, 7),
)
def test_shapes_finite_and_non_negative(data, leading, batch, dims):
    values = data.draw(arrays(np.float32, (*leading, batch, dims), elements=st.floats(-100, 100, width=32)))
    x = torch.from_numpy(values)
    for regularizer in all_regularizers(dims):
        out = regularizer(x)
        assert out.shape == (*leading, batch), repr(regularizer)
        assert torch.isfinite(out).all(), repr(regularizer)
        # Everything is a square, a clamped cosine or a shifted cosine, except Separate
        # without shift and with an odd power, which can be negative.
        if not (isinstance(regularizer, Separate) and not regularizer.shift):
            assert (out >= 0).all(), repr(regularizer)


@settings(max_examples=30, deadline=None)
@given(data=st.data(), batch=st.integers(1, 5))
def test_angular_losses_stay_in_range(data, batch):
    # cos ∈ [−1, 1] → AngularAnchor ∈ [0, 2], AntiAnchor ∈ [0, 1]; Separate(shift) per pair ∈ [0, 1]
    values = data.draw(arrays(np.float32, (batch, 3), elements=st.floats(-1e3, 1e3, width=32)))
    x = torch.from_numpy(values)
    point = torch.tensor([0.3, -2.0, 1.0])
    angular = AngularAnchor(point)(x)
    assert ((angular >= 0) & (angular <= 2)).all()
    for hemi in (True, False):
        anti = AntiAnchor(point, hemi=hemi)(x)
        assert ((anti >= 0) & (anti <= 1)).all()
    separate = Separate(power=2.0)(x)
    assert ((separate >= 0) & (separate <= batch - 1)).all()


def test_angular_anchor_matches_independent_cosine():
    # Independent route: torch.nn.functional.cosine_similarity (clamps norms at eps instead of adding it).
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(4, 6, 5, generator=generator, dtype=torch.float64)
    point = torch.randn(5, generator=generator, dtype=torch.float64)
    expected = 1 - torch.nn.functional.cosine_similarity(x, point.expand_as(x), dim=-1)
    torch.testing.assert_close(AngularAnchor(point)(x), expected, atol=1e-7, rtol=0)


@pytest.mark.parametrize('power', [1.0, 2.5, 3.0, 100.0])
def test_separate_matches_naive_loop(power):
    # Independent route: pairwise loop in Python floats (`**`, not repeated squaring),
    # skipping i == j and pairs with cosine ≈ 1.
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    x[5] = 2 * x[1]  # a duplicate direction
    expected = []
    for i in range(6):
        total = 0.0
        for j in range(6):
            cos = float(x[i] @ x[j] / (x[i].norm() * x[j].norm()))
            if i == j or cos > 1 - 1e-6:
                continue
            total += ((cos + 1) / 2) ** power
        expected.append(total)
    assert_close(Separate(power=power)(x), expected)


def test_gradients_are_finite_at_zero_and_duplicates():
    x = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0], [1.0, 0, 0, 0, 0], [1.0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0]])
    for regularizer in all_regularizers():
        leaf = x.clone().requires_grad_(True)
        regularizer(leaf).sum().backward()
        assert leaf.grad is not None
        assert torch.isfinite(leaf.grad).all(), repr(regularizer)


# --- module behaviour and validation ---


def test_point_is_a_buffer_that_moves_with_to():
    anchor = AngularAnchor(torch.tensor([1, 0, 0]))  # integer input becomes floating point
    assert anchor.point.is_floating_point()
    assert 'point' in dict(anchor.named_buffers())
    assert anchor.to(torch.float64).point.dtype == torch.float64


def test_point_is_copied_not_aliased():
    point = torch.tensor([1.0, 0.0])
    anchor = Anchor(point)
    point[0] = 5.0
    # ‖(1,0) − (1,0)‖² = 0 with the original point; would be 16 if aliased
    assert_close(anchor(t((1, 0))), [0.0])


def test_float64_activations_with_float32_point():
    out = Anchor(torch.tensor([1.0, 0.0]))(torch.tensor([[3.0, 4.0]], dtype=torch.float64))
    # (3−1)² + 4² = 20
    assert out.dtype == torch.float64
    assert_close(out, [20.0])


def test_all_regularizers_satisfy_protocol():
    for regularizer in all_regularizers():
        assert isinstance(regularizer, Regularizer)


@pytest.mark.parametrize(
    ('make', 'x', 'match'),
    [
        (lambda: Anchor(torch.tensor([1.0, 0.0])), torch.zeros(2, 3), 'activations have 3 dims but point has 2'),
        (lambda: AxisAlignedSubspace((2, 3, 4)), torch.zeros(2, 3), 'out of range'),
        (lambda: Separate(channels=(0, 5)), torch.zeros(2, 3), 'out of range'),
    ],
)
def test_mismatched_dimensions_raise(make, x, match):
    with pytest.raises(ValueError, match=match):
        make()(x)


@pytest.mark.parametrize(
    ('make', 'match'),
    [
        (lambda: Anchor(torch.zeros(2, 2)), '1-D'),
        (lambda: Separate(power=0.0), 'power must be > 0'),
        (lambda: Separate(channels=()), 'is empty'),
        (lambda: AxisAlignedSubspace((1, 1)), 'repeats'),
        (lambda: AxisAlignedSubspace((-1,)), 'out of range'),
    ],
)
def test_invalid_construction_raises(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_entries_whose_power_would_be_denormal_are_dropped_and_only_those():
    """What the compiled Separate does to avoid denormal floats (tens of times slower on CPUs)."""
    from ex_color.loss.regularizers import _without_denormal_powers

    x = torch.tensor([0.0, 0.1, 0.41, 0.42, -0.42, 0.9, 1.0])
    kept = _without_denormal_powers(x, 100.0)
    powers = x.double() ** 100  # computed apart, in float64, where none of these is denormal
    tiny = torch.finfo(torch.float32).tiny
    assert torch.equal(kept != 0, powers >= tiny)
    assert torch.equal(kept[kept != 0], x[kept != 0])
