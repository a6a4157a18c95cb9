"""Where models train: `--device auto|cpu|cuda` (and `device=` in the API) to a torch device name.

CPU is the default everywhere, so that a run's figures do not depend on whether a GPU happens to
be present. A GPU computes the same things in another order, so its figures differ from CPU's in
the last digits; a run on another device than the CPU records it (in results.json and in the
directory's fingerprint), and a run directory is never continued on another device.
"""

from __future__ import annotations

from typing import Any

import torch

from ex_color.config import ConfigError

DEVICES = ('auto', 'cpu', 'cuda')
"""What `--device` accepts ('cuda:N' names one GPU among several)."""


def resolve_device(device: str | torch.device) -> str:
    """'auto' → 'cuda' when PyTorch sees a GPU, else 'cpu'; 'cuda' or 'cuda:N' checked; a one-line ConfigError
    for a name that is not a device, or for a GPU that is not there."""
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise ConfigError(
            f'--device: {device!r} is not a device name; expected one of {", ".join(DEVICES)} (or cuda:N)'
        )
    if device == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if device == 'cpu':
        return 'cpu'
    number = device.removeprefix('cuda:')
    if device == 'cuda' or (device.startswith('cuda:') and number.isascii() and number.isdigit()):
        if not torch.cuda.is_available():
            raise ConfigError(f'--device {device}: PyTorch sees no CUDA GPU here; expected --device cpu or auto')
        index = int(number) if ':' in device else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f'--device {device}: only {torch.cuda.device_count()} GPU(s) here')
        return f'cuda:{index}' if index else 'cuda'  # one name per GPU: cuda:0 is cuda, as auto names it
    raise ConfigError(f'--device: {device!r} is not a device; expected one of {", ".join(DEVICES)} (or cuda:N)')


def device_fields(device: str) -> dict[str, Any]:
    """The fingerprint's and results' record of the device: nothing for the CPU (so CPU runs stay as they were)."""
    return {} if device == 'cpu' else {'device': device}


__all__ = ['DEVICES', 'device_fields', 'resolve_device']
