"""report.html for a search: interactive plotly figures and tables, from what the search saved (no training).

- the Pareto front of the first two objectives (one objective: against trial number), every trial a point;
  hover one to see its parameters and figures; finalists and the winner marked;
- each objective against trial number, with the best so far;
- parameter importances per objective (Optuna's PED-ANOVA, computed from the study's journal);
- the winner's dopesheet against the searched experiment's, column by column;
- the finalists on the fresh seeds (means, 95% intervals) and the winner's runs, seed by seed.

The page loads nothing from the network: plotly.js is written beside it once (`plotly.min.js`).

    write_search_report('runs/red-and-blue/search')   # → …/search/report.html
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from ex_color.files import write_atomic
from ex_color.rundir import CONFIG_FILE, DOPESHEET_FILE
from ex_color.searchdir import (
    BEST_DIR,
    FINALISTS_FILE,
    TRIALS_FILE,
    VALIDATION_FILE,
    SearchSummary,
    read_table,
)
from ex_color.temporal import Dopesheet
from ex_color.temporal.dopesheet import schedule_table
from ex_color.vis.page import REPORT_FILE, ReportError, Table, dopesheet_table, environment, locked, toml_tables

log = logging.getLogger(__name__)

PLOTLY_FILE = 'plotly.min.js'
COLOURS = {'trial': '#8c959f', 'feasible': '#0969da', 'pareto': '#bf8700', 'finalist': '#8250df', 'winner': '#cf222e'}


def write_search_report(directory: str | Path) -> Path:
    """Write a finished search's report.html (and plotly.min.js beside it); return the report's path."""
    with locked(directory) as stop_if_asked:
        directory = Path(directory)
        if not (directory / 'search.json').is_file():
            raise ReportError(f'{directory}: not a finished search (no search.json); run `ex-color search` first')
        summary = SearchSummary.read(directory)
        trials = read_table(directory, TRIALS_FILE)
        finalists = read_table(directory, FINALISTS_FILE, empty_ok=True)
        validation = read_table(directory, VALIDATION_FILE, empty_ok=True)
        figures = [
            ('pareto', 'Trials', pareto_figure(trials, summary)),
            ('history', 'Objectives by trial', history_figure(trials, summary)),
        ]
        stop_if_asked()
        importances = importance_figure(directory, summary)
        if importances is not None:
            figures.append(('importance', 'Parameter importances', importances))
        best_sheet = directory / BEST_DIR / DOPESHEET_FILE
        if best_sheet.is_file():
            figures.append(('dopesheet', 'Winning schedule', schedule_figure(directory / DOPESHEET_FILE, best_sheet)))
        stop_if_asked()
        config_text = (directory / CONFIG_FILE).read_text()
        page = (
            environment()
            .get_template('search.html.j2')
            .render(
                title=summary.title,
                summary=summary,
                figures=[
                    (key, title, fig.to_html(full_html=False, include_plotlyjs=False, div_id=f'plot-{key}'))
                    for key, title, fig in figures
                ],
                finalists=finalists_table(finalists, summary) if len(finalists) else None,
                winner_runs=winner_table(validation, summary),
                trials_count=len(trials),
                config_tables=toml_tables(config_text),
                config_text=config_text,
                dopesheet=dopesheet_table((directory / DOPESHEET_FILE).read_text(), []),
                best_dopesheet=dopesheet_table(best_sheet.read_text(), []) if best_sheet.is_file() else None,
            )
        )
        plotly_js = directory / PLOTLY_FILE
        if not plotly_js.exists():
            write_atomic(plotly_js, get_plotlyjs())
        write_atomic(directory / REPORT_FILE, page)
        return directory / REPORT_FILE


def _hover(row: pd.Series, columns: Sequence[str]) -> str:
    lines = [f'trial {int(row["trial"])}']
    for column in columns:
        value = row[column]
        lines.append(f'{column}: {value:.4g}' if isinstance(value, float) else f'{column}: {value}')
    return '<br>'.join(lines)


def _kinds(trials: pd.DataFrame, summary: SearchSummary) -> pd.Series:
    """Each complete trial's role, for its colour: winner, finalist, pareto, feasible or trial."""
    kind = pd.Series('trial', index=trials.index)
    if 'feasible' in trials:
        kind[trials['feasible'].astype(bool)] = 'feasible'
    kind[trials['trial'].isin(summary.pareto_trials)] = 'pareto'
    kind[trials['trial'].isin(summary.finalists)] = 'finalist'
    if summary.winner is not None:
        kind[trials['trial'] == summary.winner] = 'winner'
    return kind


