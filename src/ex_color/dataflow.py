"""Which modules write and read a layer's output, found by running the model once on a sample.

Surgery edits weights, so it needs the nn.Linear whose output rows *produce* a layer's
dimensions and the nn.Linear whose input columns *consume* them. Registration order
(`named_modules()`) says nothing about the forward pass, so `trace_layer` runs the model on a
sample with hooks on every leaf module and follows tensors by identity: the producer is the
module whose output object is the layer's output (walking back through layers that keep a
zero channel at zero), a reader is any later module that takes one of those objects as input.

Anything the hooks cannot see, such as arithmetic written inside a `forward`, breaks the chain
of identical objects; the trace then reports that the tensor came from (or went to) code
outside any module, and surgery refuses instead of guessing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ex_color.model import L2Norm, get_layer

__all__ = [
    'ZERO_PRESERVING',
    'Call',
    'LayerTrace',
    'SurgeryError',
    'default_sample',
    'output_shapes',
    'run_traced',
    'shared_weights',
    'trace_layer',
]

ZERO_PRESERVING: tuple[type[nn.Module], ...] = (
    L2Norm,
    nn.Identity,
    nn.ReLU,
    nn.LeakyReLU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Dropout,
)
"""Parameter-free layers that map a zero channel to zero and ignore it otherwise (`L2Norm` mixes channels, but a
zero channel adds nothing to the norm), so a dimension zeroed before them stays zero and can be dropped."""


class SurgeryError(ValueError):
    """An edit that cannot be done exactly on this model; the one-line message says why."""


@dataclass(frozen=True)
class Call:
    """One run of a leaf module (or of the traced layer) during the traced forward pass."""

    name: str
    module: nn.Module
    inputs: tuple[Any, ...]
    output: Any


@dataclass(frozen=True)
class LayerTrace:
    """What one forward pass shows about a layer's output: who writes it and who reads it."""

    layer: str
    output: Tensor
    """The layer's output on the sample."""
    producer: str | None
    """The nn.Linear whose output rows are the layer's dimensions, or None when `problem` says why not."""
    problem: str | None
    """Why the layer's dimensions cannot be cut at a Linear's rows, or None."""
    between: list[str]
    """Zero-preserving layers from the producer (exclusive) to the layer's output (inclusive)."""
    readers: list[str]
    """Modules that take the layer's output (or a zero-preserving function of it) as input."""
    after: list[str]
    """Zero-preserving layers between the layer's output and its readers."""
    reaches_output: bool
    """Whether the layer's output (or a zero-preserving function of it) is part of the model's output."""
    read_elsewhere: bool
    """Whether no module and no model output reads it: code inside some `forward` must use it."""
    model_output: Any
    """The model's output on the sample, for comparison after an edit."""


def default_sample(model: nn.Module, rows: int = 4) -> Tensor:
    """A small input for a model whose first registered parameterised module is an nn.Linear: `[rows, in_features]`
    uniform in [0, 1), from a fixed generator, on the model's device and in its dtype.

    Raises SurgeryError when the model does not start that way: pass a sample of real inputs instead.
    """
    first = next((m for m in model.modules() if next(m.parameters(recurse=False), None) is not None), None)
    if not isinstance(first, nn.Linear):
        raise SurgeryError(
            f'cannot guess an input for {type(model).__name__} (its first module with weights is not an nn.Linear); '
            'pass sample= (a small batch of real inputs)'
        )
    generator = torch.Generator().manual_seed(0)
    sample = torch.rand(rows, first.in_features, generator=generator)
    return sample.to(device=first.weight.device, dtype=first.weight.dtype)


def output_shapes(output: Any) -> Any:
    """The shapes of a model's output, keeping its structure: a Tensor's shape, or a list/dict of them."""
    if isinstance(output, Tensor):
        return tuple(output.shape)
    if isinstance(output, Mapping):
        return {key: output_shapes(value) for key, value in output.items()}
    if isinstance(output, Sequence) and not isinstance(output, str):
        return [output_shapes(value) for value in output]
    return type(output).__name__


def _tensors(value: Any) -> Iterator[Tensor]:
    """Every tensor inside a (nested) output."""
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        for item in value:
            yield from _tensors(item)


