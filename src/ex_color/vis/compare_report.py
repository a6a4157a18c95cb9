"""report.html of a comparison directory: prepared model against control, method by method, over seeds.

`ex-color compare` trains a prepared and a control model per seed, applies every method
and writes what this page is drawn from (no training here):

    compare.json    title, seeds, the removal threshold, which methods remove their target,
                    the one with least collateral damage, the control's fairness, each method's settings
    compare.csv     one row per seed × method: the figures of merit
    summary.csv     one row per method: each figure's mean over seeds and 95% bootstrap interval
    hue_error.csv   per-colour error along hue (full saturation and value), per seed × method (optional)
    config.toml     the experiment compared (optional here: it places the targets along hue)

    write_compare_report('runs/ex-2.9/compare')   # → …/compare/report.html and figures/
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ex_color.comparedir import (
    BASELINE_KIND,
    FACTS_FILE,
    FAIRNESS_RATIO,
    FIGURES,
    HUE_FILE,
    ONE_SEED_CAVEAT,
    REMOVAL_RULE,
    SUMMARY_COLUMNS,
    SUMMARY_FILE,
    TABLE_FILE,
    TEXT_COLUMNS,
    CompareFacts,
    Verdict,
    check_written_together,
    read_table,
)
from ex_color.config import ConfigError, build_targets, load_experiment
from ex_color.files import write_atomic
from ex_color.rundir import CONFIG_FILE, RunArtifactsError
from ex_color.vis.compare_figures import (
    describe_hue_error,
    describe_method_boxes,
    figure_label,
    method_order,
    plot_hue_error,
    plot_method_boxes,
)
from ex_color.vis.describe import join
from ex_color.vis.export import save_figure
from ex_color.vis.page import FIGURE_INDEX, FIGURES_DIR, REPORT_FILE, Table, environment, locked, remove_stale

log = logging.getLogger(__name__)

BOX_FIGURES = ('target_error', 'collateral_max', 'collateral_median', 'selectivity_r2')
"""The figures drawn per method over seeds, in panel order."""
HIGHER_IS_BETTER = {'target_error': True, 'selectivity_r2': True, 'collateral_max': False, 'collateral_median': False}
"""The figures the verdict compares across models, and which way is better."""
COLLATERAL = ('collateral_max', 'collateral_median')
"""Compared only among methods that remove their target (doing nothing has no collateral damage)."""
KIND_WORDS = {
    'baseline': 'unedited',
    'ablate': 'ablation',
    'prune': 'pruning',
    'suppress': 'suppression',
    'leace': 'post-hoc LEACE erasure',
    'mean-difference': 'post-hoc mean-difference erasure',
}
MODEL_WORDS = {'prepared': 'the prepared model', 'control': 'the control'}


@dataclass(frozen=True)
class Comparison:
    """What a comparison directory holds, read and checked."""

    directory: Path
    facts: CompareFacts
    """compare.json."""
    table: pd.DataFrame
    """compare.csv: one row per seed × method."""
    summary: pd.DataFrame
    """summary.csv: one row per method."""
    hue: pd.DataFrame | None
    """hue_error.csv, or None where the directory has none."""


def load_comparison(directory: str | Path) -> Comparison:
    """Read a comparison directory; RunArtifactsError names the first file missing or damaged."""
    directory = Path(directory)
    if not directory.is_dir():
        raise RunArtifactsError(f'{directory}: no such directory; expected a comparison (ex-color compare writes one)')
    for name in (FACTS_FILE, TABLE_FILE, SUMMARY_FILE):
        if not (directory / name).is_file():
            raise RunArtifactsError(
                f'{directory}: no {name}; expected a finished comparison directory (ex-color compare writes one)'
            )
    check_written_together(directory)
    facts = CompareFacts.read(directory)
    table = read_table(directory / TABLE_FILE, ['seed', *TEXT_COLUMNS, *BOX_FIGURES])
    summary = read_table(directory / SUMMARY_FILE, [c for c in SUMMARY_COLUMNS if c != 'failed'])
    _check_summary_matches(directory, table, summary)
    _check_facts_match(directory, facts, table, summary)
    hue = (
        read_table(directory / HUE_FILE, ['seed', 'method', 'hue', 'error'])
        if (directory / HUE_FILE).is_file()
        else None
    )
    return Comparison(directory, facts, table, summary, hue)


def _check_facts_match(directory: Path, facts: CompareFacts, table: pd.DataFrame, summary: pd.DataFrame) -> None:
    """compare.json must say what summary.csv and compare.csv say: the same seeds, and the verdict's facts
    derived again from summary.csv (a stale or copied compare.json would otherwise put words beside other numbers)."""
    seeds = sorted({int(s) for s in table['seed']})
    if seeds != sorted(facts.seeds):
        raise RunArtifactsError(
            f'{directory / TABLE_FILE}: rows for seeds {seeds}, but {FACTS_FILE} compares seeds {sorted(facts.seeds)}; '
            'expected the tables of this comparison (run ex-color compare again)'
        )
    contradiction = Verdict.of(summary).contradiction(facts)
    if contradiction is not None:
        raise RunArtifactsError(
            f'{directory / FACTS_FILE}: {contradiction}; expected the facts of this comparison (run ex-color compare '
            'again)'
        )


def _check_summary_matches(directory: Path, table: pd.DataFrame, summary: pd.DataFrame) -> None:
    """summary.csv must summarise this compare.csv: the same methods in the same order, and each figure's mean
    the mean over seeds of compare.csv's (a summary left from other work would put other numbers beside the rows)."""
    table_methods = list(dict.fromkeys(table['method']))
    if list(summary['method']) != table_methods:
        raise RunArtifactsError(
            f"{directory / SUMMARY_FILE}: methods {list(summary['method'])} do not match {TABLE_FILE}'s "
            f'{table_methods}; expected the summary of this comparison (run ex-color compare again)'
        )
    means = table.groupby('method', sort=False).mean(numeric_only=True)
    for figure in (f for f in FIGURES if f in table.columns):
        recorded, recomputed = (
            summary[f'{figure}_mean'].to_numpy(float),
            means.loc[table_methods, figure].to_numpy(float),
        )
        wrong = ~np.isclose(recorded, recomputed, rtol=1e-9, atol=0, equal_nan=True)
        if wrong.any():
            i = int(np.argmax(wrong))
            raise RunArtifactsError(
                f'{directory / SUMMARY_FILE}: {table_methods[i]} {figure}_mean is {recorded[i]:.6g}, but {TABLE_FILE} '
                f'averages {recomputed[i]:.6g}; expected the summary of this comparison (run ex-color compare again)'
            )


