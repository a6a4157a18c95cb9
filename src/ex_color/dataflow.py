"""Which modules write and read a layer's output, found by running the model once on a sample.

Surgery edits weights, so it needs the nn.Linear whose output rows *produce* a layer's
dimensions and the nn.Linear whose input columns *consume* them. Registration order
(`named_modules()`) says nothing about the forward pass, so `trace_layer` runs the model on a
sample and records its data flow as a graph:

- a node for every call of a leaf module (hooks), and for every torch operation written in a
  container's `forward` (a `TorchFunctionMode`), such as `h + z` or `h @ R`; operations inside a
  leaf module belong to that module's node;
- an edge from the call that last wrote a tensor object to each call that reads it.

The producer is found by walking back from the layer through layers that keep a zero channel
at zero; the readers by walking forward. Everything the producer's output reaches must then go
through the layer, or the edit would change more than the layer: that is checked on the graph.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.overrides import TorchFunctionMode

from ex_color.model import L2Norm, get_layer

__all__ = [
    'ZERO_PRESERVING',
    'Call',
    'LayerTrace',
    'SurgeryError',
    'default_sample',
    'global_hooks',
    'left_as_it_was',
    'opaque_part',
    'output_shapes',
    'parameter_use',
    'passes_zero',
    'run_traced',
    'shared_weights',
    'tensors_in',
    'trace_layer',
    'why_not_passing',
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

ZERO_PRESERVING_OPS = frozenset(
    {'relu', 'relu_', 'relu6', 'gelu', 'silu', 'tanh', 'tanh_', 'leaky_relu', 'leaky_relu_', 'elu', 'selu', 'mish'}
    | {'hardtanh', 'softsign', 'dropout'}
)
"""Elementwise torch functions that map 0 to 0, written in a `forward`: passed through like the modules above."""

METADATA_OPS = frozenset({'__get__', 'size', 'dim', 'ndimension', 'numel', 'is_floating_point', 'stride', '__len__'})
"""Operations that read a tensor's shape or type, not its values: not data flow."""


class SurgeryError(ValueError):
    """An edit that cannot be done exactly on this model; the one-line message says why."""


@dataclasses.dataclass(frozen=True)
class Call:
    """One node of the traced graph: a leaf module's call, or a torch operation in some `forward`."""

    name: str
    """The module path, or e.g. `"code in the forward of 'block' (add)"` for an operation."""
    module: nn.Module | None
    """The module, or None for an operation."""
    inputs: tuple[Tensor, ...]
    output: Any
    op: str | None = None
    """The operation's name (e.g. 'relu'), for an operation."""
    snapshot: tuple[Tensor | None, Tensor | None] | None = None
    """For watched modules: copies of the first input and the output as they were when the module ran."""

    @property
    def label(self) -> str:
        return self.name if self.module is None else f'{self.name!r} ({type(self.module).__name__})'


def global_hooks() -> bool:
    """Whether module hooks are registered for every module (`nn.modules.module.register_module_forward_hook`, ...)."""
    hooks = nn.modules.module
    return bool(hooks._global_forward_hooks or hooks._global_forward_pre_hooks)


def why_not_passing(module: nn.Module, label: str) -> str | None:
    """Why a module is not known to keep a zero channel at zero and ignore it otherwise, or None: only the exact types
    in `ZERO_PRESERVING` are, without parameters and without hooks (its own or global), which could change anything."""
    if type(module) not in ZERO_PRESERVING:
        if isinstance(module, ZERO_PRESERVING):
            base = next(b for b in type(module).__mro__ if b in ZERO_PRESERVING)
            return f'{label} is a subclass of {base.__name__}, which may compute anything'
        return None
    if next(module.parameters(), None) is not None:
        return f'{label} has parameters of its own'
    if module._forward_hooks or module._forward_pre_hooks:
        return f'{label} has forward hooks of its own, which may change its output'
    if global_hooks():
        return 'global module hooks are registered (register_module_forward_hook), which may change any output'
    return None


def passes_zero(call: Call) -> bool:
    """Whether a call keeps a zero channel at zero and ignores it otherwise: a plain `ZERO_PRESERVING` module (its
    exact type, no parameters, no hooks) or a `ZERO_PRESERVING_OPS` function of one tensor."""
    module = call.module
    if module is None:
        return call.op in ZERO_PRESERVING_OPS and len(call.inputs) == 1
    return type(module) in ZERO_PRESERVING and why_not_passing(module, call.label) is None


