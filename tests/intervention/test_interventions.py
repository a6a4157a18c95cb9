import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ex_color.intervention import BoundedFalloff, Repulsion, Suppression

STEP = BoundedFalloff(a=0.0, b=1.0, power=0)


def test_suppression_step_removes_aligned_component():
    suppress = Suppression(torch.tensor([1.0, 0.0, 0.0]), STEP)
    a = torch.tensor([[0.6, 0.8, 0.0], [-0.6, 0.8, 0.0]])
    # Row 0: a·v = 0.6 → g = 1 → a − 0.6·v = (0, 0.8, 0). Row 1: a·v = −0.6 → clamp 0 → g = 0 → unchanged.
    torch.testing.assert_close(suppress(a), torch.tensor([[0.0, 0.8, 0.0], [-0.6, 0.8, 0.0]]))


def test_suppression_linear_falloff_by_hand_and_v_is_normalised():
    suppress = Suppression([2.0, 0.0, 0.0], BoundedFalloff(0.0, 1.0, power=1))
    # v → (1,0,0); a·v = 0.6 → g = 0.6 → a − 0.6·0.6·v = (0.6 − 0.36, 0.8, 0) = (0.24, 0.8, 0)
    torch.testing.assert_close(suppress(torch.tensor([0.6, 0.8, 0.0])), torch.tensor([0.24, 0.8, 0.0]))


def test_suppression_clamps_alignment_before_falloff():
    # a·v = 3 → falloff(clamp(3, 0, 1)) = falloff(1) = 0.5·1 = 0.5 → a − 0.5·3·v = (1.5, 1)
    suppress = Suppression([1.0, 0.0], BoundedFalloff(0.0, 0.5))
    torch.testing.assert_close(suppress(torch.tensor([3.0, 1.0])), torch.tensor([1.5, 1.0]))


vectors = st.lists(st.floats(-2.0, 2.0), min_size=4, max_size=4)


@settings(max_examples=50)
@given(st.lists(vectors, min_size=1, max_size=6), vectors.filter(lambda v: sum(x * x for x in v) > 1e-2))
def test_suppression_step_leaves_no_positive_component(rows, direction):
    a = torch.tensor(rows, dtype=torch.float64)
    v = torch.tensor(direction, dtype=torch.float64)
    v = v / v.norm()
    out = Suppression(v, STEP)(a)
    dot = a @ v
    aligned = dot > 0
    # Independent check by projection: aligned rows lose exactly their v-component ...
    torch.testing.assert_close(out[aligned] @ v, torch.zeros(int(aligned.sum()), dtype=torch.float64))
    torch.testing.assert_close(out[aligned], a[aligned] - dot[aligned, None] * v)
    # ... and the others are untouched.
    assert torch.equal(out[~aligned], a[~aligned])


def test_repulsion_hand_example_2d():
    # v = (1,0); a = (1,1)/√2·2 = (√2, √2): ‖a‖ = 2, cos = 1/√2. Mapper → 0 rotates a to ‖a‖·u = (0, 2).
    repel = Repulsion(torch.tensor([1.0, 0.0]), lambda cos: torch.zeros_like(cos))
    a = torch.tensor([1.0, 1.0]) / math.sqrt(2) * 2
    torch.testing.assert_close(repel(a), torch.tensor([0.0, 2.0]))


def test_repulsion_hand_example_3d():
    # v = (0,0,1); a = (3,0,4): ‖a‖ = 5, cos = 0.8, u = (1,0,0). Mapper → 0.6: 5·(0.6·v + 0.8·u) = (4, 0, 3).
    repel = Repulsion([0.0, 0.0, 1.0], lambda cos: torch.full_like(cos, 0.6))
    torch.testing.assert_close(repel(torch.tensor([3.0, 0.0, 4.0])), torch.tensor([4.0, 0.0, 3.0]))


def test_repulsion_leaves_unaligned_unchanged():
    repel = Repulsion([1.0, 0.0], lambda cos: torch.zeros_like(cos))
    a = torch.tensor([[-1.0, 1.0], [0.0, 3.0], [0.0, 0.0]])  # cos −1/√2, 0, and the zero vector
    assert torch.equal(repel(a), a)


def test_repulsion_parallel_activation_keeps_norm():
    repel = Repulsion([1.0, 0.0, 0.0], lambda cos: torch.zeros_like(cos))
    out = repel(torch.tensor([2.0, 0.0, 0.0]))
    torch.testing.assert_close(out.norm(), torch.tensor(2.0))
    torch.testing.assert_close(out[0], torch.tensor(0.0))


