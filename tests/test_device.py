"""--device: names resolved, a missing GPU refused in one line, CPU runs unchanged; on a GPU, CPU's figures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from ex_color.backends import chunk_trainer
from ex_color.config import ConfigError, load_experiment
from ex_color.device import device_fields, resolve_device
from ex_color.experiment import run_experiment
from ex_color.workdir import DirectoryError

from .cli import assert_one_line_error, run_cli

EX29 = Path(__file__).resolve().parents[1] / 'experiments' / 'ex-2.9'


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 0)


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)


def test_auto_is_the_gpu_when_there_is_one(no_gpu):
    assert resolve_device('auto') == 'cpu'
    assert resolve_device('cpu') == 'cpu'


def test_auto_and_cuda_name_a_gpu_that_is_there(two_gpus):
    assert resolve_device('auto') == 'cuda'
    assert resolve_device('cuda') == 'cuda'
    assert resolve_device('cuda:0') == resolve_device('cuda:00') == 'cuda'  # one name per GPU, as auto gives it
    assert resolve_device('cuda:1') == 'cuda:1'
    assert resolve_device(torch.device('cuda', 1)) == 'cuda:1'
    with pytest.raises(ConfigError, match="'cuda:²' is not a device"):
        resolve_device('cuda:²')
    with pytest.raises(ConfigError, match=r'^--device cuda:2: only 2 GPU\(s\) here$'):
        resolve_device('cuda:2')


@pytest.mark.parametrize(
    ('name', 'says'),
    [
        ('cuda', 'PyTorch sees no CUDA GPU here; expected --device cpu or auto'),
        ('gpu', "'gpu' is not a device; expected one of auto, cpu, cuda (or cuda:N)"),
        ('cuda:x', "'cuda:x' is not a device"),
    ],
)
def test_a_device_that_is_not_there_is_one_line(no_gpu, name, says):
    with pytest.raises(ConfigError, match=re.escape(says)):
        resolve_device(name)


@pytest.mark.parametrize('given', [None, 0, 1.5])
def test_a_device_that_is_not_a_name_is_one_line(given):
    with pytest.raises(ConfigError, match='is not a device name'):
        resolve_device(given)


def test_a_run_recorded_on_a_gpu_is_not_continued_on_the_cpu(tmp_path):
    """The directory's fingerprint holds its device; a CPU identity, which omits it, must still be compared."""
    experiment = load_experiment(EX29)
    out = tmp_path / 'run'
    run_experiment(experiment, steps=20, out=out)
    manifest = json.loads((out / 'manifest.json').read_text())
    (out / 'manifest.json').write_text(json.dumps(manifest | {'device': 'cuda'}))
    with pytest.raises(DirectoryError, match="holds a run with device 'cuda', not 'cpu'"):
        run_experiment(experiment, steps=20, out=out, resume=True)


def test_the_cpu_leaves_the_fingerprint_as_it_was_and_another_device_is_recorded():
    assert device_fields('cpu') == {}
    assert device_fields('cuda') == {'device': 'cuda'}


def test_the_command_line_refuses_a_missing_gpu_before_writing(tmp_path):
    out = tmp_path / 'run'
    if torch.cuda.is_available():
        pytest.skip('this machine has a GPU')
    line = assert_one_line_error(run_cli('run', EX29, '--device', 'cuda', '--out', out))
    assert line.endswith('--device cuda: PyTorch sees no CUDA GPU here; expected --device cpu or auto')
    assert not out.exists()


def test_ray_tasks_train_on_cpus(tmp_path):
    experiment = load_experiment(EX29)
    with pytest.raises(ConfigError, match='with --ray each chunk is a task on CPUs'):
        chunk_trainer(experiment, 10, tmp_path, ray='local', device='cuda')


def test_a_cpu_run_records_its_device(tmp_path):
    result = run_experiment(load_experiment(EX29), steps=20, out=tmp_path / 'run', device='cpu')
    assert json.loads((result.directory / 'results.json').read_text())['device'] == 'cpu'


@pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA GPU here')
def test_on_a_gpu_both_engines_give_the_cpus_figures_within_tolerance(tmp_path):
    """A GPU sums in another order: figures agree with the CPU's to a few parts in a thousand, not bit for bit."""
    experiment = load_experiment(EX29)
    for engine in ('fast', 'lightning'):
        cpu = run_experiment(experiment, steps=600, engine=engine, out=tmp_path / f'{engine}-cpu').results
        gpu = run_experiment(experiment, steps=600, engine=engine, out=tmp_path / f'{engine}-gpu', device='cuda')
        assert gpu.results.device == 'cuda'
        for name, evaluation in cpu.evaluations.items():
            theirs = gpu.results.evaluations[name]
            assert theirs.mse_median == pytest.approx(evaluation.mse_median, rel=0.05, abs=1e-5), (engine, name)
            assert theirs.selectivity_r2 == pytest.approx(evaluation.selectivity_r2, abs=0.02), (engine, name)
