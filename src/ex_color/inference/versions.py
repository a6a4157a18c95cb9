"""Several versions of one model on the same rows, computing what they share once.

The versions of a trained model that an experiment evaluates (the model itself, surgery's
edited copies, the model with interventions) agree up to the first layer an edit touches, so
running each from scratch repeats that prefix. `infer_versions` runs every version on a chunk
before the next chunk and, within the chunk, remembers the calls of leaf modules that two
versions share: a module equal to one called before (see `interchangeable`), called on the
very same tensor, returns the remembered output instead of computing it again.

Only leaves of `REUSABLE` types are remembered: torch's stateless layers, whose output is a
pure function of their type, attributes, parameters, buffers and input. A custom module, a
subclass, a parametrized or lazy module, or one set to work in place always runs. A
remembered call is reused only while its input and output are unchanged in place (torch's
version counters); if a version's output is changed in place after it was returned (a later
version writing into a tensor the two share), the chunk is run again without reuse. Changes
made through `.data` or `.numpy()` bypass the version counters and are not seen.

Versions run chunk by chunk, interleaved: a model with random or stateful layers (sampling,
call counters) sees its calls in another order than in separate `infer` calls, and so
gives other outputs, with or without reuse.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from ex_color.inference.chunks import INFER_BATCH, as_rows, split_rows
from ex_color.intervention.config import InterventionConfig
from ex_color.intervention.hooks import apply_interventions
from ex_color.model import L2Norm

__all__ = ['REUSABLE', 'VERSIONS_BATCH', 'Version', 'infer_versions', 'interchangeable']

log = logging.getLogger(__name__)

VERSIONS_BATCH = INFER_BATCH // 2
"""Rows per chunk in `infer_versions`: a chunk's remembered activations (about 140 floats a row for Ex 2.9's
model) stay alive until its last version has run; at half `infer`'s chunk they fit in the memory the
process already holds, where at its full size glibc hands them back and faults them in again every chunk."""

REUSABLE: frozenset[type[nn.Module]] = frozenset({
    nn.Linear, nn.Bilinear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding,
    nn.Identity, nn.Flatten, nn.Unflatten, nn.Dropout, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, L2Norm,
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardsigmoid, nn.Hardswish, nn.Softplus, nn.Softsign,
    nn.Softmax, nn.LogSoftmax,
})  # fmt: skip
"""Leaf types whose calls may be reused (exact types; in eval mode, where Dropout passes its input)."""

_MODULE_INTERNALS = frozenset(vars(nn.Module()))  # parameters, buffers, submodules, hooks, training


class Version(NamedTuple):
    """One version of a model: a model (the trained one or an edited copy) and interventions on it."""

    model: nn.Module
    interventions: Sequence[InterventionConfig] = ()


def infer_versions(
    versions: Sequence[Version | tuple[nn.Module, Sequence[InterventionConfig]]],
    x: Tensor | np.ndarray,
    *,
    batch_size: int = VERSIONS_BATCH,
) -> list[Tensor]:
    """Each version's outputs on `x` `[..., F]`: bitwise `infer(model, x, interventions, batch_size).outputs`.

    Rows are split into chunks of `batch_size` as `infer` splits them, and every version runs on a
    chunk before the next chunk, with its own interventions hooked on only while it runs (so
    versions may share a model or submodules). Models are run in eval mode, without gradients,
    and left in the mode they were in.
    """
    versions = [_as_version(v, i) for i, v in enumerate(versions)]
    if not versions:
        return []
    models = list({id(v.model): v.model for v in versions}.values())
    with torch.inference_mode(False), torch.no_grad():  # ordinary tensors: they keep version counters
        inputs, rows = as_rows(versions[0].model, x, 'infer_versions')
        rows = rows.clone() if rows.is_inference() else rows
        _check_same_placement(versions, rows)
        chunks = split_rows(rows, batch_size, 'infer_versions')
        reuse = _Reuse(versions)
        modes = {module: module.training for model in models for module in model.modules()}
        try:
            for model in models:
                model.eval()
            with reuse.installed():
                results = [reuse.run(versions, chunk) for chunk in chunks]
        finally:
            for module, training in modes.items():
                module.training = training
    log.debug('infer_versions: %d versions, %d rows in %d chunks', len(versions), rows.shape[0], len(chunks))
    outputs = []
    for i in range(len(versions)):
        output = torch.cat([chunk_outputs[i] for chunk_outputs in results], dim=0)  # [N, K]
        outputs.append(output.reshape(*inputs.shape[:-1], output.shape[-1]).to(inputs.device))
    return outputs


def interchangeable(a: nn.Module, b: nn.Module) -> bool:
    """Whether leaf modules `a` and `b` compute the same function by construction: both of one `REUSABLE` type,
    not set to work in place, with equal attributes and bitwise-equal parameters and buffers."""
    return _reusable(a) and _reusable(b) and (a is b or _Signature.of(a).matches(_Signature.of(b)))


def _as_version(version: object, index: int) -> Version:
    if isinstance(version, tuple) and len(version) in (1, 2) and isinstance(version[0], nn.Module):
        return Version(*version)
    raise TypeError(
        f'infer_versions: version {index} is a {type(version).__name__}; expected Version(model, interventions)'
    )


def _reusable(module: nn.Module) -> bool:
    return type(module) in REUSABLE and not getattr(module, 'inplace', False)


class _Signature(NamedTuple):
    """What a reusable leaf's function depends on."""

    kind: type
    attributes: dict[str, Any]
    tensors: dict[str, Tensor]

    @classmethod
    def of(cls, module: nn.Module) -> _Signature:
        attributes = {name: v for name, v in vars(module).items() if name not in _MODULE_INTERNALS}
        tensors = dict(module.named_parameters(recurse=False)) | dict(module.named_buffers(recurse=False))
        return cls(type(module), attributes, tensors)

    def matches(self, other: _Signature) -> bool:
        return (
            self.kind is other.kind
            and self.attributes.keys() == other.attributes.keys()
            and self.tensors.keys() == other.tensors.keys()
            and all(_same_value(value, other.attributes[name]) for name, value in self.attributes.items())
            and all(_same_value(tensor, other.tensors[name]) for name, tensor in self.tensors.items())
        )


