import math
from functools import cache

import numpy as np
import pytest
import torch
from concept_erasure import LeaceEraser
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.linear_model import LogisticRegression
from torch import Tensor

from ex_color.data import ColorCube, arange_cyclic
from ex_color.data.labels import ConceptLabel
from ex_color.erasure import (
    ERASURE_KINDS,
    ErasureError,
    LeaceErasure,
    MeanDifferenceErasure,
    fit_erasure,
    fit_leace,
    fit_mean_difference,
    mean_difference_direction,
)
from ex_color.evaluation import validation_colors
from ex_color.inference import infer
from ex_color.intervention import InterventionConfig
from ex_color.model import CNColorMLP
from ex_color.surgery import ablate


def _cross_covariance(x: Tensor, z: Tensor, w: Tensor | None = None) -> Tensor:
    """Weighted Cov(x, z) `[D]`, written out directly (not via the module under test)."""
    w = torch.ones(len(z), dtype=torch.float64) if w is None else w.double()
    w = w / w.sum()
    x, z = x.double(), z.double()
    return ((x - w @ x) * (w * (z - w @ z))[:, None]).sum(0)


def _random_problem(seed: int, n: int = 400, d: int = 6) -> tuple[Tensor, Tensor]:
    """Correlated activations `[n, d]` (float64) and a soft concept `[n]` that depends on them linearly."""
    g = torch.Generator().manual_seed(seed)
    mixing = torch.randn(d, d, generator=g, dtype=torch.float64)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) @ mixing + torch.randn(d, generator=g, dtype=torch.float64)
    p = torch.sigmoid(x @ torch.randn(d, generator=g, dtype=torch.float64))
    return x, p


def _leace_matrix(erasure: LeaceErasure, d: int) -> Tensor:
    """The affine map as an augmented matrix `[d + 1, d]`: where 0 and each basis vector go."""
    points = torch.cat([torch.zeros(1, d), torch.eye(d)]).double()
    return erasure(points)


# --- mean-difference ---


def test_mean_difference_matches_hand_computation():
    x = torch.tensor([[2.0, 0.0], [4.0, 2.0], [0.0, 2.0], [2.0, 2.0]])
    p = torch.tensor([1.0, 1.0, 0.0, 0.5])
    # μ₁ = ((2,0) + (4,2) + 0.5·(2,2)) / 2.5 = (2.8, 1.2); μ₀ = ((0,2) + 0.5·(2,2)) / 1.5 = (2/3, 2)
    # μ₁ − μ₀ = (32/15, −12/15) ∝ (8, −3)
    d = torch.tensor([8.0, -3.0], dtype=torch.float64) / math.sqrt(73)
    assert torch.allclose(mean_difference_direction(x, p), d, atol=1e-12)

    # (1, 1)·d = 5/√73, so (1, 1) → (1, 1) − (5/73)(8, −3) = (33/73, 88/73).
    erasure = fit_mean_difference(x, p, renormalize=False)
    y = erasure(torch.tensor([[1.0, 1.0]], dtype=torch.float64))
    assert torch.allclose(y, torch.tensor([[33 / 73, 88 / 73]], dtype=torch.float64), atol=1e-12)


def test_mean_difference_weights_match_hand_computation():
    x = torch.tensor([[2.0, 0.0], [4.0, 2.0], [0.0, 2.0], [2.0, 2.0]])
    p = torch.tensor([1.0, 1.0, 0.0, 0.5])
    w = torch.tensor([1.0, 3.0, 1.0, 0.0])
    # w·p = (1, 3, 0, 0): μ₁ = ((2,0) + 3·(4,2)) / 4 = (3.5, 1.5); w·(1 − p) = (0, 0, 1, 0): μ₀ = (0, 2).
    # μ₁ − μ₀ = (3.5, −0.5) ∝ (7, −1)
    d = torch.tensor([7.0, -1.0], dtype=torch.float64) / math.sqrt(50)
    assert torch.allclose(mean_difference_direction(x, p, w), d, atol=1e-12)


# --- LEACE ---


