"""A tiny text experiment end to end through the command line: run (with report and resume), sweep and compare.

It is lm-digits with a one-block model and a few hundred steps (`tests/small_text.py`), so it checks the
pipeline and the files, not the figures: those are checked in `test_text_evaluation.py` and, at full size, by
`ex-color compare experiments/lm-digits` (README)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from ex_color.data.corpus import ALL, CHAR_CLASSES

from .cli import assert_one_line_error, run_cli
from .small_text import LM_DIGITS, STEPS, set_arguments

CLASSES = [*CHAR_CLASSES, ALL]


@pytest.fixture(scope='module')
def text_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('text') / 'run'
    result = run_cli('run', LM_DIGITS, '--steps', STEPS, '--out', out, '--logger', 'csv', *set_arguments())
    return out, result


def test_run_writes_text_figures(text_run):
    out, result = text_run
    assert result.returncode == 0, result.stderr
    results = json.loads((out / 'results.json').read_text())
    assert list(results['evaluations']) == ['baseline', 'ablated', 'pruned', 'suppressed']
    for e in results['evaluations'].values():
        assert sorted(e['class_ce']) == sorted(CLASSES) == sorted(e['class_ce_ratio'])
        assert {'target_ratio', 'collateral_ratio', 'target_mass', 'other_mass'} <= set(e)
        assert e['targets'] == ['digit']
    base = results['evaluations']['baseline']
    assert base['class_ce_ratio'] == dict.fromkeys(base['class_ce_ratio'], 1.0)
    # ablating and pruning the bottleneck's dim 0 are the same function: the same figures
    assert results['evaluations']['ablated']['class_ce'] == pytest.approx(results['evaluations']['pruned']['class_ce'])
    assert results['validation']['val_recon'] == pytest.approx(base['class_ce'][ALL])
    metrics = pd.read_csv(out / 'metrics.csv')
    assert {'train_recon', 'train_reg-anchor', 'train_reg-away'} <= set(metrics.columns)
    assert metrics['step'].iloc[-1] == STEPS - 1
    assert metrics['train_recon'].iloc[-1] < metrics['train_recon'].iloc[0] - 1.0  # it learnt something
    assert 'digit' in result.stdout and 'p(concept)' in result.stdout
    report = (out / 'report.html').read_text()
    assert 'Continuations' in report and 'figures/class-ratios.png' in report
    tracked = pd.read_csv(out / 'tracking' / 'csv' / 'metrics.csv')  # the tracker has every logged step and the figures
    assert tracked['train_recon'].dropna().tolist() == pytest.approx(metrics['train_recon'].tolist())
    assert tracked['final/ablated_target_ratio'].dropna().tolist() == [
        results['evaluations']['ablated']['target_ratio']
    ]


def test_a_finished_text_run_resumes_as_it_was(text_run):
    out, _ = text_run
    before = (out / 'results.json').read_bytes()
    again = run_cli('run', LM_DIGITS, '--steps', STEPS, '--out', out, '--resume', '--no-report', *set_arguments())
    assert again.returncode == 0, again.stderr
    assert (out / 'results.json').read_bytes() == before


@pytest.mark.parametrize(
    ('arguments', 'words'),
    [
        (['--engine', 'lightning'], 'a text experiment trains with the fast engine'),
        (['--compile'], 'a text experiment trains eager'),
        (['--set', 'model.heads=5'], 'model.width: 32 is not a multiple of heads (5)'),
        (['--set', 'labels.digit.chars=""'], 'labels.digit.chars'),
        (['--set', 'evaluations.0.target="red"'], 'evaluations.0.target'),
        (['--set', 'data.path="missing.txt"'], 'data'),
        (['--set', 'data.held_out=0.99999'], 'data.held_out: 0.99999 leaves the training part'),
        (['--set', 'data.held_out=0.00001'], 'data.held_out: 1e-05 leaves the held-out part'),
    ],
)
def test_text_mistakes_are_one_line(tmp_path, arguments, words):
    result = run_cli('run', LM_DIGITS, '--steps', 5, '--out', tmp_path / 'run', *set_arguments(), *arguments)
    assert words in assert_one_line_error(result)


def test_text_sweep_and_compare(tmp_path):
    sweep = run_cli(
        'sweep',
        LM_DIGITS,
        '--seeds',
        '0-1',
        '--steps',
        60,
        '--out',
        tmp_path / 'sweep',
        '--no-report',
        *set_arguments(),
    )
    assert sweep.returncode == 0, sweep.stderr
    table = pd.read_csv(tmp_path / 'sweep' / 'sweep.csv')
    assert {'ablated_target_ratio', 'ablated_ratio_digit', 'val_recon'} <= set(table.columns)
    assert (tmp_path / 'sweep' / 'best' / 'results.json').exists()

    out = tmp_path / 'compare'
    compare = run_cli('compare', LM_DIGITS, '--seeds', '0-1', '--steps', 60, '--out', out, *set_arguments())
    assert compare.returncode == 0, compare.stderr
    rows = pd.read_csv(out / 'compare.csv')
    methods = ['baseline', 'control', 'ablated', 'pruned', 'suppressed', 'control-leace', 'control-mean-difference']
    assert sorted(rows['method'].unique()) == sorted(methods)
    assert len(rows) == 2 * len(methods)
    control = rows[rows['model'] == 'control']
    assert (control['target_mass_before'] == control[control['method'] == 'control']['target_mass_after'].iloc[0]).any()
    facts = json.loads((out / 'compare.json').read_text())
    assert facts['domain'] == 'text' and set(facts['untouched_ce']) == {'prepared', 'control'}
    assert len(facts['prompts']) == 4 and set(facts['continuations']) == set(methods)
    assert 'Continuations' in (out / 'report.html').read_text()
    # resumed: every seed is on disk, so nothing trains again and the tables are the same
    again = run_cli(
        'compare', LM_DIGITS, '--seeds', '0-1', '--steps', 60, '--out', out, '--no-report', *set_arguments()
    )
    assert again.returncode == 0, again.stderr
    assert pd.read_csv(out / 'compare.csv').equals(rows)


@pytest.mark.parametrize(
    ('old', 'new', 'words'),
    [
        ('kind = "char-transformer"', 'kind = "CNColorMLP"', 'data.kind'),
        ('kind = "next-token"', 'kind = "vibrancy"', 'labels.digit'),
        ('kind = "text"', 'kind = "colors"', 'data.kind'),
    ],
)
def test_a_model_data_or_label_of_the_other_domain_is_one_line(tmp_path, old, new, words):
    text = (LM_DIGITS / 'experiment.toml').read_text()
    assert old in text
    text = text.replace(old, new, 1)
    if new == 'kind = "CNColorMLP"':
        text = text.replace('layers = 3\nwidth = 96\nheads = 4\n', '')
    if new == 'kind = "vibrancy"':
        text = text.replace('chars = "0123456789"\n', '')
    if new == 'kind = "colors"':
        text = text.replace('source = "python-reference"\ncontext = 64\nheld_out = 0.1\n', '')
    (tmp_path / 'experiment.toml').write_text(text)
    (tmp_path / 'dopesheet.csv').write_bytes((LM_DIGITS / 'dopesheet.csv').read_bytes())
    result = run_cli('run', tmp_path, '--steps', 5, '--out', tmp_path / 'run')
    assert words in assert_one_line_error(result)


@pytest.mark.parametrize(
    ('command', 'words'),
    [
        (['search', '--trials', '2'], 'a text experiment is not searched yet'),
        (['sweep', '--seeds', '0-1', '--compile'], 'a text experiment trains eager'),
        (['compare', '--seeds', '0-1', '--compile'], 'a text experiment trains eager'),
    ],
)
def test_what_text_does_not_do_yet_is_one_line(tmp_path, command, words):
    result = run_cli(command[0], LM_DIGITS, *command[1:], '--steps', 5, '--out', tmp_path / 'out', *set_arguments())
    assert words in assert_one_line_error(result)


def test_a_concept_of_every_character_has_no_collateral_figure_and_the_reports_say_so(tmp_path):
    """Every held-out position is the concept's: the collateral ratio is NaN (class 'none'), shown as '—'."""
    text = (LM_DIGITS / 'experiment.toml').read_text()
    text = text.replace('source = "python-reference"', 'path = "corpus.txt"').replace('"0123456789"', '"ab12 "')
    (tmp_path / 'experiment.toml').write_text(text)
    (tmp_path / 'dopesheet.csv').write_bytes((LM_DIGITS / 'dopesheet.csv').read_bytes())
    (tmp_path / 'corpus.txt').write_text('ab 12 ba 21 ' * 400)
    out = tmp_path / 'compare'
    result = run_cli('compare', tmp_path, '--seeds', '0', '--steps', 20, '--out', out, *set_arguments())
    assert result.returncode == 0, result.stderr
    assert 'the concept is constant (1) over the fitting samples' in result.stderr  # erasing it fails, as a warning
    rows = pd.read_csv(out / 'compare.csv')
    assert rows['collateral_ratio'].isna().all()
    erased = rows['kind'].isin(['leace', 'mean-difference'])
    assert rows.loc[erased, 'target_ratio'].isna().all() and rows.loc[~erased, 'target_ratio'].notna().all()
    assert (rows.loc[~erased, 'collateral_class'] == 'none').all()
    assert '—' in (out / 'report.html').read_text()


