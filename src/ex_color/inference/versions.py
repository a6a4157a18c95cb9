"""Several versions of one model on the same rows, computing what they share once.

The versions of a trained model that an experiment evaluates (the model itself, surgery's
edited copies, the model with interventions) agree up to the first layer an edit touches, so
running each from scratch repeats that prefix. `infer_versions` runs all versions on a chunk
before the next chunk and, within the chunk, remembers the output of every leaf module that
two versions share: a module equal to it (same type, settings, parameters and buffers, see
`interchangeable`) called later on the very same tensor returns the remembered output.

Reuse is exact by construction: the same module on the same input object computes the same
output. A remembered call is reused only while neither its input nor its output has been
changed in place since (torch's version counters), and a chunk in which any remembered tensor
was changed in place by the end is run again without reuse. Each version's outputs are
bitwise those of `infer(model, x, interventions)`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from ex_color.inference.chunks import INFER_BATCH, as_rows, split_rows
from ex_color.intervention.config import InterventionConfig
from ex_color.intervention.hooks import apply_interventions

__all__ = ['VERSIONS_BATCH', 'Version', 'infer_versions', 'interchangeable']

log = logging.getLogger(__name__)


VERSIONS_BATCH = INFER_BATCH // 2
"""Rows per chunk in `infer_versions`: a chunk's remembered activations (about 140 floats a row for Ex 2.9's
model) stay alive until its last version has run; at half `infer`'s chunk they fit in the memory the
process already holds, where at its full size glibc hands them back and faults them in again every chunk."""


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
    chunk before the next chunk. Models are run in eval mode, without gradients, and left in the
    mode they were in. A model object used by several versions is copied for all but the first, so
    each copy carries only its own version's interventions.
    """
    versions = [Version(*v) for v in versions]
    if not versions:
        return []
    inputs, rows = as_rows(versions[0].model, x, 'infer_versions')
    if rows.is_inference():  # made under inference mode: no version counter, so nothing could be reused
        rows = rows.clone()
    _check_same_placement([v.model for v in versions], rows)
    chunks = split_rows(rows, batch_size, 'infer_versions')
    models = _own_models([v.model for v in versions])
    reuse = _Reuse(models)
    modes = {module: module.training for model in models for module in model.modules()}
    try:
        for model in models:
            model.eval()
        with ExitStack() as stack:
            for model, version in zip(models, versions, strict=True):
                stack.enter_context(apply_interventions(model, version.interventions))
            stack.enter_context(reuse.installed())
            results = [reuse.run(models, chunk) for chunk in chunks]
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
    """Whether leaf modules `a` and `b` compute the same function: the same type, the same public settings
    (e.g. `in_features`, `approximate`) and equal parameters and buffers (names, dtypes, shapes, values)."""
    return a is b or _Signature.of(a).matches(_Signature.of(b))


class _Signature(NamedTuple):
    """What a leaf module's function depends on."""

    kind: type
    settings: dict[str, Any]
    tensors: dict[str, Tensor]

    @classmethod
    def of(cls, module: nn.Module) -> _Signature:
        settings = {name: v for name, v in vars(module).items() if not name.startswith('_') and name != 'training'}
        tensors = dict(module.named_parameters(recurse=False)) | dict(module.named_buffers(recurse=False))
        return cls(type(module), settings, tensors)

    def matches(self, other: _Signature) -> bool:
        return (
            self.kind is other.kind
            and self.settings.keys() == other.settings.keys()
            and self.tensors.keys() == other.tensors.keys()
            and all(_same_value(value, other.settings[name]) for name, value in self.settings.items())
            and all(_same_value(tensor, other.tensors[name]) for name, tensor in self.tensors.items())
        )


def _same_value(a: object, b: object) -> bool:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return (
            isinstance(a, Tensor)
            and isinstance(b, Tensor)
            and a.dtype == b.dtype
            and a.device == b.device
            and torch.equal(a, b)
        )
    try:
        return bool(a == b)
    except Exception:  # a setting whose equality is ambiguous or undefined: not shared
        return False


def _check_same_placement(models: list[nn.Module], rows: Tensor) -> None:
    for i, model in enumerate(models):
        parameter = next(model.parameters(), None)
        if parameter is not None and (parameter.device, parameter.dtype) != (rows.device, rows.dtype):
            raise ValueError(
                f'infer_versions: version {i} is on {parameter.device} in {parameter.dtype}, '
                f'version 0 on {rows.device} in {rows.dtype}; every version must be on one device in one dtype'
            )


def _own_models(models: list[nn.Module]) -> list[nn.Module]:
    """The models, with a copy in place of each that an earlier version already uses."""
    seen: set[int] = set()
    own = []
    for model in models:
        own.append(copy.deepcopy(model) if id(model) in seen else model)
        seen.add(id(model))
    return own


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

    def __init__(self, chunk: Tensor) -> None:
        self.latest: dict[tuple[int, int], _Call] = {}
        self.every: list[_Call] = []
        self.shared: dict[int, Tensor] = {id(chunk): chunk}

    def call(self, key: int, compute: Callable[[Tensor], Any], x: Tensor) -> Any:
        if self.shared.get(id(x)) is not x:
            return compute(x)
        known = self.latest.get((key, id(x)))
        if known is not None and known.input is x and known.unchanged():
            return known.output
        y = compute(x)
        input_version, output_version = _version(x), (_version(y) if isinstance(y, Tensor) else None)
        if input_version is not None and output_version is not None:
            self.latest[key, id(x)] = _Call(x, input_version, y, output_version)
            self.every.append(self.latest[key, id(x)])
            self.shared[id(y)] = y
        return y

    def intact(self) -> bool:
        return all(call.unchanged() for call in self.every)


class _Reuse:
    """Which leaves the versions share, and the forwards that remember their calls within a chunk."""

    def __init__(self, models: list[nn.Module]) -> None:
        self.calls: _Calls | None = None  # while a chunk runs
        self.key: dict[int, int] = {}  # id(leaf) → its class of interchangeable leaves
        self.leaves: list[nn.Module] = []  # the leaves of classes that two or more models use
        if len(models) < 2:
            return
        representatives: list[_Signature] = []
        used_by: list[set[int]] = []
        for index, model in enumerate(models):
            for leaf in _leaves(model):
                if id(leaf) not in self.key:
                    signature = _Signature.of(leaf)
                    key = next((k for k, r in enumerate(representatives) if signature.matches(r)), None)
                    if key is None:
                        key = len(representatives)
                        representatives.append(signature)
                        used_by.append(set())
                    self.key[id(leaf)] = key
                used_by[self.key[id(leaf)]].add(index)
        self.leaves = [leaf for model in models for leaf in _leaves(model) if len(used_by[self.key[id(leaf)]]) > 1]

    @contextmanager
    def installed(self) -> Iterator[None]:
        patched = []
        try:
            for leaf in dict.fromkeys(self.leaves):
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

    def run(self, models: list[nn.Module], chunk: Tensor) -> list[Tensor]:
        """Every model on one chunk, reusing shared calls; again without reuse if a remembered tensor changed."""
        chunk_version = _version(chunk)
        with torch.no_grad():
            self.calls = _Calls(chunk)
            try:
                outputs = [model(chunk) for model in models]
                intact = self.calls.intact()
            finally:
                self.calls = None
            if _version(chunk) != chunk_version:
                raise ValueError(
                    'infer_versions: a model changed its input in place; versions would not see the same rows'
                )
            if intact:
                return outputs
            log.debug('infer_versions: a remembered tensor was changed in place; running the chunk without reuse')
            return [model(chunk) for model in models]