# Words ----------------------------------------------------------------------------------------


def sig(x: Any) -> str:
    """A number to 3 significant figures ('—' for a missing one)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return '—'
    return f'{x:.3g}'


def interval(row: Mapping[str, Any], figure: str) -> str:
    """A summary row's figure as 'mean [low, high]', e.g. '0.421 [0.398, 0.445]'."""
    mean, low, high = (row[f'{figure}_{s}'] for s in ('mean', 'low', 'high'))
    if _missing(low) and _missing(high):
        return sig(mean)
    return f'{sig(mean)} [{sig(low)}, {sig(high)}]'


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _targets(row: Mapping[str, Any]) -> str:
    return join(str(row['targets']).split('+'))


def _model(model: str) -> str:
    return MODEL_WORDS.get(model, f'the {model} model')


def _possessive(model: str) -> str:
    return f"{_model(model)}'s"


def _what(row: Mapping[str, Any]) -> str:
    """'ablated (ablation on the prepared model)'."""
    kind = KIND_WORDS.get(row['kind'], row['kind'])
    return f'{row["method"]} ({kind} on {_model(row["model"])})'


def _overlap(a: Mapping[str, Any], b: Mapping[str, Any], figure: str) -> bool:
    lows, highs = (a[f'{figure}_low'], b[f'{figure}_low']), (a[f'{figure}_high'], b[f'{figure}_high'])
    if any(_missing(x) for x in (*lows, *highs)):
        return False
    return max(lows) <= min(highs)


def _best(rows: pd.DataFrame, figure: str) -> dict[str, Any] | None:
    """The row with the best mean of `figure`, or None. Ties up to rounding (ablate and prune of a unit-norm
    bottleneck) go to the first in file order, as in compare.json's `least_collateral`."""
    values = rows[f'{figure}_mean'].dropna()
    if values.empty:
        return None
    best = values.max() if HIGHER_IS_BETTER[figure] else values.min()
    index = values.index[np.isclose(values, best, rtol=1e-6, atol=0)][0]
    return rows.loc[index].to_dict()


def fairness_warning(facts: CompareFacts) -> str | None:
    """The warning the page shows when another model reconstructs much worse than the prepared model; else None."""
    unfair = [
        f"the {name} model's is {sig(m.baseline_median)} ({sig(m.ratio)} times as large)"
        for name, m in facts.models.items()
        if not m.fair
    ]
    if not unfair:
        return None
    prepared = next(iter(facts.models.values())).prepared_baseline_median
    which = "that model's" if len(unfair) == 1 else "those models'"
    return (
        f"Unedited, the prepared model's median error is {sig(prepared)}; {join(unfair)}. That is not fair (a fair "
        f'comparison is within {FAIRNESS_RATIO:g} times): {which} methods start from a worse model.'
    )


