"""Directories ex-color writes into: claimed with a manifest, guarded by a lock.

A run, sweep or comparison directory starts with `manifest.json`, written before anything
else. It says what the directory holds (`kind`: run, sweep or compare) and the experiment's fingerprint:
the resolved config, the dopesheet's SHA-256, and for a run its seed, engine and steps.
Coming back to a directory (`--resume`, a rerun of a sweep, `ex-color report`) checks the
fingerprint first; a mismatch names what differs and touches nothing.

`--out` must be missing, empty, or a directory this experiment already claimed. Anything
else — a file, someone's project folder, an experiment directory, a run of another
experiment — is refused before a byte is written.

`lock(directory)` takes an advisory `flock` on `<directory>/.lock` for as long as work
goes on, so a second writer is refused. The kernel drops the lock when its process dies,
so a lock file left by a crashed run is never in the way.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ex_color.files import sha256_of, write_atomic

MANIFEST_FILE = 'manifest.json'
LOCK_FILE = '.lock'
MANIFEST_FORMAT = 1


class DirectoryError(ValueError):
    """A directory ex-color may not write into, or one that holds something else."""


def fingerprint(config: dict[str, Any], dopesheet: bytes, **fields: Any) -> dict[str, Any]:
    """What identifies the work in a directory: the resolved config, the dopesheet's hash and `fields`."""
    return {'config': config, 'dopesheet_sha256': hashlib.sha256(dopesheet).hexdigest(), **fields}


def claim(directory: Path, kind: str, identity: dict[str, Any], *, write: bool = True) -> None:
    """Make `directory` a `kind` directory of `identity`, or check that it already is one.

    Raises DirectoryError (nothing written) when the path is not a directory we may use,
    or holds other work. With `write=False` it only checks, so that work which may still
    fail to start (e.g. connecting to a cluster) leaves no trace.
    """
    try:
        check_writable_path(directory)
        if (directory / MANIFEST_FILE).exists():
            try:
                check_manifest(directory, kind, identity)
            except DirectoryError as e:
                raise DirectoryError(
                    f'{e}; nothing was changed: choose another --out or rerun with the same settings'
                ) from None
            return
        if directory.exists() and any(directory.iterdir()):
            raise DirectoryError(
                f'{directory} is not empty and is not an ex-color {kind} directory (no {MANIFEST_FILE}); '
                'choose a new or empty --out'
            )
        if write:
            write_manifest(directory, kind, identity)
    except OSError as e:
        raise DirectoryError(f'{_short(directory)}: cannot write there ({e.strerror}); choose another --out') from None


def write_manifest(directory: Path, kind: str, identity: dict[str, Any]) -> None:
    """Write (or replace) the manifest of a directory this process owns."""
    directory.mkdir(parents=True, exist_ok=True)
    document = {'format': MANIFEST_FORMAT, 'kind': kind, **identity}
    write_atomic(directory / MANIFEST_FILE, json.dumps(document, indent=2) + '\n')


RECORDED_UNLESS_DEFAULT = {'device': 'cpu', 'compiled': False}
"""Fingerprint keys written only when not their default (a device other than the CPU, a compiled step), so that
older directories keep their fingerprints."""


def check_manifest(directory: Path, kind: str, identity: dict[str, Any] | None = None) -> dict[str, Any]:
    """The directory's manifest, checked to be of `kind` (and `identity`, if given); DirectoryError otherwise."""
    manifest = read_manifest(directory)
    if manifest.get('kind') != kind:
        raise DirectoryError(f'{directory} holds a {manifest.get("kind")}, not a {kind}')
    if identity is not None:
        # A key recorded only away from its default (a device other than the CPU) must match when either side has it.
        identity = {**{k: v for k, v in RECORDED_UNLESS_DEFAULT.items() if k in manifest}, **identity}
        differs = [key for key in identity if manifest.get(key, RECORDED_UNLESS_DEFAULT.get(key)) != identity[key]]
        if differs:
            raise DirectoryError(f'{directory} holds a {kind} {describe_difference(manifest, identity, differs)}')
    return manifest


def read_manifest(directory: Path) -> dict[str, Any]:
    """The directory's manifest as written by this ex-color's format; DirectoryError otherwise."""
    path = directory / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise DirectoryError(f'{directory}: no {MANIFEST_FILE}; expected a directory ex-color wrote') from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DirectoryError(f'{path}: damaged ({e}); expected the manifest ex-color wrote') from None
    found = manifest.get('format') if isinstance(manifest, dict) else None
    if isinstance(found, int) and not isinstance(found, bool) and found > MANIFEST_FORMAT:
        raise DirectoryError(
            f'{path}: written by a newer ex-color (manifest format {found}; this one reads format '
            f'{MANIFEST_FORMAT}); upgrade ex-color to use this directory'
        )
    if found != MANIFEST_FORMAT:
        raise DirectoryError(f'{path}: not a manifest of this ex-color (format {MANIFEST_FORMAT})')
    return manifest


