"""The comparison report: verdict sentences from hand-made summaries, figures from a small fake directory, the page.

The fake directory holds exactly the files `ex-color compare` writes (compare.json, compare.csv,
summary.csv, hue_error.csv) for 3 seeds and 6 rows per seed: both unedited models, three methods
on the prepared model (one of them removing two targets) and a post-hoc erasure on the control.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgb

from ex_color.comparedir import CompareFacts, ModelFacts, Verdict
from ex_color.rundir import RunArtifactsError
from ex_color.vis.compare_figures import (
    MODEL_COLORS,
    median_band,
    method_order,
    model_colors,
    plot_hue_error,
    plot_method_boxes,
)
from ex_color.vis.compare_report import (
    FIGURES,
    fairness_warning,
    interval,
    load_comparison,
    verdict,
    write_compare_report,
)
from tests.browser import Chromium, assert_page_clean
from tests.vis.conftest import EX29

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
SEEDS = [0, 1, 2]
HUES = np.arange(240) * 1.5
FIXTURE_HUES = {'red': 0.0, 'blue': 240.0}
"""Where the fake targets sit along hue (test data only: the report never derives a hue from a name)."""
# method: (model, kind, targets, target_error, selectivity_r2, collateral_max, collateral_median)
METHODS = {
    'baseline': ('prepared', 'baseline', 'red', 2e-5, 0.01, 3e-5, 1e-5),
    'ablated': ('prepared', 'ablate', 'red', 0.45, 0.9, 2e-3, 4e-5),
    'suppressed': ('prepared', 'suppress', 'red', 0.3, 0.7, 8e-3, 1e-4),
    'ablated-both': ('prepared', 'ablate', 'red+blue', 0.4, 0.6, 3e-2, 3e-4),
    'control': ('control', 'baseline', 'red', 3e-5, 0.02, 4e-5, 1.5e-5),
    'control-leace': ('control', 'leace', 'red', 0.05, 0.95, 1e-3, 2e-5),
}
"""The fake figures of merit per method (each seed scatters around them)."""


# The fake directory ---------------------------------------------------------------------------


def write_fake_comparison(directory: Path, *, ratio: float = 1.3) -> Path:
    """Write the files `ex-color compare` writes, with numbers drawn around METHODS."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    rows, hue_rows = [], []
    for seed in SEEDS:
        for method, (model, kind, targets, te, sel, cmax, cmed) in METHODS.items():
            jitter = rng.uniform(0.8, 1.25, 4)
            rows.append(
                {
                    'seed': seed,
                    'method': method,
                    'model': model,
                    'kind': kind,
                    'targets': targets,
                    'target_error': te * jitter[0],
                    'selectivity_r2': min(sel * jitter[1], 1.0),
                    'collateral_max': cmax * jitter[2],
                    'collateral_median': cmed * jitter[3],
                    'mse_max': te * jitter[0] * 1.1,
                    'mse_median': cmed,
                    'baseline_median': 1e-5 * (ratio if model == 'control' else 1.0),
                }
            )
            for target in targets.split('+'):
                distance = np.abs((HUES - FIXTURE_HUES[target] + 180) % 360 - 180)
                error = 1e-5 + te * jitter[0] * np.exp(-((distance / 20) ** 2))
                hue_rows += [
                    {'seed': seed, 'method': method, 'hue': h, 'error': e} for h, e in zip(HUES, error, strict=True)
                ]
    table = pd.DataFrame(rows)
    table.to_csv(directory / 'compare.csv', index=False)
    # Several targets are one series per target: keep the larger error at each hue.
    hue = pd.DataFrame(hue_rows).groupby(['seed', 'method', 'hue'], sort=False, as_index=False)['error'].max()
    hue.to_csv(directory / 'hue_error.csv', index=False)

    summary = []
    for _, group in table.groupby('method', sort=False):
        row = {c: group[c].iloc[0] for c in ('method', 'model', 'kind', 'targets')} | {'seeds': len(group)}
        for figure in FIGURES:
            values = group[figure]
            row |= {f'{figure}_mean': values.mean(), f'{figure}_low': values.min(), f'{figure}_high': values.max()}
        summary.append(row)
    summary = pd.DataFrame(summary)
    summary.to_csv(directory / 'summary.csv', index=False)

    edits = summary[summary['kind'] != 'baseline']
    removing = edits[edits['target_error_mean'] >= 0.1]
    least = removing.loc[removing['collateral_max_mean'].idxmin(), 'method'] if len(removing) else None
    meta = {
        'experiment': 'ex-test',
        'title': 'Ex test: remove a colour',
        'seeds': SEEDS,
        'removal_threshold': 0.1,
        'removes': list(removing['method']),
        'least_collateral': least,
        'control': {
            'keep': ['reg-unit'],
            'baseline_median': 1e-5 * ratio,
            'prepared_baseline_median': 1e-5,
            'ratio': ratio,
            'fair': ratio <= 2,
        },
        'methods': {
            m: {'kind': kind, 'model': model, 'layer': 'bottleneck', 'targets': targets.split('+')}
            | (
                {'label': 'red', 'renormalize': True, 'fit': 'Fitted on the control latents of the training colours.'}
                if kind == 'leace'
                else {}
            )
            for m, (model, kind, targets, *_) in METHODS.items()
            if kind != 'baseline'
        },
    }
    (directory / 'compare.json').write_text(json.dumps(meta, indent=2))
    return directory