def verdict(summary: pd.DataFrame, facts: CompareFacts) -> list[str]:
    """The verdict in sentences, numbers included: which method removes its target with the least collateral damage,
    how the best method on the other model compares, and, figure by figure, which model's methods do better.

    Reports what the numbers show: nothing assumes the prepared model wins.

    Args:
        summary: summary.csv (one row per method: `method, model, kind, targets, seeds, F_mean, F_low, F_high`).
        facts: compare.json (`removal_threshold`, `removes`, `least_collateral`, `control`). Methods whose targets
            differ from the baselines' are named, not ranked.
    """
    rows = summary.set_index('method', drop=False)
    edits = rows[rows['kind'] != BASELINE_KIND]
    threshold = facts.removal_threshold
    seeds = sig(summary['seeds'].max())
    sentences = [ONE_SEED_CAVEAT] if summary['seeds'].max() < 2 else []

    # Collateral damage is measured away from each method's own targets: methods are ranked only against those
    # with the first evaluation's targets (the baselines'), and the others are named, not compared.
    baselines = rows[rows['kind'] == BASELINE_KIND]
    if len(baselines) and len(edits):
        compared = baselines['targets'].iloc[0]
        elsewhere = edits[edits['targets'] != compared]
        if len(elsewhere):
            named = [f'{m} removes {_targets(r)}' for m, r in elsewhere.iterrows()]
            sentences.append(
                f'Only methods that remove {_targets(baselines.iloc[0])} are compared here. '
                f'{join(named)}, measured against other colours: see the table.'
            )
            edits = edits[edits['targets'] == compared]
    removes = [m for m in facts.removes if m in edits.index]

    best_name = facts.least_collateral
    if removes and best_name not in removes:
        best_name = str(rows.loc[removes, 'collateral_max_mean'].idxmin())
    if not removes:
        sentences.append(
            f'No method removes its target: {REMOVAL_RULE.format(threshold=sig(threshold))}, and none does.'
        )
        top = _best(edits, 'target_error')
        if top is not None:
            sentences.append(f'The highest is that of {_what(top)}, {interval(top, "target_error")}.')
        best = None
    else:
        best = rows.loc[best_name].to_dict()
        others = [m for m in removes if m != best_name]
        among = (
            'the only method that removes its target'
            if not others
            else f'the {len(removes)} methods that remove their target (also {join(others)})'
        )
        sentences.append(
            f'{_what(best)} removes {_targets(best)} with the least collateral damage of {among}: '
            f'target error {interval(best, "target_error")}, collateral max {interval(best, "collateral_max")} '
            f'and collateral median {interval(best, "collateral_median")} '
            f'(means over {seeds} seed{"s" if seeds != "1" else ""}, '
            f'with 95% bootstrap intervals; {REMOVAL_RULE.format(threshold=sig(threshold))}).'
        )

    home = best['model'] if best is not None else (edits['model'].iloc[0] if len(edits) else None)
    for other in dict.fromkeys(edits['model']):
        if other == home:
            continue
        candidates = edits[edits['model'] == other]
        if best is not None:
            sentences.append(_other_model(best, candidates, removes, threshold))
        for figure in HIGHER_IS_BETTER:
            pool = edits[edits['method'].isin(removes)] if figure in COLLATERAL else edits
            ours, theirs = _best(pool[pool['model'] == home], figure), _best(pool[pool['model'] == other], figure)
            if ours is not None and theirs is not None:
                sentences.append(_figure_sentence(figure, ours, theirs))

    if len(baselines):
        parts = [f'{_possessive(r["model"])} {interval(r, "target_error")}' for _, r in baselines.iterrows()]
        parts[0] = parts[0].replace("'s ", "'s target error is ", 1)
        sentences.append(f'For reference, unedited, {join(parts)}.')
    for name, model in facts.models.items():
        ratio = sig(model.ratio)
        if model.fair:
            sentences.append(
                f'The {name} model reconstructs about as well as the prepared model (unedited median error '
                f'{ratio} times as large), so its comparison is fair.'
            )
        else:
            sentences.append(
                f"Read the {name} model's numbers with care: unedited, it reconstructs {ratio} times worse than the "
                'prepared model (see the warning above).'
            )
    return sentences


