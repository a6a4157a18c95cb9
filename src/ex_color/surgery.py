"""Surgery on a layer's output dimensions: zero them (`ablate`) or remove them (`prune`).

A layer's output dimension d lives in two weight tensors: output row d of the nn.Linear that
*produces* it and input column d of the nn.Linear that *consumes* it. Both operations find
those Linears from the model's real data flow (`dataflow.trace_layer`: one forward pass on a
sample, followed by tensor identity), or take them by name (`producer=`, `consumer=`):

- producer: the Linear whose output is the layer's output, possibly through layers that keep a
  zero channel at zero (`dataflow.ZERO_PRESERVING`: L2Norm, activations such as GELU; their exact
  types, without hooks). For CNColorMLP's `'bottleneck'` that is the encoder's last Linear; a Linear layer is
  its own producer.
- consumer: the one Linear that reads the layer's output (again possibly through such layers),
  e.g. `'decoder.0'`. `ablate` needs none; `prune` needs exactly one.

What cannot be done exactly is refused with a `SurgeryError` (a ValueError) that says why:
normalisation or mixing between the Linear and the layer, Conv layers, a layer that outputs a
tuple, weights shared with another module, a producer whose output is read elsewhere too, and
(for `prune`) a layer that is part of the model's output or is read by anything but one Linear.
Every edit is then checked against its definition (`ablation_reference`: the model in which only
the layer sees the dims zeroed where the producer writes them) on the sample and on varied inputs,
which catches what the trace cannot see (hooks, subclasses, hidden reads, branches those inputs
take); and on the sample the layer's dims must be exactly zero (ablate) or gone (prune). An
intervention (`ex_color.intervention.Ablation`) zeroes dims of any tensor layer without touching
weights, for models where surgery cannot be exact.

Both return a modified deep copy; the original model is never changed.
"""

from __future__ import annotations

import copy
import itertools
import logging
from collections.abc import Iterable
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from ex_color.ablation_reference import SETTINGS, check_inputs, largest_difference, model_output, reference_output
from ex_color.dataflow import (
    LayerTrace,
    SurgeryError,
    default_sample,
    output_shapes,
    parameter_use,
    run_traced,
    shared_weights,
    trace_layer,
)
from ex_color.indices import check_indices
from ex_color.model import get_layer

__all__ = ['SurgeryError', 'ablate', 'prune', 'prune_equals_ablate']

log = logging.getLogger(__name__)

M = TypeVar('M', bound=nn.Module)

INTERVENTION_HINT = 'use an Ablation intervention (ex_color.intervention.Ablation) instead'


def _linear(model: nn.Module, name: str, role: str, operation: str) -> nn.Linear:
    module = get_layer(model, name)
    if not isinstance(module, nn.Linear):
        raise SurgeryError(f'{operation}: {role} {name!r} is a {type(module).__name__}; expected an nn.Linear')
    return module


def _producer(model: nn.Module, trace: LayerTrace, named: str | None, width: int, operation: str) -> str:
    """The producer's name: the one given, else the traced one; checked for width, side effects and shared weights."""
    if named is None and trace.producer is None:
        raise SurgeryError(
            f'{operation}: cannot cut layer {trace.layer!r} at a Linear: {trace.problem}; {INTERVENTION_HINT}'
        )
    name = named if named is not None else trace.producer
    assert name is not None
    linear = _linear(model, name, 'producer', operation)
    if linear.out_features != width:
        raise SurgeryError(
            f'{operation}: producer {name!r} has {linear.out_features} outputs; layer {trace.layer!r} has {width} dims'
        )
    if named is not None:
        side = trace.side_effect(name)
        if side is not None:
            raise SurgeryError(
                f'{operation}: cannot cut layer {trace.layer!r} at {name!r}: {side}; {INTERVENTION_HINT}'
            )
    _refuse_shared(model, name, operation)
    elsewhere = parameter_use(model, name, trace.graph.calls)
    if elsewhere is not None:
        raise SurgeryError(
            f'{operation}: {elsewhere}, so editing them would change more than the layer; {INTERVENTION_HINT}'
        )
    return name


def _refuse_shared(model: nn.Module, name: str, operation: str) -> None:
    why = shared_weights(model, name)
    if why is not None:
        raise SurgeryError(f'{operation}: {why}, so editing it would change more than the layer; {INTERVENTION_HINT}')


