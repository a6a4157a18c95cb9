"""Tests for composing regularizer terms into the training loss."""

import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ex_color.loss import (
    AngularAnchor,
    AntiAnchor,
    AxisAlignedSubspace,
    NonFiniteLossError,
    RegularizerConfig,
    Separate,
    Unitarity,
    check_finite,
    label_weights,
    regularization_loss,
    total_loss,
    weighted_term,
)


def first_channel(x: torch.Tensor) -> torch.Tensor:
    """A per-sample 'loss' that is easy to reason about: x[..., 0]."""
    return x[..., 0]


def config(name: str, layers=('a',), affinities=None, phase='train', term=first_channel) -> RegularizerConfig:
    return RegularizerConfig(
        name=name, compute_loss_term=term, label_affinities=affinities, layer_affinities=list(layers), phase=phase
    )


def column(*values: float) -> torch.Tensor:
    """Activations [B, 1] with the given first channel."""
    return torch.tensor(values, dtype=torch.float32).unsqueeze(-1)


# --- label_weights and weighted_term ---


def test_label_weighted_term_by_hand():
    weights = label_weights({'red': 1.0}, {'red': torch.tensor([1.0, 0.0, 1.0, 0.0])})
    assert weights is not None
    term = weighted_term(torch.tensor([1.0, 2.0, 3.0, 4.0]), weights)
    # samples 0 and 2 are red: (1 + 3) / (2 + 1e-8)
    torch.testing.assert_close(term, torch.tensor((1 + 3) / (2 + 1e-8)))


def test_label_weights_clamp_to_one():
    labels = {'red': torch.tensor([1.0, 1.0, 0.0, 0.0]), 'vibrant': torch.tensor([1.0, 0.0, 1.0, 0.0])}
    weights = label_weights({'red': 1.0, 'vibrant': 1.0}, labels)
    # sample 0: 1 + 1 = 2 → clamped to 1; sample 1: 1; sample 2: 1; sample 3: 0
    assert torch.equal(weights, torch.tensor([1.0, 1.0, 1.0, 0.0]))


def test_negative_affinity_clamps_to_zero():
    labels = {'red': torch.tensor([1.0, 1.0]), 'desaturated': torch.tensor([1.0, 0.0])}
    # sample 0: 1·1 + 1·(−1) = 0; sample 1: 1
    assert torch.equal(label_weights({'red': 1.0, 'desaturated': -1.0}, labels), torch.tensor([0.0, 1.0]))
    # −0.5·1 = −0.5 → clamped to 0
    assert torch.equal(label_weights({'red': -0.5}, labels), torch.tensor([0.0, 0.0]))


def test_label_weights_use_only_present_labels():
    labels = {'vibrant': torch.tensor([1.0, 0.0])}
    assert label_weights({'red': 1.0}, labels) is None
    # red absent, vibrant present: w = 0.5 · vibrant
    assert torch.equal(label_weights({'red': 1.0, 'vibrant': 0.5}, labels), torch.tensor([0.5, 0.0]))


def test_label_weights_accept_bool_labels():
    weights = label_weights({'red': 0.25}, {'red': torch.tensor([True, False])})
    assert weights.is_floating_point()
    assert torch.equal(weights, torch.tensor([0.25, 0.0]))