def _other_model(best: dict[str, Any], candidates: pd.DataFrame, removes: list[str], threshold: float) -> str:
    """How the best method on the other model compares with the verdict's best."""
    removing = candidates[candidates['method'].isin(removes)]
    if len(removing):
        rival = _best(removing, 'collateral_max') or removing.iloc[0].to_dict()
        more = 'more' if rival['collateral_max_mean'] > best['collateral_max_mean'] else 'no more'
        return (
            f'On {_model(rival["model"])}, {_what(rival)} removes {_targets(rival)} too '
            f'(target error {interval(rival, "target_error")}), with {more} collateral damage: '
            f'collateral max {interval(rival, "collateral_max")} against {sig(best["collateral_max_mean"])} '
            f'for {best["method"]}, collateral median {interval(rival, "collateral_median")} against '
            f'{sig(best["collateral_median_mean"])}.'
        )
    rival = _best(candidates, 'target_error')
    model = _model(candidates['model'].iloc[0])
    if rival is None:
        return f'No method on {model} has a target error.'
    return (
        f'On {model}, no method removes its target: the one that removes most, {_what(rival)}, '
        f'has target error {interval(rival, "target_error")}, below the removal threshold ({sig(threshold)}), '
        f'against {sig(best["target_error_mean"])} for {best["method"]}.'
    )


def _figure_sentence(figure: str, ours: dict[str, Any], theirs: dict[str, Any]) -> str:
    """'On selectivity r², the control does better: …' — the better of two models' best methods on one figure."""
    a, b = ours[f'{figure}_mean'], theirs[f'{figure}_mean']
    label = figure_label(figure)
    label = label[:1].lower() + label[1:]
    scope = ' (among methods that remove their target)' if figure in COLLATERAL else ''
    if a == b:
        return (
            f'On {label}{scope}, {_model(ours["model"])} and {_model(theirs["model"])} tie: '
            f'{ours["method"]} {interval(ours, figure)} and {theirs["method"]} {interval(theirs, figure)}.'
        )
    better_is_ours = (a > b) == HIGHER_IS_BETTER[figure]
    winner, loser = (ours, theirs) if better_is_ours else (theirs, ours)
    text = (
        f'On {label}{scope}, {_model(winner["model"])} does better: {winner["method"]} {interval(winner, figure)} '
        f'against {loser["method"]} {interval(loser, figure)} on {_model(loser["model"])}'
    )
    if _overlap(winner, loser, figure):
        text += ', though the intervals overlap'
    return text + '.'


# The page -------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if value is None:
        return '—'
    if isinstance(value, list):
        return ' + '.join(_cell(v) for v in value)
    if isinstance(value, float):
        return sig(value)
    return str(value)


def settings_table(methods: Mapping[str, Mapping[str, Any]]) -> Table:
    """compare.json's `methods` as a table: one row per method, one column per setting any method has."""
    keys = list(dict.fromkeys(k for settings in methods.values() for k in settings))
    rows = [[name, *(_cell(settings[k]) if k in settings else '' for k in keys)] for name, settings in methods.items()]
    return Table(['method', *keys], rows)


def seeds_table(table: pd.DataFrame, order: Sequence[str]) -> Table:
    """compare.csv as a table, grouped like the figures (by method, then seed); numbers to 3 significant figures."""
    rank = {m: i for i, m in enumerate(order)}
    frame = table.assign(_rank=table['method'].map(rank)).sort_values(['_rank', 'seed'], kind='stable')
    frame = frame.drop(columns='_rank')
    rows = [[_cell(v) for v in row.values()] for row in frame.to_dict('records')]
    return Table(list(frame.columns), rows)