_SAME_WIDTH_INTEGER = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def _same_value(a: object, b: object) -> bool:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
            return False
        if (a.dtype, a.shape, a.device) != (b.dtype, b.shape, b.device):
            return False
        if a.is_floating_point() and a.element_size() in _SAME_WIDTH_INTEGER:  # bits: −0.0 is not 0.0
            width = _SAME_WIDTH_INTEGER[a.element_size()]
            return torch.equal(a.detach().view(width), b.detach().view(width))
        return torch.equal(a, b)
    try:
        return bool(a == b)
    except Exception:  # an attribute whose equality is ambiguous or undefined: not shared
        return False


def _check_same_placement(versions: list[Version], rows: Tensor) -> None:
    for i, version in enumerate(versions):
        parameter = next(version.model.parameters(), None)
        if parameter is not None and (parameter.device, parameter.dtype) != (rows.device, rows.dtype):
            raise ValueError(
                f'infer_versions: version {i} is on {parameter.device} in {parameter.dtype}, '
                f'version 0 on {rows.device} in {rows.dtype}; every version must be on one device in one dtype'
            )


def _leaves(model: nn.Module) -> list[nn.Module]:
    return [module for module in model.modules() if next(module.children(), None) is None]


def _version(tensor: Tensor) -> int | None:
    try:
        return tensor._version
    except RuntimeError:  # an inference tensor keeps no version counter: it is not remembered
        return None


class _Call(NamedTuple):
    input: Tensor
    input_version: int
    output: Tensor
    output_version: int

    def unchanged(self) -> bool:
        return _version(self.input) == self.input_version and _version(self.output) == self.output_version


