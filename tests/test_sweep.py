"""Sweeps: rows equal lone runs, interrupted sweeps continue without redoing seeds, Pareto front."""

from __future__ import annotations

import json
import signal
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ex_color.sweep as sweep_module
from ex_color.columns import color_column
from ex_color.config import ConfigError, load_experiment, run_columns, sweep_objectives
from ex_color.data.labels import seed_labels
from ex_color.evaluation import validation_set
from ex_color.experiment import run_experiment
from ex_color.statistics import pareto_front
from ex_color.sweep import parse_seeds, pick_best, run_sweep
from ex_color.training.engine import TrainingInterrupted
from ex_color.workdir import DirectoryError

EXPERIMENT = Path(__file__).resolve().parents[1] / 'experiments' / 'ex-2.9'
STEPS = 80


@pytest.fixture(scope='module')
def experiment():
    return load_experiment(EXPERIMENT)


@pytest.fixture(scope='module')
def swept(experiment, tmp_path_factory):
    out = tmp_path_factory.mktemp('sweep')
    return run_sweep(experiment, [0, 1, 2], out=out, chunk=3, steps=STEPS, progress=False)


def test_sweep_rows_equal_lone_runs(experiment, swept, tmp_path: Path):
    table = swept.table.set_index('seed')
    for seed in (0, 1, 2):
        alone = run_experiment(experiment, seed=seed, out=tmp_path / f'seed-{seed}', steps=STEPS, progress=False)
        results = alone.results
        for name, e in results.evaluations.items():
            assert table.loc[seed, f'{name}_mse_max'] == e.mse_max
            assert table.loc[seed, f'{name}_mse_median'] == e.mse_median
            assert table.loc[seed, f'{name}_selectivity_r2'] == e.selectivity_r2
            for colour, error in e.named_colors.items():
                assert table.loc[seed, color_column(name, colour)] == error
        for column, value in results.validation.items():
            assert table.loc[seed, column] == value
        assert table.loc[seed, 'train_recon'] == results.final_train_loss['train_recon']


def test_sweep_directory_has_table_pareto_and_best_run(swept):
    directory = swept.directory
    table = pd.read_csv(directory / 'sweep.csv')
    assert list(table['seed']) == [0, 1, 2]
    for column in ('val_recon', 'val_anchor', 'ablated_selectivity_r2', 'baseline_mse_max', 'suppressed_cyan'):
        assert column in table
    pareto = pd.read_csv(directory / 'pareto.csv')
    assert set(pareto['seed']) <= {0, 1, 2} and len(pareto) >= 1
    summary = json.loads((directory / 'sweep.json').read_text())
    assert summary['best_seed'] in set(pareto['seed'])
    # The best seed has the highest ablated selectivity on the Pareto front.
    assert summary['best_seed'] == int(pareto.loc[pareto['ablated_selectivity_r2'].idxmax(), 'seed'])
    best = json.loads((directory / 'best' / 'results.json').read_text())
    assert best['seed'] == summary['best_seed']
    row = table.set_index('seed').loc[best['seed']]
    assert best['evaluations']['ablated']['selectivity_r2'] == pytest.approx(row['ablated_selectivity_r2'], rel=1e-12)
    for name in ('config.toml', 'dopesheet.csv', 'metrics.csv', 'model.pt'):
        assert (directory / 'best' / name).exists()


def test_ctrl_c_while_the_last_chunk_is_assessed_stops_the_sweep(experiment, swept, tmp_path: Path, monkeypatch):
    """A SIGINT after training, while the chunk's seeds are assessed: the seeds are kept, nothing is summarised,
    and the command stops (exit 130) instead of going on to the tables and the report."""
    real_train_chunk = sweep_module.train_chunk

    def interrupted_while_assessing(config, dopesheet, seeds, **kwargs):
        outcomes = real_train_chunk(config, dopesheet, seeds, **kwargs)
        signal.raise_signal(signal.SIGINT)
        return outcomes

    monkeypatch.setattr(sweep_module, 'SWEEP', replace(sweep_module.SWEEP, train_chunk=interrupted_while_assessing))
    out = tmp_path / 'sweep'
    with pytest.raises(TrainingInterrupted, match='sweep stopped after its last chunk was trained'):
        run_sweep(experiment, [0, 1, 2], out=out, steps=STEPS, progress=False)
    assert sorted(p.name for p in (out / 'seeds').iterdir()) == ['seed-0.pt', 'seed-1.pt', 'seed-2.pt']
    assert not (out / 'sweep.json').exists() and not (out / 'best').exists()

    monkeypatch.setattr(sweep_module, 'SWEEP', replace(sweep_module.SWEEP, train_chunk=real_train_chunk))
    result = run_sweep(experiment, [0, 1, 2], out=out, steps=STEPS, progress=False)
    pd.testing.assert_frame_equal(result.table, swept.table)


