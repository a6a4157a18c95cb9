"""report.html for a run or a sweep: figures, tables and the experiment, in one offline page (a comparison's is
`vis.compare_report`'s).

The page is rendered from what the run or sweep saved (no retraining) with the Jinja2
templates beside this module. Figures are PNG files under `figures/`, each in a light and
a dark version; the page shows the dark ones when the browser prefers a dark colour scheme.
It loads nothing from the network: styles are inline, images are local files.

    write_run_report('runs/ex-2.9/seed-0')      # → runs/ex-2.9/seed-0/report.html
    write_sweep_report('runs/ex-2.9/sweep')     # → …/sweep/report.html (and best/report.html)
    write_report(directory)                     # either, by what the directory holds
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ex_color.config import CONTROL, ConfigError, load_experiment, sweep_objectives
from ex_color.data import NAMED_COLORS, NAMED_COLORS_HSV
from ex_color.data.target import Target
from ex_color.files import write_atomic
from ex_color.rundir import RESULTS_FILE, check_inputs, identity, load_run
from ex_color.sweepdir import BEST_DIR, SUMMARY_FILE, TABLE_FILE, SweepSummary, read_sweep_table
from ex_color.vis.describe import describe_pareto, describe_sweep_boxes
from ex_color.vis.export import SavedFigure, save_figure
from ex_color.vis.page import (
    FIGURE_INDEX,
    FIGURES_DIR,
    REPORT_FILE,
    ReportError,
    dopesheet_table,
    environment,
    locked,
    remove_stale,
    toml_tables,
)
from ex_color.vis.run_figures import draw_figures, run_figure_jobs, target_names, variant_views
from ex_color.vis.sweep import plot_pareto, plot_sweep_boxes

log = logging.getLogger(__name__)

HEADLINE_FIGURES = ('colors-{focus}', 'error-{focus}', 'latents-baseline')
"""The figures that open a run's report; {focus} is the first evaluation (e.g. 'ablated')."""
SWEEP_TABLE_EXTRA = ('baseline_mse_max', 'baseline_mse_median')
"""Columns the seeds table shows after the sweep's objectives and printed columns."""


def write_run_report(directory: str | Path, *, workers: int | None = None) -> Path:
    """Draw a finished run's figures and write its report.html; return the report's path.

    Args:
        workers: processes drawing figures (default: one per core, at most 4; 1 draws them here).
    """
    with locked(directory) as stop_if_asked:
        return _write_run_report(directory, workers, stop_if_asked)


def _write_run_report(directory: str | Path, workers: int | None, stop_if_asked: Callable[[], None]) -> Path:
    started = time.perf_counter()
    run = load_run(directory)
    directory = run.directory
    if run.results.is_text:
        from ex_color.vis.text_report import write_text_run_report

        path = write_text_run_report(run, stop_if_asked)
        log.info('Wrote %s in %.1f s', path, time.perf_counter() - started)
        return path
    log.info('Drawing the figures of %s', directory)
    views = variant_views(run)
    stop_if_asked()
    figures_dir = directory / FIGURES_DIR
    jobs = list(run_figure_jobs(run, views))
    saved = draw_figures(jobs, figures_dir, relative_to=directory, workers=workers, stop_if_asked=stop_if_asked)
    remove_stale(figures_dir, [figure for _, figure in saved])

    results = run.results
    evaluations = results.evaluations
    focus = next((name for name in evaluations if name != 'baseline'), 'baseline')
    by_name = {figure.name: figure for _, figure in saved}
    headline = [by_name[n.format(focus=focus)] for n in HEADLINE_FIGURES if n.format(focus=focus) in by_name]
    sections: dict[str, list[SavedFigure]] = {}
    for section, figure in saved:
        sections.setdefault(section, []).append(figure)
    twins = {name: _twin(name, views, sections) for name in evaluations if name not in sections}
    index = {
        'headline': [figure.to_dict() for figure in headline],
        'figures': [{'section': section, **figure.to_dict()} for section, figure in saved],
    }
    write_atomic(figures_dir / FIGURE_INDEX, json.dumps(index, indent=2) + '\n')

    config_text = (directory / 'config.toml').read_text()
    html = (
        environment()
        .get_template('run.html.j2')
        .render(
            title=results.title,
            results=results,
            evaluations=evaluations,
            targets={name: target_names(view.targets) for name, view in views.items()},
            marked={name: target_colors(view.targets) for name, view in views.items() if name != 'baseline'},
            colours=[(name, _css_rgb(rgb)) for name, rgb in NAMED_COLORS.items()],
            headline=headline,
            sections=sections,
            twins=twins,
            validation=results.validation,
            final_train_loss=results.final_train_loss,
            config_tables=toml_tables(config_text),
            config_text=config_text,
            dopesheet=dopesheet_table((directory / 'dopesheet.csv').read_text(), run.experiment.dopesheet.steps),
        )
    )
    path = directory / REPORT_FILE
    write_atomic(path, html)
    log.info('Wrote %s (%d figures) in %.1f s', path, len(saved), time.perf_counter() - started)
    return path


def target_colors(targets: Sequence[Target]) -> set[str]:
    """The named colours that are exactly a target's colour (the cells the named-colour table outlines)."""
    return {name for name, hsv in NAMED_COLORS_HSV.items() for t in targets if np.allclose(hsv, t.hsv)}


def _twin(name: str, views: dict, sections: dict[str, list[SavedFigure]]) -> str | None:
    """The drawn variant whose outputs `name` shares (its figures stand for both)."""
    return next((other for other in sections if other in views and views[name].same_outputs(views[other])), None)