def test_leace_is_idempotent():
    x, p = _random_problem(0)
    erasure = fit_leace(x, p, renormalize=False)
    once = erasure(x)
    assert (once - x).abs().max() > 0.1  # it does edit
    assert torch.allclose(erasure(once), once, atol=1e-10)


@pytest.mark.parametrize('kind', ERASURE_KINDS)
def test_weighted_cross_covariance_vanishes(kind):
    # Mean-difference too: its direction is that of Cov(x, p), which it projects out.
    x, p = _random_problem(1)
    w = torch.rand(len(p), generator=torch.Generator().manual_seed(2), dtype=torch.float64) ** 2
    before = _cross_covariance(x, p, w)
    assert before.abs().max() > 0.1

    after = _cross_covariance(fit_erasure(kind, x, p, w, renormalize=False)(x), p, w)
    assert after.abs().max() < 1e-12 * before.abs().max()
    # ... while with uniform weights the same erasure would leave some covariance behind.
    assert _cross_covariance(fit_erasure(kind, x, p, renormalize=False)(x), p, w).abs().max() > 1e-3


@pytest.mark.parametrize('seed', [3, 4])
def test_integer_weights_equal_replicated_rows(seed):
    x, p = _random_problem(seed, n=60, d=4)
    counts = torch.randint(0, 4, (len(p),), generator=torch.Generator().manual_seed(seed))
    counts[:2] = torch.tensor([0, 3])  # zero weights and repeats, whatever the draw
    replicated_x, replicated_p = x.repeat_interleave(counts, dim=0), p.repeat_interleave(counts)

    weighted = fit_leace(x, p, counts.double(), renormalize=False)
    replicated = fit_leace(replicated_x, replicated_p, renormalize=False)
    assert torch.allclose(_leace_matrix(weighted, 4), _leace_matrix(replicated, 4), atol=1e-10)

    directions = mean_difference_direction(x, p, counts), mean_difference_direction(replicated_x, replicated_p)
    assert torch.allclose(*directions, atol=1e-12)


def test_leace_equals_library_fit_on_raw_concept():
    # Standardising the concept and moment matching change nothing but the svd_tol scale:
    # the library's own fit on the raw concept (same options) is the same affine map.
    x, p = _random_problem(5)
    ours = fit_leace(x, p, renormalize=False)
    library = LeaceEraser.fit(x, p, affine=True, shrinkage=False, constrain_cov_trace=False, svd_tol=1e-9)
    points = torch.cat([torch.zeros(1, 6), torch.eye(6)]).double()
    assert torch.allclose(ours(points), library(points), atol=1e-10)
    assert ours.describe() == {'kind': 'leace', 'renormalize': False, 'rank': 1}


def test_leace_edit_is_smaller_than_mean_difference():
    # LEACE is the least-squares smallest edit that zeroes the cross-covariance; the mean-difference
    # projection zeroes it too (see above), so it can only move the activations further.
    x, p = _random_problem(6)
    leace = (fit_leace(x, p, renormalize=False)(x) - x).pow(2).sum(-1).mean()
    mean_difference = (fit_mean_difference(x, p, renormalize=False)(x) - x).pow(2).sum(-1).mean()
    assert leace < 0.9 * mean_difference


@pytest.mark.parametrize('strength', [0.01, 1e-9])
def test_weak_concept_is_still_erased(strength):
    # 1e-9: even a tiny svd_tol would drop it unless the concept is standardised first.
    g = torch.Generator().manual_seed(7)
    x = torch.randn(1000, 4, generator=g, dtype=torch.float64)
    p = torch.zeros(1000, dtype=torch.float64)
    p[x[:, 0].argsort()[-5:]] = strength  # a rare, faint label on the samples furthest along x₀
    before = _cross_covariance(x, p)
    assert before.abs().max() > 1e-4 * strength

    # The library's defaults drop the concept as noise: its eraser is the identity.
    default = LeaceEraser.fit(x, p)
    assert not default.proj_left.any()
    assert torch.equal(default(x), x)

    erasure = fit_leace(x, p, renormalize=False)
    assert erasure.rank == 1
    assert _cross_covariance(erasure(x), p).abs().max() < 1e-12 * before.abs().max()