@settings(max_examples=50)
@given(
    st.lists(vectors, min_size=1, max_size=6),
    vectors.filter(lambda v: sum(x * x for x in v) > 1e-2),
    st.floats(0.0, 1.0),
)
def test_repulsion_keeps_norm_and_hits_mapped_alignment(rows, direction, scale):
    a = torch.tensor(rows, dtype=torch.float64)
    v = torch.tensor(direction, dtype=torch.float64)
    out = Repulsion(v, lambda cos: scale * cos)(a)
    v = v / v.norm()
    norm = a.norm(dim=-1)
    cos = (a @ v) / norm.clamp_min(1e-300)
    aligned = (cos > 0) & (norm > 1e-6)
    torch.testing.assert_close(out.norm(dim=-1), norm)
    torch.testing.assert_close((out[aligned] @ v) / norm[aligned], scale * cos[aligned])
    # Where a is not parallel to v, the result stays in the plane of (v, a): projecting it onto v
    # and onto a's unit perpendicular u reproduces it.
    perp = a - (a @ v)[:, None] * v
    planar = aligned & (perp.norm(dim=-1) > 1e-3 * norm)
    u = perp[planar] / perp[planar].norm(dim=-1, keepdim=True)
    in_plane = (out[planar] @ v)[:, None] * v + (out[planar] * u).sum(-1, keepdim=True) * u
    torch.testing.assert_close(out[planar], in_plane)
    # c ≤ 0 passes unchanged, bit for bit away from c = 0 (near it, rotating to scale·c ≈ 0 is the identity).
    # Tiny vectors with c > 0 are rotated like any other: only their norm is checked, above.
    torch.testing.assert_close(out[cos <= 0], a[cos <= 0])
    assert torch.equal(out[cos < -1e-9], a[cos < -1e-9])


@pytest.mark.parametrize('cls', [Suppression, Repulsion])
def test_direction_validation(cls):
    with pytest.raises(ValueError, match='non-zero'):
        cls([0.0, 0.0], STEP)
    with pytest.raises(ValueError, match='1-D'):
        cls([[1.0, 0.0]], STEP)
    with pytest.raises(ValueError, match='expected 2 to match v'):
        cls([1.0, 0.0], STEP)(torch.ones(4, 3))


def test_feature_dim_moves_the_vector_axis_for_channel_maps():
    torch.manual_seed(0)
    maps = torch.randn(2, 3, 4, 5)  # [B, C, H, W] with C = 3 features per position
    v = torch.tensor([1.0, 2.0, -0.5])
    suppression = Suppression(v, BoundedFalloff(0, 1, power=0), feature_dim=1)
    by_hand = Suppression(v, BoundedFalloff(0, 1, power=0))(maps.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    torch.testing.assert_close(suppression(maps), by_hand)
    assert suppression(maps).shape == maps.shape
    with pytest.raises(ValueError, match=r'last axis; expected 3'):
        Suppression(v, BoundedFalloff(0, 1, power=0))(maps)  # the width axis (5) is not the feature axis
    with pytest.raises(ValueError, match=r'feature_dim 4 is out of range for activations of shape \(2, 3, 4, 5\)'):
        Suppression(v, BoundedFalloff(0, 1, power=0), feature_dim=4)(maps)


def test_ablation_zeroes_exactly_the_dims_along_the_feature_axis():
    from ex_color.intervention import Ablation

    x = torch.tensor([[1.0, float('inf'), 3.0], [float('nan'), 5.0, 6.0]])
    out = Ablation([0, 1])(x)
    assert torch.equal(out, torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, 6.0]]))
    maps = torch.rand(2, 3, 4, 4)
    out = Ablation([2], feature_dim=1)(maps)
    assert torch.equal(out[:, 2], torch.zeros(2, 4, 4))
    assert torch.equal(out[:, :2], maps[:, :2])
    with pytest.raises(ValueError, match=r'out of range .* width 3'):
        Ablation([3])(x)
    with pytest.raises(ValueError, match=r'repeats \[1\]'):
        Ablation([1, 1])


def test_suppression_of_a_direction_alone_uses_the_experiment_files_default_falloff():
    from ex_color.config.schema import SuppressEvaluation
    from ex_color.intervention import BoundedFalloff, Suppression

    v = torch.tensor([1.0, 0.0, 0.0])
    a = torch.tensor([[0.6, 0.8, 0.0], [-0.6, 0.8, 0.0]])
    # By hand, with g = (a·v)¹ for a·v > 0: the first row keeps 0.6 − 0.6·0.6 = 0.24 along v; the second is untouched.
    expected = torch.tensor([[0.24, 0.8, 0.0], [-0.6, 0.8, 0.0]])
    torch.testing.assert_close(Suppression(v)(a), expected)
    fields = SuppressEvaluation.model_fields
    explicit = BoundedFalloff(
        fields['falloff_a'].default, fields['falloff_b'].default, power=fields['falloff_power'].default
    )
    torch.testing.assert_close(Suppression(v)(a), Suppression(v, explicit)(a))
