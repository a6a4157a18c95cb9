"""Tests for RegularizerConfig validation."""

import pytest
import torch

from ex_color.loss import AngularAnchor, RegularizerConfig, Unitarity


def test_seed_style_construction():
    config = RegularizerConfig(
        name='reg-anchor',
        compute_loss_term=AngularAnchor(torch.tensor((1, 0, 0, 0, 0), dtype=torch.float32)),
        label_affinities={'red': 1.0},
        layer_affinities=['bottleneck'],
    )
    assert config.phase == 'train'
    assert config.label_affinities == {'red': 1.0}
    assert config.layer_affinities == ['bottleneck']


def test_layers_tuple_becomes_list_and_int_affinity_becomes_float():
    config = RegularizerConfig('r', Unitarity(), {'red': 1}, ('a', 'b'))
    assert config.layer_affinities == ['a', 'b']
    assert isinstance(config.label_affinities['red'], float)


@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        ({'name': ''}, 'name must be a non-empty string'),
        ({'name': 'recon'}, 'reserved'),
        ({'compute_loss_term': 3}, 'must be callable'),
        ({'layer_affinities': []}, 'at least one layer'),
        ({'layer_affinities': 'bottleneck'}, 'must be a list'),
        ({'layer_affinities': ['a', 'a']}, 'repeats'),
        ({'layer_affinities': ['']}, 'non-empty strings'),
        ({'label_affinities': {}}, 'None or a non-empty mapping'),
        ({'label_affinities': {'red': float('nan')}}, 'finite number'),
        ({'label_affinities': {'red': 'high'}}, 'finite number'),
        ({'phase': ''}, 'phase'),
    ],
)
def test_invalid_config_raises(kwargs, match):
    arguments = {
        'name': 'reg',
        'compute_loss_term': Unitarity(),
        'label_affinities': None,
        'layer_affinities': ['bottleneck'],
    }
    arguments.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        RegularizerConfig(**arguments)


@pytest.mark.parametrize(
    ('name', 'what'),
    [('recon', 'the reconstruction term'), ('lr', r"the learning rate \(the dopesheet's lr column\)")],
)
def test_reserved_names_are_refused_saying_what_they_name(name, what):
    """'lr' used to be accepted, and its weight was silently the learning rate."""
    with pytest.raises(ValueError, match=rf"^RegularizerConfig name '{name}' is reserved for {what}; expected another"):
        RegularizerConfig(name, Unitarity(), None, ['bottleneck'])