def seed_range(seeds: Sequence[int]) -> str:
    """'0–19' for consecutive seeds, else '0, 2, 5'."""
    seeds = sorted(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f'{seeds[0]}–{seeds[-1]}'
    return ', '.join(str(s) for s in seeds)


def target_hues_of(directory: Path, methods: Sequence[str]) -> dict[str, float]:
    """Hue in degrees of each target of `methods`, from the comparison's config.toml; {} without a readable one.

    Targets without a hue (saturation 0) are left out. The hue comes from the experiment (a declared
    label's colour, else the named colour), never from the target's name alone.
    """
    path = directory / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        experiment = load_experiment(path)
    except ConfigError as e:
        log.warning('%s: the targets are not marked along hue (%s)', path, e)
        return {}
    hues: dict[str, float] = {}
    for evaluation in experiment.config.evaluations:
        if evaluation.name in methods:
            for target in build_targets(experiment.config, evaluation):
                hue, saturation, _ = target.hsv
                if saturation > 0:
                    hues.setdefault(target.name, round(float(hue) * 360 % 360, 6))
    return hues


def is_text_comparison(directory: Path) -> bool:
    """Whether the directory holds a text comparison (its compare.json says `"domain": "text"`)."""
    try:
        return json.loads((directory / 'compare.json').read_text()).get('domain') == 'text'
    except (OSError, ValueError, AttributeError):
        return False


def write_compare_report(directory: str | Path) -> Path:
    """Draw a comparison's figures and write its report.html; return the report's path."""
    directory = Path(directory)
    if not directory.is_dir():
        raise RunArtifactsError(f'{directory}: no such directory; expected a comparison (ex-color compare writes one)')
    with locked(directory) as stop_if_asked:
        return _write_compare_report(directory, stop_if_asked)


def _write_compare_report(directory: Path, stop_if_asked: Callable[[], None]) -> Path:
    started = time.perf_counter()
    if is_text_comparison(directory):
        from ex_color.vis.text_report import write_text_compare_report

        return write_text_compare_report(directory, stop_if_asked)
    comparison = load_comparison(directory)
    facts, table, summary, hue = comparison.facts, comparison.table, comparison.summary, comparison.hue
    order = method_order(summary)
    models = dict(zip(summary['method'], summary['model'], strict=True))
    kinds = dict(zip(summary['method'], summary['kind'], strict=True))
    figures_dir = directory / FIGURES_DIR
    seeds = len(facts.seeds)
    shown = table[table['method'].isin(order)]
    figures = [
        save_figure(
            lambda theme: plot_method_boxes(
                shown,
                BOX_FIGURES,
                order=order,
                models=models,
                kinds=kinds,
                removal_threshold=facts.removal_threshold,
                title=f'{facts.title} · each method over {seeds} seeds',
                theme=theme,
            ),
            figures_dir,
            'compare-methods',
            lambda title: describe_method_boxes(
                title,
                shown,
                BOX_FIGURES,
                order=order,
                models=models,
                kinds=kinds,
                removal_threshold=facts.removal_threshold,
            ),
            relative_to=directory,
        )
    ]
    stop_if_asked()
    if hue is not None:
        target_hues = target_hues_of(directory, order) or None
        hue_order = [m for m in order if (hue['method'] == m).any()]
        figures.append(
            save_figure(
                lambda theme: plot_hue_error(
                    hue,
                    order=hue_order,
                    models=models,
                    kinds=kinds,
                    target_hues=target_hues,
                    title=f'{facts.title} · error along hue',
                    theme=theme,
                ),
                figures_dir,
                'compare-hue-error',
                lambda title: describe_hue_error(
                    title, hue, order=hue_order, models=models, kinds=kinds, target_hues=target_hues
                ),
                relative_to=directory,
            )
        )
    stop_if_asked()
    remove_stale(figures_dir, figures)
    index = {'figures': [figure.to_dict() for figure in figures]}
    write_atomic(figures_dir / FIGURE_INDEX, json.dumps(index, indent=2) + '\n')

    rows = summary.set_index('method', drop=False)
    removes = set(facts.removes)
    summary_rows = [
        {
            'method': m,
            'model': rows.loc[m, 'model'],
            'kind': rows.loc[m, 'kind'],
            'targets': _targets(rows.loc[m]),
            'seeds': sig(rows.loc[m, 'seeds']),
            'cells': [interval(rows.loc[m], f) for f in FIGURES],
            'removes': 'yes' if m in removes else ('—' if rows.loc[m, 'kind'] == BASELINE_KIND else 'no'),
            'best': m == facts.least_collateral,
        }
        for m in order
    ]
    html = (
        environment()
        .get_template('compare.html.j2')
        .render(
            title=facts.title,
            facts=facts,
            seeds=seed_range(facts.seeds),
            n_seeds=len(facts.seeds),
            warning=fairness_warning(facts),
            verdict=verdict(summary, facts),
            figure_columns=[figure_label(f) for f in FIGURES],
            summary_rows=summary_rows,
            figures=figures,
            has_hue=hue is not None,
            fair_ratio=f'{FAIRNESS_RATIO:g}',
            settings=settings_table(facts.methods),
            per_seed=seeds_table(table, order),
        )
    )
    path = directory / REPORT_FILE
    write_atomic(path, html)
    log.info('Wrote %s (%d figures) in %.1f s', path, len(figures), time.perf_counter() - started)
    return path


__all__ = [
    'Comparison',
    'fairness_warning',
    'interval',
    'load_comparison',
    'settings_table',
    'verdict',
    'write_compare_report',
]