def test_leace_follows_input_dtype_and_keeps_float64():
    x, p = _random_problem(8)
    erasure = fit_leace(x.float(), p.float(), renormalize=False)
    assert erasure.eraser.proj_left.dtype == torch.float64
    y = erasure(x.float())
    assert y.dtype == torch.float32
    assert torch.allclose(y.double(), erasure(x), atol=1e-4)


# --- on the colour model ---


@cache
def _colour_model() -> CNColorMLP:
    torch.manual_seed(0)
    return CNColorMLP(5, k_codec=16, n_nonlinear=2).eval()


@cache
def _probe_data() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Fitting colours (an HSV cube, 3,600) and held-out colours (520 RGB cell centres), with hard labels."""
    cube = ColorCube.from_hsv(h=arange_cyclic(step_size=1 / 36), s=np.linspace(0, 1, 10), v=np.linspace(0, 1, 10))
    fitting = torch.tensor(cube.rgb_grid.reshape(-1, 3), dtype=torch.float32)
    held_out = validation_colors()
    # redness ≥ 0.25: 24% of the fitting colours, 43% of the held-out ones.
    label = ConceptLabel.primary('red', power=0.5, scale=1.0)
    return fitting, label.validation_labels(fitting), held_out, label.validation_labels(held_out)


def _bottleneck(colors: Tensor, erasure=None) -> np.ndarray:
    interventions = [InterventionConfig(apply=erasure, layer_affinities=['bottleneck'])] if erasure else []
    return infer(_colour_model(), colors, interventions, capture_layers=['bottleneck']).captured['bottleneck'].numpy()


def _probe_accuracy(erasure=None) -> float:
    """Held-out accuracy of a logistic probe trained on the fitting colours' (erased) bottleneck."""
    fitting, labels, held_out, held_out_labels = _probe_data()
    # Weak regularisation: unit-norm activations need large weights to separate anything.
    probe = LogisticRegression(C=100, tol=1e-8, max_iter=10_000).fit(_bottleneck(fitting, erasure), labels.numpy())
    return probe.score(_bottleneck(held_out, erasure), held_out_labels.numpy())


@pytest.mark.parametrize('kind', ERASURE_KINDS)
def test_probe_learns_nothing_after_erasure(kind):
    fitting, labels, _, held_out_labels = _probe_data()
    majority = max(held_out_labels.mean().item(), 1 - held_out_labels.mean().item())  # 0.571
    assert _probe_accuracy() > majority + 0.2  # 0.977: the untrained bottleneck encodes redness

    erasure = fit_erasure(kind, torch.tensor(_bottleneck(fitting)), labels, renormalize=False)
    # After erasure the best linear probe is a constant (the cross-covariance is zero for both kinds),
    # so the probe predicts the fitting colours' majority, negative, everywhere: exactly the held-out
    # majority (0.571). 0.02 (10 of 520 colours) allows for solver tolerance and float32 activations.
    assert _probe_accuracy(erasure) <= majority + 0.02


def test_renormalised_projection_equals_ablation():
    # Compare the bottleneck and the decoder's unclamped output too: the untrained model's outputs
    # are clamped to 0 in two of three channels and vary little, which would hide a difference.
    model = _colour_model()
    colors = validation_colors()
    layers = ['bottleneck', 'decoder']
    ablated_result = infer(ablate(model, 'bottleneck', [0]), colors, capture_layers=layers)
    ablated = ablated_result.captured

    e0 = MeanDifferenceErasure([2.0, 0.0, 0.0, 0.0, 0.0], renormalize=True)
    assert e0.describe() == {'kind': 'mean-difference', 'renormalize': True, 'direction': [1.0, 0, 0, 0, 0]}
    intervention = [InterventionConfig(apply=e0, layer_affinities=['bottleneck'])]
    intervened_result = infer(model, colors, intervention, capture_layers=layers)
    assert torch.allclose(intervened_result.outputs, ablated_result.outputs, atol=1e-6)
    intervened = intervened_result.captured
    for layer in layers:
        assert torch.allclose(intervened[layer], ablated[layer], atol=1e-6), layer

    e0.renormalize = False
    unnormalised = infer(model, colors, intervention, capture_layers=layers).captured
    for layer in layers:
        # The untrained decoder is nearly flat: 0.005 here, against 1e-6 for the agreement above.
        assert (unnormalised[layer] - ablated[layer]).abs().max() > 1e-3, layer