def test_weighted_term_without_weights_is_mean_and_zero_weights_give_zero():
    # mean of 1..4 = 2.5
    assert torch.equal(weighted_term(torch.tensor([1.0, 2.0, 3.0, 4.0]), None), torch.tensor(2.5))
    # 0 / (0 + 1e-8) = 0
    assert torch.equal(weighted_term(torch.tensor([1.0, 2.0]), torch.zeros(2)), torch.tensor(0.0))


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.floats(0, 10),  # per-sample loss
            st.sampled_from([0.0, 1.0]),  # red
            st.sampled_from([0.0, 1.0]),  # vibrant
        ),
        min_size=1,
        max_size=8,
    ),
    red_affinity=st.floats(-2, 2),
    vibrant_affinity=st.floats(-2, 2),
)
def test_weighting_matches_naive_loop(rows, red_affinity, vibrant_affinity):
    losses = [r[0] for r in rows]
    labels = {'red': torch.tensor([r[1] for r in rows]), 'vibrant': torch.tensor([r[2] for r in rows])}
    affinities = {'red': red_affinity, 'vibrant': vibrant_affinity}
    weights = label_weights(affinities, labels)
    # Independent route: plain Python floats.
    naive_weights = [min(max(r[1] * red_affinity + r[2] * vibrant_affinity, 0.0), 1.0) for r in rows]
    naive_term = sum(w * x for w, x in zip(naive_weights, losses, strict=True)) / (sum(naive_weights) + 1e-8)
    torch.testing.assert_close(weights, torch.tensor(naive_weights), atol=1e-6, rtol=0)
    term = weighted_term(torch.tensor(losses), weights)
    torch.testing.assert_close(term, torch.tensor(naive_term), atol=1e-4, rtol=1e-5)


# --- regularization_loss ---


def test_plain_mean_and_schedule_weight():
    activations = {'a': column(1, 2, 3, 4)}
    total, terms = regularization_loss([config('r')], activations, {}, {'r': 0.1})
    # term = mean(1, 2, 3, 4) = 2.5; total = 0.1 × 2.5 = 0.25
    torch.testing.assert_close(terms['r'], torch.tensor(2.5))
    torch.testing.assert_close(total, torch.tensor(0.25))


def test_missing_weight_is_one_and_extra_weights_are_ignored():
    activations = {'a': column(1, 2, 3, 4)}
    total, _ = regularization_loss([config('r')], activations, {}, {'lr': 0.5, 'reg-planar-v': 0.01})
    # weight 1 × 2.5
    torch.testing.assert_close(total, torch.tensor(2.5))


def test_label_weighted_regularizer_by_hand():
    regularizers = [config('plain'), config('red-only', affinities={'red': 1.0})]
    activations = {'a': column(1, 2, 3, 4)}
    labels = {'red': torch.tensor([1.0, 0.0, 1.0, 0.0])}
    total, terms = regularization_loss(regularizers, activations, labels, {'plain': 2.0, 'red-only': 10.0})
    # plain = 2.5; red-only = (1 + 3) / (2 + 1e-8) ≈ 2; total = 2 × 2.5 + 10 × 2 = 25
    torch.testing.assert_close(terms['red-only'], torch.tensor(2.0))
    torch.testing.assert_close(total, torch.tensor(25.0))


def test_term_skipped_when_its_label_is_absent():
    regularizers = [config('plain'), config('red-only', affinities={'red': 1.0})]
    activations = {'a': column(1, 2, 3, 4)}
    total, terms = regularization_loss(regularizers, activations, {'vibrant': torch.ones(4)}, {'plain': 2.0})
    assert set(terms) == {'plain'}
    # only plain: 2 × 2.5 = 5
    torch.testing.assert_close(total, torch.tensor(5.0))


def test_phase_filtering():
    regularizers = [config('train-term'), config('val-term', phase='validate')]
    activations = {'a': column(1, 3)}
    _, train_terms = regularization_loss(regularizers, activations, {}, {})
    _, val_terms = regularization_loss(regularizers, activations, {}, {}, phase='validate')
    assert set(train_terms) == {'train-term'}
    assert set(val_terms) == {'val-term'}


def test_several_layers_sum():
    activations = {'a': column(1, 3), 'b': column(10, 20)}
    _, terms = regularization_loss([config('r', layers=('a', 'b'))], activations, {}, {})
    # mean(1, 3) + mean(10, 20) = 2 + 15 = 17
    torch.testing.assert_close(terms['r'], torch.tensor(17.0))


def test_missing_layer_raises_naming_regularizer_and_layer():
    with pytest.raises(KeyError, match=r"'reg-anchor'.*'bottleneck'"):
        regularization_loss([config('reg-anchor', layers=('bottleneck',))], {'encoder': column(1)}, {}, {})


