"""The notebook API: three lines give what `ex-color run` gives, and the same directory."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
import torch

import ex_color

from .cli import run_cli

EX29 = Path(__file__).resolve().parents[1] / 'experiments' / 'ex-2.9'
STEPS = 60


@pytest.fixture(scope='module')
def api_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('api') / 'run'
    exp = ex_color.load(str(EX29))
    return exp, exp.run(seed=0, steps=STEPS, out=out, report=False, progress=False)


def test_three_lines_give_the_figures_of_the_command(api_run, tmp_path):
    _, run = api_run
    proc = run_cli('run', EX29, '--seed', 0, '--steps', STEPS, '--out', tmp_path / 'cli', '--no-report', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    by_api = json.loads((run.directory / 'results.json').read_text())
    by_cli = json.loads((tmp_path / 'cli' / 'results.json').read_text())
    assert {**by_api, 'train_seconds': 0} == {**by_cli, 'train_seconds': 0}  # the same computation: exactly equal
    assert (run.directory / 'model.pt').read_bytes() == (tmp_path / 'cli' / 'model.pt').read_bytes()


def test_a_run_holds_its_model_variants_and_figures(api_run):
    _, run = api_run
    saved = torch.load(run.directory / 'model.pt', weights_only=True)
    assert all(torch.equal(run.model.state_dict()[k], v) for k, v in saved.items())
    assert list(run.figures.index) == list(run.results.evaluations)  # baseline first, then the file's order
    assert run.figures.loc['ablated', 'selectivity_r2'] == run.results.evaluations['ablated'].selectivity_r2
    assert run.figures.loc['ablated', 'targets'] == 'red'
    assert set(run.variants) == {'baseline', 'ablated', 'pruned', 'suppressed'}
    assert run.metrics['step'].iloc[-1] == STEPS - 1


def test_running_the_cell_again_reopens_the_run(api_run):
    exp, run = api_run
    stamp = (run.directory / 'model.pt').stat().st_mtime_ns
    again = exp.run(seed=0, steps=STEPS, out=run.directory, report=False, progress=False)
    assert (run.directory / 'model.pt').stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(again.figures, run.figures)


def test_show_draws_a_missing_report_and_displays_its_headline(api_run, monkeypatch):
    _, run = api_run
    assert not (run.directory / 'report.html').exists()
    paths = run.show()  # no IPython here: the report is drawn and the paths returned
    assert (run.directory / 'report.html').exists()
    headline = json.loads((run.directory / 'figures' / 'index.json').read_text())['headline']
    assert [str(p) for p in paths] == [str(run.directory / h['light']) for h in headline]
    assert paths and all(p.exists() for p in paths)

    shown: list[str] = []  # in a notebook: each one displayed, in order
    display_module = types.ModuleType('IPython.display')
    display_module.Image = lambda filename: filename
    display_module.display = shown.append
    monkeypatch.setitem(sys.modules, 'IPython', types.ModuleType('IPython'))
    monkeypatch.setitem(sys.modules, 'IPython.display', display_module)
    assert run.show() == paths
    assert shown == [str(p) for p in paths]


def test_a_reopened_run_keeps_the_report_it_has(api_run):
    exp, run = api_run
    run.show()  # the report exists from here on
    stamp = (run.directory / 'report.html').stat().st_mtime_ns
    exp.run(seed=0, steps=STEPS, out=run.directory, progress=False)  # report=True: the cell run again
    assert (run.directory / 'report.html').stat().st_mtime_ns == stamp  # not drawn again


def test_overrides_sweeps_and_comparisons_from_python(tmp_path):
    exp = ex_color.load(EX29, overrides=['labels.red.power=5'])
    assert exp.experiment.config.labels.red.power == 5.0
    sweep = exp.sweep('0-1', steps=20, out=tmp_path / 'sweep', report=False, progress=False)
    assert sweep.table['seed'].tolist() == [0, 1]
    assert sweep.best().results.seed == sweep.best_seed
    compared = ex_color.load(EX29).compare(2, steps=20, out=tmp_path / 'compare', report=False, progress=False)
    assert compared.facts.seeds == [0, 1]
    assert 'control-leace' in compared.summary['method'].tolist()