@pytest.fixture(scope='module')
def fake_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake comparison, with Ex 2.9's experiment as its config.toml (its evaluations target red)."""
    directory = write_fake_comparison(tmp_path_factory.mktemp('compare') / 'compare')
    shutil.copy(EX29 / 'experiment.toml', directory / 'config.toml')
    shutil.copy(EX29 / 'dopesheet.csv', directory / 'dopesheet.csv')
    return directory


@pytest.fixture(scope='module')
def report(fake_dir: Path) -> Path:
    (fake_dir / 'figures').mkdir()
    (fake_dir / 'figures' / 'stale.png').write_bytes(b'old')
    return write_compare_report(fake_dir)


# Verdict from hand-made summaries -------------------------------------------------------------


def summary_of(rows: dict[str, tuple[str, str, float, float, float, float]]) -> pd.DataFrame:
    """A summary.csv frame: method → (model, kind, target error, selectivity, collateral max, median), ±10%."""
    records = []
    for method, (model, kind, *means) in rows.items():
        record = {'method': method, 'model': model, 'kind': kind, 'targets': 'red', 'seeds': 20}
        for figure, mean in zip(FIGURES, [means[0], means[1], means[2], means[3], 1e-5], strict=True):
            record |= {f'{figure}_mean': mean, f'{figure}_low': mean * 0.9, f'{figure}_high': mean * 1.1}
        records.append(record)
    return pd.DataFrame(records)


def meta_of(summary: pd.DataFrame, *, ratio: float = 1.2) -> CompareFacts:
    edits = summary[(summary['kind'] != 'baseline') & (summary['target_error_mean'] >= 0.1)]
    return CompareFacts(
        experiment='test',
        title='Test',
        seeds=[0, 1],
        removal_threshold=0.1,
        removes=list(edits['method']),
        least_collateral=edits.loc[edits['collateral_max_mean'].idxmin(), 'method'] if len(edits) else None,
        models={
            'control': ModelFacts(
                keep=['reg-unit'],
                baseline_median=1.2e-5 * ratio,
                prepared_baseline_median=1.2e-5,
                ratio=ratio,
                fair=ratio <= 2,
            )
        },
    )


BASELINES = {
    'baseline': ('prepared', 'baseline', 2e-5, 0.01, 3e-5, 1e-5),
    'control': ('control', 'baseline', 3e-5, 0.02, 4e-5, 1e-5),
}