def pareto_figure(trials: pd.DataFrame, summary: SearchSummary) -> go.Figure:
    """Every complete trial on the first two objectives (or the one objective against trial number)."""
    complete = trials[trials['state'] == 'complete']
    objectives = [*summary.maximise, *summary.minimise]
    shown = [*summary.parameters, *dict.fromkeys([*objectives, *(c.split()[0] for c in summary.constraints)])]
    x, y = (objectives[0], objectives[1]) if len(objectives) > 1 else ('trial', objectives[0])
    kinds = _kinds(complete, summary)
    fig = go.Figure()
    for kind in ('trial', 'feasible', 'pareto', 'finalist', 'winner'):
        rows = complete[kinds == kind]
        if rows.empty:
            continue
        fig.add_trace(
            go.Scatter(
                x=rows[x],
                y=rows[y],
                mode='markers',
                name={'trial': 'breaks a constraint' if summary.constraints else 'trial'}.get(kind, kind),
                marker={
                    'color': COLOURS[kind],
                    'size': 14 if kind == 'winner' else 9,
                    'symbol': 'star' if kind == 'winner' else 'circle',
                },
                text=[_hover(row, shown) for _, row in rows.iterrows()],
                hoverinfo='text',
            )
        )
    fig.update_layout(xaxis_title=x, yaxis_title=y, height=520, template='plotly_white', hovermode='closest')
    return fig


def history_figure(trials: pd.DataFrame, summary: SearchSummary) -> go.Figure:
    """Each objective's mean against trial number, with the best so far."""
    objectives = [*summary.maximise, *summary.minimise]
    fig = make_subplots(rows=len(objectives), cols=1, shared_xaxes=True, subplot_titles=objectives)
    complete = trials[trials['state'] == 'complete']
    for i, column in enumerate(objectives, start=1):
        best = complete[column].cummax() if column in summary.maximise else complete[column].cummin()
        fig.add_trace(
            go.Scatter(
                x=complete['trial'],
                y=complete[column],
                mode='markers',
                name=column,
                marker={'color': COLOURS['trial'], 'size': 6},
                showlegend=False,
            ),
            row=i,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=complete['trial'],
                y=best,
                mode='lines',
                name=f'best {column} so far',
                line={'color': COLOURS['winner'], 'shape': 'hv'},
                showlegend=False,
            ),
            row=i,
            col=1,
        )
    fig.update_layout(height=260 * len(objectives), template='plotly_white')
    fig.update_xaxes(title_text='trial', row=len(objectives), col=1)
    return fig


