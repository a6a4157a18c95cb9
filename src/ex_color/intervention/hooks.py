"""Apply interventions to a model's layers with forward hooks, for the duration of a `with` block."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from ex_color.intervention.config import InterventionConfig
from ex_color.model import get_layer

__all__ = ['apply_interventions']

log = logging.getLogger(__name__)


def _replace_output_hook(apply: Callable[[Tensor], Tensor], layer_name: str) -> Callable[..., Tensor]:
    def hook(module: nn.Module, args: Any, output: Any) -> Tensor:
        if not isinstance(output, Tensor):
            raise TypeError(
                f'cannot intervene on layer {layer_name!r}: its output is {type(output).__name__}, not a Tensor'
            )
        return apply(output)

    return hook


@contextmanager
def apply_interventions(model: nn.Module, interventions: Iterable[InterventionConfig]) -> Iterator[nn.Module]:
    """Within the block, each intervention's layers output `intervention.apply(output)`.

    Hooks are registered in list order, so several interventions on one layer compose in that
    order. All layer names are checked before any hook is registered, and every hook is removed
    on exit, also when the block raises. Yields `model` itself.
    """
    targets = [
        (layer_name, get_layer(model, layer_name), intervention.apply)
        for intervention in interventions
        for layer_name in intervention.layer_affinities
    ]
    handles: list[RemovableHandle] = []
    try:
        for layer_name, layer, apply in targets:
            handles.append(layer.register_forward_hook(_replace_output_hook(apply, layer_name)))
            log.debug('intervention %r on layer %r', apply, layer_name)
        yield model
    finally:
        for handle in handles:
            handle.remove()
