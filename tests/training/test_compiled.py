"""The compiled step keeps the engine's promises within its mode: a member trains as it would alone, a resumed
run equals the uninterrupted one, and it computes what the eager step computes (to rounding).

Compiling costs seconds per graph, so these tests train one small configuration (`tests.small_ex29`), with one
shared schedule or with per-member schedules: two graphs in all, shared with the command and Ray tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ex_color.config import build_model, build_regularizers, training_data
from ex_color.experiment import train_chunk
from ex_color.runner import chunk_task
from ex_color.training.engine import EngineOptions, TrainingInterrupted, init_models, train_ensemble
from ex_color.training.members import MemberSchedules
from ex_color.training.schedule import TrainingSchedule
from tests.cli import run_cli
from tests.small_ex29 import EX29, set_arguments, small_ex29

from .test_engine import parameters, stop_after

STEPS = 120
QUIET = {'progress': False}


@pytest.fixture(scope='module')
def setup():
    experiment = small_ex29()
    regularizers = build_regularizers(experiment.config)
    schedule = TrainingSchedule.from_dopesheet(experiment.dopesheet, regularizers)
    return experiment.config, training_data(experiment.config), regularizers, schedule


def train(setup, seeds, *, schedule=None, steps=STEPS, **options):
    config, data, regularizers, shared = setup
    models = init_models(lambda: build_model(config), seeds)
    options = EngineOptions(**(QUIET | {'compile': True} | options))
    return train_ensemble(models, seeds, data, regularizers, schedule or shared, steps=steps, options=options)


def same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    ours, theirs = parameters(a), parameters(b)
    return all(torch.equal(ours[name], value) for name, value in theirs.items())


def test_a_compiled_member_trains_bit_for_bit_as_it_would_alone(setup):
    together = train(setup, [0, 3, 5])
    alone = train(setup, [3])
    assert together.seeds == [0, 3, 5] and alone.seeds == [3] and len(alone.models) == 1
    assert same(together.models[1], alone.models[0])
    # The lone model trained beside a copy of itself, but logs its own rows only, as in eager mode.
    assert list(alone.metrics['seed'].unique()) == [3]
    assert alone.metrics.equals(together.metrics[together.metrics['seed'] == 3].reset_index(drop=True))


def test_compiled_and_eager_steps_compute_the_same_training(setup):
    """Two routes to one computation: they round differently, so they agree to a tolerance (after 40 steps)."""
    fast = train(setup, [1, 2], steps=40)
    eager = train(setup, [1, 2], steps=40, compile=False)
    for ours, theirs in zip(fast.models, eager.models, strict=True):
        for name, value in parameters(theirs).items():
            torch.testing.assert_close(parameters(ours)[name], value, atol=1e-4, rtol=1e-4, msg=name)
    losses = [torch.tensor(run.metrics['train_loss'].to_numpy()) for run in (fast, eager)]
    torch.testing.assert_close(*losses, atol=1e-6, rtol=1e-4)


def test_a_resumed_compiled_run_equals_the_uninterrupted_one(tmp_path: Path, setup):
    common = {'chunk_steps': 50, 'checkpoint_every': 40, 'log_every': 10}
    whole = train(setup, [3, 4], **common)
    checkpoint = tmp_path / 'ckpt.pt'
    with pytest.raises(TrainingInterrupted):
        train(setup, [3, 4], checkpoint_path=checkpoint, should_stop=stop_after(70), **common)
    resumed = train(setup, [3, 4], checkpoint_path=checkpoint, **common)
    assert all(same(a, b) for a, b in zip(whole.models, resumed.models, strict=True))
    assert resumed.metrics.equals(whole.metrics)
    # A checkpoint resumes only in the mode that wrote it.
    with pytest.raises(ValueError, match='checkpoint was trained compiled; it resumes only compiled, not eager'):
        train(setup, [3, 4], checkpoint_path=checkpoint, compile=False, **common)


def test_each_compiled_trial_trains_as_it_would_alone(setup):
    """A search's batch: members with their own schedules, compiled, each equal to its trial trained alone."""
    shared = setup[3]
    trials = MemberSchedules(
        lr=np.stack([shared.lr, shared.lr * 0.5]),
        weights=np.stack([shared.weights, shared.weights * 3.0]),
        regularizer_names=tuple(shared.regularizer_names),
    )
    batch = train(setup, [7, 7], schedule=trials)
    alone = train(setup, [7], schedule=trials.select([1]))
    assert same(batch.models[1], alone.models[0])
    assert not same(batch.models[0], batch.models[1])
    step = batch.metrics[batch.metrics['step'] == 100]
    assert list(step['lr']) == pytest.approx([shared.lr[100], shared.lr[100] * 0.5])


