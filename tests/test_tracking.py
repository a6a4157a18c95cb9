"""Trackers: a run logged to TensorBoard, MLflow and W&B, read back with each one's own library."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pandas as pd
import pytest

from ex_color.cli import main

from .cli import assert_one_line_after_logs, assert_one_line_error, run_cli

EXPERIMENT = Path(__file__).resolve().parents[1] / 'experiments' / 'ex-2.9'
# Trains runs, sweeps and comparisons into real trackers: `pytest -m 'not slow'` leaves it out.
pytestmark = pytest.mark.slow
STEPS = 60


@pytest.fixture(scope='module')
def tracked_run(tmp_path_factory):
    """One run of Ex 2.9 with its report, tracked in all three, from a fresh working directory."""
    cwd = tmp_path_factory.mktemp('tracked')
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        patch.delenv('MLFLOW_TRACKING_URI', raising=False)
        patch.delenv('WANDB_MODE', raising=False)
        argv = ['run', str(EXPERIMENT), '--steps', str(STEPS), '--out', 'run']
        assert main([*argv, '--logger', 'tensorboard', '--logger', 'mlflow', '--logger', 'wandb']) == 0
    run = cwd / 'run'
    return cwd, run, json.loads((run / 'results.json').read_text()), pd.read_csv(run / 'metrics.csv')


def _final(results: dict, variant: str, figure: str) -> float:
    return results['evaluations'][variant][figure]


def test_tensorboard_holds_every_logged_step_and_the_final_figures(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, run, results, metrics = tracked_run
    events = EventAccumulator(str(run / 'tensorboard'), size_guidance={'scalars': 0})
    events.Reload()
    scalars = set(events.Tags()['scalars'])
    for column in ('train_loss', 'train_recon', 'train_reg-anchor', 'lr', 'weight_reg-anchor'):
        assert column in scalars
        logged = events.Scalars(column)
        assert [e.step for e in logged] == metrics['step'].tolist()
        assert [e.value for e in logged] == pytest.approx(metrics[column].tolist(), rel=1e-6)
    (final,) = events.Scalars('final/ablated_selectivity_r2')
    assert final.value == pytest.approx(_final(results, 'ablated', 'selectivity_r2'), rel=1e-6)
    assert final.step == STEPS - 1


def test_mlflow_holds_the_config_metrics_and_report(tracked_run):
    import mlflow

    cwd, _, results, metrics = tracked_run
    client = mlflow.MlflowClient(tracking_uri=f'sqlite:///{cwd}/runs/mlflow.db')
    (experiment,) = [e for e in client.search_experiments() if e.name == 'ex-2.9']
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == 'FINISHED' and run.info.run_name == 'seed-0'
    assert run.data.params['experiment/name'] == 'Ex 2.9: Ablate red (only), 5D'
    assert run.data.params['model/k_bottleneck'] == '5' and run.data.params['steps'] == str(STEPS)
    history = client.get_metric_history(run.info.run_id, 'train_loss')
    assert [m.step for m in history] == metrics['step'].tolist()
    assert [m.value for m in history] == pytest.approx(metrics['train_loss'].tolist(), rel=1e-6)
    figure = run.data.metrics['final/ablated_red']
    assert figure == pytest.approx(results['evaluations']['ablated']['named_colors']['red'], rel=1e-6)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {'report.html', 'figures'} <= artifacts
    figures = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, 'figures')}
    assert 'colors-ablated.png' in figures and 'colors-ablated.dark.png' in figures


def wandb_records(path: Path) -> list:
    """The records of a W&B run file, parsed with W&B's own protobuf schema.

    The file is a LevelDB-style log: a 7-byte header (':W&B', magic, version), then 32 KiB
    blocks of chunks, each `crc32 (4) | length (2, little-endian) | type (1) | data`, where
    type 1 is a whole record and 2, 3, 4 are the first, middle and last pieces of one.
    """
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b':W&B'
    block, position, records, pieces = 32768, 7, [], b''
    while position + 7 <= len(data):
        if block - position % block < 7:  # the rest of a block too short for a header is padding
            position += block - position % block
            continue
        _crc, length, kind = struct.unpack('<IHB', data[position : position + 7])
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind == 0 and length == 0:
            continue
        pieces = chunk if kind in (1, 2) else pieces + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            records.append(record)
    return records


def test_wandb_offline_run_holds_the_config_history_and_report(tracked_run):
    _, run, results, metrics = tracked_run
    (run_file,) = (run / 'wandb').glob('offline-run-*/run-*.wandb')
    records = wandb_records(run_file)

    def items(update) -> dict:
        return {i.key or '/'.join(i.nested_key): json.loads(i.value_json) for i in update}

    history = [items(r.history.item) for r in records if r.WhichOneof('record_type') == 'history']
    config: dict = {}
    for r in records:
        if r.WhichOneof('record_type') == 'config':
            config |= items(r.config.update)
    assert config['experiment']['name'] == 'Ex 2.9: Ablate red (only), 5D' and config['steps'] == STEPS
    losses = [
        (h['trainer/global_step'] if 'trainer/global_step' in h else h.get('_step'), h['train_loss'])
        for h in history
        if 'train_loss' in h
    ]
    assert [v for _, v in losses] == pytest.approx(metrics['train_loss'].tolist(), rel=1e-6)
    (final,) = [h for h in history if 'final/ablated_selectivity_r2' in h]
    assert final['final/ablated_selectivity_r2'] == pytest.approx(_final(results, 'ablated', 'selectivity_r2'))
    artifacts = [r.artifact for r in records if r.WhichOneof('record_type') == 'artifact']
    (report,) = [a for a in artifacts if a.type == 'report']
    paths = {entry.path for entry in report.manifest.contents}
    assert 'report.html' in paths and 'figures/colors-ablated.png' in paths


def test_the_lightning_engine_logs_the_same_keys(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.chdir(tmp_path)
    argv = ['run', str(EXPERIMENT), '--engine', 'lightning', '--steps', '30', '--out', 'run', '--no-report']
    assert main([*argv, '--logger', 'tensorboard']) == 0
    events = EventAccumulator(str(tmp_path / 'run' / 'tensorboard'))
    events.Reload()
    scalars = set(events.Tags()['scalars'])
    assert {'train_loss', 'train_recon', 'train_reg-anchor', 'lr', 'weight_reg-anchor'} <= scalars
    assert 'final/ablated_selectivity_r2' in scalars


def test_the_experiment_files_tracking_table_is_the_default_and_not_part_of_the_fingerprint(tmp_path, monkeypatch):
    import tomli_w

    from ex_color.config import load_experiment

    monkeypatch.chdir(tmp_path)
    raw = load_experiment(EXPERIMENT).config.model_dump(mode='json', exclude_none=True)
    raw['tracking'] = {'loggers': ['csv']}
    (tmp_path / 'exp').mkdir()
    (tmp_path / 'exp' / 'experiment.toml').write_text(tomli_w.dumps(raw))
    (tmp_path / 'exp' / 'dopesheet.csv').write_bytes((EXPERIMENT / 'dopesheet.csv').read_bytes())
    assert main(['run', 'exp', '--steps', '20', '--out', 'run', '--no-report']) == 0
    tracked = pd.read_csv(tmp_path / 'run' / 'tracking' / 'csv' / 'metrics.csv')
    assert {'train_loss', 'lr', 'final/baseline_mse_max'} <= set(tracked.columns)
    # The same run without the table: the same directory, finished (tracking never changes a result).
    assert main(['run', str(EXPERIMENT), '--steps', '20', '--out', 'run', '--no-report', '--resume']) == 0


def test_unknown_and_missing_trackers_are_one_line(tmp_path, monkeypatch):
    proc = run_cli('run', EXPERIMENT, '--steps', '5', '--out', tmp_path / 'r', '--logger', 'neptune', cwd=tmp_path)
    assert "unknown logger 'neptune'" in assert_one_line_error(proc)
    monkeypatch.setitem(sys.modules, 'mlflow', None)  # `import mlflow` now fails, as where it is not installed
    proc = run_cli('run', EXPERIMENT, '--steps', '5', '--logger', 'mlflow', cwd=tmp_path)
    line = assert_one_line_error(proc)
    assert 'needs MLflow' in line and "pip install 'ex-color[track]'" in line
    assert not (tmp_path / 'runs').exists()  # refused before anything was written


def test_a_comparison_tracks_one_run_per_seed_holding_its_rows(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.chdir(tmp_path)
    argv = ['compare', str(EXPERIMENT), '--seeds', '0-1', '--steps', '40', '--out', 'cmp', '--no-report']
    assert main([*argv, '--logger', 'tensorboard']) == 0
    table = pd.read_csv(tmp_path / 'cmp' / 'compare.csv').set_index(['seed', 'method'])
    for seed in (0, 1):
        events = EventAccumulator(str(tmp_path / 'cmp' / 'tensorboard' / f'seed-{seed}'))
        events.Reload()
        (logged,) = events.Scalars('final/control-leace_collateral_max')
        assert logged.value == pytest.approx(table.loc[(seed, 'control-leace'), 'collateral_max'], rel=1e-6)


def test_a_sweep_tracks_one_run_per_seed_grouped_by_the_sweep(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('MLFLOW_TRACKING_URI', raising=False)
    argv = ['sweep', str(EXPERIMENT), '--seeds', '0-1', '--steps', '40', '--out', 'sw', '--no-report']
    assert main([*argv, '--logger', 'mlflow']) == 0
    table = pd.read_csv(tmp_path / 'sw' / 'sweep.csv').set_index('seed')
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f'sqlite:///{tmp_path}/runs/mlflow.db')
    try:
        runs = mlflow.search_runs(experiment_names=['ex-2.9'])
    finally:
        mlflow.set_tracking_uri(previous)
    assert sorted(runs['tags.mlflow.runName']) == ['seed-0', 'seed-1']
    assert set(runs['tags.ex_color.group']) == {'ex-2.9/sw'}
    for _, run in runs.iterrows():
        seed = int(run['tags.mlflow.runName'].removeprefix('seed-'))
        logged = run['metrics.final/ablated_selectivity_r2']
        assert logged == pytest.approx(table.loc[seed, 'ablated_selectivity_r2'], rel=1e-6)
        assert run['metrics.train_loss'] == pytest.approx(table.loc[seed, 'train_loss'], rel=1e-6)


def test_an_interrupted_run_is_closed_as_killed_in_mlflow_and_the_interrupt_is_what_is_raised(tmp_path, monkeypatch):
    import mlflow

    from ex_color.tracking import tracked
    from ex_color.training.engine import TrainingInterrupted

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('MLFLOW_TRACKING_URI', raising=False)
    with (
        pytest.raises(TrainingInterrupted),
        tracked(['mlflow'], directory=tmp_path / 'run', experiment='x', run='seed-0') as t,
    ):
        t.log_config({'a': 1})
        raise TrainingInterrupted('stopped by the test')
    client = mlflow.MlflowClient(tracking_uri=f'sqlite:///{tmp_path}/runs/mlflow.db')
    (run,) = client.search_runs([client.get_experiment_by_name('x').experiment_id])
    assert run.info.status == 'KILLED'


def test_a_tracker_that_cannot_be_reached_and_a_repeated_logger_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv('MLFLOW_TRACKING_URI', 'junk://zz')
    proc = run_cli('run', EXPERIMENT, '--steps', '5', '--no-report', '--out', 'r', '--logger', 'mlflow', cwd=tmp_path)
    assert '--logger mlflow: cannot track there: ' in assert_one_line_error(proc)
    proc = run_cli('run', EXPERIMENT, '--steps', '5', '--out', 'r2', '--logger', 'csv', '--logger', 'csv', cwd=tmp_path)
    assert '--logger csv is given twice' in assert_one_line_error(proc)


def test_the_csv_tracker_keeps_every_step_once_across_an_interrupt_and_resume(tmp_path, monkeypatch):
    import contextlib

    from ex_color import experiment as experiment_module
    from ex_color.config import load_experiment
    from ex_color.experiment import run_experiment
    from ex_color.tracking import tracked
    from ex_color.training.engine import TrainingInterrupted

    @contextlib.contextmanager
    def stop_at_step_230(*args, **kwargs):
        polls = iter(range(10**6))
        yield lambda: next(polls) >= 230  # polled once per step

    experiment, out = load_experiment(EXPERIMENT), tmp_path / 'run'
    kwargs = {'directory': out, 'experiment': 'ex-2.9', 'run': 'seed-0'}
    with monkeypatch.context() as patch:
        patch.setattr(experiment_module, 'stop_on_signals', stop_at_step_230)
        with pytest.raises(TrainingInterrupted), tracked(['csv'], **kwargs) as tracker:
            run_experiment(experiment, out=out, steps=400, progress=False, checkpoint_every=100, tracker=tracker)
    logged = pd.read_csv(out / 'tracking' / 'csv' / 'metrics.csv')
    assert logged['step'].dropna().max() == 200  # the interrupted session logged steps 0–200

    with tracked(['csv'], **kwargs) as tracker:
        run_experiment(experiment, out=out, steps=400, progress=False, resume=True, tracker=tracker)
    metrics = pd.read_csv(out / 'metrics.csv')
    logged = pd.read_csv(out / 'tracking' / 'csv' / 'metrics.csv')
    rows = logged[logged['train_loss'].notna()]
    assert rows['step'].tolist() == metrics['step'].tolist()  # every logged step, once, in order
    assert rows['train_loss'].tolist() == pytest.approx(metrics['train_loss'].tolist(), rel=1e-6)
    assert logged['final/ablated_selectivity_r2'].notna().sum() == 1


def test_a_seed_whose_tracking_failed_is_tracked_when_the_sweep_runs_again(tmp_path, monkeypatch, caplog):
    from ex_color import runner
    from ex_color.tracking import TrackerError

    real = runner.track_seed

    def fails_for_seed_1(names, **kwargs):
        if kwargs['seed'] == 1:
            raise TrackerError('--logger csv: cannot track there: the store is read-only: by the test')
        return real(names, **kwargs)

    argv = ['sweep', EXPERIMENT, '--seeds', '0-1', '--steps', '40', '--out', 'sw', '--no-report']
    with monkeypatch.context() as patch:
        patch.setattr(runner, 'track_seed', fails_for_seed_1)
        failed = run_cli(*argv, '--logger', 'csv', cwd=tmp_path)
    line = assert_one_line_after_logs(failed.stderr, 2, failed.returncode)
    assert 'the store is read-only' in line
    sweep = tmp_path / 'sw'
    assert (sweep / 'seeds' / 'seed-1.pt').exists()  # saved before its tracking failed
    assert json.loads((sweep / 'untracked.json').read_text()) == {'1': ['csv']}

    quiet = run_cli(*argv, cwd=tmp_path)  # no logger asked: the debt is named, not forgotten
    assert quiet.returncode == 0, quiet.stderr
    assert 'Seed 1 of' in quiet.stderr and 'never tracked in csv' in quiet.stderr

    again = run_cli(*argv, '--logger', 'csv', cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert not (sweep / 'untracked.json').exists()
    table = pd.read_csv(sweep / 'sweep.csv').set_index('seed')
    for seed in (0, 1):
        logged = pd.read_csv(sweep / 'tracking' / 'csv' / f'seed-{seed}' / 'metrics.csv')
        final = logged['final/ablated_selectivity_r2'].dropna()
        assert final.tolist() == pytest.approx([table.loc[seed, 'ablated_selectivity_r2']], rel=1e-6)
        assert logged['step'][logged['train_loss'].notna()].is_unique


def test_a_read_only_or_locked_store_is_one_line_naming_the_cause(tmp_path, monkeypatch):
    import errno
    import sqlite3
    import tempfile

    import sqlalchemy

    from ex_color import tracking

    # A real read-only store: a valid MLflow database opened read-only (as root, file modes do not stop writes).
    monkeypatch.setenv('MLFLOW_TRACKING_URI', f'sqlite:///{tmp_path}/mlflow.db')
    made = run_cli('run', EXPERIMENT, '--steps', '5', '--no-report', '--out', 'a', '--logger', 'mlflow', cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    monkeypatch.setenv('MLFLOW_TRACKING_URI', f'sqlite:///file:{tmp_path}/mlflow.db?mode=ro&uri=true')
    proc = run_cli('run', EXPERIMENT, '--steps', '5', '--no-report', '--out', 'b', '--logger', 'mlflow', cwd=tmp_path)
    line = assert_one_line_error(proc)
    assert 'cannot track there: the store is read-only: attempt to write a readonly database' in line

    # A store on a read-only filesystem is found before MLflow retries for a minute.
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, 'Read-only file system')

    monkeypatch.setattr(tempfile, 'NamedTemporaryFile', read_only)
    problem = tracking.sqlite_store_problem(f'sqlite:///{tmp_path}/new.db')
    assert problem == f'the store is read-only (Read-only file system: {tmp_path})'
    assert tracking.sqlite_store_problem(f'sqlite:///{tmp_path}/absent/new.db').startswith('its directory')

    # A locked database, as SQLAlchemy wraps the driver's error.
    locked = sqlalchemy.exc.OperationalError('INSERT', {}, sqlite3.OperationalError('database is locked'))
    expected = r'^--logger mlflow: cannot track there: the store is locked: database is locked$'
    with pytest.raises(tracking.TrackerError, match=expected), tracking.naming_failures('mlflow'):
        raise locked