class _Calls:
    """One chunk's remembered leaf calls, keyed by (class of the module, id of the input).

    Only calls on the shared path are remembered: those whose input is the chunk itself or the
    output of a remembered call. Nothing else can be the very same object in another version.
    """

    def __init__(self, chunk: Tensor, unstable: set[int]) -> None:
        self.remembered: dict[tuple[int, int], _Call] = {}
        self.shared: dict[int, Tensor] = {id(chunk): chunk}
        self.unstable = unstable  # classes whose remembered output was found changed: not remembered again

    def call(self, key: int, compute: Callable[[Tensor], Any], x: Tensor) -> Any:
        if self.shared.get(id(x)) is not x or key in self.unstable:
            return compute(x)
        known = self.remembered.get((key, id(x)))
        if known is not None and known.input is x:
            if known.unchanged():
                return known.output
            self.unstable.add(key)
            return compute(x)
        y = compute(x)
        input_version, output_version = _version(x), (_version(y) if isinstance(y, Tensor) else None)
        if input_version is not None and output_version is not None:
            self.remembered[key, id(x)] = _Call(x, input_version, y, output_version)
            self.shared[id(y)] = y
        return y


class _Reuse:
    """Which leaves the versions share, and the forwards that remember their calls within a chunk."""

    def __init__(self, versions: list[Version]) -> None:
        self.calls: _Calls | None = None  # while a chunk runs
        self.unstable: set[int] = set()
        self.key: dict[int, int] = {}  # id(leaf) → its class of interchangeable leaves
        self.leaves: list[nn.Module] = []  # the reusable leaves of classes that two or more versions use
        if len(versions) < 2:
            return
        representatives: list[_Signature] = []
        used_by: list[set[int]] = []
        for index, version in enumerate(versions):
            for leaf in filter(_reusable, _leaves(version.model)):
                if id(leaf) not in self.key:
                    signature = _Signature.of(leaf)
                    key = next((k for k, r in enumerate(representatives) if signature.matches(r)), None)
                    if key is None:
                        key = len(representatives)
                        representatives.append(signature)
                        used_by.append(set())
                    self.key[id(leaf)] = key
                used_by[self.key[id(leaf)]].add(index)
        shared = {
            id(leaf): leaf
            for version in versions
            for leaf in _leaves(version.model)
            if id(leaf) in self.key and len(used_by[self.key[id(leaf)]]) > 1
        }
        self.leaves = list(shared.values())

    @contextmanager
    def installed(self) -> Iterator[None]:
        patched = []
        try:
            for leaf in self.leaves:
                if 'forward' not in vars(leaf):  # a forward set on the instance is left alone
                    leaf.forward = self._remembering(leaf)
                    patched.append(leaf)
            yield
        finally:
            for leaf in patched:
                del leaf.forward

    def _remembering(self, leaf: nn.Module) -> Callable[..., Any]:
        compute, key = leaf.forward, self.key[id(leaf)]

        def forward(*args: Any, **kwargs: Any) -> Any:
            calls = self.calls
            if calls is None or kwargs or len(args) != 1 or not isinstance(args[0], Tensor):
                return compute(*args, **kwargs)
            return calls.call(key, compute, args[0])

        return forward

    def run(self, versions: list[Version], chunk: Tensor) -> list[Tensor]:
        """Every version on one chunk, reusing shared calls; again without reuse if an output was changed later."""
        chunk_version = _version(chunk)
        self.calls = _Calls(chunk, self.unstable)
        try:
            outputs, returned = [], []  # each output, and its version counter as it was returned
            for output in _each(versions, chunk):
                outputs.append(output)
                returned.append(_version(output) if isinstance(output, Tensor) else None)
        finally:
            self.calls = None
        if _version(chunk) != chunk_version:
            raise ValueError('infer_versions: a model changed its input in place; versions would not see the same rows')
        if all(_version(o) == v for o, v in zip(outputs, returned, strict=True) if v is not None):
            return outputs
        log.debug('infer_versions: an output was changed in place by a later version; running the chunk again')
        return list(_each(versions, chunk))


def _each(versions: list[Version], chunk: Tensor) -> Iterator[Any]:
    """Each version's output on `chunk`, with its interventions hooked on while it runs (one at a time)."""
    for version in versions:
        with apply_interventions(version.model, version.interventions):
            output = version.model(chunk)
        yield output
