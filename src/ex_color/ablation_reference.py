"""What ablating a layer's dimensions means, computed without editing a weight; and the inputs an edit is checked on.

`surgery.ablate(model, layer, dims)` promises a model in which the layer outputs what it would if
the producer Linear's output had `dims` zeroed (with whatever lies between them applied as usual),
and nothing else sees the change. `reference_output` computes exactly that on the original model,
with hooks and two passes:

1. the producer's output goes through `Ablation(dims)`, and the layer's output is recorded;
2. the model runs unchanged, except that the layer outputs what pass 1 recorded.

For a layer that is its own producer (a Linear) this is the `Ablation` intervention on the layer.
Behind an L2Norm it differs from that intervention on purpose: the norm sees the zeroed channel,
so the other channels are renormalised, as the seed's `ablate` does.

An edit is compared with the reference on several inputs (`check_inputs`), because one sample
cannot show hooks, aliases or branches that a trace of it does not reach; and in two settings
(`SETTINGS`): eval mode without gradients, as inference runs it, and the model as it is (its own
modes, gradients on), so a read that happens only in training mode or only with gradients is seen.
Each pass of one input in one setting starts from the same random state, a different one for
each input, so that random draws agree between the edit and its reference but still vary.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ex_color.dataflow import SurgeryError, left_as_it_was, output_shapes, tensors_in
from ex_color.intervention.interventions import Ablation
from ex_color.model import get_layer

__all__ = [
    'CHECK_ATOL',
    'CHECK_RTOL',
    'SETTINGS',
    'Setting',
    'check_inputs',
    'feature_scale',
    'largest_difference',
    'model_output',
    'reference_output',
]

CHECK_RTOL = 1e-4
"""An edit agrees with the reference where `|edit − ref| ≤ CHECK_ATOL + CHECK_RTOL · s`, element by element, with
`s` the largest finite `|ref|` of that output feature over the batch (`feature_scale`): float32 rounding scales
with the size of what the network computes for a feature, not with each element (an output near 0 of a network
with large activations differs by more than 1e-5 between two exact edits), while one huge feature still cannot
hide an error in a small one."""
CHECK_ATOL = 1e-5


@dataclass(frozen=True)
class Setting:
    """How a checked pass runs the model."""

    name: str
    as_used: bool
    """False: eval mode, no gradients. True: the modules' own modes, gradients on."""


SETTINGS = (Setting('in eval mode', as_used=False), Setting('as the model is (its modes, gradients on)', as_used=True))


def _arguments(inputs: Any) -> tuple[Any, ...]:
    return inputs if isinstance(inputs, tuple) else (inputs,)


@contextlib.contextmanager
def _quiet_run(model: nn.Module, setting: Setting, seed: int) -> Iterator[nn.Module]:
    """The model in `setting`, starting from random state `seed`; modes, buffers and the caller's random state as
    they were afterwards."""
    gradients = torch.enable_grad() if setting.as_used else torch.no_grad()
    with left_as_it_was(model, eval_mode=not setting.as_used), gradients, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield model


def model_output(model: nn.Module, inputs: Any, setting: Setting = SETTINGS[0], seed: int = 0) -> Any:
    """`model(inputs)` (`model(*inputs)` for a tuple) as `_quiet_run` runs it."""
    with _quiet_run(model, setting, seed):
        return model(*_arguments(inputs))


class _Counted:
    """A forward hook that counts its calls and maps the output through `act`."""

    def __init__(self, act: Any) -> None:
        self.act, self.calls = act, 0

    def __call__(self, _module: nn.Module, _args: Any, output: Any) -> Any:
        self.calls += 1
        return self.act(output)


def _hooked_run(
    model: nn.Module, inputs: Any, hooks: list[tuple[nn.Module, _Counted]], setting: Setting, seed: int
) -> Any:
    handles = [module.register_forward_hook(hook) for module, hook in hooks]
    try:
        return model_output(model, inputs, setting, seed)
    finally:
        for handle in handles:
            handle.remove()


def reference_output(
    model: nn.Module,
    layer: str,
    producer: str,
    dims: list[int],
    inputs: Any,
    where: str,
    setting: Setting = SETTINGS[0],
    seed: int = 0,
) -> Any:
    """The output of `model` on `inputs` as `ablate(model, layer, dims)` defines it (see the module docstring),
    run in `setting` from random state `seed`.

    Raises SurgeryError when the layer or the producer does not run exactly once on these inputs
    (`where` names them in the message), since then no single edit of the weights has a meaning.
    """
    layer_module, producer_module = get_layer(model, layer), get_layer(model, producer)
    recorded: list[Tensor] = []

    def record(output: Any) -> Any:
        if isinstance(output, Tensor):
            recorded.append(output.detach().clone())
        return output

    zero = _Counted(Ablation(dims))
    watch = _Counted(record)
    _hooked_run(model, inputs, [(producer_module, zero), (layer_module, watch)], setting, seed)
    for name, hook in ((producer, zero), (layer, watch)):
        if hook.calls != 1:
            raise SurgeryError(
                f'on {where}, {name!r} runs {hook.calls} times in one forward pass (once on the sample), so an edit '
                'of its weights has no single meaning; use an Ablation intervention (ex_color.intervention.Ablation)'
            )
    if not recorded:
        raise SurgeryError(f'on {where}, layer {layer!r} does not output one tensor')
    replace = _Counted(lambda _output: recorded[0].clone())
    return _hooked_run(model, inputs, [(layer_module, replace)], setting, seed)


