"""Sweeps and comparisons on Ray: the same rows as local ones, a lost worker's chunk retried, an interrupted
sweep continued.

One local Ray cluster of 2 CPUs serves the module (started by `ray_runner.cluster`, as the
command starts one). Ray is the optional `ray` extra, which `make test` installs; where it
is missing these tests are skipped, unless CI is set.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

import ex_color.sweep as sweep_module
from ex_color.cli import main
from ex_color.compare import run_compare
from ex_color.config import load_experiment
from ex_color.experiment import train_chunk
from ex_color.runner import SeedFiles
from ex_color.search import run_search
from ex_color.sweep import run_sweep
from ex_color.training.engine import TrainingInterrupted
from tests.searching import QUICK_SEARCH, ex29_searching

from .cli import assert_one_line_error, ex_color, run_cli

EXPERIMENT = Path(__file__).resolve().parents[1] / 'experiments' / 'ex-2.9'
SEEDS = [0, 1, 2, 3]
STEPS = 60
AUTH_VARIABLES = ('RAY_AUTH_MODE', 'RAY_AUTH_TOKEN', 'RAY_AUTH_TOKEN_PATH', 'RAY_ADDRESS')


def _ray_runner():
    try:
        import ex_color.ray_runner as ray_runner
    except ImportError:
        if os.environ.get('CI', '').strip().lower() not in ('', '0', 'false', 'no'):
            pytest.fail("Ray is not installed; CI is set, so the Ray tests must run (pip install 'ex-color[ray]')")
        pytest.skip("Ray is not installed (pip install 'ex-color[ray]')")
    return ray_runner


@pytest.fixture(scope='module')
def experiment():
    return load_experiment(EXPERIMENT)


@pytest.fixture(scope='module')
def home(tmp_path_factory):
    return tmp_path_factory.mktemp('home')


@pytest.fixture(scope='module')
def ray_cluster(home):
    """A local cluster of 2 CPUs, started as `--ray` starts one: a token of its own, nothing in ~/.ray."""
    ray_runner = _ray_runner()
    with pytest.MonkeyPatch.context() as patch:
        for variable in AUTH_VARIABLES:
            patch.delenv(variable, raising=False)
        patch.setenv('HOME', str(home))
        with ray_runner.cluster('local', local_cpus=2) as cpus:
            assert cpus == 2
            yield ray_runner
        assert 'RAY_AUTH_TOKEN' not in os.environ  # the cluster's token went with it


@pytest.fixture(scope='module')
def local(experiment, tmp_path_factory):
    out = tmp_path_factory.mktemp('local')
    return run_sweep(experiment, SEEDS, out=out, steps=STEPS, progress=False)


@pytest.fixture(scope='module')
def on_ray(ray_cluster, tmp_path_factory):
    """The same seeds through the command line with --ray: 2 tasks of 2 seeds, where the local sweep has 1 of 4."""
    out = tmp_path_factory.mktemp('ray')
    args = ['sweep', str(EXPERIMENT), '--seeds', '0-3', '--steps', str(STEPS), '--out', str(out), '--no-report']
    assert main([*args, '--ray']) == 0
    return out


def assert_same_sweep(directory: Path, local) -> None:
    """sweep.csv and pareto.csv byte for byte, the same best seed, and every seed's model bit for bit."""
    for name in ('sweep.csv', 'pareto.csv'):
        assert (directory / name).read_bytes() == (local.directory / name).read_bytes(), name
    summary = json.loads((directory / 'sweep.json').read_text())
    assert summary['best_seed'] == local.best_seed
    for seed in SEEDS:
        ours = torch.load(directory / 'seeds' / f'seed-{seed}.pt', weights_only=False)['model']
        theirs = torch.load(local.directory / 'seeds' / f'seed-{seed}.pt', weights_only=False)['model']
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_ray_sweep_equals_a_local_sweep(on_ray, local):
    assert_same_sweep(on_ray, local)
    ray_summary = json.loads((on_ray / 'sweep.json').read_text())
    assert (ray_summary['chunk'], local.summary.chunk) == (2, 4)  # the unfinished seeds spread over 2 CPUs
    assert ray_summary['ray'] == 'Ray: 2 CPUs, 1 per task'


def test_the_local_cluster_has_token_auth_with_its_own_token(ray_cluster, home):
    import ray

    assert os.environ['RAY_AUTH_MODE'] == 'token'
    assert len(os.environ['RAY_AUTH_TOKEN']) == 64
    assert ray.get(ray.remote(lambda: os.environ.get('RAY_AUTH_MODE')).remote()) == 'token'
    assert not (home / '.ray').exists()