def test_interrupted_sweep_continues_without_redoing_seeds(experiment, swept, tmp_path: Path, monkeypatch, caplog):
    caplog.set_level('INFO', logger='ex_color')
    real_train_chunk = sweep_module.train_chunk
    calls: list[list[int]] = []

    def interrupt_second_chunk(config, dopesheet, seeds, **kwargs):
        calls.append(list(seeds))
        if len(calls) == 2:
            raise TrainingInterrupted('interrupted by the test')
        return real_train_chunk(config, dopesheet, seeds, **kwargs)

    monkeypatch.setattr(sweep_module, 'SWEEP', replace(sweep_module.SWEEP, train_chunk=interrupt_second_chunk))
    out = tmp_path / 'sweep'
    with pytest.raises(TrainingInterrupted):
        run_sweep(experiment, [0, 1, 2], out=out, chunk=2, steps=STEPS, progress=False)
    assert calls == [[0, 1], [2]]
    assert list(pd.read_csv(out / 'sweep.csv')['seed']) == [0, 1]

    assert 'The first chunk took' in caplog.text and 'the 1 left should take about' in caplog.text  # an estimate

    calls.clear()
    caplog.clear()
    result = run_sweep(experiment, [0, 1, 2], out=out, chunk=2, steps=STEPS, progress=False)
    assert calls == [[2]]  # seeds 0 and 1 were not trained again
    assert 'should take about' not in caplog.text  # one chunk left: nothing to estimate
    pd.testing.assert_frame_equal(result.table, swept.table)
    assert result.best_seed == swept.best_seed


def test_sweep_refuses_a_directory_of_another_sweep(experiment, swept):
    before = {p: p.read_bytes() for p in swept.directory.rglob('*') if p.is_file()}
    with pytest.raises(DirectoryError, match=f'holds a sweep with steps {STEPS}, not {STEPS + 1}; nothing was changed'):
        run_sweep(experiment, [0, 1, 2], out=swept.directory, chunk=3, steps=STEPS + 1, progress=False)
    assert {p: p.read_bytes() for p in swept.directory.rglob('*') if p.is_file()} == before


@pytest.mark.parametrize(
    ('text', 'seeds'), [('0-4', [0, 1, 2, 3, 4]), ('7', [7]), ('1,3,7-9', [1, 3, 7, 8, 9]), (' 2 , 5 ', [2, 5])]
)
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize('text', ['a-b', '5-2', '1,1', '', '-3'])
def test_parse_seeds_rejects_bad_input(text):
    with pytest.raises(ConfigError, match='--seeds'):
        parse_seeds(text)


def test_parse_seeds_names_the_seed_listed_twice():
    with pytest.raises(ConfigError, match='--seeds: seed 2 is listed twice'):
        parse_seeds('0-3,2')


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=12))
def test_pareto_front_matches_brute_force(points):
    table = pd.DataFrame(points, columns=['a', 'b', 'c'])
    front = pareto_front(table, minimise=['a', 'b'], maximise=['c'])

    def dominates(p, q):  # p at least as good everywhere and better somewhere
        better_or_equal = p[0] <= q[0] and p[1] <= q[1] and p[2] >= q[2]
        return better_or_equal and (p[0] < q[0] or p[1] < q[1] or p[2] > q[2])

    expected = [not any(dominates(p, q) for p in points) for q in points]
    assert front.tolist() == expected


