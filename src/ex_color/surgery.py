"""Surgery on a layer's output dimensions: zero them (`ablate`) or remove them (`prune`).

A layer's output dimension d lives in two weight tensors: the output row d of the Linear that
*produces* it and the input column d of the Linear that *consumes* it. Both operations find
those two Linears by position in `model.named_modules()` (pre-order, so it follows the
forward data flow of sequential models such as CNColorMLP):

- producer: the last nn.Linear at or inside the layer, or before it (a Linear layer is its own
  producer; for `'bottleneck'` it is `encoder`'s last Linear; for `'encoder'` likewise);
- consumer: the first nn.Linear after the layer and everything inside it (for `'bottleneck'`,
  `'decoder.0'`). A layer with no Linear after it (the model's output) has no consumer.

Both return a modified deep copy; the original model is never changed.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

from ex_color.indices import check_indices
from ex_color.model import L2Norm, get_layer

__all__ = ['ablate', 'prune', 'prune_equals_ablate']

log = logging.getLogger(__name__)

M = TypeVar('M', bound=nn.Module)


@dataclass(frozen=True)
class _Neighbours:
    """The Linears around a layer's output: who writes its dimensions and who reads them."""

    producer_name: str
    producer: nn.Linear
    consumer_name: str | None
    consumer: nn.Linear | None

    @property
    def width(self) -> int:
        return self.producer.out_features


def _find_neighbours(model: nn.Module, layer_id: str) -> _Neighbours:
    get_layer(model, layer_id)  # raises, listing the valid layers, for an unknown name
    named = list(model.named_modules())
    start = next(i for i, (name, _) in enumerate(named) if name == layer_id)
    # Pre-order traversal: the layer's descendants follow it contiguously.
    end = start + 1
    while end < len(named) and named[end][0].startswith(layer_id + '.'):
        end += 1

    producers = [(name, m) for name, m in named[:end] if isinstance(m, nn.Linear)]
    if not producers:
        raise ValueError(f'layer {layer_id!r} has no nn.Linear at or before it whose output rows could be cut')
    producer_name, producer = producers[-1]
    consumer_name, consumer = next(((n, m) for n, m in named[end:] if isinstance(m, nn.Linear)), (None, None))
    if consumer is not None and consumer.in_features != producer.out_features:
        raise ValueError(
            f'layer {layer_id!r}: producer {producer_name!r} has {producer.out_features} outputs but consumer '
            f'{consumer_name!r} has {consumer.in_features} inputs; expected them to match'
        )
    return _Neighbours(producer_name, producer, consumer_name, consumer)


ZERO_PRESERVING = (L2Norm, nn.Identity, nn.ReLU, nn.GELU)
"""Layers that map a zero channel to zero and, if they mix channels, ignore a zero one (L2Norm)."""


def prune_equals_ablate(model: nn.Module, layer_id: str) -> bool:
    """Whether `prune` and `ablate` of `layer_id` compute the same function, by construction.

    True when every layer between the producer and the consumer preserves a zero channel
    (`ZERO_PRESERVING`): the ablated channel then stays exactly 0, nothing between reads it,
    and the consumer's zeroed columns ignore it, so dropping it changes nothing. Colour model's
    bottleneck: encoder's last Linear → L2Norm → decoder.0, so True.
    """
    nb = _find_neighbours(model, layer_id)
    if nb.consumer_name is None:
        return False
    names = [name for name, _ in model.named_modules()]
    start, end = names.index(nb.producer_name), names.index(nb.consumer_name)
    between = [m for _, m in list(model.named_modules())[start + 1 : end] if not list(m.children())]
    return all(isinstance(m, ZERO_PRESERVING) for m in between)


def ablate(model: M, layer_id: str, dims: Iterable[int]) -> M:
    """Copy of `model` whose layer `layer_id` always outputs 0 in `dims`; shapes are unchanged.

    Zeroes the producer Linear's output rows (weights and bias entries) and the consumer
    Linear's input columns for those dims (see the module docstring for which Linears).
    """
    nb = _find_neighbours(model, layer_id)
    dims = check_indices(dims, 'ablate: dims', nb.width, layer_id)

    ablated = copy.deepcopy(model)
    producer = get_layer(ablated, nb.producer_name)
    index = torch.tensor(dims, dtype=torch.long, device=producer.weight.device)
    with torch.no_grad():
        producer.weight.index_fill_(0, index, 0.0)  # [out, in]: rows
        if producer.bias is not None:
            producer.bias.index_fill_(0, index, 0.0)
        if nb.consumer_name is not None:
            get_layer(ablated, nb.consumer_name).weight.index_fill_(1, index, 0.0)  # [out, in]: columns
    log.debug('ablated dims %s of %r (rows of %r, columns of %r)', dims, layer_id, nb.producer_name, nb.consumer_name)
    return ablated


def prune(model: M, layer_id: str, dims: Iterable[int]) -> M:
    """Copy of `model` with `dims` removed from layer `layer_id`'s output: that layer gets narrower.

    Replaces the producer Linear by one without those output rows and the consumer Linear by one
    without those input columns. Equivalent to `ablate` up to dropping the zeros, as long as the
    layers in between treat a zero channel as absent (true for L2Norm). If the model has a
    `k_bottleneck` attribute and the pruned layer is its `bottleneck`, the attribute is updated.
    """
    nb = _find_neighbours(model, layer_id)
    dims = check_indices(dims, 'prune: dims', nb.width, layer_id)
    removed = set(dims)
    keep = [d for d in range(nb.width) if d not in removed]
    if not keep:
        raise ValueError(
            f'prune: dims remove all {nb.width} dimensions of layer {layer_id!r}; expected at least one kept'
        )

    prunes_bottleneck = (
        hasattr(model, 'k_bottleneck')
        and 'bottleneck' in dict(model.named_modules())
        and _find_neighbours(model, 'bottleneck').producer_name == nb.producer_name
    )

    pruned = copy.deepcopy(model)
    producer = get_layer(pruned, nb.producer_name)
    index = torch.tensor(keep, dtype=torch.long, device=producer.weight.device)
    _replace_module(pruned, nb.producer_name, _select_linear(producer, rows=index))
    if nb.consumer_name is not None:
        consumer = get_layer(pruned, nb.consumer_name)
        _replace_module(pruned, nb.consumer_name, _select_linear(consumer, columns=index))
    if prunes_bottleneck:
        pruned.k_bottleneck = len(keep)
    log.debug('pruned dims %s of %r: width %d → %d', dims, layer_id, nb.width, len(keep))
    return pruned


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
