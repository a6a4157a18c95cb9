"""Gradient routing: masks worked out by hand, the defining property in both engines, members as if alone."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from ex_color.temporal import Dopesheet
from ex_color.training.engine import EngineOptions, init_models, train_ensemble
from ex_color.training.lightning import TrainingModule
from ex_color.training.routing import MemberRoutes, Route, route_gradient
from ex_color.training.schedule import TrainingSchedule
from ex_color.training.stacked import StackedChain

from .conftest import make_model

RED = Route('bottleneck', (0,), {'red': 1.0})


def test_hard_labels_give_masks_of_zeros_and_ones():
    mask = RED.mask({'red': torch.tensor([1.0, 0.0])}, width=3)
    assert mask.tolist() == [[1, 0, 0], [0, 1, 1]]
    only_labelled = Route('bottleneck', (0, 2), {'red': 1.0}, others=False)
    assert only_labelled.mask({'red': torch.tensor([1.0, 0.0])}, width=3).tolist() == [[1, 0, 1], [1, 1, 1]]


def test_a_probability_weighs_the_routed_dims_p_and_the_others_one_minus_p():
    mask = RED.mask({'red': torch.tensor([0.25])}, width=2)
    assert mask.tolist() == [[0.25, 0.75]]
    # Affinities combine as a regularizer's: clamp(Σ affinity · label, 0, 1), complements included.
    both = Route('bottleneck', (1,), {'red': 0.5, '~blue': 1.0})
    labels = {'red': torch.tensor([1.0, 0.0]), 'blue': torch.tensor([1.0, 1.0])}
    assert both.mask(labels, width=2).tolist() == [[0.5, 0.5], [1.0, 0.0]]


def test_a_batch_without_the_label_routes_every_sample_as_unlabelled():
    assert RED.mask({'blue': torch.tensor([1.0, 0.0])}, width=2).tolist() == [[0, 1], [0, 1]]


def test_dims_outside_the_layer_are_refused():
    with pytest.raises(ValueError, match='width 2'):
        Route('bottleneck', (2,), {'red': 1.0}).mask({'red': torch.ones(1)}, width=2)


@given(st.lists(st.floats(-1e6, 1e6, allow_subnormal=False), min_size=4, max_size=4), st.floats(0, 1))
def test_routing_keeps_the_value_and_scales_the_gradient_by_the_mask(values, p):
    x = torch.tensor(values, dtype=torch.float32, requires_grad=True)
    mask = torch.tensor([p, 1 - p, 0.0, 1.0])
    y = route_gradient(x, mask)
    assert torch.equal(y.detach(), x.detach())
    y.backward(torch.arange(1.0, 5.0))
    torch.testing.assert_close(x.grad, mask * torch.arange(1.0, 5.0), rtol=0, atol=0)


class TwoLayers(nn.Sequential):
    """encoder [3 → 4] → decoder [4 → 3]: row d of the encoder feeds only dim d of its output."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(3, 4)
        self.decoder = nn.Linear(4, 3)


ROUTE = Route('encoder', (0,), {'concept': 1.0})


def _gradients_fast(model: nn.Module, x: torch.Tensor, labelled: torch.Tensor) -> dict[str, torch.Tensor]:
    chain = StackedChain([model])
    labels = {'concept': labelled.unsqueeze(0)}  # [S=1, B]
    masks = MemberRoutes([ROUTE]).masks(labels, {'encoder': 4})
    out, _ = chain.forward(x.unsqueeze(0), masks=masks)
    (out - x).square().mean().backward()
    return {'weight': chain.weights[0].grad[0], 'bias': chain.biases[0].grad[0]}


def _gradients_lightning(model: nn.Module, x: torch.Tensor, labelled: torch.Tensor) -> dict[str, torch.Tensor]:
    sheet = Dopesheet.from_string('STEP,PHASE,ACTION,lr\n0,Train,,0.01\n1,,,0.01\n')
    module = TrainingModule(model, sheet, nn.MSELoss(), [], route=ROUTE, label_check_steps=0)
    module.training_step((x, {'concept': labelled}), 0).backward()
    return {'weight': model.encoder.weight.grad, 'bias': model.encoder.bias.grad}