def test_renormalised_fit_on_unit_activations():
    fitting, labels, _, _ = _probe_data()
    activations = torch.tensor(_bottleneck(fitting))
    for kind in ERASURE_KINDS:
        erasure = fit_erasure(kind, activations, labels, renormalize=True)
        norms = torch.linalg.vector_norm(erasure(activations), dim=-1)
        assert torch.allclose(norms, torch.ones_like(norms), atol=1e-6), kind


# --- errors ---

_X = torch.randn(10, 3, generator=torch.Generator().manual_seed(9))
_P = torch.linspace(0, 1, 10)


@pytest.mark.parametrize(
    ('kwargs', 'message'),
    [
        ({'concept': torch.zeros(10)}, 'nothing to erase'),
        ({'concept': torch.ones(10), 'weights': None}, 'nothing to erase'),
        # Varies, but only over samples weighted 0.
        ({'weights': torch.tensor([1.0] + [0.0] * 9)}, 'nothing to erase'),
        ({'x': _X[0]}, r'\[N, D\]'),
        ({'x': _X[:1], 'concept': _P[:1]}, 'at least 2'),
        ({'x': _X.long()}, 'float tensor'),
        ({'concept': _P[:9]}, r'shape \[N\] = \[10\]'),
        ({'concept': _P * 2}, r'in \[0, 1\]'),
        ({'concept': _P - 0.5}, r'in \[0, 1\]'),
        ({'weights': torch.ones(9)}, 'weights must have shape'),
        ({'weights': -torch.ones(10)}, 'weights must be finite'),
        ({'weights': torch.zeros(10)}, 'positive sum'),
        ({'x': _X.index_fill(0, torch.tensor([3]), math.nan)}, '1 fitting activations are not finite'),
        ({'renormalize': True}, r'not unit vectors \(norms in .*set renormalize = false'),
    ],
)
@pytest.mark.parametrize('kind', ERASURE_KINDS)
def test_fit_errors_name_the_fit(kind, kwargs, message):
    arguments = {'x': _X, 'concept': _P, 'weights': None, 'renormalize': False} | kwargs
    with pytest.raises(ErasureError, match=rf"^evaluation 'e' at layer 'l': .*{message}") as info:
        fit_erasure(kind, name="evaluation 'e' at layer 'l'", **arguments)
    assert '\n' not in str(info.value)


def test_errors_when_there_is_no_linear_signal():
    # The concept depends on |x| only: Cov(x, p) = (−2)(½) + (−1)(−½) + (1)(−½) + (2)(½) = 0, and the means are equal.
    x = torch.tensor([[-2.0], [-1.0], [1.0], [2.0]])
    p = torch.tensor([1.0, 0.0, 0.0, 1.0])
    with pytest.raises(ErasureError, match=r'^fit: the concept has no linear signal at this layer'):
        fit_leace(x, p, renormalize=False, name='fit')
    with pytest.raises(ErasureError, match=r'^fit: the concept mean equals the mean of the rest'):
        fit_mean_difference(x, p, renormalize=False, name='fit')


def test_mean_difference_errors():
    # Σwp underflows to 0 although the concept varies over positively weighted samples.
    weights, concept = (
        torch.tensor([1.0, 1.0, 1e-200], dtype=torch.float64),
        torch.tensor([0.0, 0.0, 1e-200], dtype=torch.float64),
    )
    with pytest.raises(ErasureError, match=r'^fit: Σ w·p is 0'):
        fit_mean_difference(torch.eye(3, dtype=torch.float64), concept, weights, renormalize=False, name='fit')
    # Equal means: the concept and the rest sit symmetrically about the same point.
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    with pytest.raises(ErasureError, match=r'^fit: the concept mean equals the mean of the rest'):
        fit_mean_difference(x, torch.tensor([1.0, 1.0, 0.0, 0.0]), renormalize=False, name='fit')


