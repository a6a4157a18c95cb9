"""Writing files so that a crash never leaves half of one behind."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import zipfile
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


def sha256_of(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


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
        raise DamagedFileError(f'{path}: {_why_unreadable(path, e)}; remove it to redo the work it held') from None


def _why_unreadable(path: Path, error: Exception) -> str:
    """What is wrong with a file torch.load failed on, in words (torch's own messages name its internals)."""
    if path.is_dir():
        return 'a directory, not a file'
    if not path.exists():
        return 'no such file'
    size = path.stat().st_size
    if size == 0:
        return 'empty (0 bytes): it was never completely written'
    with open(path, 'rb') as f:
        head = f.read(4)
    if head != b'PK\x03\x04':  # torch.save writes a zip archive
        return f'not a file torch.save wrote ({size} bytes that do not start as its archives do)'
    if not zipfile.is_zipfile(path):
        return f'truncated: its {size} bytes end before the end of the archive torch.save wrote'
    detail = str(error).splitlines()[0] if str(error) else ''
    detail = detail if len(detail) <= 120 else detail[:119] + '…'
    return f'damaged inside its archive (torch: {type(error).__name__}{": " + detail if detail else ""})'