def _why_not_consumer(model: nn.Module, trace: LayerTrace, name: str, width: int) -> str | None:
    """Why module `name` cannot have its input columns cut for this layer, or None."""
    if name not in trace.readers:
        return f'{name!r} does not read layer {trace.layer!r}'
    if trace.runs(name) != 1:
        return f'{name!r} runs {trace.runs(name)} times in one forward pass'
    module = get_layer(model, name)
    if not isinstance(module, nn.Linear):
        return f'its output is read by {name!r} ({type(module).__name__}), which prune cannot narrow'
    if module.in_features != width:
        return f'{name!r} has {module.in_features} inputs; the layer has {width} dims'
    return shared_weights(model, name) or parameter_use(model, name, trace.graph.calls)


def _traced_consumer(model: nn.Module, trace: LayerTrace, width: int) -> str | None:
    """The one Linear reading the layer's output, when it is the only reader and runs once."""
    if len(trace.readers) != 1 or trace.reaches_output:
        return None
    return trace.readers[0] if _why_not_consumer(model, trace, trace.readers[0], width) is None else None


def _why_no_consumer(model: nn.Module, trace: LayerTrace, width: int) -> str:
    if trace.reaches_output:
        return 'its output is part of the model output, whose shape must not change (use ablate)'
    if not trace.readers:
        return 'nothing the trace can see reads its output'
    if len(trace.readers) > 1:
        return f'its output is read by several modules or operations ({", ".join(trace.readers)})'
    if trace.runs(trace.readers[0]) == 0:  # an operation in some forward, not a module
        return f'its output is read by {trace.readers[0]}, which prune cannot narrow'
    why = _why_not_consumer(model, trace, trace.readers[0], width)
    assert why is not None
    return why


def _consumer(model: nn.Module, trace: LayerTrace, named: str | None, width: int, operation: str) -> str | None:
    """The consumer to cut: the one named (checked), else the traced one, else None."""
    if named is None:
        return _traced_consumer(model, trace, width)
    _linear(model, named, 'consumer', operation)
    why = _why_not_consumer(model, trace, named, width)
    if why is not None:
        raise SurgeryError(f'{operation}: consumer {named!r} cannot be cut: {why}')
    return named


def ablate(
    model: M,
    layer_id: str,
    dims: Iterable[int],
    *,
    sample: Any = None,
    producer: str | None = None,
    consumer: str | None = None,
) -> M:
    """Copy of `model` whose layer `layer_id` always outputs 0 in `dims`; shapes are unchanged.

    Zeroes the producer Linear's output rows (weights and bias entries) and, when one Linear alone
    reads the layer, that consumer's input columns (see the module docstring). `sample` is a small
    input batch for tracing and checking (default: uniform inputs for a model that starts with a
    Linear); `producer`/`consumer` name the Linears instead of tracing them. Raises SurgeryError
    when the edit cannot be exact.
    """
    generated = sample is None
    sample = default_sample(model) if generated else sample
    trace = trace_layer(model, layer_id, sample)
    width = trace.output.shape[-1]
    dims = check_indices(dims, 'ablate: dims', width, layer_id)
    producer_name = _producer(model, trace, producer, width, 'ablate')
    consumer_name = _consumer(model, trace, consumer, width, 'ablate')
    ablated = _zeroed(model, trace, dims, sample, producer_name, consumer_name)
    _check_definition(model, ablated, trace.layer, producer_name, dims, sample, generated, 'ablate')
    return ablated


def _zeroed(model: M, trace: LayerTrace, dims: list[int], sample: Any, producer: str, consumer: str | None) -> M:
    """The ablated copy: the producer's rows `dims` (and the consumer's columns) zeroed, checked on the sample."""
    ablated = copy.deepcopy(model)
    linear = get_layer(ablated, producer)
    index = torch.tensor(dims, dtype=torch.long, device=linear.weight.device)
    with torch.no_grad():
        linear.weight.index_fill_(0, index, 0.0)  # [out, in]: rows
        if linear.bias is not None:
            linear.bias.index_fill_(0, index, 0.0)
        if consumer is not None:
            get_layer(ablated, consumer).weight.index_fill_(1, index, 0.0)  # [out, in]: columns
    width = trace.output.shape[-1]
    _verify(ablated, trace.layer, sample, trace, 'ablate', lambda out: _zero_in(out, dims, width), consumer, dims)
    log.debug('ablated dims %s of %r (rows of %r, columns of %r)', dims, trace.layer, producer, consumer)
    return ablated


