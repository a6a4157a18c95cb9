"""Runs end to end: a real SIGINT, then --resume, gives the figures of an uninterrupted run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from ex_color.config import load_experiment
from ex_color.experiment import RunExistsError, run_experiment

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = REPO / 'experiments' / 'ex-2.9'
STEPS = 700


def figures(run: Path) -> dict:
    results = json.loads((run / 'results.json').read_text())
    del results['train_seconds']
    return results


def cli(*args: str) -> list[str]:
    return [sys.executable, '-m', 'ex_color', 'run', str(EXPERIMENT), '--steps', str(STEPS), '--no-report', *args]


@pytest.mark.slow
def test_sigint_then_resume_equals_uninterrupted_run(tmp_path: Path):
    whole, broken = tmp_path / 'whole', tmp_path / 'broken'
    uninterrupted = subprocess.Popen(cli('--out', str(whole)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    interrupted = subprocess.Popen(cli('--out', str(broken)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The first periodic checkpoint (step 500) proves training is under way; interrupt after it.
    deadline = time.monotonic() + 240
    while not (broken / 'checkpoint.pt').exists():
        assert interrupted.poll() is None, interrupted.communicate()
        assert time.monotonic() < deadline, 'no checkpoint appeared'
        time.sleep(0.05)
    interrupted.send_signal(signal.SIGINT)
    _, stderr = interrupted.communicate(timeout=120)
    assert interrupted.returncode == 130, stderr
    assert '--resume' in stderr and 'Traceback' not in stderr
    assert not (broken / 'results.json').exists()

    # Without --resume the interrupted run is not overwritten.
    refused = subprocess.run(cli('--out', str(broken)), capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and 'interrupted run' in refused.stderr

    resumed = subprocess.run(cli('--out', str(broken), '--resume'), capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    assert uninterrupted.wait(timeout=240) == 0

    assert figures(broken) == figures(whole)
    pd.testing.assert_frame_equal(pd.read_csv(broken / 'metrics.csv'), pd.read_csv(whole / 'metrics.csv'))
    assert not (broken / 'checkpoint.pt').exists()


def test_same_seed_twice_gives_identical_figures(tmp_path: Path):
    experiment = load_experiment(EXPERIMENT)
    a = run_experiment(experiment, seed=3, out=tmp_path / 'a', steps=60, progress=False)
    b = run_experiment(experiment, seed=3, out=tmp_path / 'b', steps=60, progress=False)
    assert figures(a.directory) == figures(b.directory)
    assert (a.directory / 'model.pt').read_bytes() != b''
    with pytest.raises(RunExistsError):
        run_experiment(experiment, seed=3, out=tmp_path / 'a', steps=60, progress=False)


def test_a_lightning_run_shorter_than_the_logging_interval_still_has_metrics():
    from ex_color.experiment import train_lightning_seed

    experiment = load_experiment(EXPERIMENT)
    _, metrics = train_lightning_seed(experiment, 0, 12, progress=False)
    assert len(metrics) >= 1
    assert {'train_loss', 'train_recon', 'train_reg-anchor', 'weight_reg-anchor'} <= set(metrics.columns)


def test_a_run_applies_prepared_erasures_reports_their_settings_and_skips_the_controls(tmp_path: Path):
    import tomli_w

    experiment = load_experiment(EXPERIMENT)
    raw = experiment.config.model_dump(mode='json', exclude_none=True)
    raw['evaluations'].append({'name': 'leace', 'kind': 'leace', 'target': 'red', 'layer': 'bottleneck'})
    raw['evaluations'].append(
        {'name': 'md', 'kind': 'mean-difference', 'target': 'red', 'layer': 'bottleneck', 'renormalize': False}
    )
    (tmp_path / 'experiment.toml').write_text(tomli_w.dumps(raw))
    (tmp_path / 'dopesheet.csv').write_bytes(experiment.dopesheet_path.read_bytes())
    result = run_experiment(load_experiment(tmp_path), out=tmp_path / 'run', steps=60, progress=False)
    evaluations = json.loads((tmp_path / 'run' / 'results.json').read_text())['evaluations']
    assert list(evaluations) == ['baseline', 'ablated', 'pruned', 'suppressed', 'leace', 'md']  # no control-*
    leace, md = evaluations['leace']['edit'], evaluations['md']['edit']
    assert (leace['kind'], leace['rank'], leace['renormalize'], leace['label']) == ('leace', 1, True, 'red')
    assert (md['kind'], md['renormalize'], len(md['direction'])) == ('mean-difference', False, 5)
    assert evaluations['ablated']['edit'] == {}
    # The erasure changed the model's outputs: red's error rose above the baseline's.
    assert result.results.evaluations['leace'].named_colors['red'] > evaluations['baseline']['named_colors']['red']


def test_both_engines_write_the_same_metrics_columns_in_the_same_order():
    from ex_color.experiment import train_lightning_seed, train_seeds
    from ex_color.training.engine import EngineOptions

    experiment = load_experiment(EXPERIMENT)
    _, lightning = train_lightning_seed(experiment, 3, 20, progress=False)
    fast = train_seeds(experiment.config, experiment.dopesheet, [3], steps=20, options=EngineOptions(progress=False))
    assert list(lightning.columns) == list(fast.metrics.columns)
    assert set(lightning['seed']) == {3}
