"""Complement labels: an affinity key `'~name'` weighs a sample by `1 − label_name` ("not name")."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ex_color.loss import RegularizerConfig, Unitarity, label_weights, parse_label_key, regularization_loss

LABEL = st.floats(0.0, 1.0, allow_nan=False, width=32)
AFFINITY = st.floats(-2.0, 2.0, allow_nan=False, width=32)


def test_complement_by_hand():
    red = torch.tensor([1.0, 0.0, 0.25, 0.0])
    assert torch.equal(label_weights({'~red': 1.0}, {'red': red}), torch.tensor([0.0, 1.0, 0.75, 1.0]))
    # Half weight for every sample without red; red samples also count through 'vibrant'.
    vibrant = torch.tensor([1.0, 0.0, 0.0, 1.0])
    weights = label_weights({'~red': 0.5, 'vibrant': 1.0}, {'red': red, 'vibrant': vibrant})
    assert torch.equal(weights, torch.tensor([1.0, 0.5, 0.375, 1.0]))


def test_complement_of_hard_bool_labels():
    weights = label_weights({'~red': 1.0}, {'red': torch.tensor([True, False, True])})
    assert torch.equal(weights, torch.tensor([0.0, 1.0, 0.0]))


def test_a_negative_affinity_is_not_a_complement():
    """The old way to say 'not red' weighed every sample 0; the complement weighs the non-red ones 1."""
    red = torch.tensor([1.0, 0.0])
    assert torch.equal(label_weights({'red': -1.0}, {'red': red}), torch.tensor([0.0, 0.0]))
    assert torch.equal(label_weights({'~red': 1.0}, {'red': red}), torch.tensor([0.0, 1.0]))


def test_a_complement_needs_its_label_in_the_batch():
    """An absent label is unknown, not false: the term is skipped, as for a plain key."""
    assert label_weights({'~red': 1.0}, {'vibrant': torch.ones(3)}) is None
    reg = RegularizerConfig('reg', Unitarity(), {'~red': 1.0}, ['a'])
    _, terms = regularization_loss([reg], {'a': torch.randn(3, 2)}, {'vibrant': torch.ones(3)}, {})
    assert terms == {}


@given(
    st.lists(st.tuples(LABEL, LABEL), min_size=1, max_size=12),
    st.dictionaries(st.sampled_from(['red', '~red', 'blue', '~blue']), AFFINITY, min_size=1),
)
@settings(max_examples=60, deadline=None)
def test_weights_match_a_naive_loop(rows, affinities):
    labels = {'red': torch.tensor([r for r, _ in rows]), 'blue': torch.tensor([b for _, b in rows])}
    weights = label_weights(affinities, labels)
    assert weights is not None
    for i, (red, blue) in enumerate(rows):
        value = {'red': red, '~red': 1 - red, 'blue': blue, '~blue': 1 - blue}
        expected = min(max(sum(value[k] * a for k, a in affinities.items()), 0.0), 1.0)
        assert float(weights[i]) == pytest.approx(expected, abs=1e-5)


@given(st.lists(LABEL, min_size=1, max_size=12), st.floats(0.0, 1.0, allow_nan=False, width=32))
@settings(max_examples=60, deadline=None)
def test_a_label_and_its_complement_add_up_to_the_affinity(red, affinity):
    """`a·red + a·(1 − red) = a` for every sample: the two keys split each sample's weight between them."""
    labels = {'red': torch.tensor(red)}
    plain = label_weights({'red': affinity}, labels)
    complement = label_weights({'~red': affinity}, labels)
    both = label_weights({'red': affinity, '~red': affinity}, labels)
    torch.testing.assert_close(plain + complement, torch.full((len(red),), affinity), atol=1e-6, rtol=0)
    torch.testing.assert_close(both, torch.full((len(red),), affinity), atol=1e-6, rtol=0)


def test_complement_weights_the_term():
    """A per-sample loss x[:, 0] weighted by 'not red': the mean over the non-red samples."""
    reg = RegularizerConfig('reg', lambda x: x[..., 0], {'~red': 1.0}, ['a'])
    x = torch.tensor([[10.0], [2.0], [4.0]])
    _, terms = regularization_loss([reg], {'a': x}, {'red': torch.tensor([1.0, 0.0, 0.0])}, {})
    assert float(terms['reg']) == pytest.approx(3.0)


def test_parse_label_key():
    assert parse_label_key('red') == ('red', False)
    assert parse_label_key('~red') == ('red', True)


@pytest.mark.parametrize(
    ('key', 'says'), [('~', 'names no label'), ('~~red', "complement of a complement; expected 'red'")]
)
def test_malformed_complement_keys_are_refused(key, says):
    with pytest.raises(ValueError, match=says):
        RegularizerConfig('reg', Unitarity(), {key: 1.0}, ['a'])
    with pytest.raises(ValueError, match=says):
        label_weights({key: 1.0}, {'red': torch.ones(2)})
