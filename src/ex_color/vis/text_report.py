"""report.html for a text run or a text comparison: per-class loss bars, tables, and continuations of held-out
prompts by the untouched model beside each edited one (same sampling seed), so a reader sees whether the
concept disappears from the writing."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ex_color.config import text_corpus
from ex_color.data.corpus import ALL, CHAR_CLASSES
from ex_color.files import write_atomic
from ex_color.rundir import Run
from ex_color.text_compare import FIGURES as COMPARE_FIGURES
from ex_color.text_compare import SUMMARY_FILE, TextCompareFacts
from ex_color.text_evaluation import continue_text, prompts
from ex_color.variants import build_variants
from ex_color.vis.export import save_figure
from ex_color.vis.page import FIGURE_INDEX, FIGURES_DIR, REPORT_FILE, Table, dopesheet_table, environment, toml_tables
from ex_color.vis.text_figures import describe_class_ratios, plot_class_ratios
from ex_color.vis.training import plot_training_curves

log = logging.getLogger(__name__)

CLASSES = (*CHAR_CLASSES, ALL)


def write_text_run_report(run: Run, stop_if_asked: Callable[[], None]) -> Path:
    """A text run's page: its table, the per-class bars, the training curves and the continuations."""
    directory = run.directory
    evaluations = run.results.evaluations
    figures_dir = directory / FIGURES_DIR
    ratios = {name: e.class_ce_ratio for name, e in evaluations.items() if name != 'baseline'}  # type: ignore[union-attr]
    saved = []
    if ratios:
        saved.append(
            save_figure(
                lambda theme: plot_class_ratios(ratios, CLASSES, theme=theme),
                figures_dir,
                'class-ratios',
                describe_class_ratios(ratios, CLASSES),
                relative_to=directory,
            )
        )
    stop_if_asked()
    saved.append(
        save_figure(
            lambda theme: plot_training_curves(run.metrics, theme=theme),
            figures_dir,
            'training-losses',
            'Training losses against the step, on a log scale: the total, the cross-entropy (recon) and each '
            'regularizer.',
            relative_to=directory,
        )
    )
    stop_if_asked()
    index = {
        'headline': [f.to_dict() for f in saved if f.name == 'class-ratios'],
        'figures': [{'section': 'run', **f.to_dict()} for f in saved],
    }
    write_atomic(figures_dir / FIGURE_INDEX, json.dumps(index, indent=2) + '\n')
    config = run.experiment.config
    corpus = text_corpus(config)
    variants = build_variants(run.model, config)
    shown = prompts(config)
    continuations = {
        name: [continue_text(v.model, v.interventions, corpus, p, seed=i) for i, p in enumerate(shown)]
        for name, v in variants.items()
    }
    rows = []
    for name, e in evaluations.items():
        values = e.class_ce if name == 'baseline' else e.class_ce_ratio  # type: ignore[union-attr]
        unit = '' if name == 'baseline' else '×'
        edited = name != 'baseline'
        rows.append(
            [
                name,
                ' + '.join(e.targets),
                *(_figure(values[c], unit) for c in CLASSES),
                _figure(e.target_ratio, '×') if edited else '—',  # type: ignore[union-attr]
                f'{_figure(e.collateral_ratio, "×")} ({e.collateral_class})' if edited else '—',  # type: ignore[union-attr]
                _figure(e.target_mass),  # type: ignore[union-attr]
            ]
        )
    table = Table(['version', 'concept', *CLASSES, 'concept ratio', 'worst other', 'p(concept)'], rows)
    config_text = (directory / 'config.toml').read_text()
    html = (
        environment()
        .get_template('text_run.html.j2')
        .render(
            title=run.results.title,
            results=run.results,
            table=table,
            figures=saved,
            prompts=shown,
            continuations=continuations,
            validation=run.results.validation,
            config_tables=toml_tables(config_text),
            config_text=config_text,
            dopesheet=dopesheet_table((directory / 'dopesheet.csv').read_text(), run.experiment.dopesheet.steps),
        )
    )
    path = directory / REPORT_FILE
    write_atomic(path, html)
    return path


def write_text_compare_report(directory: Path, stop_if_asked: Callable[[], None]) -> Path:
    """A text comparison's page: the summary table, the per-class bars (means over seeds with 95% intervals) and
    the first seed's continuations."""
    facts = TextCompareFacts.read(directory)
    summary = pd.read_csv(directory / SUMMARY_FILE)
    edited = summary[summary['kind'] != 'baseline']
    ratios = {r['method']: {c: float(r[f'ratio_{c}_mean']) for c in CLASSES} for _, r in edited.iterrows()}
    errors = {
        r['method']: {c: (float(r[f'ratio_{c}_low']), float(r[f'ratio_{c}_high'])) for c in CLASSES}
        for _, r in edited.iterrows()
    }
    figures = []
    if ratios:
        figures.append(
            save_figure(
                lambda theme: plot_class_ratios(
                    ratios, CLASSES, theme=theme, errors=errors, title='Cross-entropy ratio per class, mean over seeds'
                ),
                directory / FIGURES_DIR,
                'class-ratios',
                describe_class_ratios(ratios, CLASSES) + ' Means over seeds, with 95% bootstrap intervals.',
                relative_to=directory,
            )
        )
    stop_if_asked()
    shown = [
        'target_ratio',
        'collateral_ratio',
        *(f'ratio_{c}' for c in CLASSES),
        'target_mass_before',
        'target_mass_after',
        'untouched_ce',
    ]
    rows = []
    for _, r in summary.iterrows():
        cells = [_interval(r[f'{f}_mean'], r[f'{f}_low'], r[f'{f}_high']) for f in shown]
        rows.append([r['method'], r['model'], r['kind'], *cells])
    table = Table(['method', 'model', 'kind', *shown], rows)
    assert set(shown) <= set(COMPARE_FIGURES)
    html = (
        environment()
        .get_template('text_compare.html.j2')
        .render(title=facts.title, facts=facts, table=table, figures=figures)
    )
    path = directory / REPORT_FILE
    write_atomic(path, html)
    return path


def _figure(value: float, unit: str = '') -> str:
    """'1.75×', or '—' for a figure with no held-out position to measure it on (NaN)."""
    return '—' if pd.isna(value) else f'{value:.3g}{unit}'


def _interval(mean: float, low: float, high: float) -> str:
    """'1.75 [1.68, 1.82]', or '—' for a figure no seed had (a class or concept with no held-out position)."""
    return '—' if pd.isna(mean) else f'{mean:.3g} [{low:.3g}, {high:.3g}]'


__all__ = ['write_text_compare_report', 'write_text_run_report']