def _train_with(monkeypatch, train) -> None:
    """Sweeps train their chunks with `train` (the Ray tasks pickle it with the job)."""
    monkeypatch.setattr(sweep_module, 'SWEEP', replace(sweep_module.SWEEP, train_chunk=train))


def test_ray_compare_equals_a_local_compare(ray_cluster, experiment, tmp_path: Path):
    """`ex-color compare --ray` trains its chunks on the cluster and writes the local comparison's tables."""
    here = run_compare(experiment, SEEDS, out=tmp_path / 'local', steps=STEPS, progress=False)
    args = ['compare', str(EXPERIMENT), '--seeds', '0-3', '--steps', str(STEPS), '--out', str(tmp_path / 'ray')]
    assert main([*args, '--no-report', '--ray']) == 0
    for name in ('compare.csv', 'hue_error.csv', 'summary.csv'):
        assert (tmp_path / 'ray' / name).read_bytes() == (here.directory / name).read_bytes(), name
    facts = json.loads((tmp_path / 'ray' / 'compare.json').read_text())
    assert facts['least_collateral'] == here.facts.least_collateral and facts['seeds'] == SEEDS


def _dies_once(marker: Path):
    """`train_chunk`, except that the first attempt at the chunk holding seed 0 kills its worker."""

    def train(config, dopesheet, seeds, **kwargs):
        if 0 in seeds and not marker.exists():
            marker.touch()
            os._exit(1)
        return train_chunk(config, dopesheet, seeds, **kwargs)

    return train


def test_a_lost_workers_chunk_is_retried(ray_cluster, experiment, local, tmp_path: Path, monkeypatch):
    marker = tmp_path / 'died'
    _train_with(monkeypatch, _dies_once(marker))
    result = run_sweep(experiment, SEEDS, out=tmp_path / 'sweep', steps=STEPS, progress=False, ray='local')
    assert marker.exists()  # the worker did die
    assert_same_sweep(result.directory, local)


def _recorded(trained: Path, *, hold_back: int | None = None):
    """`train_chunk`, leaving a file per seed it trains (workers are other processes).

    The chunk holding seed `hold_back` waits instead, until it is cancelled.
    """

    def train(config, dopesheet, seeds, **kwargs):
        if hold_back in seeds:
            time.sleep(600)
        for seed in seeds:
            (trained / f'{seed}-{os.getpid()}-{time.time()}').touch()
        return train_chunk(config, dopesheet, seeds, **kwargs)

    return train


def test_an_interrupted_ray_sweep_continues_without_retraining(
    ray_cluster, experiment, local, tmp_path: Path, monkeypatch, caplog
):
    first, again = tmp_path / 'first', tmp_path / 'again'
    first.mkdir(), again.mkdir()
    real_save_seed = SeedFiles.write
    saved: list[int] = []

    def save_then_interrupt(files, record, seconds):  # Ctrl-C as the first seed is saved
        real_save_seed(files, record, seconds)
        saved.append(record.seed)
        if len(saved) == 1:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(SeedFiles, 'write', save_then_interrupt)
    _train_with(monkeypatch, _recorded(first, hold_back=2))
    out = tmp_path / 'sweep'
    with pytest.raises(TrainingInterrupted, match=r'after 1 of 2 Ray tasks'):
        run_sweep(experiment, SEEDS, out=out, chunk=2, steps=STEPS, progress=False, ray='local')
    assert 'Received SIGINT; cancelling the running Ray tasks and stopping (finished seeds are kept)' in caplog.text
    assert saved == [0, 1]  # the first chunk's seeds were saved; the other chunk was still running
    assert list(pd.read_csv(out / 'sweep.csv')['seed']) == [0, 1]

    monkeypatch.setattr(SeedFiles, 'write', real_save_seed)
    _train_with(monkeypatch, _recorded(again))
    result = run_sweep(experiment, SEEDS, out=out, chunk=2, steps=STEPS, progress=False, ray='local')
    assert sorted(int(p.name.split('-')[0]) for p in again.iterdir()) == [2, 3]  # seeds 0 and 1 not trained again
    assert_same_sweep(result.directory, local)