def test_validation_set_is_cell_centres_and_corners_with_exact_labels():
    """The generic rule (formula^power ≥ 0.5) gives Ex 2.9's labels exactly: pure red, S·V = 1, S·V = 0."""
    colours, labels = validation_set(seed_labels())
    assert colours.shape == (8**3 + 8, 3)
    values = np.unique(colours.numpy())
    expected = np.concatenate([[0.0], (np.arange(8) + 0.5) / 8, [1.0]])
    np.testing.assert_allclose(values, expected)
    # Only pure red is red; the 6 primaries and secondaries are vibrant; black, white and
    # the 8 grey cell centres are desaturated.
    red = colours[labels['red'] == 1]
    assert red.tolist() == [[1.0, 0.0, 0.0]]
    assert int(labels['vibrant'].sum()) == 6
    assert int(labels['desaturated'].sum()) == 10


def test_pick_best_follows_the_best_column_then_the_other_objectives():
    pareto = pd.DataFrame(
        {
            'seed': [4, 7, 9, 2],
            'score': [0.9, 0.95, 0.95, 0.5],
            'loss': [0.2, 0.3, 0.1, 0.0],
        }
    )
    # Highest score: seeds 7 and 9 tie; the lower loss (9) wins.
    assert pick_best(pareto, minimise=['loss'], maximise=['score'], best='score') == 9
    # Best by the minimised column: seed 2.
    assert pick_best(pareto, minimise=['loss'], maximise=['score'], best='loss') == 2


def test_sweep_objectives_default_to_reconstruction_and_the_first_evaluations_selectivity(experiment):
    config = experiment.config.model_copy(update={'sweep': None})
    assert sweep_objectives(config) == (
        ['val_recon'],
        ['ablated_selectivity_r2'],
        'ablated_selectivity_r2',
        ['ablated_selectivity_r2', 'val_recon'],
    )
    # Ex 2.9 states its own choice.
    assert sweep_objectives(experiment.config) == (
        ['val_recon', 'val_anchor'],
        ['ablated_selectivity_r2'],
        'ablated_selectivity_r2',
        ['ablated_selectivity_r2', 'ablated_red', 'ablated_cyan', 'val_recon'],
    )


def test_every_column_a_run_promises_is_in_the_sweep_table(experiment, swept):
    """`run_columns` (what [sweep] is checked against at load) is exactly what sweep.csv holds."""
    assert list(swept.table.columns) == run_columns(experiment.config)


def test_a_nan_objective_ranks_worst_on_the_pareto_front():
    # Seed 0 has no selectivity (NaN) and worse reconstruction than seed 1: seed 1 dominates it.
    # Seed 2 has no selectivity but the best reconstruction: nothing dominates it on that.
    table = pd.DataFrame({'val_recon': [0.3, 0.2, 0.1], 'r2': [float('nan'), 0.5, float('nan')]})
    assert pareto_front(table, ['val_recon'], ['r2']).tolist() == [False, True, True]


def test_a_seed_file_of_other_work_is_refused_before_training(experiment, swept, tmp_path: Path, monkeypatch):
    import shutil

    import torch

    from ex_color.rundir import RunArtifactsError

    out = tmp_path / 'sweep'
    shutil.copytree(swept.directory, out)
    trained: list[list[int]] = []
    monkeypatch.setattr(
        sweep_module,
        'SWEEP',
        replace(sweep_module.SWEEP, train_chunk=lambda config, dopesheet, seeds, **kw: trained.append(seeds)),
    )
    shutil.copy(out / 'seeds' / 'seed-0.pt', out / 'seeds' / 'seed-1.pt')  # seed 0's results, filed as seed 1
    with pytest.raises(RunArtifactsError, match=r'seed-1.pt: holds the results of seed 0; remove it'):
        run_sweep(experiment, [0, 1, 2, 3], out=out, chunk=3, steps=STEPS, progress=False)
    torch.save([1, 2], out / 'seeds' / 'seed-1.pt')
    with pytest.raises(RunArtifactsError, match=r'seed-1.pt: not a seed file of ex-color sweep'):
        run_sweep(experiment, [0, 1, 2, 3], out=out, chunk=3, steps=STEPS, progress=False)
    assert trained == []
