"""Inference with interventions and activation capture: a Lightning module, and plain batched `infer`.

Both apply interventions with forward hooks (`apply_interventions`) and capture the outputs of
named layers *after* any intervention on them, flattened to `[N, D]`, detached and on the CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from ex_color.inference.chunks import INFER_BATCH, as_rows, split_rows
from ex_color.intervention.config import InterventionConfig
from ex_color.intervention.hooks import apply_interventions
from ex_color.model import forward_hooks

__all__ = ['INFER_BATCH', 'InferenceModule', 'InferenceResult', 'capture_activations', 'infer']

log = logging.getLogger(__name__)


@contextmanager
def capture_activations(
    model: nn.Module, layer_names: Iterable[str], store: dict[str, list[Tensor]] | None = None
) -> Iterator[dict[str, list[Tensor]]]:
    """Within the block, append each named layer's output, as `[N, D]` on the CPU, to `store[name]`.

    Yields the store (a new dict of empty lists unless one is given). Enter it after
    `apply_interventions` to capture post-intervention outputs: hooks run in registration order.
    """
    names = list(dict.fromkeys(layer_names))
    captured = store if store is not None else {}
    for name in names:
        captured.setdefault(name, [])
    with forward_hooks(model, names, lambda name, output: captured[name].append(_flat_copy(name, output))):
        yield captured


def _flat_copy(name: str, output: Any) -> Tensor:
    if not isinstance(output, Tensor):
        raise TypeError(f'cannot capture layer {name!r}: its output is {type(output).__name__}, not a Tensor')
    # copy=True: a later in-place op (e.g. ReLU(inplace=True)) must not change what we kept.
    flat = output.detach().reshape(-1, output.shape[-1]) if output.ndim else output.detach().reshape(1, 1)
    return flat.to('cpu', copy=True)


def concat_captured(name: str, batches: Sequence[Tensor]) -> Tensor:
    if not batches:
        raise ValueError(f'nothing captured for layer {name!r} yet; run the model on some data first')
    return torch.cat(list(batches), dim=0)


class InferenceResult(NamedTuple):
    """What `infer` returns."""

    outputs: Tensor
    """Model outputs `[..., K]`, with the input's leading shape, on the input tensor's device (CPU for numpy)."""

    captured: dict[str, Tensor]
    """Post-intervention outputs of each capture layer, `[N, D]` over all N input rows, on the CPU."""


def infer(
    model: nn.Module,
    x: Tensor | np.ndarray,
    interventions: Iterable[InterventionConfig] = (),
    capture_layers: Iterable[str] = (),
    batch_size: int = INFER_BATCH,
) -> InferenceResult:
    """Run `model` on `x` `[..., F]` in a few large chunks, in eval mode, without gradients.

    For models that treat each row of F features alone (MLPs): x's leading dims are flattened
    to rows `[N, F]` and split into chunks. A model that needs more than one axis per sample
    (images `[B, C, H, W]`) should be run directly, with `apply_interventions` and
    `capture_activations`.

    No DataLoader or Trainer: the rows of x are split into chunks of `batch_size` and run on the
    model's device in its dtype. The model's train/eval mode (of every submodule) is restored
    afterwards. Accepts numpy arrays.
    """
    inputs, rows = as_rows(model, x, 'infer')  # [N, F]
    chunks = split_rows(rows, batch_size, 'infer')

    modes = {module: module.training for module in model.modules()}
    store: dict[str, list[Tensor]] = {}
    try:
        model.eval()
        with (
            torch.inference_mode(),
            apply_interventions(model, interventions),
            capture_activations(model, capture_layers, store),
        ):
            output_chunks = [model(chunk) for chunk in chunks]
    finally:
        for module, training in modes.items():
            module.training = training
    log.debug('infer: %d rows in %d chunks', rows.shape[0], len(chunks))

    # Concatenating outside inference mode gives ordinary tensors, which callers may modify in place.
    outputs = torch.cat(output_chunks, dim=0)  # [N, K]
    outputs = outputs.reshape(*inputs.shape[:-1], outputs.shape[-1]).to(inputs.device)
    captured = {name: concat_captured(name, batches) for name, batches in store.items()}
    return InferenceResult(outputs, captured)


def __getattr__(name: str) -> object:
    # InferenceModule needs Lightning, which is slow to import; load it on first use.
    if name == 'InferenceModule':
        from ex_color.inference.lightning import InferenceModule

        return InferenceModule
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