@pytest.mark.filterwarnings(r'ignore:You are trying to `self.log\(\)`')
@pytest.mark.parametrize('gradients', [_gradients_fast, _gradients_lightning], ids=['fast', 'lightning'])
def test_parameters_feeding_only_the_routed_dims_learn_only_from_labelled_samples(gradients):
    torch.manual_seed(0)
    x = torch.rand(8, 3)
    for labelled, silent, learning in ((torch.zeros(8), [0], [1, 2, 3]), (torch.ones(8), [1, 2, 3], [0])):
        torch.manual_seed(1)
        grads = gradients(TwoLayers(), x, labelled)
        # Unlabelled samples: nothing reaches row 0 (what feeds the routed dim); labelled ones: only row 0.
        assert torch.count_nonzero(grads['weight'][silent]) == 0
        assert torch.count_nonzero(grads['bias'][silent]) == 0
        assert (grads['weight'][learning].abs().sum(dim=1) > 0).all()
    # A mixed batch: each row learns from its own samples only, so the two halves' gradients add up.
    labelled = (torch.arange(8) % 2).float()
    torch.manual_seed(1)
    mixed = gradients(TwoLayers(), x, labelled)['weight']
    torch.manual_seed(1)
    model = TwoLayers()
    out = model(x)
    loss = (out - x).square().mean()
    (full,) = torch.autograd.grad(loss, model.encoder.weight, retain_graph=True)
    per_sample = [
        torch.autograd.grad((model(x[i : i + 1]) - x[i : i + 1]).square().sum() / 24, model.encoder.weight)[0]
        for i in range(8)
    ]
    expected = sum(
        g * torch.tensor([1.0, 0, 0, 0] if labelled[i] else [0.0, 1, 1, 1]).unsqueeze(1)
        for i, g in enumerate(per_sample)
    )
    torch.testing.assert_close(mixed, expected, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(mixed, full)


SHEET = """STEP,PHASE,ACTION,lr,reg-separate,reg-anchor,reg-planar-d,reg-anti-anchor,reg-unit
0,Train,,0.01,0.01,0.02,0.001,0.002,0.01
60,,,0.05,0,0,0,0,0
"""


def test_routed_members_train_in_an_ensemble_exactly_as_alone(data, regularizers):
    schedule = TrainingSchedule.from_dopesheet(Dopesheet.from_string(SHEET), regularizers)
    keep = torch.tensor([1.0 if r.name in ('reg-unit', 'reg-separate') else 0.0 for r in regularizers])
    members = [  # (seed, weight scale, route): prepared, routed, control, routed of another seed
        (3, torch.ones(len(regularizers)), None),
        (3, keep, RED),
        (3, keep, None),
        (4, keep, Route('bottleneck', (1, 2), {'red': 1.0}, others=False)),
    ]

    def train(chosen):
        return train_ensemble(
            init_models(make_model, [m[0] for m in chosen]),
            [m[0] for m in chosen],
            data,
            regularizers,
            schedule,
            steps=60,
            options=EngineOptions(progress=False),
            weight_scale=torch.stack([m[1] for m in chosen]),
            routes=[m[2] for m in chosen],
        ).models

    ensemble = train(members)
    for member, model in zip(members, ensemble, strict=True):
        alone = train([member])[0]
        for name, value in alone.state_dict().items():
            assert torch.equal(model.state_dict()[name], value), (member[2], name)
    # Routing changed training: the routed member and the control started alike and ended apart.
    routed, control = ensemble[1].state_dict(), ensemble[2].state_dict()
    assert (routed['encoder.0.weight'] - control['encoder.0.weight']).abs().max() > 1e-3


def test_regularizers_read_the_layer_before_routing():
    """A term on the routed layer still teaches the layers before it: it reads the output before the mask."""
    torch.manual_seed(0)
    x = torch.rand(8, 3)
    chain = StackedChain([TwoLayers()])
    masks = MemberRoutes([ROUTE]).masks({'concept': torch.zeros(1, 8)}, {'encoder': 4})  # nobody labelled
    _, captured = chain.forward(x.unsqueeze(0), capture=['encoder'], masks=masks)
    captured['encoder'][..., 0].square().sum().backward()  # a penalty on dim 0, which routing closes to them
    assert torch.count_nonzero(chain.weights[0].grad[0, 0]) == 3