def _css_rgb(rgb: Sequence[float]) -> str:
    r, g, b = (round(255 * c) for c in rgb)
    return f'rgb({r}, {g}, {b})'


def write_sweep_report(directory: str | Path) -> Path:
    """Write a sweep's report.html (and its best run's, which it links to); return the report's path."""
    with locked(directory) as stop_if_asked:
        return _write_sweep_report(directory, stop_if_asked)


def _write_sweep_report(directory: str | Path, stop_if_asked: Callable[[], None]) -> Path:
    started = time.perf_counter()
    directory = Path(directory)
    for name in (SUMMARY_FILE, TABLE_FILE, 'config.toml', 'dopesheet.csv'):
        if not (directory / name).is_file():
            raise ReportError(
                f'{directory}: no {name}; expected a finished sweep directory (ex-color sweep writes one)'
            )
    try:
        experiment = load_experiment(directory / 'config.toml')
    except ConfigError as e:
        raise ReportError(str(e)) from None
    summary = SweepSummary.read(directory)
    check_inputs(directory, 'sweep', identity(experiment, engine='fast', steps=summary.steps))
    table = read_sweep_table(directory)
    pareto_seeds = set(summary.pareto_seeds)
    best_seed = summary.best_seed

    best_report = None
    best_headline: list[SavedFigure] = []
    if (directory / BEST_DIR / RESULTS_FILE).is_file():
        best_report = write_run_report(directory / BEST_DIR)
        best_headline = _rebase(_headline_of(directory / BEST_DIR), BEST_DIR)

    minimise, maximise, best_column, printed = sweep_objectives(experiment.config)
    columns = [c for c in (*maximise, *minimise) if c in table.columns]
    figures = []
    stop_if_asked()
    if columns:
        figures.append(
            save_figure(
                lambda theme: plot_sweep_boxes(
                    table, columns, title=f'Sweep · {len(table)} seeds', theme=theme, highlight=best_seed
                ),
                directory / FIGURES_DIR,
                'sweep-boxes',
                lambda title: describe_sweep_boxes(title, table, columns, best_seed),
                relative_to=directory,
            )
        )
    stop_if_asked()
    pareto_axes = (minimise[0], best_column) if minimise and best_column in maximise else None
    if pareto_axes and all(c in table.columns for c in pareto_axes):
        figures.append(
            save_figure(
                lambda theme: plot_pareto(
                    table, *pareto_axes, pareto_seeds=sorted(pareto_seeds), best_seed=best_seed, theme=theme
                ),
                directory / FIGURES_DIR,
                'sweep-pareto',
                lambda title: describe_pareto(title, table, *pareto_axes, sorted(pareto_seeds), best_seed),
                relative_to=directory,
            )
        )
    wanted = ['seed', *columns, *printed, *SWEEP_TABLE_EXTRA]
    shown = [c for c in dict.fromkeys(wanted) if c in table.columns]
    seeds_table = table[shown]
    if best_column in table.columns:
        seeds_table = table[shown].sort_values(best_column, ascending=best_column in minimise, ignore_index=True)
    config_text = (directory / 'config.toml').read_text()
    dopesheet_text = (directory / 'dopesheet.csv').read_text()
    html = (
        environment()
        .get_template('sweep.html.j2')
        .render(
            title=summary.title,
            summary=summary,
            best_seed=best_seed,
            minimise=minimise,
            maximise=maximise,
            best_column=best_column,
            targets=[(e.name, ' + '.join(e.targets)) for e in experiment.config.evaluations if e.model != CONTROL],
            best_report=best_report.relative_to(directory).as_posix() if best_report else None,
            best_headline=best_headline,
            figures=figures,
            seeds_columns=shown,
            seeds_rows=seeds_table.to_dict('records'),
            pareto_seeds=pareto_seeds,
            config_tables=toml_tables(config_text),
            config_text=config_text,
            dopesheet=dopesheet_table(dopesheet_text, experiment.dopesheet.steps),
        )
    )
    path = directory / REPORT_FILE
    write_atomic(path, html)
    log.info('Wrote %s in %.1f s', path, time.perf_counter() - started)
    return path


def _headline_of(run_dir: Path) -> list[SavedFigure]:
    """The headline figures a run report just drew (read back from its figures/ directory)."""
    index = json.loads((run_dir / FIGURES_DIR / FIGURE_INDEX).read_text())
    return [SavedFigure(**entry) for entry in index['headline']]


def _rebase(figures: list[SavedFigure], prefix: str) -> list[SavedFigure]:
    """Figures of a run nested at `prefix/` inside the report's directory."""
    return [SavedFigure(f.name, f.title, f.alt, f'{prefix}/{f.light}', f'{prefix}/{f.dark}') for f in figures]


def write_report(directory: str | Path) -> Path:
    """Write report.html for a run, a sweep, a comparison or a search directory, whichever `directory` is."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ReportError(f'{directory}: no such directory; expected a run, sweep or compare directory')
    if (directory / SUMMARY_FILE).is_file():
        return write_sweep_report(directory)
    if (directory / 'results.json').is_file():
        return write_run_report(directory)
    if (directory / 'compare.json').is_file():
        from ex_color.vis.compare_report import write_compare_report

        return write_compare_report(directory)
    if (directory / 'search.json').is_file():
        from ex_color.vis.search_report import write_search_report

        return write_search_report(directory)
    raise ReportError(
        f'{directory}: neither a finished run (results.json), a sweep (sweep.json), a comparison '
        '(compare.json) nor a search (search.json); run `ex-color run`, `sweep`, `compare` or `search` first'
    )


__all__ = ['ReportError', 'write_report', 'write_run_report', 'write_sweep_report']