def run_traced(model: nn.Module, sample: Any, layer: str) -> tuple[list[Call], Any]:
    """Run `model(sample)` in eval mode without gradients, recording every leaf module's call and the layer's.

    Calls are in the order they finish (a container after its children). Every tensor stays referenced
    until the caller drops the list, so object identity is a faithful record of the data flow.
    """
    target = get_layer(model, layer)
    watched = {name: m for name, m in model.named_modules() if name and (m is target or not any(m.children()))}
    calls: list[Call] = []

    def hook(name: str) -> Any:
        def record(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            calls.append(Call(name, module, tuple(inputs), output))

        return record

    modes = {m: m.training for m in model.modules()}
    handles = [m.register_forward_hook(hook(name)) for name, m in watched.items()]
    try:
        model.eval()
        with torch.no_grad():
            output = model(sample)
    except Exception as error:
        raise SurgeryError(
            f'could not run {type(model).__name__} on the sample to trace layer {layer!r}: '
            f'{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ""}'.rstrip(': ')
            + '; pass sample= (a small batch of real inputs)'
        ) from error
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
    return calls, output


def _describe(call: Call) -> str:
    return f'{call.name!r} ({type(call.module).__name__})'


def shared_weights(model: nn.Module, name: str) -> str | None:
    """Why editing module `name`'s weights in place would change some other part of the model, or None."""
    module = get_layer(model, name)
    aliases = [n for n, m in model.named_modules(remove_duplicate=False) if m is module]
    if len(aliases) > 1:
        return f'module {name!r} is registered under several names ({", ".join(map(repr, aliases))})'
    own = {id(p) for p in module.parameters()}
    for other, p in model.named_parameters(remove_duplicate=False):
        if id(p) in own and not other.startswith(name + '.'):
            return f'the weights of {name!r} are shared with {other!r}'
    return None


def trace_layer(model: nn.Module, layer: str, sample: Any = None) -> LayerTrace:
    """Trace one forward pass of `model` on `sample` (default: `default_sample(model)`) around layer `layer`.

    Raises SurgeryError when the layer does not run exactly once or does not output one tensor; other
    obstacles to surgery are reported in the trace (`problem`, `readers`, ...), for the caller to judge.
    """
    get_layer(model, layer)  # an unknown name lists the valid ones
    if sample is None:
        sample = default_sample(model)
    calls, model_output = run_traced(model, sample, layer)
    runs = [i for i, c in enumerate(calls) if c.name == layer]
    if not runs:
        raise SurgeryError(f'layer {layer!r} did not run when the model was called on the sample')
    if len(runs) > 1:
        raise SurgeryError(
            f'layer {layer!r} runs {len(runs)} times in one forward pass; surgery on its weights would edit every use'
        )
    index = runs[0]
    output = calls[index].output
    if not isinstance(output, Tensor):
        raise SurgeryError(
            f'layer {layer!r} outputs a {type(output).__name__}, not one tensor; name the module that computes '
            'the part you mean (or use an Ablation intervention)'
        )
    leaves = [c for c in calls if not any(c.module.children())]

    producer, problem, between = _find_producer(calls, index, output, layer, sample)
    if producer is not None:
        problem = _side_reader(calls, leaves, producer, between, output, model_output)
        producer = None if problem else producer
    readers, after, reaches_output = _find_readers(leaves, calls, index, output, model_output)
    read_elsewhere = not readers and not reaches_output
    return LayerTrace(
        layer, output, producer, problem, between, readers, after, reaches_output, read_elsewhere, model_output
    )


def _find_producer(
    calls: list[Call], index: int, output: Tensor, layer: str, sample: Any
) -> tuple[str | None, str | None, list[str]]:
    """Walk back from the layer's output through zero-preserving layers to the nn.Linear that computes it."""
    between: list[str] = []
    tensor, position = output, index + 1
    while True:
        writer = next(
            (
                i
                for i in range(position - 1, -1, -1)
                if calls[i].output is tensor and not any(calls[i].module.children())
            ),
            None,
        )
        if writer is None:
            return None, _no_writer(layer, between, any(tensor is t for t in _tensors(sample))), between
        call = calls[writer]
        module = call.module
        if isinstance(module, nn.Linear):
            return call.name, None, between
        if isinstance(module, nn.modules.conv._ConvNd):
            return None, f'{_describe(call)} produces it: Conv layers are not supported by weight surgery', between
        if not isinstance(module, ZERO_PRESERVING):
            return (
                None,
                (
                    f'{_describe(call)} computes it and does not keep a zeroed channel at zero '
                    '(normalisation or mixing after the Linear)'
                ),
                between,
            )
        if not call.inputs or not isinstance(call.inputs[0], Tensor):
            return None, f'{_describe(call)} takes no tensor input to follow back', between
        between.insert(0, call.name)
        tensor, position = call.inputs[0], writer


def _no_writer(layer: str, between: list[str], is_input: bool) -> str:
    where = f'the input of {between[0]!r}' if between else f'the output of {layer!r}'
    if is_input:
        return f'{where} is the model input itself: no nn.Linear comes before it'
    return f'{where} is computed by code inside a forward method, not by an nn.Linear the trace can see'


def _find_readers(
    leaves: list[Call], calls: list[Call], index: int, output: Tensor, model_output: Any
) -> tuple[list[str], list[str], bool]:
    """Modules that read the layer's output after it ran, following zero-preserving layers forward."""
    done = {id(c) for c in calls[: index + 1]}
    chain = [output]
    readers: list[str] = []
    after: list[str] = []
    for call in leaves:
        if id(call) in done:
            continue
        if not any(x is t for x in call.inputs for t in chain):
            continue
        if isinstance(call.module, ZERO_PRESERVING) and len(call.inputs) == 1 and isinstance(call.output, Tensor):
            after.append(call.name)
            chain.append(call.output)
        else:
            readers.append(call.name)
    reaches_output = any(t is c for t in _tensors(model_output) for c in chain)
    return readers, after, reaches_output


def _side_reader(
    calls: list[Call], leaves: list[Call], producer: str, between: list[str], output: Tensor, model_output: Any
) -> str | None:
    """Why zeroing the producer's rows would change more than the layer's output, or None.

    The producer's output and each layer between it and the traced layer must feed only the next
    link of that chain: another reader would see the zeroed channel too.
    """
    links = {producer, *between}
    chain_calls = [c for c in calls if c.name in links and not any(c.module.children())]
    inner = [c.output for c in chain_calls if c.output is not output]
    first = min(i for i, c in enumerate(leaves) if c.name in links)
    for call in leaves[first:]:
        if call.name in links:
            continue
        if any(x is t for x in call.inputs for t in inner):
            return f'the output of {producer!r} also feeds {call.name!r}, which zeroing its rows would change too'
    if any(t is c for t in _tensors(model_output) for c in inner):
        return f'the output of {producer!r} is also part of the model output, which zeroing its rows would change'
    return None