def default_sample(model: nn.Module, rows: int = 4) -> Tensor:
    """A small input for a model whose first registered parameterised module is an nn.Linear: `[rows, in_features]`
    uniform in [0, 1), from a fixed generator, on the model's device and in its dtype.

    Raises SurgeryError when the model does not start that way: pass a sample of real inputs instead.
    """
    first = next((m for m in model.modules() if next(m.parameters(recurse=False), None) is not None), None)
    if not isinstance(first, nn.Linear):
        raise SurgeryError(
            f'cannot guess an input for {type(model).__name__} (its first module with weights is not an nn.Linear); '
            'pass sample= (a small batch of real inputs; a tuple is passed as several arguments)'
        )
    generator = torch.Generator().manual_seed(0)
    sample = torch.rand(rows, first.in_features, generator=generator)
    return sample.to(device=first.weight.device, dtype=first.weight.dtype)


def output_shapes(output: Any) -> Any:
    """The shapes of a model's output, keeping its structure: a Tensor's shape, or a list/dict of them."""
    if isinstance(output, Tensor):
        return tuple(output.shape)
    if dataclasses.is_dataclass(output) and not isinstance(output, type):
        return {f.name: output_shapes(getattr(output, f.name)) for f in dataclasses.fields(output)}
    if isinstance(output, Mapping):
        return {key: output_shapes(value) for key, value in output.items()}
    if isinstance(output, Sequence) and not isinstance(output, str):
        return [output_shapes(value) for value in output]
    return type(output).__name__


def tensors_in(value: Any) -> Iterator[Tensor]:
    """Every tensor inside a (nested) value."""
    if isinstance(value, Tensor):
        yield value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from tensors_in(getattr(value, f.name))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from tensors_in(item)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        for item in value:
            yield from tensors_in(item)


def opaque_part(value: Any) -> str | None:
    """The type name of the first part of a (nested) output that `tensors_in` cannot look inside, or None."""
    if value is None or isinstance(value, Tensor | str | bytes | int | float | complex | bool | torch.Size):
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        parts = [getattr(value, f.name) for f in dataclasses.fields(value)]
    elif isinstance(value, Mapping):
        parts = list(value.values())
    elif isinstance(value, Sequence):
        parts = list(value)
    else:
        return type(value).__name__
    return next((found for part in parts if (found := opaque_part(part)) is not None), None)


def _leaf_names(model: nn.Module) -> set[str]:
    """Modules that are one node of the graph: those without children, and parametrized ones (weight_norm, ...),
    whose parametrizations are part of them."""
    parametrized = [name for name, m in model.named_modules() if parametrize.is_parametrized(m)]
    inside = tuple(f'{name}.' if name else '' for name in parametrized)
    return {
        name
        for name, m in model.named_modules()
        if name in parametrized or (not any(m.children()) and not (inside and name.startswith(inside)))
    }


class _Recorder(TorchFunctionMode):
    """Records torch operations run directly in a container's `forward` (not inside a leaf module)."""

    def __init__(self, calls: list[Call], stack: list[tuple[str, bool]], root: str) -> None:
        super().__init__()
        self.calls, self.stack, self.root = calls, stack, root
        self.paused = False
        """Set while the tracer's own hooks copy tensors: those operations are not the model's."""

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None) -> Any:
        result = func(*args, **(kwargs or {}))
        op = getattr(func, '__name__', str(func))
        if self.paused or (self.stack and self.stack[-1][1]):  # the tracer's own copies, or inside a leaf module
            return result
        if op in METADATA_OPS and not any(True for _ in tensors_in(result)):  # reads a shape or type, not values
            return result
        if op == '__get__':  # a property such as `.T`: name the attribute
            op = getattr(getattr(func, '__self__', None), '__name__', op)
        owner = repr(self.stack[-1][0]) if self.stack else self.root
        inputs = tuple(tensors_in((list(args), dict(kwargs or {}))))
        self.calls.append(Call(f'code in the forward of {owner} ({op})', None, inputs, result, op=op))
        return result


