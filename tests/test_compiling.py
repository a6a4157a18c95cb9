"""`--compile/--no-compile`: each command's default, the record a compiled run leaves, and the promises that hold
within the compiled mode through the commands (a resumed directory keeps its mode, a sweep row equals the run).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from ex_color.compiling import COMPILED_BY_DEFAULT, ENVIRONMENT, resolve_compile
from ex_color.config import ConfigError

from .cli import run_cli
from .small_ex29 import EX29, set_arguments

STEPS = 30


@pytest.mark.parametrize('command', sorted(COMPILED_BY_DEFAULT))
def test_the_flag_wins_then_the_environment_then_the_commands_default(command: str, monkeypatch):
    monkeypatch.delenv(ENVIRONMENT, raising=False)
    assert resolve_compile(None, command) is COMPILED_BY_DEFAULT[command]
    assert COMPILED_BY_DEFAULT == {'run': False, 'sweep': True, 'compare': True, 'search': True}
    for value, expected in (('1', True), ('0', False)):
        monkeypatch.setenv(ENVIRONMENT, value)
        assert resolve_compile(None, command) is expected
        assert resolve_compile(not expected, command) is (not expected)
    monkeypatch.setenv(ENVIRONMENT, 'yes')
    with pytest.raises(ConfigError, match="EX_COLOR_COMPILE='yes': expected 1"):
        resolve_compile(None, command)


@pytest.fixture(scope='module')
def compiled_run(tmp_path_factory):
    """A small Ex 2.9's seed 1 (`tests.small_ex29`), trained compiled for a few steps through the command line."""
    out = tmp_path_factory.mktemp('compiled') / 'run'
    args = ['run', EX29, *set_arguments(), '--seed', '1', '--steps', STEPS, '--out', out, '--no-report', '--compile']
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    return out


def test_a_compiled_run_records_its_mode_and_keeps_it(compiled_run: Path, one_thread):
    results = json.loads((compiled_run / 'results.json').read_text())
    assert results['compiled'] is True and results['compile_threads'] >= 1
    manifest = (compiled_run / 'manifest.json').read_text()
    assert '"compiled": true' in manifest
    proc = run_cli('run', EX29, *set_arguments(), '--seed', '1', '--steps', STEPS, '--out', compiled_run, '--resume')
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert 'compiled' in proc.stderr.strip().splitlines()[-1]


def test_a_compiled_sweeps_row_equals_the_compiled_run(compiled_run: Path, tmp_path: Path, one_thread):
    out = tmp_path / 'sweep'
    args = ['--seeds', '0-2', '--steps', STEPS, '--out', out, '--no-report', '--compile']
    proc = run_cli('sweep', EX29, *set_arguments(), *args)
    assert proc.returncode == 0, proc.stderr
    assert '"compiled": true' in (out / 'manifest.json').read_text()
    row = pd.read_csv(out / 'sweep.csv').set_index('seed').loc[1]
    results = json.loads((compiled_run / 'results.json').read_text())
    if results['compile_threads'] != torch.get_num_threads():
        pytest.skip('the run compiled for other threads than the sweep')
    ours = torch.load(out / 'seeds' / 'seed-1.pt', weights_only=False)['model']
    theirs = torch.load(compiled_run / 'model.pt', weights_only=False)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    for evaluation in ('baseline', 'ablated'):
        for figure in ('mse_median', 'selectivity_r2'):
            expected = results['evaluations'][evaluation][figure]
            assert row[f'{evaluation}_{figure}'] == pytest.approx(expected, rel=1e-12), (evaluation, figure)
