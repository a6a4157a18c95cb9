"""The search directory's tables, summary and winning experiment: written and read here, and nowhere else.

config.toml, dopesheet.csv   what was searched (a rerun must match them)
study.journal                the Optuna study (`ex_color.study`; optuna-dashboard opens it)
trials.csv                   one row per finished trial: number, state, parameters, each objective's
                             (and constraint column's) mean over the trial's seeds and its value per
                             seed (`<column>_seed<K>`), whether it meets the constraints, why it failed
pareto.csv                   the complete trials on the Pareto front of the objectives' means (among
                             those that meet the constraints, when any does)
validation.csv               the finalists retrained on the fresh seeds: one row per finalist and seed,
                             `trial` and `seed` then sweep.csv's columns
finalists.csv                each finalist's fresh-seed mean of every objective and constraint column,
                             with its 95% bootstrap interval (`_mean`, `_low`, `_high`), and the winner
search.json                  `SearchSummary`
best/                        the winner as an experiment directory: experiment.toml, dopesheet.csv
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import tomli_w
from optuna.trial import FrozenTrial, TrialState

from ex_color.config import EXPERIMENT_FILE, Experiment, SearchSection
from ex_color.files import write_atomic
from ex_color.rundir import DOPESHEET_FILE, RunArtifactsError, dopesheet_bytes, read_json, resolved_config
from ex_color.study import FAILURE_ATTR, FIGURES_ATTR, figure_columns

TRIALS_FILE = 'trials.csv'
PARETO_FILE = 'pareto.csv'
VALIDATION_FILE = 'validation.csv'
FINALISTS_FILE = 'finalists.csv'
SUMMARY_FILE = 'search.json'
BEST_DIR = 'best'


def seed_column(column: str, seed: int) -> str:
    """trials.csv's column for one seed's value of `column`."""
    return f'{column}_seed{seed}'


def trials_table(trials: Sequence[FrozenTrial], search: SearchSection, parameters: Sequence[str]) -> pd.DataFrame:
    """trials.csv's rows, one per finished trial in trial order."""
    columns = figure_columns(search)
    seeds = range(search.seeds_per_trial)
    bounds = search.bounds()
    rows = []
    for trial in trials:
        figures = trial.user_attrs.get(FIGURES_ATTR) or {}
        row: dict[str, Any] = {'trial': trial.number, 'state': trial.state.name.lower()}
        row.update({name: trial.params.get(name, math.nan) for name in parameters})
        for column in columns:
            values = figures.get(column, [math.nan] * len(seeds))
            row[column] = sum(values) / len(values)
            row.update({seed_column(column, seed): value for seed, value in zip(seeds, values, strict=True)})
        if bounds:
            row['feasible'] = trial.state == TrialState.COMPLETE and all(b.excess(row[b.column]) <= 0 for b in bounds)
        row['failure'] = trial.user_attrs.get(FAILURE_ATTR, '')
        rows.append(row)
    return pd.DataFrame(rows)


def write_table(directory: Path, name: str, table: pd.DataFrame) -> pd.DataFrame:
    write_atomic(directory / name, table.to_csv(index=False))
    return table


def read_table(directory: Path, name: str, *, empty_ok: bool = False) -> pd.DataFrame:
    """One of the search's tables; a RunArtifactsError naming it when it is missing or unreadable. `empty_ok`: a
    table written without rows (no finalist completed) is read as an empty frame."""
    path = directory / name
    if empty_ok and path.is_file() and not path.read_text().strip():
        return pd.DataFrame()
    try:
        return pd.read_csv(path, keep_default_na=False, na_values=['', 'nan', 'NaN'])
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise RunArtifactsError(f'{path}: cannot read it ({type(error).__name__}); run the search again') from None


@dataclass(frozen=True)
class SearchSummary:
    """search.json: what was searched, how, and what won."""

    experiment: str
    title: str
    sampler: str
    batch: int
    steps: int
    """Steps each trial trained (`--steps`)."""
    schedule_steps: int
    """The dopesheet's length: `steps` is less when the search trained only the start of every schedule."""
    trials: int
    """Finished trials in the study (complete and failed)."""
    failed: int
    seeds_per_trial: int
    validate_seeds: list[int]
    minimise: list[str]
    maximise: list[str]
    constraints: list[str]
    best_column: str
    parameters: list[str]
    pareto_trials: list[int]
    finalists: list[int]
    winner: int | None
    """The winning trial's number (None: no trial completed)."""
    ray: str | None = None
    trials_this_call: int = 0
    wall_seconds_this_call: float | None = None
    trials_per_second_this_call: float | None = None
    """Trials trained per second of wall time in this call's batches (each trial × its seeds)."""

    def write(self, directory: Path) -> None:
        write_atomic(directory / SUMMARY_FILE, json.dumps(asdict(self), indent=2) + '\n')

    @classmethod
    def read(cls, directory: Path) -> SearchSummary:
        path = directory / SUMMARY_FILE
        data = read_json(path)
        try:
            return cls(**data)
        except TypeError as e:
            raise RunArtifactsError(f'{path}: not the summary of a search ({e})') from None


def write_best(directory: Path, winner: Experiment, origin: Sequence[str], seed: int) -> Path:
    """The winning trial as an experiment directory (`ex-color run` takes it): its resolved experiment file,
    without the [search] table, headed by `origin` as comments, and its dopesheet."""
    config = resolved_config(winner, seed)
    config.pop('search', None)
    comment = ''.join(f'# {line}\n' for line in origin)
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(directory / EXPERIMENT_FILE, (comment + '\n' + tomli_w.dumps(config)).encode())
    write_atomic(directory / DOPESHEET_FILE, dopesheet_bytes(winner))
    return directory


__all__ = [
    'BEST_DIR',
    'FINALISTS_FILE',
    'PARETO_FILE',
    'SUMMARY_FILE',
    'TRIALS_FILE',
    'VALIDATION_FILE',
    'SearchSummary',
    'read_table',
    'seed_column',
    'trials_table',
    'write_best',
    'write_table',
]