def test_missing_layer_raises_even_when_term_would_be_skipped():
    # A typo in a layer name must not hide behind a missing label.
    regularizer = config('reg-anchor', layers=('bottlenek',), affinities={'red': 1.0})
    with pytest.raises(KeyError, match='bottlenek'):
        regularization_loss([regularizer], {'bottleneck': column(1)}, {}, {})


def test_duplicate_names_raise():
    with pytest.raises(ValueError, match='unique'):
        regularization_loss([config('r'), config('r')], {'a': column(1)}, {}, {})


def test_no_active_terms_gives_zero_with_ensemble_shape():
    total, terms = regularization_loss([config('r', affinities={'red': 1.0})], {'a': torch.ones(3, 4, 2)}, {}, {})
    assert terms == {}
    assert torch.equal(total, torch.zeros(3))


def test_per_member_tensor_weights():
    activations = {'a': torch.tensor([[[1.0], [3.0]], [[5.0], [7.0]]])}  # [S=2, B=2, 1]
    total, terms = regularization_loss([config('r')], activations, {}, {'r': torch.tensor([1.0, 0.5])})
    # terms: mean(1, 3) = 2, mean(5, 7) = 6; total: 1 × 2, 0.5 × 6 = 3
    assert torch.equal(terms['r'], torch.tensor([2.0, 6.0]))
    assert torch.equal(total, torch.tensor([2.0, 3.0]))


def test_labels_shared_by_all_members():
    activations = {'a': torch.tensor([[[1.0], [3.0]], [[5.0], [7.0]]])}  # [S=2, B=2, 1]
    labels = {'red': torch.tensor([0.0, 1.0])}  # [B], the same batch for both members
    _, terms = regularization_loss([config('r', affinities={'red': 1.0})], activations, labels, {})
    # only sample 1 counts: 3 and 7
    torch.testing.assert_close(terms['r'], torch.tensor([3.0, 7.0]))


# --- total_loss ---


def test_total_loss_single_model():
    recon = torch.tensor(0.5)
    total, terms = total_loss(recon, [config('r')], {'a': column(1, 3)}, {}, {'r': 0.25})
    # 0.5 + 0.25 × mean(1, 3) = 0.5 + 0.5 = 1
    assert total.shape == ()
    torch.testing.assert_close(total, torch.tensor(1.0))
    assert set(terms) == {'recon', 'r'}
    assert terms['recon'] is recon


def test_total_loss_without_terms_is_reconstruction():
    recon = torch.tensor([0.1, 0.2])
    total, terms = total_loss(recon, [], {'a': torch.ones(2, 3, 1)}, {}, {})
    assert torch.equal(total, recon)
    assert set(terms) == {'recon'}


# --- ensembles: stacked inputs equal per-member calls ---


def seed_regularizers() -> list[RegularizerConfig]:
    red = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0])
    return [
        RegularizerConfig('reg-unit', Unitarity(), None, ['encoder']),
        RegularizerConfig('reg-anchor', AngularAnchor(red), {'red': 1.0}, ['bottleneck']),
        RegularizerConfig('reg-separate', Separate(power=100.0, shift=True), None, ['bottleneck']),
        RegularizerConfig('reg-planar-d', AxisAlignedSubspace((2, 3, 4)), {'desaturated': 1.0}, ['bottleneck']),
        RegularizerConfig('reg-anti-anchor', AntiAnchor(-red), None, ['bottleneck']),
        RegularizerConfig('reg-two-layers', Unitarity(), {'vibrant': 0.5, 'red': 0.7}, ['encoder', 'bottleneck']),
    ]


