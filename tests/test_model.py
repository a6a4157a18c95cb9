import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from ex_color.model import CharTransformer, CNColorMLP, L2Norm, UnknownLayerError, get_layer


def test_forward_keeps_leading_shape():
    torch.manual_seed(0)
    model = CNColorMLP(5, n_nonlinear=2)
    for shape in [(3,), (7, 3), (2, 4, 6, 3)]:
        assert model(torch.rand(shape)).shape == shape


def test_bottleneck_output_has_unit_norm():
    torch.manual_seed(0)
    model = CNColorMLP(5)
    captured = []
    model.bottleneck.register_forward_hook(lambda module, args, output: captured.append(output))
    model(torch.rand(100, 3))
    (latents,) = captured
    assert latents.shape == (100, 5)
    torch.testing.assert_close(latents.norm(dim=-1), torch.ones(100))


@given(st.lists(st.floats(-1e3, 1e3, allow_subnormal=False), min_size=1, max_size=8))
def test_l2norm_matches_naive_division(values):
    x = torch.tensor(values, dtype=torch.float64)
    norm = sum(v * v for v in values) ** 0.5  # naive route
    expected = x / norm if norm > 1e-8 else x / 1e-8
    torch.testing.assert_close(L2Norm()(x), expected)


def test_l2norm_maps_zero_to_zero():
    assert torch.equal(L2Norm()(torch.zeros(2, 4)), torch.zeros(2, 4))


def _model_with_large_output() -> CNColorMLP:
    torch.manual_seed(0)
    model = CNColorMLP(5)
    with torch.no_grad():
        model.decoder[-1].weight.zero_()
        model.decoder[-1].bias.fill_(5.0)  # every output is exactly 5 before clamping
    return model


def test_eval_mode_clamps_output_to_unit_interval():
    model = _model_with_large_output().eval()
    assert torch.equal(model(torch.rand(10, 3)), torch.ones(10, 3))


def test_train_mode_does_not_clamp():
    model = _model_with_large_output().train()
    assert torch.equal(model(torch.rand(10, 3)), torch.full((10, 3), 5.0))


@pytest.mark.parametrize('n_nonlinear', [1, 2, 3])
def test_layer_counts(n_nonlinear):
    model = CNColorMLP(5, n_nonlinear=n_nonlinear)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    gelus = [m for m in model.modules() if isinstance(m, nn.GELU)]
    # Each codec: n Linears before a GELU plus one output Linear → 2(n + 1) Linears, 2n GELUs.
    # n=1: 4 and 2; n=2: 6 and 4; n=3: 8 and 6.
    assert len(linears) == {1: 4, 2: 6, 3: 8}[n_nonlinear]
    assert len(gelus) == {1: 2, 2: 4, 3: 6}[n_nonlinear]
    assert model.encoder[0].in_features == 3
    assert model.encoder[-1].out_features == 5
    assert model.decoder[0].in_features == 5
    assert model.decoder[-1].out_features == 3


def test_parameter_count_by_hand():
    model = CNColorMLP(5, n_nonlinear=2)
    # encoder: Linear(3,16) 3·16+16 = 64; Linear(16,16) 256+16 = 272; Linear(16,5) 80+5 = 85 → 421
    # decoder: Linear(5,16) 80+16 = 96;  Linear(16,16) 272;            Linear(16,3) 48+3 = 51 → 419
    # total 421 + 419 = 840
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 840


def test_constructor_args_are_kept_and_rebuild_the_same_architecture():
    model = CNColorMLP(4, k_codec=8, n_nonlinear=3)
    assert (model.k_bottleneck, model.k_codec, model.n_nonlinear) == (4, 8, 3)
    rebuilt = CNColorMLP(model.k_bottleneck, k_codec=model.k_codec, n_nonlinear=model.n_nonlinear)
    rebuilt.load_state_dict(model.state_dict())  # raises on any shape or key mismatch


@pytest.mark.parametrize('bad', [0, -1, 2.5, True])
def test_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match='k_bottleneck'):
        CNColorMLP(bad)


def test_get_layer_by_module_path():
    model = CNColorMLP(5)
    assert get_layer(model, 'bottleneck') is model.bottleneck
    assert get_layer(model, 'encoder') is model.encoder
    assert get_layer(model, 'decoder.0') is model.decoder[0]


def test_get_layer_unknown_name_lists_valid_layers():
    model = CNColorMLP(5)
    with pytest.raises(UnknownLayerError, match=r"no layer 'botleneck'.*'bottleneck'.*'decoder\.0'") as info:
        get_layer(model, 'botleneck')
    assert isinstance(info.value, KeyError)
    assert '\n' not in str(info.value)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 8), st.integers(1, 3))
def test_bottleneck_width_follows_k(k, n_nonlinear):
    model = CNColorMLP(k, k_codec=4, n_nonlinear=n_nonlinear)
    assert model.encoder(torch.rand(2, 3)).shape == (2, k)


# CharTransformer -------------------------------------------------------------------------------


def small_transformer(**sizes) -> CharTransformer:
    torch.manual_seed(0)
    return CharTransformer(
        **{'vocab_size': 11, 'context': 8, 'layers': 2, 'width': 16, 'heads': 2, 'k_bottleneck': 4, **sizes}
    )


def test_char_transformer_logits_shape_and_unit_norm_bottleneck():
    model = small_transformer()
    tokens = torch.randint(11, (3, 8))
    captured = []
    handle = model.bottleneck.register_forward_hook(lambda m, i, out: captured.append(out))
    logits = model(tokens)
    handle.remove()
    assert logits.shape == (3, 8, 11)
    assert captured[0].shape == (3, 8, 4)
    assert torch.allclose(captured[0].norm(dim=-1), torch.ones(3, 8), atol=1e-5)


def test_char_transformer_is_causal():
    """A position's logits depend on it and the positions before it, never on later ones."""
    model = small_transformer().eval()
    tokens = torch.randint(11, (2, 8))
    changed = tokens.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % 11
    with torch.no_grad():
        before, after = model(tokens), model(changed)
    assert torch.equal(before[:, :5], after[:, :5])
    assert not torch.allclose(before[:, 5:], after[:, 5:])


def test_char_transformer_unembeds_the_bottleneck_with_one_linear():
    model = small_transformer(logit_scale=3.0).eval()
    tokens = torch.randint(11, (2, 8))
    captured = []
    handle = model.bottleneck.register_forward_hook(lambda m, i, out: captured.append(out))
    with torch.no_grad():
        logits = model(tokens)
    handle.remove()
    torch.testing.assert_close(logits, (captured[0] @ model.unembed.weight.T + model.unembed.bias) * 3.0)


@pytest.mark.parametrize('bad', [{'width': 15}, {'layers': 0}, {'heads': True}])
def test_char_transformer_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match='CharTransformer'):
        small_transformer(**bad)