def record_files(directory: Path, names: list[str]) -> None:
    """Add the SHA-256 of each named file to the manifest (`sha256`), after writing them: whoever draws from the
    directory later can tell that the files are the ones written together (`check_recorded_files`)."""
    manifest = read_manifest(directory)
    manifest['sha256'] = {**manifest.get('sha256', {}), **{name: sha256_of(directory / name) for name in names}}
    write_atomic(directory / MANIFEST_FILE, json.dumps(manifest, indent=2) + '\n')


def check_recorded_files(directory: Path, names: list[str]) -> None:
    """Each named file whose SHA-256 the manifest recorded still has it; DirectoryError naming the first that does
    not. A file the manifest has no record of (written by an older ex-color, or a directory without a manifest) is
    not checked."""
    if not (directory / MANIFEST_FILE).exists():
        return
    recorded = read_manifest(directory).get('sha256', {})
    for name in names:
        if name in recorded and (directory / name).is_file() and sha256_of(directory / name) != recorded[name]:
            raise DirectoryError(
                f'{directory / name}: not the file that was written with this directory (its SHA-256 differs from '
                f'the one {MANIFEST_FILE} recorded: replaced or copied from elsewhere, or the command was stopped '
                'while writing)'
            )


def describe_difference(manifest: dict[str, Any], identity: dict[str, Any], keys: list[str]) -> str:
    """'with seed 0, not 1' and the like: what differs between a manifest and the work asked for."""
    parts = []
    for key in keys:
        before, now = manifest.get(key), identity[key]
        if key == 'config' and isinstance(before, dict) and isinstance(now, dict):
            fields = _differing_fields(before, now)
            verb = 'differs' if len(fields) == 1 else 'differ'
            parts.append(f'of another experiment config ({", ".join(fields[:4]) or "its sections"} {verb})')
        elif key == 'dopesheet_sha256':
            parts.append('with another dopesheet (its contents differ)')
        elif key == 'corpus_sha256':
            parts.append('of another corpus (the text it trained on has changed)')
        elif key == 'compiled':
            compiled = manifest.get(key, RECORDED_UNLESS_DEFAULT[key])
            parts.append('trained compiled (add --compile)' if compiled else 'trained eager (add --no-compile)')
        elif isinstance(before, dict) and isinstance(now, dict):  # e.g. a search's [search] table
            fields = _differing_fields(before, now, f'{key}.')
            changes = [f'{field} {_at(before, field)!r}, now {_at(now, field)!r}' for field in fields[:3]]
            parts.append(f'with another [{key}] table ({"; ".join(changes) or "its entries differ"})')
        else:
            parts.append(f'with {key} {before!r}, not {now!r}')
    return ' and '.join(parts)


def _differing_fields(before: Any, now: Any, prefix: str = '') -> list[str]:
    """The dotted paths (list entries by index) where two JSON-like values differ."""
    if isinstance(before, dict) and isinstance(now, dict):
        fields = []
        for key in dict.fromkeys([*before, *now]):
            fields += _differing_fields(before.get(key), now.get(key), f'{prefix}{key}.')
        return fields
    if isinstance(before, list) and isinstance(now, list) and len(before) == len(now):
        pairs = enumerate(zip(before, now, strict=True))
        return [field for i, (b, n) in pairs for field in _differing_fields(b, n, f'{prefix}{i}.')]
    return [] if before == now else [prefix.rstrip('.')]


def _at(value: Any, field: str) -> Any:
    """The entry of a JSON-like value at a dotted path from `_differing_fields` (its first part, the key, dropped)."""
    for part in field.split('.')[1:]:
        if isinstance(value, list):
            value = value[int(part)]
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


def _short(directory: Path) -> str:
    text = str(directory)
    return text if len(text) <= 80 else text[:77] + '…'


def check_writable_path(directory: Path) -> None:
    """Refuse paths that cannot be a directory of ours: a file, under a file, unwritable, too long."""
    if any(len(os.fsencode(part)) > 255 for part in directory.parts) or len(os.fsencode(str(directory))) > 4000:
        raise DirectoryError(f'{_short(directory)}: path too long; choose a shorter --out')
    if directory.exists() and not directory.is_dir():
        raise DirectoryError(f'{directory} is a file, not a directory; choose another --out')
    parent = next((p for p in (directory, *directory.parents) if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise DirectoryError(f'{directory}: {parent} is a file; choose another --out')
    if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
        raise DirectoryError(f'{directory}: {parent} is not writable; choose another --out')


@contextlib.contextmanager
def lock(directory: Path) -> Iterator[None]:
    """Hold `<directory>/.lock` (an advisory flock) while the block runs; DirectoryError if another process does.

    The file is removed on release. Between opening and locking it, a releasing holder may
    have removed it; then the lock is on a file nobody else can see, so we open it again.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_FILE
    while True:
        handle = open(path, 'a')  # noqa: SIM115 (held open for the lock's lifetime)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            handle.close()
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise DirectoryError(
                f'{directory} is being written by another ex-color process; '
                'wait for it to finish or choose another --out'
            ) from None
        try:
            if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        handle.close()
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        handle.close()  # releases the flock


__all__ = [
    'DirectoryError',
    'check_manifest',
    'check_recorded_files',
    'claim',
    'fingerprint',
    'lock',
    'read_manifest',
    'record_files',
    'write_manifest',
]