def test_ray_cpus_beyond_the_largest_node_is_refused(ray_cluster, tmp_path: Path, capsys):
    args = ['sweep', str(EXPERIMENT), '--seeds', '0', '--steps', '5', '--out', str(tmp_path / 's'), '--no-report']
    assert main([*args, '--ray', '--ray-cpus', '3']) == 2
    assert (
        capsys.readouterr().err.strip().endswith('error: --ray-cpus 3: the largest node of the Ray cluster has 2 CPUs')
    )
    assert not (tmp_path / 's').exists()  # a cluster that cannot run the sweep leaves no directory behind


def test_ray_cpus_needs_ray_and_a_positive_number(tmp_path: Path, capsys):
    args = ['sweep', str(EXPERIMENT), '--seeds', '0', '--steps', '5', '--out', str(tmp_path / 's'), '--no-report']
    assert main([*args, '--ray-cpus', '2']) == 2
    assert capsys.readouterr().err.strip() == 'ex-color: error: --ray-cpus needs --ray'
    with pytest.raises(SystemExit) as exit_:
        main([*args, '--ray', '--ray-cpus', '0'])
    assert exit_.value.code == 2
    assert 'argument --ray-cpus: expected a whole number >= 1, got 0' in capsys.readouterr().err
    assert not (tmp_path / 's').exists()


def test_without_ray_installed_ray_is_one_line(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, 'ray', None)  # `import ray` fails as if Ray were not installed
    monkeypatch.delitem(sys.modules, 'ex_color.ray_runner', raising=False)
    out = tmp_path / 'sweep'
    args = ['sweep', str(EXPERIMENT), '--seeds', '0-3', '--steps', '5', '--out', str(out), '--ray']
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == "ex-color: error: --ray needs Ray: pip install 'ex-color[ray]'"
    assert not out.exists()


@pytest.mark.parametrize('address', ['http://x', 'https://cluster.example:8265'])
def test_a_url_that_is_not_a_ray_address_is_one_line(address: str, tmp_path: Path):
    _ray_runner()
    args = ['sweep', str(EXPERIMENT), '--seeds', '0', '--steps', '5', '--out', str(tmp_path / 'sweep')]
    line = assert_one_line_error(run_cli(*args, '--ray', address), 2)
    assert line.startswith(f'ex-color: error: --ray {address}: a {address.split(":")[0]}:// address'), line
    assert 'expected HOST:PORT' in line and not (tmp_path / 'sweep').exists()


def test_an_unreachable_address_is_one_line(tmp_path: Path):
    _ray_runner()
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    proc = ex_color(
        'sweep',
        EXPERIMENT,
        '--seeds',
        '0',
        '--steps',
        '5',
        '--out',
        'sweep',
        '--ray',
        f'127.0.0.1:{port}',
        cwd=tmp_path,
    )
    line = assert_one_line_error(proc, 2)
    assert line.startswith(f'ex-color: error: --ray 127.0.0.1:{port}: no Ray cluster answers there'), line
    assert not (tmp_path / 'sweep').exists()  # nothing written for a sweep that could not start


def test_nothing_imports_ray_without_the_flag(tmp_path: Path):
    """A whole local sweep through the command line, and Ray never imported."""
    args = ['sweep', str(EXPERIMENT), '--seeds', '0', '--steps', '5', '--out', 'sweep', '--no-report']
    code = f"import sys; from ex_color.cli import main; assert main({args!r}) == 0; assert 'ray' not in sys.modules"
    env = os.environ | {'OMP_NUM_THREADS': '1'}  # one thread is faster than two on a busy machine
    proc = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / 'sweep' / 'sweep.csv').exists()


def test_ray_search_equals_a_local_search(ray_cluster, tmp_path: Path):
    """`ex-color search --ray` splits each batch into tasks over the cluster and writes the local search's tables."""
    directory = ex29_searching(tmp_path / 'exp', QUICK_SEARCH, evaluations=['ablated'])
    experiment = load_experiment(directory)
    here = run_search(experiment, trials=2, batch=2, steps=STEPS, out=tmp_path / 'local', progress=False)
    args = ['search', str(directory), '--trials', '2', '--batch', '2', '--steps', str(STEPS), '--no-report']
    assert main([*args, '--out', str(tmp_path / 'ray'), '--ray']) == 0
    for name in ('trials.csv', 'pareto.csv', 'validation.csv', 'finalists.csv'):
        assert (tmp_path / 'ray' / name).read_bytes() == (here.directory / name).read_bytes(), name
    assert json.loads((tmp_path / 'ray' / 'search.json').read_text())['ray'] == 'Ray: 2 CPUs, 1 per task'
