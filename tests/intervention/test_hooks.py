import pytest
import torch

from ex_color.intervention import BoundedFalloff, InterventionConfig, Suppression, apply_interventions
from ex_color.model import CNColorMLP, UnknownLayerError


def _no_hooks(model: torch.nn.Module) -> bool:
    return all(not m._forward_hooks for m in model.modules())


def _model() -> CNColorMLP:
    torch.manual_seed(0)
    return CNColorMLP(5).eval()


def test_hooks_replace_output_inside_and_are_removed_after():
    model = _model()
    x = torch.rand(30, 3)
    baseline = model(x)
    zero = InterventionConfig(torch.zeros_like, ['bottleneck'])
    with apply_interventions(model, [zero]) as hooked:
        assert hooked is model
        # With the bottleneck zeroed, the decoder sees 0: output = clamp(decoder(0)) for every row.
        expected = model.decoder(torch.zeros(1, 5)).clamp(0, 1).expand(30, 3)
        torch.testing.assert_close(model(x), expected)
    assert _no_hooks(model)
    assert torch.equal(model(x), baseline)


def test_hooks_removed_when_block_raises():
    model = _model()
    with (
        pytest.raises(RuntimeError, match='boom'),
        apply_interventions(model, [InterventionConfig(torch.neg, ['encoder'])]),
    ):
        raise RuntimeError('boom')
    assert _no_hooks(model)


def test_suppression_hook_matches_manual_composition():
    model = _model()
    x = torch.rand(40, 3)
    suppress = Suppression([1.0, 0.0, 0.0, 0.0, 0.0], BoundedFalloff(0, 1, 0))
    with apply_interventions(model, [InterventionConfig(suppress, ['bottleneck'])]):
        hooked = model(x)
    manual = model.decoder(suppress(model.bottleneck(model.encoder(x)))).clamp(0, 1)
    torch.testing.assert_close(hooked, manual)


def test_interventions_on_one_layer_compose_in_order():
    model = _model()
    x = torch.rand(5, 3)
    add_one = InterventionConfig(lambda a: a + 1, ['encoder'])
    double = InterventionConfig(lambda a: a * 2, ['encoder'])
    captured = []
    with apply_interventions(model, [add_one, double]):
        handle = model.encoder.register_forward_hook(lambda m, args, out: captured.append(out))
        model(x)
        handle.remove()
    # (e + 1)·2, not e·2 + 1
    torch.testing.assert_close(captured[0], (model.encoder(x) + 1) * 2)


def test_unknown_layer_registers_nothing():
    model = _model()
    good = InterventionConfig(torch.neg, ['encoder'])
    bad = InterventionConfig(torch.neg, ['latent'])
    with pytest.raises(UnknownLayerError, match="'bottleneck'"), apply_interventions(model, [good, bad]):
        pass
    assert _no_hooks(model)


def test_config_rejects_a_bare_string_of_layers():
    with pytest.raises(TypeError, match='list of layer names'):
        InterventionConfig(torch.neg, 'bottleneck')
    with pytest.raises(TypeError, match='callable'):
        InterventionConfig(3, ['bottleneck'])
