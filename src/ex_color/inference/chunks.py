"""Inputs as rows `[N, F]` on a model's device, split into the chunks `infer` and `infer_versions` run."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ['INFER_BATCH', 'as_rows', 'split_rows']

INFER_BATCH = 65536
"""Rows per forward pass: large enough to amortise Python, small enough that a chunk's
activations stay in the CPU's cache (2.5× faster on the error cube than 262,144 rows)."""


def as_rows(model: nn.Module, x: Tensor | np.ndarray, caller: str) -> tuple[Tensor, Tensor]:
    """`x` `[..., F]` as rows `[N, F]` on the model's device and in its dtype; returns (inputs, rows)."""
    inputs = torch.as_tensor(x)
    if inputs.ndim < 1:
        raise ValueError(f'{caller}: x must have shape [..., features], got a scalar {tuple(inputs.shape)}')
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else inputs.device
    dtype = parameter.dtype if parameter is not None else torch.get_default_dtype()
    return inputs, inputs.reshape(-1, inputs.shape[-1]).to(device=device, dtype=dtype)


def split_rows(rows: Tensor, batch_size: int, caller: str) -> tuple[Tensor, ...]:
    """Chunks of at most `batch_size` rows; an empty `rows` is one empty chunk, so shapes still come out right."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f'{caller}: batch_size must be a positive integer, got {batch_size!r}')
    return rows.split(batch_size) if rows.shape[0] else (rows,)