def feature_scale(expected: torch.Tensor) -> torch.Tensor:
    """Each element's scale for the tolerance: the largest finite `|expected|` of its feature (its index along the
    last dimension) over every other dimension; `|expected|` itself for a scalar. Broadcasts against `expected`."""
    magnitude = expected.abs().nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
    if magnitude.ndim == 0:
        return magnitude
    return magnitude.amax(dim=tuple(range(magnitude.ndim - 1)), keepdim=True)


def largest_difference(got: Any, expected: Any) -> str | None:
    """Where `got` disagrees with `expected` beyond the stated tolerance, in a few words; None where it agrees.

    Shapes and structure must match exactly; floating tensors within CHECK_ATOL + CHECK_RTOL · `feature_scale`
    (NaN equals NaN);
    other tensors exactly.
    """
    if output_shapes(got) != output_shapes(expected):
        return f'its output has shape {output_shapes(got)}, the reference {output_shapes(expected)}'
    worst, where = 0.0, ''
    several = len(list(tensors_in(expected))) > 1
    for n, (a, b) in enumerate(zip(tensors_in(got), tensors_in(expected), strict=True)):
        if not (a.is_floating_point() or a.is_complex()):
            if not torch.equal(a, b):
                return f'output tensor {n} differs from the reference (not floating point, so compared exactly)'
            continue
        a, b = a.detach().double().cpu(), b.detach().double().cpu()
        same = (a == b) | (torch.isnan(a) & torch.isnan(b))  # also equal infinities
        difference = torch.where(same, torch.zeros_like(a), (a - b).abs())
        difference = torch.where(torch.isnan(difference), torch.full_like(a, math.inf), difference)
        excess = difference - (CHECK_ATOL + CHECK_RTOL * feature_scale(b))
        if bool((excess > 0).any()):
            largest = float(difference[excess > 0].max())
            if largest > worst or not where:
                worst, where = largest, f'output tensor {n}' if several else 'the output'
    if not where:
        return None
    return f'{where} differs from the reference by up to {worst:.3g}'


def check_inputs(sample: Any, *, generated: bool) -> list[tuple[str, Any]]:
    """The inputs an edit is compared with its reference on: `(description, inputs)` pairs, the sample first.

    A generated sample (`dataflow.default_sample`, `[4, F]` uniform in [0, 1)) adds 1 and 37 such
    rows, 8 rows near 1 and 8 wide normal rows. A sample of the user's adds perturbations of it:
    noise, ×2, negated, its first row and twice its rows (floating tensors get new values; integer
    ones only new rows). Fixed generators, so a check is repeatable.
    """
    generator = torch.Generator().manual_seed(1)
    if generated:
        assert isinstance(sample, Tensor)
        width, like = sample.shape[-1], {'device': sample.device, 'dtype': sample.dtype}

        def rows(n: int, low: float = 0.0, high: float = 1.0) -> Tensor:
            return (low + (high - low) * torch.rand(n, width, generator=generator)).to(**like)

        return [
            ('the sample', sample),
            ('1 random row', rows(1)),
            ('37 random rows', rows(37)),
            ('8 rows near 1', rows(8, 0.9, 1.1)),
            ('8 rows of wide normal values', (3 * torch.randn(8, width, generator=generator)).to(**like)),
        ]
    arguments = _arguments(sample)
    tensors = [a for a in arguments if isinstance(a, Tensor) and a.dim() > 0]
    batch = tensors[0].shape[0] if tensors else None

    def each(change_value: Any, change_rows: Any = None) -> Any:
        changed = []
        for a in arguments:
            if isinstance(a, Tensor) and a.dim() > 0:
                if a.is_floating_point():
                    a = change_value(a)
                if change_rows is not None and a.shape[0] == batch:
                    a = change_rows(a)
            changed.append(a)
        return tuple(changed) if isinstance(sample, tuple) else changed[0]

    def noise(a: Tensor) -> Tensor:
        spread = float(a.std()) if a.numel() > 1 and float(a.std()) > 0 else 1.0
        return a + 0.05 * spread * torch.randn(a.shape, generator=generator).to(device=a.device, dtype=a.dtype)

    variants = [
        ('the sample', sample),
        ('the sample with noise', each(noise)),
        ('the sample × 2', each(lambda a: 2 * a)),
        ('the sample negated', each(lambda a: -a)),
    ]
    if batch is not None and batch > 1:
        variants.append(('the first row of the sample', each(lambda a: a, lambda a: a[:1])))
    if batch is not None:
        variants.append(('twice the rows of the sample', each(noise, lambda a: torch.cat([a, a.flip(0)]))))
    return variants
