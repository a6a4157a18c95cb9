"""Overrides (`--set`, `overrides=`): one change without editing files, validated like the file, recorded in the run."""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ex_color.config import ConfigError, load_experiment

from ..cli import assert_one_line_error, run_cli

EX29 = Path(__file__).resolve().parents[2] / 'experiments' / 'ex-2.9'


@pytest.fixture(scope='module')
def plain():
    return load_experiment(EX29)


def _column(experiment, name: str) -> np.ndarray:
    return np.array([experiment.dopesheet.value(name, t) for t in range(len(experiment.dopesheet))])


def test_a_label_value_and_a_dopesheet_cell_change_and_nothing_else(plain):
    changed = load_experiment(EX29, overrides=['labels.red.power=5', 'dopesheet.reg-anchor@1000=0.08'])
    assert changed.config.labels.red.power == 5.0
    assert plain.config.labels.red.power != 5.0
    assert changed.config.model_dump()['labels'] | {'red': None} == plain.config.model_dump()['labels'] | {'red': None}
    assert changed.config.regularizers == plain.config.regularizers
    assert changed.dopesheet.value('reg-anchor', 1000) == pytest.approx(0.08, rel=1e-12)
    assert plain.dopesheet.value('reg-anchor', 1000) == pytest.approx(0.05, rel=1e-12)
    for name in plain.dopesheet.props:
        if name != 'reg-anchor':
            assert np.array_equal(_column(changed, name), _column(plain, name)), name
    before, after = _column(plain, 'reg-anchor'), _column(changed, 'reg-anchor')
    differs = np.flatnonzero(before != after)
    # Only the ramps into and out of the edited keyframe: from the previous one (step 0) to the next (+0.9 = 2800).
    assert differs.tolist() == list(range(1, 2800))
    assert changed.overrides == ('labels.red.power=5', 'dopesheet.reg-anchor@1000=0.08')


def test_a_row_is_found_by_its_step_as_written_or_as_resolved(plain):
    written = load_experiment(EX29, overrides=['dopesheet.lr@+10=0.02'])
    resolved = load_experiment(EX29, overrides=['dopesheet.lr@10=0.02'])
    assert written.dopesheet_csv == resolved.dopesheet_csv
    assert written.dopesheet.value('lr', 10) == pytest.approx(0.02, rel=1e-12)
    assert plain.dopesheet.value('lr', 10) == pytest.approx(0.01, rel=1e-12)


def test_an_empty_value_clears_a_cell(plain):
    cleared = load_experiment(EX29, overrides=['dopesheet.reg-separate@+0.5='])
    rows = cleared.dopesheet_csv.decode().splitlines()
    assert rows[3].split(',')[4] == ''  # the '+0.5' row's reg-separate cell
    # Its neighbours now hold from step 0 (0.01) to step 1000 (0.01): constant, as the sheet says by hand.
    assert set(_column(cleared, 'reg-separate')[:1001]) == {0.01}


@settings(max_examples=10, deadline=None)
@given(st.floats(min_value=0.01, max_value=1e4, allow_nan=False, allow_infinity=False))
def test_a_value_is_read_as_toml_writes_it(power):
    changed = load_experiment(EX29, overrides=[f'labels.red.power={power!r}'])
    assert changed.config.labels.red.power == power


BAD = {
    'labels.redd.power=5': '(did you mean red?); it has',
    'labels.red.powerr=5': 'labels.red.powerr: unknown key',
    'labels.red.power="high"': 'labels.red.power: Input should be a valid number',
    'regularizers.9.name=x': 'regularizers.9: ',
    'dopesheet.reg-anchr@1000=0.1': "no property column 'reg-anchr'",
    'dopesheet.reg-anchor@999=0.1': "no row with STEP '999'",
    'dopesheet.reg-anchor@1000=abc': "column 'reg-anchor': expected a number",
    'noequals': 'expected PATH=VALUE',
    'dopesheet.lr=0.1': 'expected dopesheet.COLUMN@STEP=VALUE',
    'dopesheet.reg-planar-v@0=1': 'that column is declared unused (experiment.unused_columns)',
}