def _zero_in(output: Tensor, dims: list[int], width: int) -> str | None:
    if output.shape[-1] != width:
        return f'its width changed from {width} to {output.shape[-1]}'
    if bool((output[..., dims] != 0).any()):
        return f'dims {dims} are not exactly zero'
    return None


def _narrower(output: Tensor, width: int) -> str | None:
    return None if output.shape[-1] == width else f'its width is {output.shape[-1]}, expected {width}'


def _verify(
    edited: nn.Module,
    layer: str,
    sample: Any,
    trace: LayerTrace,
    operation: str,
    check: Any,
    consumer: str | None = None,
    dims: list[int] | None = None,
) -> None:
    """Run the edited model on the sample: the layer's output (as it was when the layer ran) must pass `check`,
    the model's output keep its shape, and a consumer whose columns were zeroed must have read zeros there."""
    calls, output = run_traced(edited, sample, layer, edited=True, watch=[consumer] if consumer else [])
    snapshot = next(c.snapshot for c in calls if c.name == layer)
    assert snapshot is not None
    problem = check(snapshot[1])
    if problem is not None:
        problem = f'layer {layer!r}: {problem}'
    elif output_shapes(output) != output_shapes(trace.model_output):
        problem = f'the model output changed shape from {output_shapes(trace.model_output)} to {output_shapes(output)}'
    elif consumer is not None and dims is not None:
        read = next(c.snapshot for c in calls if c.name == consumer)
        if read is None or read[0] is None or bool((read[0][..., dims] != 0).any()):
            problem = f'consumer {consumer!r} does not read zeros in dims {dims}'
    if problem is not None:
        raise SurgeryError(f'{operation} of {layer!r} is not exact on this model ({problem}); {INTERVENTION_HINT}')


def prune(
    model: M,
    layer_id: str,
    dims: Iterable[int],
    *,
    sample: Any = None,
    producer: str | None = None,
    consumer: str | None = None,
) -> M:
    """Copy of `model` with `dims` removed from layer `layer_id`'s output: that layer gets narrower.

    Replaces the producer Linear by one without those output rows and the consumer Linear by one
    without those input columns. The same function as `ablate` when everything between them keeps a
    zero channel at zero and otherwise ignores it (true for L2Norm), which tracing ensures. The
    model's output never changes shape: a layer that is part of the output, or is read by anything
    but one Linear, is refused. If the model has a `k_bottleneck` attribute and the pruned layer is
    its `bottleneck`, the attribute is updated. Arguments as for `ablate`.
    """
    generated = sample is None
    sample = default_sample(model) if generated else sample
    trace = trace_layer(model, layer_id, sample)
    width = trace.output.shape[-1]
    dims = check_indices(dims, 'prune: dims', width, layer_id)
    removed = set(dims)
    keep = [d for d in range(width) if d not in removed]
    if not keep:
        raise ValueError(f'prune: dims remove all {width} dimensions of layer {layer_id!r}; expected at least one kept')
    producer_name = _producer(model, trace, producer, width, 'prune')
    consumer_name = _consumer(model, trace, consumer, width, 'prune')
    if consumer_name is None:
        raise SurgeryError(f'prune: cannot narrow layer {layer_id!r}: {_why_no_consumer(model, trace, width)}')
    for role, name in (('producer', producer_name), ('consumer', consumer_name)):
        why = _why_not_replaceable(get_layer(model, name), f'{role} {name!r}')
        if why is not None:
            raise SurgeryError(f'prune: {why}; use ablate, which edits its weights in place')
    prunes_bottleneck = _is_bottleneck_of(model, trace, producer_name, sample)

    pruned = copy.deepcopy(model)
    linear = get_layer(pruned, producer_name)
    index = torch.tensor(keep, dtype=torch.long, device=linear.weight.device)
    _replace_module(pruned, producer_name, _select_linear(linear, rows=index))
    _replace_module(pruned, consumer_name, _select_linear(get_layer(pruned, consumer_name), columns=index))
    if prunes_bottleneck:
        pruned.k_bottleneck = len(keep)
    _verify(pruned, layer_id, sample, trace, 'prune', lambda out: _narrower(out, len(keep)))
    _check_definition(model, pruned, layer_id, producer_name, dims, sample, generated, 'prune')
    log.debug('pruned dims %s of %r: width %d → %d', dims, layer_id, width, len(keep))
    return pruned


def _why_not_replaceable(linear: nn.Module, label: str) -> str | None:
    """Why prune cannot put a plain nn.Linear in this module's place without changing what it does, or None."""
    if type(linear) is not nn.Linear:
        return f'{label} is a {type(linear).__name__}, and prune would put a plain nn.Linear in its place'
    if linear._forward_hooks or linear._forward_pre_hooks:
        return f'{label} has forward hooks, which the nn.Linear prune puts in its place would not have'
    return None


