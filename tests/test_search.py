"""ex-color search: trials asked in batches, told their means, kept across interruptions; finalists judged on fresh
seeds; the winner written as an experiment that reproduces its validation rows."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import ex_color
import ex_color.search
import ex_color.trials
from ex_color.cli import main
from ex_color.config import load_experiment
from ex_color.dataflow import SurgeryError
from ex_color.loss import NonFiniteLossError
from ex_color.search import run_search
from ex_color.searchdir import SearchSummary
from ex_color.study import StudyJournal
from tests.searching import QUICK_SEARCH, ex29_searching

NO_SEARCH = Path(__file__).resolve().parents[1] / 'experiments' / 'delete-green'
STEPS = 100
TRIALS, BATCH = 4, 2
SEARCH = QUICK_SEARCH
ARGS = ['--trials', str(TRIALS), '--batch', str(BATCH), '--steps', str(STEPS), '--no-report']


@pytest.fixture(scope='module')
def experiment_dir(tmp_path_factory) -> Path:
    return ex29_searching(tmp_path_factory.mktemp('search') / 'exp', SEARCH, evaluations=['ablated'])


@pytest.fixture(scope='module')
def searched(experiment_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('searched') / 'out'
    assert main(['search', str(experiment_dir), *ARGS, '--out', str(out)]) == 0
    return out


def test_trials_csv_holds_every_trial_with_its_parameters_in_range_and_its_seed_values(searched):
    trials = pd.read_csv(searched / 'trials.csv')
    assert list(trials['trial']) == list(range(TRIALS))
    assert set(trials['state']) == {'complete'}
    assert trials['reg-anchor@1000'].between(0.001, 1.0).all()
    assert trials['reg-separate*'].between(0.1, 10.0).all()
    assert len(set(trials['reg-anchor@1000'])) == TRIALS  # the batch's proposals did not collapse
    for column in ('ablated_selectivity_r2', 'baseline_mse_median', 'ablated_red'):
        assert (trials[column] == trials[f'{column}_seed0']).all()  # one seed: the mean is that seed's value
    assert (trials['feasible'] == (trials['ablated_red'] >= 0.02)).all()


def test_the_journal_holds_the_same_trials_for_optuna_dashboard(searched):
    study = StudyJournal.load(searched / 'study.journal')
    trials = pd.read_csv(searched / 'trials.csv')
    assert [t.number for t in study.trials] == list(trials['trial'])
    for trial, row in zip(study.trials, trials.to_dict('records'), strict=True):  # the CSV's text, parsed back
        assert trial.values == pytest.approx([row['baseline_mse_median'], row['ablated_selectivity_r2']], rel=1e-12)


def test_the_winner_is_chosen_among_the_finalists_on_the_fresh_seeds(searched):
    summary = SearchSummary.read(searched)
    pareto = pd.read_csv(searched / 'pareto.csv')
    finalists = pd.read_csv(searched / 'finalists.csv')
    validation = pd.read_csv(searched / 'validation.csv')
    trials = pd.read_csv(searched / 'trials.csv')
    # The Pareto trials first (best r² first), then the next best that meet the constraints, up to `finalists`.
    others = trials[trials['feasible'] & ~trials['trial'].isin(pareto['trial'])]
    ranked = [
        *pareto.sort_values('ablated_selectivity_r2', ascending=False)['trial'],
        *others.sort_values('ablated_selectivity_r2', ascending=False)['trial'],
    ]
    assert list(finalists['trial']) == ranked[:2]
    assert list(validation.groupby('trial')['seed'].apply(list)) == [[5]] * len(finalists)
    for row in finalists.to_dict('records'):
        mine = validation[validation['trial'] == row['trial']]
        assert row['ablated_red_mean'] == pytest.approx(mine['ablated_red'].mean())
        assert row['ablated_red_low'] <= row['ablated_red_mean'] <= row['ablated_red_high']
    assert finalists['winner'].sum() == 1
    assert summary.winner == int(finalists.loc[finalists['winner'], 'trial'].iloc[0])


def test_the_notebook_api_reopens_the_search_and_its_best_reproduces_a_validation_row(experiment_dir, searched):
    view = ex_color.load(experiment_dir).search(TRIALS, batch=BATCH, steps=STEPS, out=searched, report=False)
    assert view.trials.equals(pd.read_csv(searched / 'trials.csv', keep_default_na=False, na_values=['']))
    assert view.result.summary.trials_this_call == 0  # finished: nothing trained again
    best = view.best()
    assert best.experiment.config.search is None
    assert 'Found by `ex-color search`' in (searched / 'best' / 'experiment.toml').read_text()
    run = best.run(seed=5, steps=STEPS, out=searched.parent / 'best-run', report=False)
    row = view.validation[(view.validation['trial'] == view.winner) & (view.validation['seed'] == 5)].iloc[0]
    for name, figures in run.figures.iterrows():
        assert row[f'{name}_mse_median'] == pytest.approx(figures['mse_median'], rel=1e-6), name
        assert row[f'{name}_selectivity_r2'] == pytest.approx(figures['selectivity_r2'], rel=1e-6, abs=1e-9), name


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f'{path} never appeared'
        time.sleep(0.05)


def test_a_search_interrupted_mid_batch_by_sigint_and_sigkill_writes_the_trials_of_an_uninterrupted_one(
    experiment_dir, searched, tmp_path
):
    out = tmp_path / 'out'
    command = [sys.executable, '-m', 'ex_color', 'search', str(experiment_dir), *ARGS, '--out', str(out)]
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _wait_for(out / 'study.journal', first)  # the first batch is saved: the second is training
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 130, stderr
    assert 'finished trials are kept, continue with the same command' in stderr
    assert len(pd.read_csv(out / 'trials.csv')) == BATCH

    written = (out / 'trials.csv').stat().st_mtime_ns
    second = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while (out / 'trials.csv').stat().st_mtime_ns == written:  # rewritten as the search starts: batch 2 is next
        assert second.poll() is None and time.monotonic() < deadline, second.communicate()
        time.sleep(0.02)
    time.sleep(0.3)
    second.kill()
    second.communicate(timeout=60)
    assert len(pd.read_csv(out / 'trials.csv')) in (BATCH, 2 * BATCH)

    assert main(['search', str(experiment_dir), *ARGS, '--out', str(out)]) == 0
    assert (out / 'trials.csv').read_bytes() == (searched / 'trials.csv').read_bytes()
    assert (out / 'validation.csv').read_bytes() == (searched / 'validation.csv').read_bytes()


def test_a_trial_that_diverges_or_cannot_be_edited_is_told_as_failed_and_the_search_goes_on(
    experiment_dir, monkeypatch, tmp_path
):
    train, assess = ex_color.trials._train_group, ex_color.trials.assess
    calls, edited = [], []

    def diverging_once(made, seeds, steps, options):
        calls.append(len(made))
        if len(calls) == 1:
            raise NonFiniteLossError('non-finite loss at step 3', term='recon', step=3, member=(1,))
        return train(made, seeds, steps, options)

    def refuses_the_second_model(seed, model, metrics, config):
        edited.append(seed)
        if len(edited) == 2:
            raise SurgeryError("prune of 'bottleneck' is not exact on this model")
        return assess(seed, model, metrics, config)

    monkeypatch.setattr(ex_color.trials, '_train_group', diverging_once)
    monkeypatch.setattr(ex_color.trials, 'assess', refuses_the_second_model)
    experiment = load_experiment(experiment_dir)
    result = run_search(experiment, trials=3, batch=3, steps=20, out=tmp_path / 'out', progress=False)
    assert calls[:2] == [3, 2]  # the ensemble again, without the trial that diverged
    trials = result.trials
    assert list(trials['state']) == ['complete', 'fail', 'fail']
    assert 'non-finite loss' in trials.loc[1, 'failure']
    assert trials.loc[2, 'failure'] == "seed 0: SurgeryError: prune of 'bottleneck' is not exact on this model"
    assert math.isnan(trials.loc[1, 'ablated_selectivity_r2'])
    assert result.summary.failed == 2
    assert list(result.finalists['trial']) == [0]  # failed trials are never finalists


@pytest.mark.parametrize(
    ('extra', 'message'),
    [
        ([], 'no [search] table'),
        (['--sampler', 'grid'], "invalid choice: 'grid'"),
        (['--batch', '1', '--sampler', 'nsga2'], 'NSGA-II needs a population of at least 2'),
    ],
)
def test_bad_search_commands_are_one_line_and_exit_2(experiment_dir, tmp_path, capsys, extra, message):
    target = NO_SEARCH if not extra else experiment_dir
    try:
        code = main(['search', str(target), '--trials', '2', *extra, '--out', str(tmp_path / 'o')])
    except SystemExit as exit:  # argparse's own refusals
        code = exit.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / 'o').exists()


@pytest.mark.parametrize('name', ['ex-2.9', 'red-and-blue'])
def test_the_shipped_search_tables_load_against_their_experiments(name):
    experiment = load_experiment(Path(__file__).resolve().parents[1] / 'experiments' / name)
    search = experiment.config.search
    assert search is not None and len(search.parameters) >= 5
    assert set(search.validate_seeds).isdisjoint(range(search.seeds_per_trial))
