"""Claiming and locking directories: refusing what is not ours, naming what differs, one writer at a time."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ex_color.workdir import LOCK_FILE, MANIFEST_FILE, DirectoryError, check_manifest, claim, fingerprint, lock

IDENTITY = fingerprint({'model': {'k': 5}}, b'STEP,lr\n0,1\n', seed=0, steps=20)


def test_claim_writes_the_manifest_first_and_accepts_the_same_work_again(tmp_path):
    run = tmp_path / 'new' / 'run'
    claim(run, 'run', IDENTITY)
    assert sorted(p.name for p in run.iterdir()) == [MANIFEST_FILE]
    manifest = json.loads((run / MANIFEST_FILE).read_text())
    assert manifest['kind'] == 'run' and manifest['seed'] == 0 and len(manifest['dopesheet_sha256']) == 64
    claim(run, 'run', IDENTITY)  # the same work: fine
    assert check_manifest(run, 'run', IDENTITY)['steps'] == 20


@pytest.mark.parametrize(
    ('other', 'says'),
    [
        (IDENTITY | {'seed': 1}, 'with seed 0, not 1'),
        (IDENTITY | {'steps': 30}, 'with steps 20, not 30'),
        (fingerprint({'model': {'k': 4}}, b'STEP,lr\n0,1\n', seed=0, steps=20), r'config \(model\.k differs\)'),
        (fingerprint({'model': {'k': 5}}, b'STEP,lr\n0,2\n', seed=0, steps=20), 'another dopesheet'),
        (
            IDENTITY | {'search': {'parameters': [{'low': 0.1, 'high': 2.0}], 'seed': 0}},
            r'another \[search\] table \(search\.parameters\.0\.high 1\.0, now 2\.0\)',
        ),
    ],
)
def test_other_work_is_refused_naming_what_differs_and_nothing_changes(tmp_path, other, says):
    searched = {'search': {'parameters': [{'low': 0.1, 'high': 1.0}], 'seed': 0}}
    claim(tmp_path / 'run', 'run', IDENTITY | searched if 'search' in other else IDENTITY)
    before = (tmp_path / 'run' / MANIFEST_FILE).read_bytes()
    with pytest.raises(DirectoryError, match=says):
        claim(tmp_path / 'run', 'run', other)
    assert (tmp_path / 'run' / MANIFEST_FILE).read_bytes() == before


def test_a_directory_of_another_kind_or_of_someone_else_is_refused(tmp_path):
    claim(tmp_path / 'sweep', 'sweep', IDENTITY)
    with pytest.raises(DirectoryError, match='holds a sweep, not a run'):
        claim(tmp_path / 'sweep', 'run', IDENTITY)
    (tmp_path / 'mine').mkdir()
    (tmp_path / 'mine' / 'notes.txt').write_text('keep me')
    with pytest.raises(DirectoryError, match='is not empty and is not an ex-color run directory'):
        claim(tmp_path / 'mine', 'run', IDENTITY)
    assert sorted(p.name for p in (tmp_path / 'mine').iterdir()) == ['notes.txt']


def _hold_lock(directory: Path) -> subprocess.Popen[str]:
    """Another process that holds the directory's lock until its stdin closes."""
    code = (
        'import sys; from pathlib import Path; from ex_color.workdir import lock\n'
        f'with lock(Path({str(directory)!r})):\n    print("locked", flush=True); sys.stdin.read()\n'
    )
    holder = subprocess.Popen([sys.executable, '-c', code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == 'locked'
    return holder


def test_a_second_writer_is_refused_until_the_first_lets_go(tmp_path):
    holder = _hold_lock(tmp_path)
    try:
        with pytest.raises(DirectoryError, match='is being written by another ex-color process'), lock(tmp_path):
            pass
    finally:
        holder.communicate('')
    with lock(tmp_path):  # released with its process
        assert (tmp_path / LOCK_FILE).exists()
    assert not (tmp_path / LOCK_FILE).exists()  # and removed on release


def test_a_lock_file_left_by_a_dead_process_is_not_in_the_way(tmp_path):
    holder = _hold_lock(tmp_path)
    holder.kill()  # dies holding the lock: the file stays, the kernel drops the flock
    holder.wait()
    assert (tmp_path / LOCK_FILE).exists()
    started = time.monotonic()
    with lock(tmp_path):
        pass
    assert time.monotonic() - started < 5
