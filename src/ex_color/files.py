"""Writing files so that a crash never leaves half of one behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write `data` to `path` so readers see the old file or the new one, never half of one.

    The bytes go to a temporary file in the same directory, which then replaces `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode('utf-8')
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not e.filename:  # e.g. ENOSPC from write(): say which file
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class DamagedFileError(ValueError):
    """A file ex-color wrote that can no longer be read (truncated, overwritten, not a file)."""


def read_torch(path: str | Path, *, weights_only: bool = False) -> Any:
    """`torch.load` of a file ex-color wrote; a damaged one is one DamagedFileError line naming it."""
    import torch

    path = Path(path)
    try:
        return torch.load(path, weights_only=weights_only)
    except Exception as e:  # torch.load raises many kinds: EOFError, UnpicklingError, RuntimeError, IsADirectoryError…
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DamagedFileError(f'{path}: damaged ({reason[:200]}); remove it to redo the work it held') from None
