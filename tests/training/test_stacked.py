"""StackedChain: an ensemble forward pass equals each member's own forward pass."""

from __future__ import annotations

import pytest
import torch

from ex_color.training.engine import init_models
from ex_color.training.stacked import StackedChain

from .conftest import make_model


def test_stacked_forward_and_captures_equal_each_model():
    models = init_models(make_model, [0, 1, 2])
    chain = StackedChain(models)
    x = torch.rand(3, 10, 3, generator=torch.Generator().manual_seed(0))
    y, captured = chain.forward(x, capture=['encoder', 'bottleneck', 'decoder.0'])
    for s, model in enumerate(models):
        model.train()  # no output clamp, as in training
        encoded = model.encoder(x[s])
        torch.testing.assert_close(captured['encoder'][s], encoded, atol=1e-6, rtol=0)
        torch.testing.assert_close(captured['bottleneck'][s], model.bottleneck(encoded), atol=1e-6, rtol=0)
        torch.testing.assert_close(
            captured['decoder.0'][s], model.decoder[0](model.bottleneck(encoded)), atol=1e-6, rtol=0
        )
        torch.testing.assert_close(y[s], model(x[s]), atol=1e-6, rtol=0)


def test_to_models_round_trips_the_weights():
    models = init_models(make_model, [4, 5])
    rebuilt = StackedChain(models).to_models()
    for original, copy in zip(models, rebuilt, strict=True):
        for name, value in original.state_dict().items():
            assert torch.equal(copy.state_dict()[name], value), name
        assert copy is not original


def test_gradients_flow_to_each_member_only():
    chain = StackedChain(init_models(make_model, [0, 1]))
    x = torch.rand(2, 8, 3)
    y, _ = chain.forward(x)
    y[1].sum().backward()  # only member 1's output
    for p in chain.parameters():
        assert torch.count_nonzero(p.grad[0]) == 0
        assert torch.count_nonzero(p.grad[1]) > 0


def test_unknown_capture_layer_is_an_error():
    chain = StackedChain(init_models(make_model, [0]))
    with pytest.raises(KeyError, match='bottlenek'):
        chain.forward(torch.rand(1, 4, 3), capture=['bottlenek'])
