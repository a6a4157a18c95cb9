"""Tests for ex_color.evaluation, each checked by hand or by an independent route.

Independent routes used here: `colorsys` and the DESIGN §3 similarity formula written out by
hand (for the selectivity target), `matplotlib.colors.hsv_to_rgb` (for the cubes' colours),
`np.corrcoef` (for the squared correlation), and forward passes done by hand through the
model's submodules (for interventions).
"""

import colorsys
import itertools
import math
from functools import cache
from typing import NamedTuple

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from matplotlib.colors import hsv_to_rgb as mpl_hsv_to_rgb
from torch import Tensor, nn

from ex_color.columns import evaluation_columns
from ex_color.data.target import Target
from ex_color.evaluation import (
    Evaluation,
    display_cube,
    error_cube,
    evaluate,
    evaluate_versions,
    latent_cube,
    per_colour_error,
    selectivity_grid,
    squared_correlation,
    target_profile,
)
from ex_color.inference.versions import VERSIONS_BATCH, Version
from ex_color.intervention import BoundedFalloff, InterventionConfig, Suppression
from ex_color.model import CNColorMLP
from ex_color.surgery import ablate

RED = Target('red', (0.0, 1.0, 1.0))

N_ERROR_CUBE = 240 * 48 * 48  # 552,960
NAMES = [
    'red', 'orange', 'yellow', 'lime', 'green', 'teal', 'cyan', 'azure', 'blue', 'purple', 'magenta', 'pink',
    'black', 'dark gray', 'gray', 'light gray', 'white',
]  # fmt: skip


# ----- independent references


def _similarity_to_red_by_hand(rgb: tuple[float, float, float]) -> float:
    """DESIGN §3 angular+hemi similarity to red (0, 1, 1), via colorsys."""
    h, s, v = colorsys.rgb_to_hsv(*rgb)
    angle = 360 * min(abs(h - 0.0), 1 - abs(h - 0.0))
    hue_similarity = max(0.0, (90 - angle) / 90)
    colourfulness = (s * v + 1 * 1) / 2
    return (colourfulness * hue_similarity + 1 - colourfulness) * (1 - abs(s - 1)) * (1 - abs(v - 1))


def _similarity_to_red_torch(x: Tensor) -> Tensor:
    """The same similarity, vectorised in torch (float64) with its own RGB→HSV: `[N, 3]` → `[N]`."""
    x = x.double()
    r, g, b = x.unbind(-1)
    v = x.amax(-1)
    chroma = v - x.amin(-1)
    safe_chroma = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    s = torch.where(v > 0, chroma / torch.where(v > 0, v, torch.ones_like(v)), torch.zeros_like(v))
    sextant = torch.where(
        r == v, (g - b) / safe_chroma, torch.where(g == v, 2 + (b - r) / safe_chroma, 4 + (r - g) / safe_chroma)
    )
    h = torch.where(chroma > 0, torch.remainder(sextant / 6, 1.0), torch.zeros_like(v))
    angle = 360 * torch.minimum(h, 1 - h)
    hue_similarity = ((90 - angle) / 90).clamp_min(0)
    colourfulness = (s * v + 1) / 2
    return (colourfulness * hue_similarity + 1 - colourfulness) * (1 - (s - 1).abs()) * (1 - (v - 1).abs())


@cache
def _error_cube_colours_by_matplotlib() -> np.ndarray:
    """The 552,960 error-cube colours in (h, s, v) C order, `[N, 3]` (read-only: cached)."""
    H, S, V = np.meshgrid(np.arange(240) / 240, np.linspace(0, 1, 48), np.linspace(0, 1, 48), indexing='ij')
    colours = mpl_hsv_to_rgb(np.stack([H, S, V], axis=-1)).reshape(-1, 3)
    colours.flags.writeable = False
    return colours


