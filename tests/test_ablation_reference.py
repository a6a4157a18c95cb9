import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ex_color.ablation_reference import (
    CHECK_ATOL,
    check_inputs,
    largest_difference,
    model_output,
    reference_output,
)
from ex_color.dataflow import SurgeryError, trace_layer
from ex_color.model import CNColorMLP
from ex_color.surgery import ablate


def test_the_reference_of_a_linear_layer_zeroes_its_output_for_its_readers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    x = torch.rand(5, 3)
    h = model[0](x).detach()
    h[:, [1, 3]] = 0
    expected = model[2](torch.relu(h))
    torch.testing.assert_close(reference_output(model, '0', '0', [1, 3], x, 'x'), expected)


def test_behind_an_l2norm_the_reference_renormalises_as_the_seeds_ablate_does():
    torch.manual_seed(0)
    model = CNColorMLP(5).eval()
    x = torch.rand(7, 3)
    with torch.no_grad():
        z = model.encoder(x)
        z[:, 0] = 0
        expected = model.decoder(F.normalize(z, dim=-1)).clamp(0, 1)
    got = reference_output(model, 'bottleneck', 'encoder.2', [0], x, 'x')
    assert trace_layer(model, 'bottleneck').producer == 'encoder.2'
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(ablate(model, 'bottleneck', [0])(x).detach(), expected, rtol=1e-5, atol=1e-6)


def test_a_layer_that_runs_twice_on_some_input_has_no_reference():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc, self.dec = nn.Linear(3, 3), nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.enc(x)
            return self.dec(self.enc(h)) if x.shape[0] > 4 else self.dec(h)

    model = Twice().eval()
    reference_output(model, 'enc', 'enc', [0], torch.rand(4, 3), 'four rows')
    with pytest.raises(SurgeryError, match=r"on five rows, 'enc' runs 2 times in one forward pass"):
        reference_output(model, 'enc', 'enc', [0], torch.rand(5, 3), 'five rows')


def test_random_draws_in_eval_mode_are_the_same_in_every_checked_pass():
    class Noisy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc, self.dec = nn.Linear(3, 4), nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.dec(self.enc(x)) + torch.rand(x.shape[0], 2)

    model = Noisy().eval()
    x = torch.rand(4, 3)
    assert torch.equal(model_output(model, x), model_output(model, x))
    ablated = ablate(model, 'enc', [0])  # accepted: the noise is the same in the edit and the reference
    assert torch.equal(ablated.enc.weight[0], torch.zeros(3))


def test_largest_difference_names_the_worst_excess_and_accepts_what_is_within_tolerance():
    expected = torch.tensor([[1.0, -2.0], [100.0, float('nan')]])
    assert largest_difference(expected.clone(), expected) is None
    within = expected + CHECK_ATOL * 0.5
    assert largest_difference(within, expected) is None  # NaN equals NaN; 1e-4 × each feature's largest covers it
    # Feature 0 (1 and 100) may differ by 1e-5 + 1e-4 × 100 everywhere, its 1.0 included; feature 1 by 1e-5 + 2e-4.
    assert largest_difference(expected + torch.tensor([0.009, 0.0]), expected) is None
    assert largest_difference(expected + torch.tensor([0.0, 0.009]), expected) is not None
    assert largest_difference(expected + torch.tensor([0.011, 0.0]), expected) is not None
    off = expected.clone()
    off[0, 1] = -1.5
    off[1, 0] = 100.3
    assert largest_difference(off, expected) == 'the output differs from the reference by up to 0.5'
    nan = expected.clone()
    nan[0, 0] = math.nan
    assert largest_difference(nan, expected) == 'the output differs from the reference by up to inf'
    two = (expected, torch.tensor([1, 2]))
    assert largest_difference((expected, torch.tensor([1, 3])), two).startswith('output tensor 1 differs')
    assert 'shape' in largest_difference(expected[:1], expected)


def test_generated_inputs_vary_rows_and_values():
    sample = torch.rand(4, 3, dtype=torch.float64)
    variants = dict(check_inputs(sample, generated=True))
    assert variants['the sample'] is sample
    assert {tuple(v.shape) for v in variants.values()} == {(4, 3), (1, 3), (37, 3), (8, 3)}
    assert all(v.dtype == torch.float64 for v in variants.values())
    assert float(variants['8 rows near 1'].mean()) > 0.9
    assert float(variants['8 rows of wide normal values'].min()) < 0
    assert dict(check_inputs(sample, generated=True)).keys() == variants.keys()
    again = dict(check_inputs(sample, generated=True))
    assert all(torch.equal(a, b) for a, b in zip(variants.values(), again.values(), strict=True))


def test_a_users_sample_is_perturbed_argument_by_argument():
    x, tokens, mask = torch.rand(3, 5), torch.tensor([[1, 2], [3, 4], [5, 6]]), torch.ones(2)
    variants = dict(check_inputs((x, tokens, 0.5, mask), generated=False))
    assert list(variants) == [
        'the sample',
        'the sample with noise',
        'the sample × 2',
        'the sample negated',
        'the first row of the sample',
        'twice the rows of the sample',
    ]
    noisy = variants['the sample with noise']
    assert not torch.equal(noisy[0], x) and torch.allclose(noisy[0], x, atol=0.5)
    assert torch.equal(noisy[1], tokens) and noisy[2] == 0.5  # integers and scalars keep their values
    torch.testing.assert_close(variants['the sample × 2'][0], 2 * x)
    first = variants['the first row of the sample']
    assert first[0].shape == (1, 5) and first[1].shape == (1, 2) and torch.equal(first[3], mask)  # mask: not a batch
    twice = variants['twice the rows of the sample']
    assert twice[0].shape == (6, 5) and torch.equal(twice[1], torch.cat([tokens, tokens.flip(0)]))
    single = dict(check_inputs(torch.rand(1, 5), generated=False))
    assert 'the first row of the sample' not in single and single['twice the rows of the sample'].shape == (2, 5)