def _check_definition(
    original: nn.Module,
    edited: nn.Module,
    layer: str,
    producer: str,
    dims: list[int],
    sample: Any,
    generated: bool,
    operation: str,
) -> None:
    """Compare the edited model with what ablating the layer's dims means (`ablation_reference`) on the sample and
    on varied inputs; raise SurgeryError naming the first input where they differ beyond the stated tolerance."""
    variants = check_inputs(sample, generated=generated)
    for (index, (input_name, inputs)), setting in itertools.product(enumerate(variants), SETTINGS):
        where = f'{input_name} {setting.name}'
        seed = index  # the same random draws in the edit and its reference; other draws for other inputs
        try:
            expected = reference_output(original, layer, producer, dims, inputs, where, setting, seed)
        except SurgeryError:
            raise
        except Exception as error:  # the model itself does not run on this variant: not a valid input
            log.debug('%s check skips %s: the model does not run on it (%s)', operation, where, error)
            continue
        try:
            got = model_output(edited, inputs, setting, seed)
        except Exception as error:
            first_line = str(error).splitlines()[0] if str(error) else ''
            raise SurgeryError(
                f'{operation} of {layer!r} is not exact on this model: on {where} the edited model fails '
                f'({type(error).__name__}: {first_line}) where the original runs; {INTERVENTION_HINT}'
            ) from None
        problem = largest_difference(got, expected)
        if problem is not None:
            raise SurgeryError(
                f'{operation} of {layer!r} is not exact on this model: on {where}, {problem} (the model in which only '
                f'layer {layer!r} sees dims {dims} zeroed where {producer!r} writes them; something else reads them, '
                f'or code the trace cannot see changes them); {INTERVENTION_HINT}'
            )


def _is_bottleneck_of(model: nn.Module, trace: LayerTrace, producer: str, sample: Any) -> bool:
    """Whether `producer` writes the model's `bottleneck` layer, for models that record its width (`k_bottleneck`)."""
    if not hasattr(model, 'k_bottleneck') or 'bottleneck' not in dict(model.named_modules()):
        return False
    bottleneck = trace if trace.layer == 'bottleneck' else trace_layer(model, 'bottleneck', sample)
    return bottleneck.producer == producer


def prune_equals_ablate(model: nn.Module, layer_id: str, *, sample: Any = None) -> bool:
    """Whether `prune` and `ablate` of `layer_id` compute the same function, by construction.

    True when tracing finds both a producer and a single consumer Linear: every layer between them
    then keeps a zero channel at zero and ignores it (`ZERO_PRESERVING`), and the consumer's zeroed
    columns ignore it too, so dropping the channel changes nothing. CNColorMLP's bottleneck:
    encoder.4 → L2Norm → decoder.0, so True. False wherever either edit would be refused.
    """
    try:
        sample = default_sample(model) if sample is None else sample
        trace = trace_layer(model, layer_id, sample)
    except SurgeryError:
        return False
    width = trace.output.shape[-1]
    consumer = _traced_consumer(model, trace, width)
    return (
        trace.producer is not None
        and consumer is not None
        and all(_why_not_replaceable(get_layer(model, name), name) is None for name in (trace.producer, consumer))
    )


def _select_linear(
    linear: nn.Linear, *, rows: torch.Tensor | None = None, columns: torch.Tensor | None = None
) -> nn.Linear:
    """A new Linear holding the selected output rows / input columns of `linear`'s weights."""
    weight = linear.weight.detach()  # [out, in]
    bias = linear.bias.detach() if linear.bias is not None else None
    if rows is not None:
        weight = weight.index_select(0, rows)
        bias = bias.index_select(0, rows) if bias is not None else None
    if columns is not None:
        weight = weight.index_select(1, columns)
    smaller = nn.Linear(
        weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device, dtype=weight.dtype
    )
    with torch.no_grad():
        smaller.weight.copy_(weight)
        smaller.weight.requires_grad_(linear.weight.requires_grad)
        if bias is not None:
            smaller.bias.copy_(bias)
            smaller.bias.requires_grad_(linear.bias.requires_grad)
    smaller.train(linear.training)
    return smaller


def _replace_module(root: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, child_name = path.rpartition('.')
    parent = get_layer(root, parent_path) if parent_path else root
    setattr(parent, child_name, module)
