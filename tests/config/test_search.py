"""The [search] table: checked against the experiment at load, one line per mistake; a trial's values are overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from ex_color.config import ConfigError, load_experiment
from ex_color.config.search import trial_overrides
from tests.searching import ex29_searching

from ..cli import assert_one_line_error, ex_color, run_cli

SEARCH = """
[search]
maximise = ["ablated_selectivity_r2"]
minimise = ["val_recon"]
constraints = ["ablated_red >= 0.1"]
seeds_per_trial = 2
validate_seeds = [100, 101, 102]

[[search.parameters]]
kind = "cell"
column = "reg-anchor"
step = "1000"
low = 0.01
high = 1.0
log = true

[[search.parameters]]
kind = "column-scale"
column = "reg-anti-anchor"
low = 0.1
high = 10.0
log = true

[[search.parameters]]
kind = "keyframe-step"
step = "1000"
low = 600
high = 2000

[[search.parameters]]
kind = "label-power"
label = "red"
name = "red-power"
low = 2.0
high = 20.0
"""


def experiment_dir(tmp_path: Path, search: str = SEARCH) -> Path:
    return ex29_searching(tmp_path / 'exp', search)


def test_a_search_table_loads_and_names_each_parameter(tmp_path):
    search = load_experiment(experiment_dir(tmp_path)).config.search
    assert [p.heading for p in search.parameters] == ['reg-anchor@1000', 'reg-anti-anchor*', 'step@1000', 'red-power']
    assert search.seeds_per_trial == 2 and search.validate_seeds == [100, 101, 102]


def test_a_trials_values_change_exactly_what_they_name(tmp_path):
    directory = experiment_dir(tmp_path)
    base = load_experiment(directory)
    values = {'reg-anchor@1000': 0.3, 'reg-anti-anchor*': 2.5, 'step@1000': 1200.4, 'red-power': 7.0}
    trial = load_experiment(directory, overrides=trial_overrides(base.config.search, base.dopesheet, values))

    steps = [k.step for k in trial.dopesheet.keyframes]
    assert 1200 in steps and 1000 not in steps  # the keyframe moved, rounded to a whole step
    assert trial.dopesheet.value('reg-anchor', 1200) == pytest.approx(0.3)  # its cell, at its new step
    assert trial.config.labels.red.power == 7.0
    before = {k.step: k.values['reg-anti-anchor'] for k in base.dopesheet.keyframes if 'reg-anti-anchor' in k.values}
    after = {k.step: k.values['reg-anti-anchor'] for k in trial.dopesheet.keyframes if 'reg-anti-anchor' in k.values}
    assert list(after.values()) == pytest.approx([v * 2.5 for v in before.values()])  # every keyed value, scaled
    # Everything else is as it was: every other keyed value, row by row, and the length.
    assert len(trial.dopesheet) == len(base.dopesheet)
    for was, now in zip(base.dopesheet.keyframes, trial.dopesheet.keyframes, strict=True):
        changed = {'reg-anti-anchor'} | ({'reg-anchor'} if was.step == 1000 else set())
        assert {c: v for c, v in now.values.items() if c not in changed} == {
            c: v for c, v in was.values.items() if c not in changed
        }


BAD = {
    'column that does not exist': (('column = "reg-anchor"', 'column = "reg-anchr"'), 'search.parameters.0.column'),
    'column nothing reads': (('column = "reg-anchor"', 'column = "reg-planar-v"'), 'not a column the training reads'),
    'row that does not exist': (
        ('step = "1000"\nlow = 0.01', 'step = "999"\nlow = 0.01'),
        "no keyframe with STEP '999'",
    ),
    'low above high': (('low = 0.01\nhigh = 1.0', 'low = 2.0\nhigh = 1.0'), 'search.parameters.0.high: 1 is not above'),
    'log with a bound of 0': (('low = 0.01\nhigh = 1.0', 'low = 0.0\nhigh = 1.0'), 'with log = true; expected bounds'),
    'objective no run produces': (('"ablated_selectivity_r2"]', '"ablated_selectivty_r2"]'), 'did you mean'),
    'parameter given twice': (
        ('kind = "column-scale"\ncolumn = "reg-anti-anchor"', 'kind = "cell"\ncolumn = "reg-anchor"\nstep = "1000"'),
        "changes 'reg-anchor@1000' as parameters.0 does",
    ),
    'constraint that is not a bound': (
        ('"ablated_red >= 0.1"', '"ablated_red > 0.1"'),
        "search.constraints.0: cannot read 'ablated_red > 0.1'",
    ),
    'constraint on a column no run produces': (
        ('"ablated_red >= 0.1"', '"ablated_rde >= 0.1"'),
        "search.constraints.0: 'ablated_rde' is not a column a run produces",
    ),
    'constraint given twice': (
        ('"ablated_red >= 0.1"', '"ablated_red >= 0.1", "ablated_red >= 0.2"'),
        'search.constraints.1: bounds ablated_red >= as constraints.0 does',
    ),
    'best that is not an objective': (
        ('seeds_per_trial = 2', 'best = "ablated_red"\nseeds_per_trial = 2'),
        "search.best: 'ablated_red' is not an objective",
    ),
    'keyframe step past its neighbour': (('low = 600\nhigh = 2000', 'low = 600\nhigh = 3000'), 'strictly between'),
}


@pytest.mark.parametrize('case', list(BAD))
def test_each_mistake_is_one_line_naming_the_field(tmp_path, case):
    (old, new), says = BAD[case]
    assert old in SEARCH, old
    directory = experiment_dir(tmp_path, SEARCH.replace(old, new, 1))
    with pytest.raises(ConfigError) as error:
        load_experiment(directory)
    message = str(error.value)
    assert '\n' not in message and says in message, message
    assert message.startswith(f'{directory / "experiment.toml"}: search.')


def test_the_command_line_refuses_a_bad_search_table_in_one_line_before_anything_is_written(tmp_path):
    directory = experiment_dir(tmp_path, SEARCH.replace('low = 0.01\nhigh = 1.0', 'low = 2.0\nhigh = 1.0', 1))
    for proc in (
        run_cli('run', directory, '--steps', 1, '--out', tmp_path / 'run'),
        ex_color('run', directory, '--steps', 1, '--out', tmp_path / 'run', cwd=tmp_path),  # the console script
    ):
        line = assert_one_line_error(proc)
        assert 'search.parameters.0.high: 1 is not above low (2); expected low < high' in line
    assert not (tmp_path / 'run').exists()