@pytest.mark.parametrize('label_names', [('red', 'desaturated', 'vibrant'), ('red',), ()])
def test_stacked_regularization_equals_per_member(label_names):
    generator = torch.Generator().manual_seed(3)
    n_members, batch = 3, 8
    activations = {
        'encoder': torch.randn(n_members, batch, 5, generator=generator),
        'bottleneck': torch.randn(n_members, batch, 5, generator=generator),
    }
    labels = {name: torch.randint(0, 2, (n_members, batch), generator=generator).float() for name in label_names}
    weights = {'reg-unit': 0.1, 'reg-anchor': 0.05, 'reg-separate': 0.01, 'reg-planar-d': 0.01}
    regularizers = seed_regularizers()
    recon = torch.rand(n_members, generator=generator)

    total, terms = total_loss(recon, regularizers, activations, labels, weights)

    per_member = [
        total_loss(
            recon[s],
            regularizers,
            {k: v[s] for k, v in activations.items()},
            {k: v[s] for k, v in labels.items()},
            weights,
        )
        for s in range(n_members)
    ]
    assert total.shape == (n_members,)
    assert torch.equal(total, torch.stack([t for t, _ in per_member]))
    assert set(terms) == set(per_member[0][1])
    for name, term in terms.items():
        assert term.shape == (n_members,)
        assert torch.equal(term, torch.stack([m[name] for _, m in per_member])), name


# --- check_finite ---


def test_check_finite_passes_finite_terms():
    check_finite({'recon': torch.tensor(0.1), 'reg-anchor': torch.tensor([0.0, 2.0])}, seed_regularizers(), 5)


def test_check_finite_names_term_layer_and_step():
    terms = {'recon': torch.tensor(0.1), 'reg-anchor': torch.tensor(float('nan'))}
    with pytest.raises(NonFiniteLossError) as info:
        check_finite(terms, seed_regularizers(), 123)
    message = str(info.value)
    assert message == "non-finite loss at step 123: term 'reg-anchor' (layer 'bottleneck') = nan"
    assert info.value.term == 'reg-anchor'
    assert info.value.step == 123


def test_check_finite_names_ensemble_member_and_all_layers():
    terms = {'reg-two-layers': torch.tensor([0.0, 1.0, float('inf'), float('nan')])}
    with pytest.raises(NonFiniteLossError) as info:
        check_finite(terms, seed_regularizers(), 7)
    message = str(info.value)
    assert '\n' not in message
    assert "step 7: term 'reg-two-layers' (layers 'encoder', 'bottleneck') = inf" in message
    assert 'member 2' in message
    assert '2 of 4' in message
    assert info.value.member == (2,)


def test_check_finite_reconstruction():
    with pytest.raises(NonFiniteLossError, match=r"^non-finite loss at step 0: term 'recon' = inf$"):
        check_finite({'recon': torch.tensor(float('inf'))}, seed_regularizers(), 0)


def test_check_finite_is_a_runtime_error():
    assert issubclass(NonFiniteLossError, RuntimeError)


def test_non_finite_loss_error_without_context_still_has_its_fields():
    # A handler reads .term/.step/.member; raising with a message alone must not break it.
    error = NonFiniteLossError('non-finite total loss at step 7: a schedule weight is not finite')
    assert (error.term, error.step, error.member) == (None, None, None)
    assert str(error) == 'non-finite total loss at step 7: a schedule weight is not finite'


def test_non_finite_loss_error_survives_pickling_with_its_context():
    error = NonFiniteLossError('bad', term='reg-anchor', step=3, member=(1,))
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.term, copy.step, copy.member) == ('bad', 'reg-anchor', 3, (1,))


def test_check_finite_always_gives_term_step_and_member():
    with pytest.raises(NonFiniteLossError) as single:
        check_finite({'recon': torch.tensor(float('nan'))}, seed_regularizers(), 4)
    assert (single.value.term, single.value.step, single.value.member) == ('recon', 4, None)
    with pytest.raises(NonFiniteLossError) as ensemble:
        check_finite({'recon': torch.tensor([[0.0, 1.0], [float('inf'), 0.0]])}, seed_regularizers(), 9)
    assert (ensemble.value.term, ensemble.value.step, ensemble.value.member) == ('recon', 9, (1, 0))