@contextlib.contextmanager
def left_as_it_was(model: nn.Module, *, eval_mode: bool = True) -> Iterator[nn.Module]:
    """Within the block the model is in eval mode (unless `eval_mode` is False: its modes as they are); afterwards
    every module's mode and every buffer are as before, so running it leaves no trace (counters, running statistics)."""
    modes = {m: m.training for m in model.modules()}
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        yield model.eval() if eval_mode else model
    finally:
        for module, training in modes.items():
            module.training = training
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)


def run_traced(
    model: nn.Module, sample: Any, layer: str, *, edited: bool = False, watch: Sequence[str] = ()
) -> tuple[list[Call], Any]:
    """Run `model(sample)` (`model(*sample)` for a tuple) in eval mode without gradients, recording the graph.

    Returns the calls in the order they finished, plus the model's output. The layer's own call is
    recorded too, even when it is a container; it and the modules named in `watch` also keep copies
    of their first input and output as they were then. Every tensor stays referenced until the
    caller drops the list, so object identity is a faithful record of the data flow. Modes and
    buffers are restored afterwards, so tracing leaves the model as it was.
    """
    target = get_layer(model, layer)
    leaves = _leaf_names(model)
    watched = {layer, *watch}
    calls: list[Call] = []
    stack: list[tuple[str, bool]] = []
    recorder = _Recorder(calls, stack, type(model).__name__)

    def enter(name: str) -> Any:
        def push(_module: nn.Module, _args: Any, _kwargs: Any) -> None:
            stack.append((name, name in leaves))

        return push

    def leave(name: str) -> Any:
        def pop(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
            stack.pop()
            if name in leaves or module is target:
                inputs = tuple(tensors_in([list(args), dict(kwargs)]))
                snapshot = None
                if name in watched:
                    recorder.paused = True
                    first = inputs[0].detach().clone() if inputs else None
                    snapshot = (first, output.detach().clone() if isinstance(output, Tensor) else None)
                    recorder.paused = False
                calls.append(Call(name, module, inputs, output, snapshot=snapshot))

        return pop

    inside_leaf = tuple(f'{leaf}.' for leaf in leaves)  # a parametrized module's parametrizations are part of it
    handles = []
    arguments = sample if isinstance(sample, tuple) else (sample,)
    try:
        for name, module in model.named_modules():
            if name and not name.startswith(inside_leaf):
                try:
                    handles.append(module.register_forward_pre_hook(enter(name), with_kwargs=True))
                    handles.append(module.register_forward_hook(leave(name), with_kwargs=True))
                except RuntimeError as error:  # e.g. a ScriptModule
                    raise SurgeryError(
                        f'cannot trace {name!r} ({type(module).__name__}): {str(error).splitlines()[0]}; '
                        'use an Ablation intervention instead'
                    ) from None
        with left_as_it_was(model), torch.no_grad(), recorder:
            output = model(*arguments)
    except SurgeryError:
        raise
    except Exception as error:
        first_line = str(error).splitlines()[0] if str(error) else ''
        if edited:
            raise SurgeryError(
                f'the edited model no longer runs on the sample ({type(error).__name__}: {first_line}); something '
                f'reads layer {layer!r} in a way the edit cannot follow; use an Ablation intervention instead'
            ) from error
        raise SurgeryError(
            f'could not run {type(model).__name__} on the sample to trace layer {layer!r} '
            f'({type(error).__name__}: {first_line}); pass sample= (a small batch of real inputs; '
            'a tuple is passed as several arguments)'
        ) from error
    finally:
        for handle in handles:
            handle.remove()
    return calls, output


def parameter_use(model: nn.Module, name: str, calls: Sequence[Call]) -> str | None:
    """Why module `name`'s weights are read elsewhere in the forward pass (e.g. `F.linear(x, self.enc.weight)`)."""
    module = get_layer(model, name)
    own = [p for p in module.parameters()]
    for call in calls:
        if call.module is module:
            continue
        if any(x is p for x in call.inputs for p in own):
            return f'the weights of {name!r} are also read by {call.label}'
    return None


def shared_weights(model: nn.Module, name: str) -> str | None:
    """Why editing module `name`'s weights in place would change some other part of the model, or None."""
    module = get_layer(model, name)
    if parametrize.is_parametrized(module):
        return f'{name!r} has a parametrized weight (weight_norm, spectral_norm, ...), which cannot be edited in place'
    aliases = [n for n, m in model.named_modules(remove_duplicate=False) if m is module]
    if len(aliases) > 1:
        return f'module {name!r} is registered under several names ({", ".join(map(repr, aliases))})'
    own = {id(p) for p in module.parameters()}
    for other, p in model.named_parameters(remove_duplicate=False):
        if id(p) in own and not other.startswith(name + '.'):
            return f'the weights of {name!r} are shared with {other!r}'
    return None


class _Graph:
    """Edges from the call that last wrote a tensor object to each later call that reads it."""

    def __init__(self, calls: list[Call], skip: int | None) -> None:
        self.calls = calls
        self.children: dict[int, set[int]] = {i: set() for i in range(len(calls))}
        self.parents: dict[int, list[int]] = {i: [] for i in range(len(calls))}
        self.writer: dict[int, int] = {}  # id(tensor) → latest call that output it
        self.first_input: dict[int, int | None] = {}
        for i, call in enumerate(calls):
            if i == skip:  # a container layer: its children are the nodes
                continue
            for n, tensor in enumerate(call.inputs):
                source = self.writer.get(id(tensor))
                if n == 0:
                    self.first_input[i] = source
                if source is not None:
                    self.children[source].add(i)
                    self.parents[i].append(source)
            for tensor in tensors_in(call.output):
                self.writer[id(tensor)] = i

    def reach(self, start: int, edges: dict[int, Any]) -> set[int]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in edges[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen


@dataclasses.dataclass(frozen=True)
class LayerTrace:
    """What one forward pass shows about a layer's output: who writes it and who reads it."""

    layer: str
    output: Tensor
    """The layer's output on the sample."""
    producer: str | None
    """The nn.Linear whose output rows are the layer's dimensions, or None when `problem` says why not."""
    problem: str | None
    """Why the layer's dimensions cannot be cut at a Linear's rows, or None."""
    readers: list[str]
    """What reads the layer's output (through zero-preserving layers): module paths, or code descriptions."""
    reaches_output: bool
    """Whether the layer's output (or a zero-preserving function of it) is part of the model's output."""
    model_output: Any
    """The model's output on the sample, for comparison after an edit."""
    graph: _Graph
    layer_node: int
    """The graph node whose output is the layer's output."""

    def runs(self, name: str) -> int:
        """How many times module `name` ran (0 for an operation, or a module that did not run)."""
        return sum(1 for c in self.graph.calls if c.name == name and c.module is not None)

    def side_effect(self, producer: str) -> str | None:
        """Why zeroing `producer`'s rows would change more than the layer's output, or None."""
        return _side_effect(self.graph, self.layer_node, self.layer, self.model_output, producer)


def _side_effect(graph: _Graph, layer_node: int, layer: str, model_output: Any, producer: str) -> str | None:
    nodes = [i for i, c in enumerate(graph.calls) if c.name == producer and c.module is not None]
    if len(nodes) != 1:
        return f'{producer!r} runs {len(nodes)} times in one forward pass' if nodes else f'{producer!r} did not run'
    below = graph.reach(nodes[0], graph.children)
    above = graph.reach(layer_node, graph.parents)
    if layer_node not in below:
        return f'{producer!r} does not feed layer {layer!r}'
    path = below & above
    inner = {i for i in path if i != layer_node}
    for i in sorted(inner):  # every edge out of the chain must stay in it: anything else sees the zeroed rows
        for child in sorted(graph.children[i] - path):
            return (
                f'the output of {graph.calls[i].label} also reaches {graph.calls[child].label}, '
                'which zeroing the rows would change'
            )
    if any(graph.writer.get(id(t)) in inner for t in tensors_in(model_output)):
        return f'the output of {producer!r} is also part of the model output, which zeroing its rows would change'
    return None


def trace_layer(model: nn.Module, layer: str, sample: Any = None) -> LayerTrace:
    """Trace one forward pass of `model` on `sample` (default: `default_sample(model)`) around layer `layer`.

    Raises SurgeryError when the layer does not run exactly once or does not output one tensor; other
    obstacles to surgery are reported in the trace (`problem`, `readers`, ...), for the caller to judge.
    """
    module = get_layer(model, layer)  # an unknown name lists the valid ones
    if sample is None:
        sample = default_sample(model)
    calls, model_output = run_traced(model, sample, layer)
    opaque = opaque_part(model_output)
    if opaque is not None:
        raise SurgeryError(
            f'{type(model).__name__} returns a {opaque}, which surgery cannot look inside to check the edit; '
            'return tensors in tuples, lists, dicts or dataclasses'
        )
    runs = [i for i, c in enumerate(calls) if c.module is module]
    if not runs:
        hint = (
            ' (a ModuleList or ModuleDict is never called itself; name one of its entries)'
            if isinstance(module, nn.ModuleList | nn.ModuleDict)
            else ''
        )
        raise SurgeryError(f'layer {layer!r} did not run when the model was called on the sample{hint}')
    if len(runs) > 1:
        raise SurgeryError(
            f'layer {layer!r} runs {len(runs)} times in one forward pass; surgery on its weights would edit every use'
        )
    output = calls[runs[0]].output
    if not isinstance(output, Tensor):
        raise SurgeryError(
            f'layer {layer!r} outputs a {type(output).__name__}, not one tensor; name the module that computes '
            'the part you mean (or use an Ablation intervention)'
        )
    is_leaf = layer in _leaf_names(model)
    graph = _Graph(calls, skip=None if is_leaf else runs[0])
    layer_node = runs[0] if is_leaf else _writer_of(calls, output, runs[0])
    if layer_node is None:
        raise SurgeryError(f'layer {layer!r} returns the model input unchanged; name the module that computes it')

    producer, problem = _find_producer(graph, layer_node, sample)
    if producer is not None:
        problem = _side_effect(graph, layer_node, layer, model_output, producer)
        producer = None if problem else producer
    readers, reaches_output = _find_readers(graph, layer_node, model_output)
    return LayerTrace(layer, output, producer, problem, readers, reaches_output, model_output, graph, layer_node)


def _writer_of(calls: list[Call], tensor: Tensor, before: int) -> int | None:
    """The last leaf call or operation before `before` that output `tensor`."""
    for i in range(before - 1, -1, -1):
        if any(t is tensor for t in tensors_in(calls[i].output)):
            return i
    return None


def _find_producer(graph: _Graph, node: int, sample: Any) -> tuple[str | None, str | None]:
    """Walk back from the layer's node through zero-preserving layers to the nn.Linear that computes it."""
    while True:
        call = graph.calls[node]
        module = call.module
        if module is None:
            return (
                None,
                f'{call.name} computes it (if that code keeps a zero channel at zero, name the Linear: producer=)',
            )
        if isinstance(module, nn.Linear):
            return call.name, None
        if isinstance(module, nn.modules.conv._ConvNd):
            return None, f'{call.label} produces it: Conv layers are not supported by weight surgery'
        not_plain = why_not_passing(module, call.label)
        if not_plain is not None:
            return None, f'{not_plain}, so a zeroed channel may not stay zero'
        if type(module) not in ZERO_PRESERVING:
            return (
                None,
                f'{call.label} computes it and does not keep a zeroed channel at zero (normalisation or mixing)',
            )
        source = graph.first_input.get(node)
        if source is None:
            if call.inputs and any(call.inputs[0] is t for t in tensors_in(sample)):
                return None, f'the input of {call.name!r} is the model input itself: no nn.Linear comes before it'
            return None, f'the input of {call.name!r} comes from outside the traced graph'
        node = source


def _find_readers(graph: _Graph, node: int, model_output: Any) -> tuple[list[str], bool]:
    """What reads the layer's node, following zero-preserving single-input layers forward; and whether it (or such a
    layer after it) is part of the model output."""
    chain, readers, todo = {node}, [], [node]
    while todo:
        for child in sorted(graph.children[todo.pop()]):
            call = graph.calls[child]
            if passes_zero(call) and len(call.inputs) == 1 and child not in chain:
                chain.add(child)
                todo.append(child)
            elif call.name not in readers:
                readers.append(call.name)
    reaches_output = any(graph.writer.get(id(t)) in chain for t in tensors_in(model_output))
    return readers, reaches_output
