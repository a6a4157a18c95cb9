"""`infer_versions`: each version's outputs exactly as `infer` gives them, with shared leaf calls made once."""

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from ex_color.inference import infer
from ex_color.inference.versions import VERSIONS_BATCH, Version, infer_versions, interchangeable
from ex_color.intervention import Ablation, BoundedFalloff, InterventionConfig, Suppression
from ex_color.model import CNColorMLP
from ex_color.surgery import ablate, prune


class Chain(nn.Module):
    """x → a → GELU → b → c; `in_place` adds 1 to b's output in place, as custom forward code may."""

    def __init__(self, in_place: bool = False) -> None:
        super().__init__()
        self.a, self.act, self.b, self.c = nn.Linear(3, 8), nn.GELU(), nn.Linear(8, 8), nn.Linear(8, 2)
        self.in_place = in_place

    def forward(self, x: Tensor) -> Tensor:
        h = self.b(self.act(self.a(x)))
        if self.in_place:
            h.add_(1.0)
        return self.c(h)


@pytest.fixture
def computed_rows(monkeypatch) -> dict[int, int]:
    """id(Linear) → the rows it really computed (Linear.forward counted, as the remembering forward calls it)."""
    rows: dict[int, int] = {}
    compute = nn.Linear.forward

    def counted(self: nn.Linear, x: Tensor) -> Tensor:
        rows[id(self)] = rows.get(id(self), 0) + x.shape[0]
        return compute(self, x)

    monkeypatch.setattr(nn.Linear, 'forward', counted)
    return rows


def _suppress(layer: str, v: list[float]) -> InterventionConfig:
    return InterventionConfig(apply=Suppression(v, BoundedFalloff(0, 1, 0)), layer_affinities=[layer])


def _expected(versions: list[Version], x: Tensor, batch_size: int = VERSIONS_BATCH) -> list[Tensor]:
    return [infer(v.model, x, v.interventions, batch_size=batch_size).outputs for v in versions]


def _assert_exact(actual: list[Tensor], expected: list[Tensor]) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        assert a.shape == e.shape
        assert torch.equal(a, e)


@pytest.fixture
def colours() -> Tensor:
    torch.manual_seed(1)
    return torch.rand(1000, 3)


def test_ex29_variants_are_exactly_what_infer_gives(colours):
    torch.manual_seed(0)
    model = CNColorMLP(5, n_nonlinear=2)
    versions = [
        Version(model),
        Version(ablate(model, 'bottleneck', [0])),
        Version(prune(model, 'bottleneck', [0])),
        Version(model, [_suppress('bottleneck', [1, 0, 0, 0, 0])]),
        Version(model, [_suppress('encoder.2', [1.0] + [0.0] * 15)]),
    ]
    _assert_exact(infer_versions(versions, colours, batch_size=300), _expected(versions, colours, 300))


def test_shared_calls_are_made_once_per_chunk(colours, computed_rows):
    torch.manual_seed(0)
    model = Chain()
    edited = Chain()
    edited.load_state_dict(model.state_dict())
    with torch.no_grad():
        edited.c.weight[0] = 0.0  # the versions part only at the last layer
    versions = [
        Version(model),
        Version(edited),
        Version(model, [InterventionConfig(apply=torch.tanh, layer_affinities=['b'])]),
    ]
    expected = _expected(versions, colours, 400)
    computed_rows.clear()
    _assert_exact(infer_versions(versions, colours, batch_size=400), expected)
    rows = {
        name: (computed_rows.get(id(getattr(model, name)), 0), computed_rows.get(id(getattr(edited, name)), 0))
        for name in 'abc'
    }
    # a and b run once for all three versions; c runs for each (the third version's c sees tanh of b)
    assert rows == {'a': (1000, 0), 'b': (1000, 0), 'c': (2000, 1000)}


