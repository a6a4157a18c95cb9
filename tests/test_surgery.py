import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from ex_color.model import CNColorMLP, UnknownLayerError
from ex_color.surgery import ablate, prune


def _model(seed: int = 0) -> CNColorMLP:
    torch.manual_seed(seed)
    model = CNColorMLP(5, n_nonlinear=2)
    with torch.no_grad():
        for p in model.parameters():  # non-zero biases everywhere, so a missed bias entry shows
            p.add_(0.1)
    return model.eval()


def _run_capturing(model: nn.Module, x: torch.Tensor, *layers: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    captured = {}
    modules = dict(model.named_modules())
    handles = [
        modules[name].register_forward_hook(lambda m, a, out, name=name: captured.__setitem__(name, out))
        for name in layers
    ]
    try:
        y = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return y, captured


def _state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_state_equal(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    current = model.state_dict()
    assert current.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(current[key], value), key


def test_ablate_bottleneck_zeroes_exactly_dim_0():
    model = _model()
    original_state = _state_copy(model)
    torch.manual_seed(1)
    x = torch.rand(200, 3)

    ablated = ablate(model, 'bottleneck', [0])

    _, before = _run_capturing(model, x, 'encoder', 'bottleneck')
    _, after = _run_capturing(ablated, x, 'encoder', 'bottleneck')
    # Row 0 of encoder.4 and its bias are 0, so the pre-norm dim 0 is exactly 0 ...
    assert torch.equal(after['encoder'][:, 0], torch.zeros(200))
    # ... and stays 0 after L2Norm; the original had no zeros there.
    assert torch.equal(after['bottleneck'][:, 0], torch.zeros(200))
    assert (before['bottleneck'][:, 0] != 0).all()
    # The other rows of encoder.4 are untouched, so dims 1–4 before the norm are identical.
    assert torch.equal(after['encoder'][:, 1:], before['encoder'][:, 1:])

    assert torch.equal(ablated.decoder[0].weight[:, 0], torch.zeros(16))
    assert torch.equal(ablated.decoder[0].weight[:, 1:], model.decoder[0].weight[:, 1:])
    assert torch.equal(ablated.decoder[0].bias, model.decoder[0].bias)  # consumer bias is per output: kept
    assert ablated.encoder[4].weight.shape == (5, 16)  # shapes unchanged

    _assert_state_equal(model, original_state)
    assert ablated is not model
    assert ablated.encoder[4].weight.data_ptr() != model.encoder[4].weight.data_ptr()


def test_ablate_encoder_targets_the_same_linears_as_bottleneck():
    model = _model()
    by_encoder = ablate(model, 'encoder', [2])
    by_bottleneck = ablate(model, 'bottleneck', [2])
    _assert_state_equal(by_encoder, by_bottleneck.state_dict())


def test_ablate_a_linear_layer_uses_itself_as_producer():
    model = _model()
    ablated = ablate(model, 'decoder.0', [3, 7])
    # decoder.0 is the producer (rows 3, 7 and bias), decoder.2 the consumer (columns 3, 7).
    assert torch.equal(ablated.decoder[0].weight[[3, 7]], torch.zeros(2, 5))
    assert torch.equal(ablated.decoder[0].bias[[3, 7]], torch.zeros(2))
    assert torch.equal(ablated.decoder[2].weight[:, [3, 7]], torch.zeros(16, 2))
    assert torch.equal(ablated.encoder[4].weight, model.encoder[4].weight)


def test_ablate_works_on_any_module_with_linears():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
    ablated = ablate(model, '1', [1])
    assert torch.equal(ablated[0].weight[1], torch.zeros(2))
    assert ablated[0].bias[1] == 0
    assert torch.equal(ablated[2].weight[:, 1], torch.zeros(1))
    # By hand: hidden unit 1 is gone, so the output is the original's minus unit 1's contribution.
    x = torch.rand(10, 2)
    hidden = torch.relu(model[0](x))
    expected = model[2](hidden) - hidden[:, 1:2] * model[2].weight[0, 1]
    torch.testing.assert_close(ablated(x), expected)


def test_prune_bottleneck_shrinks_and_matches_ablation():
    model = _model()
    original_state = _state_copy(model)
    torch.manual_seed(2)
    x = torch.rand(300, 3)

    pruned = prune(model, 'bottleneck', [0])

    assert pruned.encoder[4].out_features == 4
    assert pruned.decoder[0].in_features == 4
    assert pruned.k_bottleneck == 4
    assert model.k_bottleneck == 5
    y_pruned, captured = _run_capturing(pruned, x, 'bottleneck')
    assert captured['bottleneck'].shape == (300, 4)
    # Independent route: ablation keeps the zero channel, which adds nothing to the norm or the decoder.
    torch.testing.assert_close(y_pruned, ablate(model, 'bottleneck', [0])(x))
    # The kept weights are the original rows/columns 1–4.
    assert torch.equal(pruned.encoder[4].weight, model.encoder[4].weight[1:])
    assert torch.equal(pruned.encoder[4].bias, model.encoder[4].bias[1:])
    assert torch.equal(pruned.decoder[0].weight, model.decoder[0].weight[:, 1:])
    _assert_state_equal(model, original_state)


@settings(max_examples=25, deadline=None)
@given(st.sets(st.integers(0, 4), min_size=1, max_size=4))
def test_prune_equals_ablate_for_any_dims(dims):
    model = _model()
    torch.manual_seed(3)
    x = torch.rand(50, 3)
    pruned = prune(model, 'bottleneck', sorted(dims))
    assert pruned.k_bottleneck == 5 - len(dims)
    assert pruned.decoder[0].in_features == 5 - len(dims)
    torch.testing.assert_close(pruned(x), ablate(model, 'bottleneck', sorted(dims))(x))


def test_prune_hidden_layer_keeps_k_bottleneck():
    model = _model()
    pruned = prune(model, 'decoder.1', [0, 15])
    assert pruned.decoder[0].out_features == 14
    assert pruned.decoder[2].in_features == 14
    assert pruned.k_bottleneck == 5
    torch.manual_seed(4)
    x = torch.rand(20, 3)
    # GELU(0) = 0, so a zeroed hidden unit contributes nothing: pruning equals ablating here too.
    torch.testing.assert_close(pruned(x), ablate(model, 'decoder.1', [0, 15])(x))


@pytest.mark.parametrize('operation', [ablate, prune])
@pytest.mark.parametrize(
    ('dims', 'message'),
    [
        ([5], r'out of range .* width 5'),
        ([-1], r'out of range'),
        ([1, 1], r'repeats \[1\]'),
        ([], r'dims is empty'),
        ([0.5], r'must be integers'),
        ('0', r'sequence of integers'),
    ],
)
def test_dims_validation(operation, dims, message):
    model = _model()
    with pytest.raises(ValueError, match=message) as info:
        operation(model, 'bottleneck', dims)
    assert '\n' not in str(info.value)


def test_prune_refuses_to_remove_every_dim():
    with pytest.raises(ValueError, match='remove all 5'):
        prune(_model(), 'bottleneck', [0, 1, 2, 3, 4])


@pytest.mark.parametrize('operation', [ablate, prune])
def test_unknown_layer_lists_layers(operation):
    with pytest.raises(UnknownLayerError, match=r"'bottleneck'.*'decoder\.4'"):
        operation(_model(), 'latent', [0])


def test_layer_without_linear_before_is_an_error():
    model = nn.Sequential(nn.ReLU(), nn.Linear(3, 3))
    with pytest.raises(ValueError, match=r'no nn\.Linear at or before'):
        ablate(model, '0', [0])


def test_prune_equals_ablate_by_construction_only_where_nothing_between_reads_the_zero_channel():
    from ex_color.surgery import prune_equals_ablate

    torch.manual_seed(0)
    colour_model = CNColorMLP(5, n_nonlinear=2)
    # A softmax reads the ablated channel (exp(0) = 1 joins the sum), so there the two differ.
    softmax = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Softmax(dim=-1), torch.nn.Linear(6, 3))
    x = torch.rand(256, 3)
    cases = ((colour_model, 'bottleneck', True), (softmax, '1', False))
    for model, layer, expected in cases:
        assert prune_equals_ablate(model, layer) is expected
        with torch.no_grad():
            same = torch.allclose(prune(model, layer, [0])(x), ablate(model, layer, [0])(x), atol=1e-6)
        assert same is expected  # the independent route: run both