@pytest.mark.parametrize('override', list(BAD))
def test_a_bad_override_is_one_line_naming_it(override):
    with pytest.raises(ConfigError) as error:
        load_experiment(EX29, overrides=[override])
    message = str(error.value)
    assert '\n' not in message and BAD[override] in message, message
    assert f'--set {override}' in message or f'--set {override!r}' in message, message


def test_the_command_line_records_the_change_and_refuses_to_mix_it_with_other_work(tmp_path):
    out = tmp_path / 'run'
    sets = ['--set', 'labels.red.power=5', '--set', 'dopesheet.reg-anchor@1000=0.08']
    proc = run_cli('run', EX29, '--steps', 20, '--out', out, '--no-report', *sets, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    config = tomllib.loads((out / 'config.toml').read_text())
    assert config['labels']['red']['power'] == 5.0
    sheet = (out / 'dopesheet.csv').read_bytes()
    assert b'1000,,,0.1,0.01,0.08,' in sheet
    manifest = json.loads((out / 'manifest.json').read_text())
    assert manifest['dopesheet_sha256'] == hashlib.sha256(sheet).hexdigest()
    assert manifest['config']['labels']['red']['power'] == 5.0

    again = run_cli('run', EX29, '--steps', 20, '--out', out, '--no-report', '--resume', cwd=tmp_path)
    line = assert_one_line_error(again)
    assert 'labels.red.power' in line and 'another dopesheet' in line, line
    bad = run_cli('run', EX29, '--steps', 20, '--out', tmp_path / 'b', '--set', 'labels.bleu.power=1', cwd=tmp_path)
    assert '--set labels.bleu.power=1: labels.bleu: no such table' in assert_one_line_error(bad)
    assert not (tmp_path / 'b').exists()


def test_a_changed_experiment_has_default_directories_of_its_own():
    """`make run` then the README's cell with overrides: the cell must not meet Ex 2.9's own run directory."""
    from ex_color.compare import default_compare_dir
    from ex_color.experiment import default_run_dir
    from ex_color.sweep import default_sweep_dir

    plain = load_experiment(EX29)
    changed = load_experiment(EX29, overrides=['labels.red.power=5'])
    other = load_experiment(EX29, overrides=['labels.red.power=6'])
    assert default_run_dir(plain, 0) == Path('runs/ex-2.9/seed-0')
    digest = hashlib.sha256(b'labels.red.power=5').hexdigest()[:8]
    assert default_run_dir(changed, 0) == Path(f'runs/ex-2.9+set-{digest}/seed-0')
    assert default_run_dir(other, 0) != default_run_dir(changed, 0)
    assert default_sweep_dir(changed).parent == default_compare_dir(changed).parent == Path(f'runs/ex-2.9+set-{digest}')


def test_one_string_is_one_override_and_odd_values_are_one_line():
    assert load_experiment(EX29, overrides='labels.red.power=5').config.labels.red.power == 5
    with pytest.raises(ConfigError, match='expected a string PATH=VALUE'):
        load_experiment(EX29, overrides=[5])
    with pytest.raises(ConfigError, match='a line break in an override'):
        load_experiment(EX29, overrides=['labels.red.power=5\nlabels.red.scale=0.9'])


def test_a_problem_an_override_makes_names_the_override():
    with pytest.raises(ConfigError, match=r'with --set evaluations\.0\.dims=\[7\]: evaluations\.0\.dims'):
        load_experiment(EX29, overrides=['evaluations.0.dims=[7]'])
    with pytest.raises(ConfigError, match=r'^--set dopesheet\.lr@0=-1: .*negative'):
        load_experiment(EX29, overrides=['dopesheet.lr@0=-1'])


def test_two_names_for_one_cell_are_refused():
    with pytest.raises(ConfigError, match=r'lr@10 and lr@\+10 are one cell; expected it set once'):
        load_experiment(EX29, overrides=['dopesheet.lr@+10=0.02', 'dopesheet.lr@10=0.03'])