def test_an_in_place_layer_costs_a_recomputation_not_a_rerun(colours, computed_rows):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(inplace=True), nn.Linear(8, 2))
    versions = [Version(model), Version(model, [InterventionConfig(apply=torch.tanh, layer_affinities=['2'])])]
    expected = _expected(versions, colours)
    computed_rows.clear()
    _assert_exact(infer_versions(versions, colours), expected)
    # the in-place ReLU changed the first Linear's remembered output, so it is computed again (not reused stale)
    assert computed_rows == {id(model[0]): 2000, id(model[2]): 2000}


def test_a_tensor_changed_in_place_is_not_reused(colours):
    torch.manual_seed(0)
    model = Chain(in_place=True)
    edited = Chain(in_place=True)
    edited.load_state_dict(model.state_dict())
    with torch.no_grad():
        edited.c.bias += 1.0
    versions = [Version(model), Version(edited)]
    expected = _expected(versions, colours)
    _assert_exact(infer_versions(versions, colours), expected)


def test_an_intervention_that_edits_in_place_does_not_leak_into_other_versions(colours):
    torch.manual_seed(0)
    model = CNColorMLP(5, n_nonlinear=2)

    def zero_first_in_place(h: Tensor) -> Tensor:
        h[:, 0] = 0.0
        return h

    versions = [
        Version(model, [InterventionConfig(apply=zero_first_in_place, layer_affinities=['encoder.0'])]),
        Version(model),
        Version(model, [InterventionConfig(apply=zero_first_in_place, layer_affinities=['bottleneck'])]),
    ]
    _assert_exact(infer_versions(versions, colours), _expected(versions, colours))


def test_a_model_that_changes_its_input_is_refused(colours):
    class Scales(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(3, 3)

        def forward(self, x: Tensor) -> Tensor:
            return self.linear(x.mul_(2.0))

    model = Scales()
    with pytest.raises(ValueError, match='changed its input in place'):
        infer_versions([Version(model), Version(model)], colours.clone())


def test_models_are_left_as_they_were(colours):
    torch.manual_seed(0)
    model = CNColorMLP(5, n_nonlinear=2).train()
    edited = ablate(model, 'bottleneck', [1])
    infer_versions([Version(model), Version(edited, [_suppress('bottleneck', [0, 1, 0, 0, 0])])], colours)
    for m in (model, edited):
        assert all(module.training for module in m.modules())
        assert not any('forward' in vars(module) for module in m.modules())
        assert not any(module._forward_hooks for module in m.modules())


def test_leaves_are_interchangeable_only_with_the_same_function():
    torch.manual_seed(0)
    a = nn.Linear(4, 3)
    b = nn.Linear(4, 3)
    assert not interchangeable(a, b)
    b.load_state_dict(a.state_dict())
    assert interchangeable(a, b)
    with torch.no_grad():
        b.bias[2] += 1e-7
    assert not interchangeable(a, b)
    assert interchangeable(nn.GELU(), nn.GELU())
    assert not interchangeable(nn.GELU(), nn.GELU(approximate='tanh'))
    assert not interchangeable(nn.GELU(), nn.SiLU())
    assert not interchangeable(a, copy.deepcopy(a).double())


def test_versions_on_different_dtypes_are_refused(colours):
    model = CNColorMLP(5)
    with pytest.raises(ValueError, match='one device in one dtype'):
        infer_versions([Version(model), Version(CNColorMLP(5).double())], colours)


def test_no_versions_and_no_rows():
    assert infer_versions([], torch.rand(4, 3)) == []
    model = CNColorMLP(5)
    (empty,) = infer_versions([Version(model)], torch.rand(0, 3))
    assert empty.shape == (0, 3)


@settings(max_examples=25, deadline=None)
@given(
    k=st.integers(2, 6),
    hidden=st.integers(1, 12),
    depth=st.integers(1, 3),
    dims=st.lists(st.integers(0, 5), min_size=1, max_size=3, unique=True),
    rows=st.integers(1, 700),
    batch=st.integers(1, 512),
    seed=st.integers(0, 2**16),
)
def test_any_edits_match_infer_exactly(k, hidden, depth, dims, rows, batch, seed):
    torch.manual_seed(seed)
    model = CNColorMLP(k, k_codec=hidden, n_nonlinear=depth)
    dims = ([d for d in dims if d < k] or [0])[: k - 1]  # prune keeps at least one dim
    direction = torch.randn(k).tolist()
    versions = [
        Version(model),
        Version(ablate(model, 'bottleneck', dims)),
        Version(model, [_suppress('bottleneck', direction)]),
        Version(model, [InterventionConfig(apply=Ablation(dims), layer_affinities=['bottleneck'])]),
        Version(prune(model, 'bottleneck', dims)),
    ]
    x = torch.rand(rows, 3)
    _assert_exact(infer_versions(versions, x, batch_size=batch), _expected(versions, x, batch))


def test_versions_that_share_a_submodule_keep_their_own_interventions(colours):
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(3, 6), nn.GELU())
    first = nn.Sequential(encoder, nn.Linear(6, 3))
    second = nn.Sequential(encoder, nn.Linear(6, 3))  # the same encoder object, another head
    zero = InterventionConfig(apply=torch.zeros_like, layer_affinities=['0'])
    versions = [Version(first), Version(second, [zero]), Version(first, [zero])]
    _assert_exact(infer_versions(versions, colours), _expected(versions, colours))