def parameter_importances(directory: Path, summary: SearchSummary) -> dict[str, dict[str, float]]:
    """Each objective's parameter importances (Optuna's PED-ANOVA over the study's complete trials); empty when
    the study has too few trials for them."""
    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator

    from ex_color.study import JOURNAL_FILE, StudyJournal

    study = StudyJournal.load(directory / JOURNAL_FILE)
    ordered = [*summary.minimise, *summary.maximise]  # the study's order of objectives (`ex_color.study.objectives`)
    found: dict[str, dict[str, float]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for i, column in enumerate(ordered):
            try:
                found[column] = optuna.importance.get_param_importances(
                    study, evaluator=PedAnovaImportanceEvaluator(), target=lambda t, i=i: t.values[i]
                )
            except (ValueError, RuntimeError) as error:
                log.info('No parameter importances for %s: %s', column, error)
    return found


def importance_figure(directory: Path, summary: SearchSummary) -> go.Figure | None:
    found = parameter_importances(directory, summary)
    if not found:
        return None
    fig = go.Figure()
    for column, importances in found.items():
        names = list(summary.parameters)
        fig.add_trace(go.Bar(y=names, x=[importances.get(n, 0.0) for n in names], name=column, orientation='h'))
    fig.update_layout(
        barmode='group', height=120 + 60 * len(summary.parameters), xaxis_title='importance', template='plotly_white'
    )
    return fig


def schedule_figure(original: Path, winner: Path) -> go.Figure:
    """Each column the search changed, per step: the searched experiment's schedule and the winner's."""
    before, after = (_schedule(path) for path in (original, winner))
    changed = [c for c in after.columns if c in before.columns and not before[c].equals(after[c])]
    fig = make_subplots(rows=max(1, len(changed)), cols=1, shared_xaxes=True, subplot_titles=changed or ['(none)'])
    for i, column in enumerate(changed, start=1):
        for label, table, colour in (('original', before, COLOURS['trial']), ('winner', after, COLOURS['winner'])):
            fig.add_trace(
                go.Scatter(
                    x=table.index,
                    y=table[column],
                    mode='lines',
                    name=f'{label}',
                    line={'color': colour},
                    showlegend=i == 1,
                    legendgroup=label,
                ),
                row=i,
                col=1,
            )
    fig.update_layout(height=max(300, 180 * len(changed)), template='plotly_white')
    fig.update_xaxes(title_text='step', row=max(1, len(changed)), col=1)
    return fig


def _schedule(path: Path) -> pd.DataFrame:
    sheet = Dopesheet.from_csv(path)
    names, values = schedule_table(sheet)
    return pd.DataFrame(values, columns=list(names))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return '—' if math.isnan(value) else f'{value:.4g}'
    return str(value)


def finalists_table(finalists: pd.DataFrame, summary: SearchSummary) -> Table:
    """One row per finalist: parameters, each column's fresh-seed mean [95% interval] (and on the searched seeds)."""
    columns = list(dict.fromkeys([*summary.maximise, *summary.minimise, *(c.split()[0] for c in summary.constraints)]))
    header = ['trial', *summary.parameters, *(f'{c} (fresh seeds)' for c in columns), 'meets constraints', 'winner']
    rows = []
    for row in finalists.to_dict('records'):
        cells = [str(int(row['trial'])), *(_cell(row[p]) for p in summary.parameters)]
        cells += [
            f'{_cell(row[f"{c}_mean"])} [{_cell(row[f"{c}_low"])}, {_cell(row[f"{c}_high"])}] '
            f'(searched {_cell(row[f"{c}_searched"])})'
            for c in columns
        ]
        cells += ['yes' if row['feasible'] else 'no', 'winner' if row['winner'] else '']
        rows.append(cells)
    return Table(header, rows)


def winner_table(validation: pd.DataFrame, summary: SearchSummary) -> Table | None:
    """The winner's runs on the fresh seeds: one row per seed, its objective and constraint columns and the
    baseline's errors."""
    if validation.empty or summary.winner is None:
        return None
    runs = validation[validation['trial'] == summary.winner]
    columns = list(
        dict.fromkeys(
            [
                'seed',
                *summary.maximise,
                *summary.minimise,
                *(c.split()[0] for c in summary.constraints),
                'baseline_mse_max',
                'baseline_mse_median',
                'val_recon',
            ]
        )
    )
    columns = [c for c in columns if c in runs]
    return Table(
        columns,
        [[_cell(row[c]) if c != 'seed' else str(int(row[c])) for c in columns] for row in runs.to_dict('records')],
    )


__all__ = ['write_search_report']