def row(summary: pd.DataFrame, method: str) -> dict:
    return summary.set_index('method', drop=False).loc[method].to_dict()


def sentence_with(sentences: list[str], start: str) -> str:
    found = [s for s in sentences if s.startswith(start)]
    assert len(found) == 1, (start, sentences)
    return found[0]


def test_interval_is_mean_and_bounds_to_three_significant_figures():
    assert interval({'x_mean': 0.42137, 'x_low': 0.39812, 'x_high': 0.44561}, 'x') == '0.421 [0.398, 0.446]'
    assert interval({'x_mean': 1.234e-5, 'x_low': float('nan'), 'x_high': float('nan')}, 'x') == '1.23e-05'


def test_verdict_when_a_prepared_method_wins():
    summary = summary_of(
        BASELINES
        | {
            'ablated': ('prepared', 'ablate', 0.45, 0.9, 2e-3, 4e-5),
            'suppressed': ('prepared', 'suppress', 0.3, 0.7, 8e-3, 1e-4),
            'control-leace': ('control', 'leace', 0.05, 0.5, 1e-3, 2e-5),
        }
    )
    sentences = verdict(summary, meta_of(summary))
    ablated, leace = row(summary, 'ablated'), row(summary, 'control-leace')
    first = sentences[0]
    assert first.startswith('ablated (ablation on the prepared model) removes red with the least collateral damage')
    for figure in ('target_error', 'collateral_max', 'collateral_median'):
        assert interval(ablated, figure) in first
    assert 'also suppressed' in first
    # The control's best removes less: its target error, below the threshold.
    other = sentence_with(sentences, 'On the control, no method removes its target')
    assert interval(leace, 'target_error') in other
    assert 'control-leace (post-hoc LEACE erasure on the control)' in other
    assert sentence_with(sentences, 'On target error, the prepared model does better')
    assert sentence_with(sentences, 'On selectivity r², the prepared model does better')
    # Collateral damage is compared only among methods that remove: none on the control here.
    assert not [s for s in sentences if s.startswith('On collateral')]
    assert 'so its comparison is fair' in sentences[-1]


def test_verdict_ranks_only_methods_with_the_baselines_targets():
    summary = summary_of(
        BASELINES
        | {
            'ablated': ('prepared', 'ablate', 0.45, 0.9, 2e-3, 4e-5),
            'control-leace': ('control', 'leace', 0.3, 0.5, 4e-3, 2e-5),
            'cyan-ablated': ('prepared', 'ablate', 0.5, 0.9, 1e-4, 1e-6),  # least collateral, but of cyan
        }
    )
    summary.loc[summary['method'] == 'cyan-ablated', 'targets'] = 'cyan'
    meta = meta_of(summary)
    assert meta.least_collateral == 'cyan-ablated'  # a ranking over every target would pick it
    sentences = verdict(summary, meta)
    assert sentences[0] == (
        'Only methods that remove red are compared here. cyan-ablated removes cyan, measured against other colours: '
        'see the table.'
    )
    assert sentences[1].startswith('ablated (ablation on the prepared model) removes red with the least collateral')
    assert 'of the 2 methods that remove their target (also control-leace)' in sentences[1]
    assert not [s for s in sentences[1:] if 'cyan' in s]


