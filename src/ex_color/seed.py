"""Deterministic mode: seed every RNG and make PyTorch pick deterministic kernels."""

from __future__ import annotations

import logging
import operator
import os

import torch
from lightning.fabric.utilities.seed import seed_everything

__all__ = ['set_deterministic_mode']

log = logging.getLogger(__name__)


def set_deterministic_mode(seed: int) -> None:
    """Seed Python `random`, numpy and torch (and DataLoader workers), and require deterministic algorithms.

    Same config + same seed → same numbers. Ops without a deterministic implementation raise
    an error instead of silently varying. Sets `CUBLAS_WORKSPACE_CONFIG` (needed for
    deterministic cuBLAS on CUDA ≥ 10.2; must be set before the first cuBLAS call).
    """
    if isinstance(seed, bool):
        raise TypeError(f'set_deterministic_mode: seed must be an int, got {seed!r}')
    try:
        seed = operator.index(seed)  # accepts numpy integers too
    except TypeError:
        raise TypeError(f'set_deterministic_mode: seed must be an int, got {seed!r}') from None
    seed_everything(seed, workers=True)
    os.environ['CUBLAS_WORKSPACE_CONFIG'] = ':4096:8'
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    log.info('PyTorch set to deterministic mode')
