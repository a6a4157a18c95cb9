"""`experiments/summarise.py`, the README's results script, on every shipped experiment's sweep.csv columns."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ex_color.config import load_experiment, run_columns

EXPERIMENTS = Path(__file__).resolve().parents[1] / 'experiments'
SCRIPT = EXPERIMENTS / 'summarise.py'


@pytest.mark.parametrize('name', sorted(p.name for p in EXPERIMENTS.iterdir() if (p / 'experiment.toml').exists()))
def test_summarise_reads_a_sweep_of_every_shipped_experiment(name, tmp_path, monkeypatch, capsys):
    config = load_experiment(EXPERIMENTS / name).config
    columns = run_columns(config)  # exactly the columns a sweep of this experiment writes
    values = np.random.default_rng(0).uniform(0.001, 0.5, size=(2, len(columns)))
    table = pd.DataFrame(values, columns=columns).assign(seed=[0, 1])
    table.to_csv(tmp_path / 'sweep.csv', index=False)
    monkeypatch.setattr(sys, 'argv', ['summarise.py', str(EXPERIMENTS / name), str(tmp_path)])
    runpy.run_path(str(SCRIPT), run_name='__main__')
    printed = capsys.readouterr().out
    for evaluation in config.prepared_evaluations():
        assert f'{evaluation.name} ({evaluation.kind}, aimed at' in printed
    assert not any(e.name in printed for e in config.evaluations if e.model == 'control')
    assert printed.count('  seed 0: ') == len(config.prepared_evaluations())
    assert ' removes ' not in printed