def test_other_errors():
    with pytest.raises(ErasureError, match=r"^fit: unknown erasure kind 'pca'"):
        fit_erasure('pca', _X, _P, renormalize=False, name='fit')  # type: ignore[arg-type]
    with pytest.raises(ErasureError, match=r'^fit: direction must be finite and non-zero'):
        MeanDifferenceErasure([0.0, 0.0], renormalize=False, name='fit')
    erasure = fit_leace(_X, _P, renormalize=False, name='fit')
    with pytest.raises(ErasureError, match=r'^fit: activations have 4 dims in the last axis; fitted on 3'):
        erasure(torch.zeros(2, 4))


# --- properties ---

_finite = st.floats(-10, 10, allow_nan=False, width=64)


@settings(max_examples=50, deadline=None)
@given(
    direction=arrays(np.float64, 4, elements=_finite).filter(lambda v: np.linalg.norm(v) > 1e-3),
    x=arrays(np.float64, (5, 4), elements=_finite),
)
def test_mean_difference_output_is_orthogonal_and_renormalised(direction, x):
    erasure = MeanDifferenceErasure(torch.tensor(direction), renormalize=False)
    d = torch.tensor(direction) / np.linalg.norm(direction)
    x = torch.tensor(x)
    edited = erasure(x)
    assert torch.allclose(edited @ d, torch.zeros(5, dtype=torch.float64), atol=1e-9)
    # What is orthogonal to d is kept as it was.
    assert torch.allclose(edited, x - torch.outer(x @ d, d), atol=1e-9)

    erasure.renormalize = True
    norms = torch.linalg.vector_norm(erasure(x), dim=-1)
    nonzero = torch.linalg.vector_norm(edited, dim=-1) > 1e-6
    assert torch.allclose(norms[nonzero], torch.ones_like(norms[nonzero]), atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), power=st.floats(0.5, 8))
def test_leace_zeroes_cross_covariance_for_any_concept_strength(seed, power):
    # Label probabilities raised to high powers are rarer and fainter; LEACE must still erase them.
    x, p = _random_problem(seed, n=200, d=3)
    p = p**power
    before = _cross_covariance(x, p)
    erasure = fit_leace(x, p, renormalize=False)
    assert erasure.rank == 1
    assert _cross_covariance(erasure(x), p).abs().max() <= 1e-10 * before.abs().max()


def test_collapsed_activations_odd_settings_and_odd_inputs_are_clear_errors_or_work():
    point = torch.nn.functional.normalize(torch.randn(1, 5, generator=torch.Generator().manual_seed(0)), dim=-1)
    collapsed = point.repeat(200, 1)  # a layer that maps every sample to one point: rounding noise only
    concept = torch.linspace(0, 1, 200)
    for kind in ('leace', 'mean-difference'):
        with pytest.raises(ErasureError, match=r'^fit: the activations are the same for every fitting sample'):
            fit_erasure(kind, collapsed, concept, renormalize=False, name='fit')
    with pytest.raises(ErasureError, match=r"^fit: renormalize must be True or False, got 'no'"):
        fit_leace(_X, _P, renormalize='no', name='fit')  # type: ignore[arg-type]
    erasure = fit_leace(_X, _P, renormalize=False, name='fit')
    with pytest.raises(ErasureError, match=r'^fit: expected floating-point activations'):
        erasure(torch.zeros(2, 3, dtype=torch.long))
    # Huge (finite) weights are only relative; unit vectors rounded to bfloat16 are still unit vectors.
    huge = fit_leace(_X, _P, torch.full((len(_X),), 1e308, dtype=torch.float64), renormalize=False, name='fit')
    torch.testing.assert_close(huge.eraser.proj_left, erasure.eraser.proj_left)
    unit = torch.nn.functional.normalize(torch.randn(300, 4, generator=torch.Generator().manual_seed(1)), dim=-1)
    fit_leace(unit.bfloat16(), (unit[:, 0] > 0).double(), renormalize=True, name='fit')