def test_verdict_says_plainly_when_a_control_method_wins():
    summary = summary_of(
        BASELINES
        | {
            'ablated': ('prepared', 'ablate', 0.45, 0.6, 2e-2, 4e-4),
            'control-leace': ('control', 'leace', 0.3, 0.9, 1e-4, 2e-5),
            'control-mean-difference': ('control', 'mean-difference', 0.2, 0.8, 5e-4, 3e-5),
        }
    )
    meta = meta_of(summary)
    assert meta.least_collateral == 'control-leace'
    sentences = verdict(summary, meta)
    assert sentences[0].startswith('control-leace (post-hoc LEACE erasure on the control) removes red')
    assert interval(row(summary, 'control-leace'), 'collateral_max') in sentences[0]
    other = sentence_with(sentences, 'On the prepared model, ablated (ablation on the prepared model) removes red too')
    assert 'with more collateral damage' in other
    assert interval(row(summary, 'ablated'), 'collateral_max') in other
    # The prepared model removes more; the control wins every other figure.
    assert sentence_with(sentences, 'On target error, the prepared model does better: ablated')
    for figure in ('selectivity r²', 'collateral max', 'collateral median'):
        assert sentence_with(sentences, f'On {figure}')
        assert 'the control does better: control-leace' in sentence_with(sentences, f'On {figure}')


def test_a_large_target_error_of_a_model_that_never_learnt_the_target_is_no_removal():
    """0.335 is above the threshold, but the unedited control already errs 0.05 there: the verdict says no method
    removes the target and states both rules, so it cannot read as contradicting the table."""
    summary = summary_of(
        {
            'baseline': ('prepared', 'baseline', 2e-5, 0.01, 3e-5, 1e-5),
            'control': ('control', 'baseline', 0.05, 0.02, 4e-5, 1e-5),
            'control-leace': ('control', 'leace', 0.335, 0.8, 1e-3, 2e-5),
        }
    )
    derived = Verdict.of(summary)
    assert derived.removes == []
    facts = CompareFacts(
        experiment='test', title='Test', seeds=[0, 1], removal_threshold=0.1, removes=[], least_collateral=None
    )
    first = verdict(summary, facts)[0]
    assert first == (
        'No method removes its target: a method removes its target when its mean target error is at least 0.1 '
        "and at least 10 times the unedited model's, and none does."
    )


def test_a_one_seed_comparison_says_first_that_its_intervals_are_no_intervals():
    summary = summary_of(BASELINES | {'ablated': ('prepared', 'ablate', 0.4, 0.9, 2e-3, 4e-5)})
    many = verdict(summary, meta_of(summary))
    summary['seeds'] = 1
    one = verdict(summary, meta_of(summary))
    assert one[0].startswith('Only one seed was compared') and one[1:] == [
        s.replace('20 seeds', '1 seed') for s in many
    ]
    assert not any(s.startswith('Only one seed') for s in many)


def test_verdict_when_no_method_removes_the_target():
    summary = summary_of(
        BASELINES
        | {
            'ablated': ('prepared', 'ablate', 0.04, 0.6, 2e-3, 4e-5),
            'control-leace': ('control', 'leace', 0.07, 0.8, 1e-3, 2e-5),
        }
    )
    meta = meta_of(summary)
    assert meta.removes == []
    sentences = verdict(summary, meta)
    assert sentences[0].startswith('No method removes its target')
    assert 'at least 0.1 and at least 10 times the unedited model' in sentences[0]
    assert sentences[1] == (
        f'The highest is that of control-leace (post-hoc LEACE erasure on the control), '
        f'{interval(row(summary, "control-leace"), "target_error")}.'
    )
    assert not [s for s in sentences if 'least collateral' in s or s.startswith('On collateral')]
    # Target error and selectivity still compare across the models.
    assert 'the control does better' in sentence_with(sentences, 'On target error')


def test_verdict_and_warning_when_the_control_is_not_fair():
    summary = summary_of(
        BASELINES
        | {
            'ablated': ('prepared', 'ablate', 0.45, 0.9, 2e-3, 4e-5),
            'control-leace': ('control', 'leace', 0.3, 0.8, 1e-3, 2e-5),
        }
    )
    meta = meta_of(summary, ratio=3.5)
    warning = fairness_warning(meta)
    assert warning is not None
    assert '3.5 times' in warning
    assert 'not fair' in warning
    assert '3.5 times worse' in verdict(summary, meta)[-1]
    assert fairness_warning(meta_of(summary, ratio=1.5)) is None