def _lower_median(values: np.ndarray) -> float:
    """torch.median's convention: for an even count, the lower of the two middle values."""
    return float(np.sort(values)[(len(values) - 1) // 2])


# ----- toy models


class Identity(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x


class ClampedIdentity(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Linear(1, 1)  # gives the model a parameter (device and dtype) for `infer`

    def forward(self, x: Tensor) -> Tensor:
        return x.clamp(0, 1)


class Constant(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.full_like(x, 0.5)


class RedDamage(nn.Module):
    """Subtracts `√(3k·sim³)` from the red channel, so the per-colour error is exactly `k·sim³`."""

    k = 0.1

    def forward(self, x: Tensor) -> Tensor:
        damage = torch.sqrt(3 * self.k * _similarity_to_red_torch(x) ** 3)
        return torch.stack([x[:, 0] - damage.to(x.dtype), x[:, 1], x[:, 2]], dim=-1)


class ForwardCounter:
    """Counts forward calls of a module and the rows they saw, via a pre-hook."""

    def __init__(self, module: nn.Module) -> None:
        self.calls = 0
        self.rows = 0
        self._handle = module.register_forward_pre_hook(self._hook)

    def remove(self) -> None:
        self._handle.remove()

    def _hook(self, module: nn.Module, args: tuple) -> None:
        self.calls += 1
        self.rows += args[0].shape[0]


# ----- test sets


def test_error_cube_is_240_hues_by_48_by_48_hsv():
    cube = error_cube()
    assert cube.space == 'hsv'
    assert cube.shape == (240, 48, 48)
    assert cube.rgb_grid.reshape(-1, 3).shape == (552_960, 3)
    hues = cube.coordinate('h')
    np.testing.assert_allclose(np.diff(hues), 1 / 240, atol=1e-12)
    # Cyclic: starts at 0 and one more step from the last hue lands back on 1 ≡ 0 (no duplicate at 1).
    assert hues[0] == 0
    np.testing.assert_allclose(hues[-1] + 1 / 240, 1.0, atol=1e-12)
    np.testing.assert_allclose(cube.coordinate('s'), np.linspace(0, 1, 48))
    np.testing.assert_allclose(cube.coordinate('v'), np.linspace(0, 1, 48))
    np.testing.assert_allclose(cube.rgb_grid.reshape(-1, 3), _error_cube_colours_by_matplotlib(), atol=1e-12)


def test_display_cube_is_24_hues_by_4_by_8_hsv():
    cube = display_cube()
    assert cube.space == 'hsv'
    assert cube.shape == (24, 4, 8)
    np.testing.assert_allclose(cube.coordinate('h'), np.arange(24) / 24, atol=1e-12)  # 15° steps, no 360°
    np.testing.assert_allclose(cube.coordinate('s'), np.linspace(0, 1, 4))
    np.testing.assert_allclose(cube.coordinate('v'), np.linspace(0, 1, 8))
    assert cube.permute('svh').shape == (4, 8, 24)


def test_latent_cube_is_rgb_20_cubed():
    cube = latent_cube()
    assert cube.space == 'rgb'
    assert cube.shape == (20, 20, 20)
    axis = np.linspace(0, 1, 20)
    expected = np.array(list(itertools.product(axis, axis, axis)))  # r slowest, b fastest
    np.testing.assert_allclose(cube.rgb_grid.reshape(-1, 3), expected)


def test_selectivity_grid_is_8_cubed_rgb_with_similarity_cubed_target():
    colours, target = selectivity_grid(), target_profile([RED])
    assert colours.shape == (512, 3)
    assert colours.dtype == torch.float32
    assert target.shape == (512,)
    axis = np.linspace(0, 1, 8)
    expected_colours = list(itertools.product(axis, axis, axis))
    np.testing.assert_allclose(colours.numpy(), np.array(expected_colours), atol=1e-7)
    expected_target = np.array([_similarity_to_red_by_hand(c) ** 3 for c in expected_colours])
    np.testing.assert_allclose(target, expected_target, atol=1e-12)


@pytest.mark.parametrize(
    ('ijk', 'expected'),
    [
        # pure red (1,0,0): h=0,s=1,v=1 → a=0, hs=1, r=1 → sim = 1·1·1 = 1
        ((7, 0, 0), 1.0),
        # cyan (0,1,1): h=.5 → a=180, hs=0, r=1 → sim = (0 + 1 − 1)·1·1 = 0
        ((0, 7, 7), 0.0),
        # white (1,1,1): h=0,s=0,v=1 → hs=1, r=(0·1 + 1)/2=.5 → sim = (.5 + .5)·(1 − |0 − 1|)·1 = 0
        ((7, 7, 7), 0.0),
        # black (0,0,0): s=0,v=0 → (1 − |0 − 1|) = 0 → sim = 0
        ((0, 0, 0), 0.0),
        # (1, 3/7, 0): h = (3/7)/6 = 1/14 → a = 360/14, a/90 = 2/7, hs = 5/7; r=1 → sim = 5/7, target (5/7)³
        ((7, 3, 0), (5 / 7) ** 3),
        # dark red (4/7,0,0): s=1, v=4/7, hs=1, r=(4/7 + 1)/2 = 11/14 → sim = (11/14 + 3/14)·1·(1 − 3/7) = 4/7
        ((4, 0, 0), (4 / 7) ** 3),
    ],
)
def test_selectivity_target_by_hand(ijk, expected):
    i, j, k = ijk
    target = target_profile([RED])
    assert target[i * 64 + j * 8 + k] == pytest.approx(expected, abs=1e-12)


# ----- per-colour error and squared correlation


def test_per_colour_error_by_hand():
    outputs = torch.tensor([[0.5, 0.5, 0.5], [1.0, 0.0, 0.2]])
    targets = torch.tensor([[1.0, 0.0, 0.5], [1.0, 0.3, 0.8]])
    # row 0: (.5² + .5² + 0²)/3 = .5/3;  row 1: (0 + .3² + .6²)/3 = (.09 + .36)/3 = .15
    expected = torch.tensor([0.5 / 3, 0.15])
    torch.testing.assert_close(per_colour_error(outputs, targets), expected)


@settings(max_examples=30)
@given(
    arrays(np.float64, (2, 4, 3), elements=st.floats(-2, 2)),
    arrays(np.float64, (2, 4, 3), elements=st.floats(-2, 2)),
)
def test_per_colour_error_matches_a_loop(outputs, targets):
    error = per_colour_error(torch.from_numpy(outputs), torch.from_numpy(targets))
    assert error.shape == (2, 4)
    for i, j in itertools.product(range(2), range(4)):
        expected = sum((outputs[i, j, c] - targets[i, j, c]) ** 2 for c in range(3)) / 3
        assert float(error[i, j]) == pytest.approx(expected, rel=1e-12, abs=1e-15)


@settings(max_examples=30)
@given(
    arrays(np.float64, 20, elements=st.floats(-10, 10)),
    arrays(np.float64, 20, elements=st.floats(-10, 10)),
)
def test_squared_correlation_matches_corrcoef(a, b):
    assume(np.std(a) > 1e-3 and np.std(b) > 1e-3)
    assert squared_correlation(a, b) == pytest.approx(np.corrcoef(a, b)[0, 1] ** 2, abs=1e-9)


@settings(max_examples=30)
@given(
    arrays(np.float64, 12, elements=st.floats(-10, 10)),
    st.floats(-5, 5).filter(lambda k: abs(k) > 1e-2),
    st.floats(-5, 5),
)
def test_squared_correlation_of_a_linear_relation_is_one(a, scale, offset):
    assume(np.std(a) > 1e-3)
    assert squared_correlation(a, scale * a + offset) == pytest.approx(1.0, abs=1e-9)


def test_squared_correlation_by_hand():
    # a = (1,2,3), b = (1,3,2): centred (−1,0,1), (−1,1,0); Σab = 1, Σa² = Σb² = 2 → r = 1/2, r² = 1/4
    assert squared_correlation(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])) == pytest.approx(0.25)


def test_squared_correlation_of_a_constant_is_zero():
    varying = np.array([0.0, 1.0, 3.0, 2.0])
    assert squared_correlation(np.full(4, 0.7), varying) == 0.0
    assert squared_correlation(varying, np.zeros(4)) == 0.0
    assert squared_correlation(np.ones(4), np.ones(4)) == 0.0


# ----- evaluate


def test_evaluate_perfect_models_report_zero_error():
    for model in (Identity(), ClampedIdentity()):
        result = evaluate(model, targets=[RED])
        assert isinstance(result, Evaluation)
        assert result.mse_max == 0.0
        assert result.mse_median == 0.0
        assert list(result.named_colors) == NAMES
        assert all(error == 0.0 for error in result.named_colors.values())
        assert result.selectivity_r2 == 0.0  # constant (zero) error correlates with nothing


def test_evaluate_constant_model_by_hand():
    result = evaluate(Constant(), targets=[RED])
    # every error is the mean over channels of (0.5 − x)²
    assert result.named_colors['white'] == pytest.approx(0.25)  # (.25 + .25 + .25)/3
    assert result.named_colors['red'] == pytest.approx(0.25)  # (.5² + .5² + .5²)/3
    assert result.named_colors['black'] == pytest.approx(0.25)
    assert result.named_colors['gray'] == pytest.approx(0.0)
    assert result.named_colors['dark gray'] == pytest.approx(0.0625)  # .25² = .0625 per channel
    assert result.named_colors['orange'] == pytest.approx(1 / 6)  # (1,.5,0): (.25 + 0 + .25)/3
    # The cube holds all 8 RGB corners (e.g. black v=0, white s=0 v=1, red h=0 s=v=1), each at .25,
    # and no colour can be further than .5 from .5 in any channel.
    assert result.mse_max == pytest.approx(0.25)

    cube_error = ((_error_cube_colours_by_matplotlib() - 0.5) ** 2).mean(axis=-1)
    assert cube_error.shape == (N_ERROR_CUBE,)
    # 552,960 is even: evaluate follows the seed's torch.median, the lower of the two middle values.
    assert result.mse_median == pytest.approx(_lower_median(cube_error), rel=1e-5)

    grid = np.array(list(itertools.product(np.linspace(0, 1, 8), repeat=3)))
    grid_error = ((grid - 0.5) ** 2).mean(axis=-1)
    target = np.array([_similarity_to_red_by_hand(c) ** 3 for c in grid])
    assert result.selectivity_r2 == pytest.approx(np.corrcoef(grid_error, target)[0, 1] ** 2, rel=1e-5)


def test_evaluate_median_is_the_lower_middle_value_like_torch_median():
    class BrightShift(nn.Module):  # error .25 where max(rgb) = V > .5, else 0
        def forward(self, x: Tensor) -> Tensor:
            return x - 0.5 * (x.amax(-1, keepdim=True) > 0.5)

    # V = k/47 for k = 0..47: k ≤ 23 → V ≤ .489 (error 0), k ≥ 24 → V ≥ .511 (error .25); exactly half each.
    # The two middle values are 0 and .25: the seed's torch.median reports the lower (0), not .125 or .25.
    result = evaluate(BrightShift(), targets=[RED])
    assert result.mse_median == 0.0
    assert result.mse_max == pytest.approx(0.25)


def test_evaluate_damage_proportional_to_similarity_cubed_is_fully_selective():
    result = evaluate(RedDamage(), targets=[RED])
    k = RedDamage.k
    assert result.selectivity_r2 == pytest.approx(1.0, abs=1e-6)  # error = k·sim³ exactly
    assert result.named_colors['red'] == pytest.approx(k)  # sim = 1
    # orange/pink: a=30° → hs = 60/90 = 2/3, r=1 → sim = 2/3; yellow/magenta: a=60° → sim = 1/3
    assert result.named_colors['orange'] == pytest.approx(k * (2 / 3) ** 3)
    assert result.named_colors['pink'] == pytest.approx(k * (2 / 3) ** 3)
    assert result.named_colors['yellow'] == pytest.approx(k * (1 / 3) ** 3)
    assert result.named_colors['magenta'] == pytest.approx(k * (1 / 3) ** 3)
    # lime, cyan, blue... are ≥ 90° away (hs = 0, r = 1 → sim = 0); greys have s = 0 → (1 − |Δs|) = 0
    for name in ['lime', 'green', 'teal', 'cyan', 'azure', 'blue', 'purple', 'black', 'gray', 'white']:
        assert result.named_colors[name] == pytest.approx(0.0, abs=1e-7), name
    assert result.mse_max == pytest.approx(k)  # pure red (h=0, s=v=1) is in the cube

    cube_similarity = _similarity_to_red_torch(torch.tensor(_error_cube_colours_by_matplotlib())).numpy()
    assert result.mse_median == pytest.approx(k * _lower_median(cube_similarity**3), rel=1e-4, abs=1e-9)


def test_evaluate_a_less_selective_model_scores_below_one():
    class ChannelShift(nn.Module):  # error (.2² · 1)/3 on every colour with some blue, regardless of red
        def forward(self, x: Tensor) -> Tensor:
            return x + torch.tensor([0.0, 0.0, 0.2]) * (x[:, 2:] > 0)

    assert evaluate(ChannelShift(), targets=[RED]).selectivity_r2 < 0.5


def _manual_errors(model: CNColorMLP, colours: Tensor, suppress_red: bool) -> np.ndarray:
    """Per-colour error by a hand-written forward pass (eval mode: output clamped), float64 result."""
    with torch.no_grad():
        latents = model.bottleneck(model.encoder(colours))
        if suppress_red:
            # Suppression((1,0,0,0,0), BoundedFalloff(0, 1, power=0)): g = 1 wherever a·v > 0, so the
            # positive component along dim 0 is removed: a₀ → a₀ − 1·a₀ = 0; negative a₀ passes.
            latents = latents.clone()
            latents[:, 0] = torch.where(latents[:, 0] > 0, torch.zeros_like(latents[:, 0]), latents[:, 0])
        outputs = model.decoder(latents).clamp(0, 1)
    return (outputs.double() - colours.double()).square().mean(-1).numpy()


class MlpRuns(NamedTuple):
    model: CNColorMLP
    results: dict[bool, Evaluation]
    """suppress_red → evaluate's figures."""
    counters: dict[bool, ForwardCounter]
    still_training: bool


@pytest.fixture(scope='module')
def mlp_runs() -> MlpRuns:
    """evaluate() on a seeded untrained CNColorMLP(5, n_nonlinear=2), without and with red suppression (once)."""
    with torch.random.fork_rng():
        # Seed 2: latent dim 0 is positive on ~99% of the error cube, so suppression acts on most
        # colours and passes the rest (seed 0's dim 0 is negative everywhere: suppression would do nothing).
        torch.manual_seed(2)
        model = CNColorMLP(5, n_nonlinear=2)
    suppression = InterventionConfig(Suppression([1, 0, 0, 0, 0], BoundedFalloff(0, 1, power=0)), ['bottleneck'])
    model.train()  # evaluate must still run in eval mode (clamped) and leave the mode as it was
    results, counters = {}, {}
    for suppress_red in (False, True):
        counters[suppress_red] = ForwardCounter(model)
        results[suppress_red] = evaluate(model, [suppression] if suppress_red else [], [RED])
        counters[suppress_red].remove()
    return MlpRuns(model, results, counters, model.training)


@pytest.mark.parametrize('suppress_red', [False, True])
def test_evaluate_cnmlp_matches_a_manual_forward_pass(mlp_runs, suppress_red):
    assert mlp_runs.still_training
    model, result = mlp_runs.model, mlp_runs.results[suppress_red]
    model.eval()

    cube_error = _manual_errors(
        model, torch.tensor(_error_cube_colours_by_matplotlib(), dtype=torch.float32), suppress_red
    )
    assert result.mse_max == pytest.approx(cube_error.max(), rel=1e-4)
    assert result.mse_median == pytest.approx(_lower_median(cube_error), rel=1e-4)

    named = {
        'red': (1, 0, 0), 'cyan': (0, 1, 1), 'orange': (1, 0.5, 0), 'gray': (0.5, 0.5, 0.5), 'white': (1, 1, 1),
    }  # fmt: skip
    named_error = _manual_errors(model, torch.tensor(list(named.values()), dtype=torch.float32), suppress_red)
    for name, expected in zip(named, named_error, strict=True):
        assert result.named_colors[name] == pytest.approx(expected, rel=1e-4, abs=1e-9), name

    grid = np.array(list(itertools.product(np.linspace(0, 1, 8), repeat=3)))
    grid_error = _manual_errors(model, torch.tensor(grid, dtype=torch.float32), suppress_red)
    target = np.array([_similarity_to_red_by_hand(c) ** 3 for c in grid])
    assert result.selectivity_r2 == pytest.approx(np.corrcoef(grid_error, target)[0, 1] ** 2, rel=1e-4)


def test_evaluate_intervention_changes_the_figures(mlp_runs):
    baseline, intervened = mlp_runs.results[False], mlp_runs.results[True]
    assert intervened.mse_median != pytest.approx(baseline.mse_median, rel=1e-3)
    assert intervened.selectivity_r2 != pytest.approx(baseline.selectivity_r2, rel=1e-3)


@pytest.mark.parametrize('suppress_red', [False, True])
def test_evaluate_runs_in_a_few_large_forward_passes(mlp_runs, suppress_red):
    counter = mlp_runs.counters[suppress_red]
    assert counter.rows == N_ERROR_CUBE + 17 + 512  # every colour exactly once
    # The error cube, the named colours and the grid in one pass of VERSIONS_BATCH-row chunks: not 64-row batches.
    assert counter.calls == math.ceil((N_ERROR_CUBE + 17 + 512) / VERSIONS_BATCH)


def test_versions_evaluated_together_get_each_ones_own_figures(mlp_runs):
    """Sharing the layers the versions have in common changes no figure: each is what evaluating it alone gives."""
    model = mlp_runs.model
    suppression = InterventionConfig(Suppression([1, 0, 0, 0, 0], BoundedFalloff(0, 1, power=0)), ['bottleneck'])
    ablated = ablate(model, 'bottleneck', [0])
    versions = [Version(model), Version(ablated), Version(model, [suppression])]
    targets = [[], [RED], [RED]]
    counter = ForwardCounter(model)
    together = evaluate_versions(versions, targets)
    counter.remove()
    alone = [evaluate(v.model, v.interventions, t) for v, t in zip(versions, targets, strict=True)]
    assert together == alone
    assert together[2] == mlp_runs.results[True]  # and what the module's fixture measured, with its own model
    assert counter.rows == 2 * (N_ERROR_CUBE + 17 + 512)  # the model object serves the baseline and the suppression
    assert len({e.mse_median for e in together}) == 3  # three different functions
    with pytest.raises(ValueError, match='2 versions but 1 lists of targets'):
        evaluate_versions(versions[:2], targets[:1])


def test_evaluation_row_names_every_figure_as_sweep_columns():
    """One row per variant: the same keys `evaluation_columns` promises (what [sweep] may name)."""
    result = evaluate(Constant(), targets=[RED])
    row = result.row('ablated')
    assert list(row) == evaluation_columns('ablated', result.named_colors)
    assert row['ablated_selectivity_r2'] == result.selectivity_r2
    assert row['ablated_dark_gray'] == result.named_colors['dark gray']
    assert result.targets == ['red']
