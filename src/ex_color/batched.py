"""Batched products whose per-member results do not depend on the batch's size.

An ensemble of S models must train each member exactly as if it were alone. On CPU a
batch of one matrix product goes through a different kernel from a batch of several,
and the two can round differently; batches of two or more agree slice by slice. So a
lone product is computed as part of a pair.
"""

from __future__ import annotations

import torch
from torch import Tensor


def member_exact_bmm(a: Tensor, b: Tensor) -> Tensor:
    """`a @ b` over leading dims: `[..., n, k] @ [..., k, m] → [..., n, m]`, each slice as if alone."""
    if a.ndim != 3 or b.ndim != 3:
        lead = a.shape[:-2]
        out = member_exact_bmm(a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:]))
        return out.reshape(*lead, *out.shape[-2:])
    if a.shape[0] == 1:
        return torch.bmm(a.expand(2, -1, -1), b.expand(2, -1, -1))[:1]
    return torch.bmm(a, b)