def test_verdict_notes_overlapping_intervals():
    summary = summary_of(
        BASELINES
        | {
            'ablated': ('prepared', 'ablate', 0.45, 0.82, 2e-3, 4e-5),
            'control-leace': ('control', 'leace', 0.3, 0.8, 1e-3, 2e-5),
        }
    )
    selectivity = sentence_with(verdict(summary, meta_of(summary)), 'On selectivity r²')
    assert selectivity.endswith('though the intervals overlap.')  # 0.82 ± 10% and 0.8 ± 10%
    target = sentence_with(verdict(summary, meta_of(summary)), 'On target error')
    assert 'overlap' not in target  # 0.45 ± 10% and 0.3 ± 10%


# Figures --------------------------------------------------------------------------------------


def test_median_band_of_two_seeds_spans_them():
    errors = np.array([[1.0, 5.0, 2.0], [3.0, 1.0, 2.0]])
    median, low, high = median_band(errors)
    np.testing.assert_allclose(median, [2.0, 3.0, 2.0])
    # Resampling two seeds gives medians a, (a + b) / 2 or b: the 95% interval reaches both.
    np.testing.assert_allclose(low, errors.min(axis=0))
    np.testing.assert_allclose(high, errors.max(axis=0))
    one = median_band(errors[:1])
    for series in one:
        np.testing.assert_allclose(series, errors[0])


def test_method_boxes_draw_every_seed_of_every_method_in_its_models_colour(fake_dir, close_figures):
    comparison = load_comparison(fake_dir)
    order = method_order(comparison.summary)
    assert order == ['baseline', 'ablated', 'suppressed', 'ablated-both', 'control', 'control-leace']
    models = dict(zip(comparison.summary['method'], comparison.summary['model'], strict=True))
    kinds = dict(zip(comparison.summary['method'], comparison.summary['kind'], strict=True))
    figures = ['target_error', 'selectivity_r2']
    fig = plot_method_boxes(comparison.table, figures, order=order, models=models, kinds=kinds, removal_threshold=0.1)
    close_figures.append(fig)
    target_ax, selectivity_ax = fig.axes[:2]
    assert target_ax.get_yscale() == 'log'
    assert selectivity_ax.get_yscale() == 'linear'
    for ax, figure in zip((target_ax, selectivity_ax), figures, strict=True):
        dots = {c.get_gid(): c for c in ax.collections if isinstance(c, PathCollection)}
        for method in order:
            expected = comparison.table.loc[comparison.table['method'] == method, figure].to_numpy()
            np.testing.assert_allclose(dots[f'seeds:{method}'].get_offsets()[:, 1], expected)
            # Edge colour is the model's colour for every method, filled or hollow.
            edge = dots[f'seeds:{method}'].get_edgecolors()[0][:3]
            colour = dict(MODEL_COLORS)['blue' if models[method] == 'prepared' else 'orange']['light']
            np.testing.assert_allclose(edge, to_rgb(colour))
    assert [t.get_text() for t in target_ax.get_xticklabels()] == order


def test_models_take_colours_in_order_the_prepared_model_first():
    models = {'baseline': 'prepared', 'routed-ablated': 'routed', 'control': 'control', 'ablated': 'prepared'}
    names = {model: name for model, (name, _) in model_colors(models).items()}
    assert names == {'prepared': 'blue', 'routed': 'orange', 'control': 'green'}
    many = {f'm{i}': f'model-{i}' for i in range(7)}
    assert [name for name, _ in model_colors(many).values()][-2:] == ['grey', 'grey']


