"""A batch of trials as one ensemble: each trial's figures are those of its experiment run alone."""

from __future__ import annotations

import pytest

from ex_color.config import load_experiment
from ex_color.experiment import run_experiment
from ex_color.trials import train_trials, trial_experiment
from tests.searching import ex29_searching

STEPS = 40
SEARCH = """
[search]
maximise = ["ablated_selectivity_r2"]

[[search.parameters]]
kind = "cell"
column = "reg-anchor"
step = "+10"
low = 0.001
high = 1.0
log = true

[[search.parameters]]
kind = "label-power"
label = "red"
low = 2.0
high = 20.0
"""


@pytest.fixture(scope='module')
def experiment(tmp_path_factory):
    return load_experiment(ex29_searching(tmp_path_factory.mktemp('search') / 'exp', SEARCH))


TRIALS = [
    {'reg-anchor@+10': 0.5, 'red.power': 10.0},
    {'reg-anchor@+10': 0.002, 'red.power': 4.0},  # other labels: an ensemble of its own
    {'reg-anchor@+10': 0.05, 'red.power': 10.0},  # shares trial 0's labels and ensemble
]


@pytest.fixture(scope='module')
def outcomes(experiment):
    return train_trials(experiment, TRIALS, seeds=[0, 1], steps=STEPS)


def test_every_trial_gets_a_row_per_seed_with_its_own_values(outcomes):
    assert [o.values for o in outcomes] == TRIALS
    assert [[row['seed'] for row in o.rows()] for o in outcomes] == [[0, 1]] * 3
    assert [o.experiment.config.labels.red.power for o in outcomes] == [10.0, 4.0, 10.0]
    medians = {o.rows()[1]['ablated_mse_median'] for o in outcomes}
    assert len(medians) == 3  # different schedules, different models


@pytest.mark.parametrize('trial', [0, 1, 2])
def test_a_trial_in_the_batch_gives_the_figures_of_its_experiment_run_alone(experiment, outcomes, trial, tmp_path):
    alone = run_experiment(
        trial_experiment(experiment, TRIALS[trial]), seed=1, steps=STEPS, out=tmp_path / 'alone'
    ).results
    ours = outcomes[trial].seeds[1]
    for name, evaluation in alone.evaluations.items():
        theirs = ours.evaluations[name]
        assert theirs.mse_median == pytest.approx(evaluation.mse_median, rel=1e-3), name
        assert theirs.mse_max == pytest.approx(evaluation.mse_max, rel=1e-3), name
        assert theirs.selectivity_r2 == pytest.approx(evaluation.selectivity_r2, abs=1e-3), name