# Through the commands: the record a compiled run leaves, and a sweep row equal to the run.

CLI_STEPS = 30
RUN = ('run', EX29, *set_arguments(), '--seed', '1', '--steps', CLI_STEPS)


@pytest.fixture(scope='module')
def compiled_run(tmp_path_factory):
    """A small Ex 2.9's seed 1 (`tests.small_ex29`), trained compiled for a few steps through the command line."""
    out = tmp_path_factory.mktemp('compiled') / 'run'
    proc = run_cli(*RUN, '--out', out, '--no-report', '--compile')
    assert proc.returncode == 0, proc.stderr
    return out


def test_a_compiled_run_records_its_mode_and_keeps_it(compiled_run: Path):
    results = json.loads((compiled_run / 'results.json').read_text())
    assert results['compiled'] is True and results['compile_threads'] >= 1
    manifest = (compiled_run / 'manifest.json').read_text()
    assert '"compiled": true' in manifest
    proc = run_cli(*RUN, '--out', compiled_run, '--resume')
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert 'holds a run trained compiled (add --compile)' in proc.stderr.strip().splitlines()[-1]


def test_a_compiled_sweeps_row_equals_the_compiled_run(compiled_run: Path, tmp_path: Path):
    out = tmp_path / 'sweep'
    args = ['--seeds', '0-2', '--steps', CLI_STEPS, '--out', out, '--no-report', '--compile']
    proc = run_cli('sweep', EX29, *set_arguments(), *args)
    assert proc.returncode == 0, proc.stderr
    assert '"compiled": true' in (out / 'manifest.json').read_text()
    row = pd.read_csv(out / 'sweep.csv').set_index('seed').loc[1]
    results = json.loads((compiled_run / 'results.json').read_text())
    assert results['compile_threads'] == torch.get_num_threads()  # the sweep's kernels run on as many threads
    ours = torch.load(out / 'seeds' / 'seed-1.pt', weights_only=False)['model']
    theirs = torch.load(compiled_run / 'model.pt', weights_only=False)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    for evaluation in ('baseline', 'ablated'):
        for figure in ('mse_median', 'selectivity_r2'):
            expected = results['evaluations'][evaluation][figure]
            assert row[f'{evaluation}_{figure}'] == pytest.approx(expected, rel=1e-12), (evaluation, figure)


def test_a_ray_tasks_compiled_chunk_equals_the_local_sweeps(compiled_run: Path, tmp_path: Path):
    """What a Ray worker runs (`chunk_task`, on `--ray-cpus` threads, compiled) trains the model of the compiled run,
    when the threads agree. Ray itself is tested eager in tests/test_ray_runner.py; `--ray --compile` against a
    local compiled sweep was checked by hand (compiling in a fresh Ray worker costs CI half a minute)."""
    experiment = small_ex29()
    threads = torch.get_num_threads()
    records, _ = chunk_task(train_chunk, experiment.config, experiment.dopesheet, [1], CLI_STEPS, threads, compile=True)
    theirs = torch.load(compiled_run / 'model.pt', weights_only=False)
    ours = records[0].model.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