def test_hue_error_lines_are_the_median_over_seeds(fake_dir, close_figures):
    comparison = load_comparison(fake_dir)
    assert comparison.hue is not None
    order = method_order(comparison.summary)
    models = dict(zip(comparison.summary['method'], comparison.summary['model'], strict=True))
    kinds = dict(zip(comparison.summary['method'], comparison.summary['kind'], strict=True))
    fig = plot_hue_error(comparison.hue, order=order, models=models, kinds=kinds, theme='dark')
    close_figures.append(fig)
    ax = fig.axes[0]
    lines = {line.get_gid(): line for line in ax.get_lines() if line.get_gid()}
    assert set(lines) == {f'median:{m}' for m in order}
    hue = comparison.hue
    ablated = hue[hue['method'] == 'ablated'].pivot(index='seed', columns='hue', values='error')
    np.testing.assert_allclose(lines['median:ablated'].get_ydata(), ablated.median(axis=0).to_numpy())
    np.testing.assert_allclose(lines['median:ablated'].get_xdata(), HUES)
    assert ax.get_yscale() == 'log'
    # The first method of a model has its colour; the unedited model too, dotted.
    assert lines['median:control-leace'].get_color() == dict(MODEL_COLORS)['orange']['dark']
    assert lines['median:control'].get_linestyle() == ':'


# The page -------------------------------------------------------------------------------------