def test_a_corpus_file_that_changes_under_a_run_is_refused(tmp_path):
    text = (LM_DIGITS / 'experiment.toml').read_text().replace('source = "python-reference"', 'path = "corpus.txt"')
    (tmp_path / 'experiment.toml').write_text(text)
    (tmp_path / 'dopesheet.csv').write_bytes((LM_DIGITS / 'dopesheet.csv').read_bytes())
    corpus = tmp_path / 'corpus.txt'
    corpus.write_text(''.join(f'item {i} costs {i * 7 % 100}. ' for i in range(400)))
    out = tmp_path / 'run'
    assert run_cli('run', tmp_path, '--steps', 10, '--out', out, '--no-report', *set_arguments()).returncode == 0
    corpus.write_text(corpus.read_text().replace('costs', 'takes'))  # same length, other text
    again = run_cli('run', tmp_path, '--steps', 10, '--out', out, '--resume', '--no-report', *set_arguments())
    assert 'of another corpus (the text it trained on has changed)' in assert_one_line_error(again)
    report = run_cli('report', out)
    assert 'corpus' in assert_one_line_error(report)


@pytest.mark.parametrize(
    ('arguments', 'words'),
    [
        (['--set', 'regularizers.1.layers=["position"]'], "layer 'position' outputs [8, 32]"),
        (['--set', 'data.held_out=0.0001'], "label 'digit' marks no position of the held-out part"),
    ],
)
def test_text_layers_and_concepts_are_checked_at_load(tmp_path, arguments, words):
    result = run_cli('run', LM_DIGITS, '--steps', 5, '--out', tmp_path / 'run', *set_arguments(), *arguments)
    assert words in assert_one_line_error(result)
    assert not (tmp_path / 'run').exists()