def test_custom_leaves_always_run(colours):
    class Scale(nn.Module):
        def __init__(self, scale: float) -> None:
            super().__init__()
            self._scale = scale  # private: not a setting a comparison of public attributes would see

        def forward(self, x: Tensor) -> Tensor:
            return x * self._scale

    torch.manual_seed(0)
    linear = nn.Linear(3, 3)
    versions = [Version(nn.Sequential(linear, Scale(1.0))), Version(nn.Sequential(linear, Scale(0.5)))]
    _assert_exact(infer_versions(versions, colours), _expected(versions, colours))
    assert not interchangeable(Scale(1.0), Scale(1.0))  # not a REUSABLE type


def test_reused_leaves_have_bitwise_equal_weights(colours):
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    with torch.no_grad():
        a.weight.fill_(0.0)
        b.weight.fill_(-0.0)
        a.bias.fill_(1.0)
        b.bias.fill_(1.0)
    assert torch.equal(a.weight, b.weight) and not interchangeable(a, b)
    versions = [Version(nn.Sequential(a)), Version(nn.Sequential(b))]
    _assert_exact(infer_versions(versions, colours), _expected(versions, colours))


def test_in_place_and_lazy_modules_are_not_reused():
    assert not interchangeable(nn.ReLU(inplace=True), nn.ReLU(inplace=True))
    assert not interchangeable(nn.LazyLinear(3), nn.LazyLinear(3))


def test_a_model_in_place_of_a_version_is_refused(colours):
    model = CNColorMLP(5)
    with pytest.raises(TypeError, match=r'version 1 is a CNColorMLP; expected Version\(model, interventions\)'):
        infer_versions([Version(model), model], colours)


def test_inference_mode_input_and_caller(colours, computed_rows):
    torch.manual_seed(0)
    model = Chain()
    versions = [Version(model), Version(model, [InterventionConfig(apply=torch.tanh, layer_affinities=['b'])])]
    expected = _expected(versions, colours)
    with torch.inference_mode():
        frozen = colours.clone()
        computed_rows.clear()
        actual = infer_versions(versions, frozen)
    _assert_exact(actual, expected)
    assert computed_rows[id(model.a)] == 1000  # reused all the same


def test_an_output_changed_by_a_later_version_is_computed_again(colours, computed_rows):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2))

    def double_in_place(h: Tensor) -> Tensor:
        return h.mul_(2.0)

    # The second version gets the first one's remembered output object, and its hook doubles it in place.
    versions = [Version(model), Version(model, [InterventionConfig(apply=double_in_place, layer_affinities=['0'])])]
    expected = _expected(versions, colours)
    computed_rows.clear()
    _assert_exact(infer_versions(versions, colours), expected)
    assert computed_rows == {id(model[0]): 3000}  # once with reuse, then both versions again without it