class PageParser(HTMLParser):
    """Images, table rows (cells and class) and the text of the warning."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.rows: list[tuple[str, list[str]]] = []
        self.ids: set[str] = set()
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if attributes.get('id'):
            self.ids.add(attributes['id'] or '')
        if tag == 'img':
            self.images.append(attributes)
        elif tag == 'tr':
            self.rows.append((attributes.get('class') or '', []))
        elif tag in ('td', 'th'):
            self._cell = self.rows[-1][1]
            self._cell.append('')

    def handle_endtag(self, tag: str) -> None:
        if tag in ('td', 'th') and self._cell is not None:
            self._cell[-1] = ' '.join(self._cell[-1].split())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell[-1] += data


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text())
    return parser


def test_report_draws_each_figure_light_and_dark_with_alt_texts_naming_the_methods(fake_dir, report):
    assert report == fake_dir / 'report.html'
    page = parse(report)
    index = json.loads((fake_dir / 'figures' / 'index.json').read_text())['figures']
    assert [f['name'] for f in index] == ['compare-methods', 'compare-hue-error']
    assert {img['src'] for img in page.images} == {f['light'] for f in index}
    for figure in index:
        for path in (fake_dir / figure['light'], fake_dir / figure['dark']):
            assert path.read_bytes()[:8] == PNG_SIGNATURE, path
        assert figure['title'] in figure['alt']
        for method in METHODS:
            assert method in figure['alt'], (figure['name'], method)
    assert sorted(p.name for p in (fake_dir / 'figures').glob('*.png')) == sorted(
        Path(f[k]).name for f in index for k in ('light', 'dark')
    )  # stale.png is gone
    boxes = next(f['alt'] for f in index if f['name'] == 'compare-methods')
    ablated = load_comparison(fake_dir).table.query('method == "ablated"')['target_error'].median()
    assert f'ablated {ablated:.2g}' in boxes
    hue = next(f['alt'] for f in index if f['name'] == 'compare-hue-error')
    assert '95% bootstrap interval of that median' in hue
    assert 'at 0° (red)' in hue  # the fake ablation peaks at hue 0, which describe.hue_name calls red
    # config.toml places the target: Ex 2.9's evaluations remove red, at hue 0.
    assert 'Vertical lines mark the targets: red at 0°.' in hue


def test_report_tables_match_the_summary_and_the_verdict_names_the_best(fake_dir, report):
    comparison = load_comparison(fake_dir)
    page = parse(report)
    html = report.read_text()
    summary = comparison.summary.set_index('method', drop=False)
    header = next(cells for _, cells in page.rows if cells[:2] == ['method', 'model'] and 'Target error' in cells)
    body = {c[0]: (cls, c) for cls, c in page.rows if len(c) == len(header) and c[0] in summary.index}
    assert set(body) == set(METHODS)
    first_figure = header.index('Target error')
    for method, (cls, cells) in body.items():
        assert cells[first_figure : first_figure + len(FIGURES)] == [interval(summary.loc[method], f) for f in FIGURES]
        assert (cls == 'marked') == (method == comparison.facts.least_collateral)
    assert comparison.facts.least_collateral == 'ablated'
    assert body['ablated'][1][header.index('removes')] == 'yes'
    assert body['control-leace'][1][header.index('removes')] == 'no'
    assert f'{verdict(comparison.summary, comparison.facts)[0]}' in html.replace('&#39;', "'")
    assert 'unfair' not in page.ids
    # Settings of the methods, and every seed × method row in the collapsed per-seed table.
    assert 'Fitted on the control latents of the training colours.' in html
    assert '<details><summary>compare.csv: 18 rows' in html
    assert 'http://' not in html and 'https://' not in html


def test_report_warns_when_the_control_is_not_fair_and_says_when_hue_errors_are_missing(tmp_path):
    directory = write_fake_comparison(tmp_path / 'unfair', ratio=4.0)
    (directory / 'hue_error.csv').unlink()
    page = parse(write_compare_report(directory))
    html = (directory / 'report.html').read_text()
    assert 'unfair' in page.ids
    assert '4 times as large' in html
    assert [img['src'] for img in page.images] == ['figures/compare-methods.png']
    assert 'no hue_error.csv' in html


@pytest.mark.parametrize('name', ['compare.json', 'compare.csv', 'summary.csv'])
def test_a_missing_file_is_named(fake_dir, tmp_path, name):
    directory = tmp_path / 'partial'
    directory.mkdir()
    for file in ('compare.json', 'compare.csv', 'summary.csv'):
        if file != name:
            (directory / file).write_bytes((fake_dir / file).read_bytes())
    with pytest.raises(RunArtifactsError, match=f'partial: no {re.escape(name)};'):
        write_compare_report(directory)
    assert not (directory / 'report.html').exists()


def test_damaged_files_and_absent_directories_are_named(fake_dir, tmp_path):
    with pytest.raises(RunArtifactsError, match='no such directory'):
        write_compare_report(tmp_path / 'absent')
    directory = tmp_path / 'damaged'
    directory.mkdir()
    for file in ('compare.json', 'compare.csv', 'summary.csv'):
        (directory / file).write_bytes((fake_dir / file).read_bytes())
    (directory / 'summary.csv').write_text('method,model\nablated,prepared\n')
    with pytest.raises(RunArtifactsError, match=r"summary\.csv: no column 'kind'"):
        write_compare_report(directory)
    (directory / 'compare.json').write_text('{')
    with pytest.raises(RunArtifactsError, match=r'compare\.json: not valid JSON'):
        write_compare_report(directory)


def _copy_of(fake_dir: Path, directory: Path) -> Path:
    directory.mkdir()
    for file in ('compare.json', 'compare.csv', 'summary.csv', 'config.toml', 'dopesheet.csv'):
        (directory / file).write_bytes((fake_dir / file).read_bytes())
    return directory


@pytest.mark.parametrize(
    ('key', 'value', 'said'),
    [
        ('least_collateral', 'suppressed', "least_collateral is 'suppressed', but summary.csv gives 'ablated'"),
        (
            'removes',
            ['ablated'],
            "removes is ['ablated'], but summary.csv gives ['ablated', 'suppressed', 'ablated-both']",
        ),
    ],
)
def test_a_compare_json_that_contradicts_the_tables_is_refused(fake_dir, tmp_path, key, value, said):
    """A stale or copied compare.json would put a verdict beside other numbers: the report derives the facts
    again from summary.csv and refuses, in one line, a compare.json that says otherwise."""
    directory = _copy_of(fake_dir, tmp_path / 'stale')
    facts = json.loads((directory / 'compare.json').read_text())
    (directory / 'compare.json').write_text(json.dumps(facts | {key: value}))
    with pytest.raises(RunArtifactsError) as refused:
        write_compare_report(directory)
    message = str(refused.value)
    assert '\n' not in message and said in message and message.startswith(str(directory / 'compare.json'))
    assert not (directory / 'report.html').exists()


def test_rows_of_seeds_the_comparison_did_not_compare_are_refused(fake_dir, tmp_path):
    directory = _copy_of(fake_dir, tmp_path / 'foreign')
    table = pd.read_csv(directory / 'compare.csv', keep_default_na=False)
    table.loc[table['seed'] == 2, 'seed'] = 7  # seed 7's rows, where compare.json compares seeds 0-2
    table.to_csv(directory / 'compare.csv', index=False)
    with pytest.raises(
        RunArtifactsError, match=r'compare\.csv: rows for seeds \[0, 1, 7\], but compare\.json compares'
    ):
        write_compare_report(directory)


def test_a_summary_of_other_numbers_is_refused(fake_dir, tmp_path):
    """summary.csv must summarise the compare.csv beside it: never report one run's means beside another's rows."""
    directory = tmp_path / 'mixed'
    directory.mkdir()
    for file in ('compare.json', 'compare.csv', 'summary.csv'):
        (directory / file).write_bytes((fake_dir / file).read_bytes())
    summary = pd.read_csv(fake_dir / 'summary.csv', keep_default_na=False)
    method = summary.loc[1, 'method']
    recorded = summary.loc[1, 'collateral_max_mean']
    summary.loc[1, 'collateral_max_mean'] = recorded * 1.01
    summary.to_csv(directory / 'summary.csv', index=False)
    with pytest.raises(
        RunArtifactsError, match=rf'summary\.csv: {method} collateral_max_mean is .* but compare\.csv averages'
    ):
        write_compare_report(directory)
    summary.loc[1, 'collateral_max_mean'] = recorded
    summary.iloc[[0, 1]] = summary.iloc[[1, 0]].to_numpy()  # the same numbers, two methods swapped
    summary.to_csv(directory / 'summary.csv', index=False)
    with pytest.raises(RunArtifactsError, match=r"summary\.csv: methods .* do not match compare\.csv's"):
        write_compare_report(directory)
    summary.iloc[[0, 1]] = summary.iloc[[1, 0]].to_numpy()
    summary.to_csv(directory / 'summary.csv', index=False)
    assert write_compare_report(directory).is_file()  # restored: accepted


# In a browser ---------------------------------------------------------------------------------


def test_compare_report_renders_in_chromium(browser: Chromium, report: Path, tmp_path: Path):
    light = browser.open(report, tmp_path / 'light.png', 'light', height=1500)
    dark = browser.open(report, tmp_path / 'dark.png', 'dark', height=1500)
    for page in (light, dark):
        assert_page_clean(page)
        assert sorted(img['src'] for img in page.images) == [
            'figures/compare-hue-error.png',
            'figures/compare-methods.png',
        ]
        assert all((img['alt'] or '').strip() for img in page.images)
    assert all(img['currentSrc'].endswith('.dark.png') for img in dark.images)
    assert not any(img['currentSrc'].endswith('.dark.png') for img in light.images)


def test_a_compare_json_from_before_models_reads_its_control_as_a_model(tmp_path):
    """compare.json written before [[models]] held one `control` object; it is read as the model 'control'."""
    facts = meta_of(summary_of(BASELINES), ratio=1.5)
    data = json.loads(json.dumps(asdict(facts)))
    data['control'] = data.pop('models')['control']
    data['control'].pop('route')
    (tmp_path / 'compare.json').write_text(json.dumps(data))
    read = CompareFacts.read(tmp_path)
    assert list(read.models) == ['control'] and read.models['control'].ratio == 1.5
    assert read.models['control'].route is None
