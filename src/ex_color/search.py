"""Search an experiment's schedule: Optuna asks a batch of trials, the batch trains as one ensemble, the
finalists are judged on fresh seeds.

`run_search` reads as its pipeline: ask a batch (`ex_color.study`) → make each trial an experiment
(`trials.trial_experiment`) → train every trial × `seeds_per_trial` seeds as one ensemble, here or
as Ray tasks (`trials.train_experiments`) → tell each trial its objectives' means → save the batch
(the journal, then trials.csv) → … until `trials` trials are finished → the Pareto trials → the
best `finalists` of them retrained on `validate_seeds` → the winner, chosen on those fresh seeds →
best/ (a runnable experiment directory). The files are described in `ex_color.searchdir`.

An interrupted batch is lost and asked again on the next call, which proposes the same trials
(see `ex_color.study`), so a search interrupted any number of times writes the trials.csv an
uninterrupted one writes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ex_color.compiling import compile_fields, resolve_compile
from ex_color.config import ConfigError, Experiment, SearchSection
from ex_color.device import device_fields, resolve_device
from ex_color.experiment import SeedOutcome, checked_steps
from ex_color.progress import Progress
from ex_color.rundir import identity, write_inputs
from ex_color.runner import ENGINE, MAX_CHUNK
from ex_color.searchdir import (
    BEST_DIR,
    FINALISTS_FILE,
    PARETO_FILE,
    TRIALS_FILE,
    VALIDATION_FILE,
    SearchSummary,
    read_table,
    trials_table,
    write_best,
    write_table,
)
from ex_color.signals import stop_on_signals
from ex_color.statistics import bootstrap_interval, pareto_front
from ex_color.study import (
    DEFAULT_SAMPLER,
    JOURNAL_FILE,
    SAMPLERS,
    StudyJournal,
    ask_batch,
    figure_columns,
    objectives,
    quiet_optuna,
    tell,
)
from ex_color.sweep import pick_best
from ex_color.training.engine import EngineOptions, TrainingInterrupted
from ex_color.trials import Trained, train_experiments, trial_experiment
from ex_color.workdir import claim, lock

log = logging.getLogger(__name__)

SEARCH_KIND = 'search'


@dataclass(frozen=True)
class SearchResult:
    directory: Path
    trials: pd.DataFrame
    """trials.csv."""
    finalists: pd.DataFrame
    """finalists.csv."""
    validation: pd.DataFrame
    """validation.csv."""
    summary: SearchSummary
    """search.json."""


def default_search_dir(experiment: Experiment) -> Path:
    return Path('runs') / experiment.runs_name / 'search'


def default_batch(search: SearchSection) -> int:
    """Trials per batch: as many as make an ensemble of MAX_CHUNK members with their seeds."""
    return max(1, MAX_CHUNK // search.seeds_per_trial)


def search_section(experiment: Experiment) -> SearchSection:
    """The experiment's [search] table; a ConfigError when it has none."""
    if experiment.config.search is None:
        raise ConfigError(
            f'{experiment.path}: no [search] table; add one naming what varies and what is optimised '
            '(see docs/search.md)'
        )
    return experiment.config.search


class LocalBatches:
    """Trains each batch here, as one ensemble per group of trials that share their labels."""

    description: str | None = None
    stopping = 'stopping; the batch in progress is dropped and asked again when the search is run again'

    def __init__(self, device: str = 'cpu', *, compile: bool = False) -> None:
        self.device, self.compile = device, compile

    def __enter__(self) -> LocalBatches:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def train(
        self, made: Sequence[Experiment], seeds: Sequence[int], steps: int, bar: Progress, stop: Callable[[], bool]
    ) -> list[Trained]:
        options = EngineOptions(progress=False, should_stop=stop, device=self.device, compile=self.compile)
        return train_experiments(made, seeds, steps, options=options, bar=bar)


def batch_trainer(
    experiment: Experiment, steps: int, *, ray: str | None, ray_cpus: int | None, device: str, compile: bool = False
) -> Any:
    """Batches trained here, or with `ray` as Ray tasks (`ex_color.ray_runner.RayTrials`)."""
    if ray_cpus is not None and (ray is None or ray_cpus < 1):
        raise ConfigError('--ray-cpus needs --ray' if ray is None else f'--ray-cpus must be >= 1, got {ray_cpus}')
    if ray is None:
        return LocalBatches(device, compile=compile)
    if device != 'cpu':
        raise ConfigError(f'--device {device} trains batches here; with --ray each batch is trained by tasks on CPUs')
    try:
        from ex_color.ray_runner import RayTrials
    except ImportError as error:
        if error.name != 'ray' and not (error.name or '').startswith('ray.'):
            raise
        raise ConfigError("--ray needs Ray: pip install 'ex-color[ray]'") from None
    return RayTrials(experiment, steps, address=ray, num_cpus=ray_cpus, compile=compile)


def run_search(
    experiment: Experiment,
    *,
    trials: int,
    batch: int | None = None,
    sampler: str = DEFAULT_SAMPLER,
    steps: int | None = None,
    out: str | Path | None = None,
    progress: bool | None = None,
    ray: str | None = None,
    ray_cpus: int | None = None,
    device: str = 'cpu',
    compile: bool | None = None,
) -> SearchResult:
    """Search the experiment's [search] parameters until `trials` trials are finished, then judge the finalists.

    Trials already finished in `out` are kept: a rerun continues the search (and a larger `trials` extends it).

    Args:
        trials: how many trials the study should hold when this call ends.
        batch: trials asked and trained together (default: `default_batch`).
        sampler: 'tpe', 'nsga2' or 'random' (see `ex_color.study`).
        steps: train only the first `steps` steps of every schedule (trials and finalists alike).
        ray: None to train here; else each batch is split into Ray tasks on that cluster (as `run_sweep`).
        compile: train with the compiled step; None → the default (`ex_color.compiling`: compiled).
    """
    if experiment.config.is_text:
        raise ConfigError(
            f'{experiment.path}: ex-color search trains colour models (a batch of trials as one stacked ensemble); '
            'a text experiment is not searched yet: tune its dopesheet with sweep'
        )
    search = search_section(experiment)
    if sampler not in SAMPLERS:
        raise ConfigError(f'--sampler {sampler}: expected one of {", ".join(SAMPLERS)}')
    if trials < 1:
        raise ConfigError(f'--trials must be >= 1, got {trials}')
    batch = batch or default_batch(search)
    if batch < 1 or (sampler == 'nsga2' and batch < 2):
        raise ConfigError(f'--batch {batch}: NSGA-II needs a population of at least 2 trials')
    steps = checked_steps(experiment, steps)
    device = resolve_device(device)
    compile = resolve_compile(compile, 'search')
    directory = Path(out) if out is not None else default_search_dir(experiment)
    work = identity(
        experiment,
        search=search.model_dump(mode='json'),
        engine=ENGINE,
        steps=steps,
        sampler=sampler,
        batch=batch,
        **device_fields(device),
        **compile_fields(compile),
    )
    trainer = batch_trainer(experiment, steps, ray=ray, ray_cpus=ray_cpus, device=device, compile=compile)
    claim(directory, SEARCH_KIND, work, write=False)
    parameters = [p.heading for p in search.parameters]
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        stack.enter_context(trainer)
        claim(directory, SEARCH_KIND, work)
        stack.enter_context(lock(directory))
        write_inputs(directory, experiment, experiment.config.experiment.seed)
        stack.enter_context(quiet_optuna())
        stack.enter_context(_each_note_once(logging.getLogger('ex_color.training.schedule')))
        journal = StudyJournal(directory / JOURNAL_FILE, search)
        finished = journal.trials()
        write_table(directory, TRIALS_FILE, trials_table(finished, search, parameters))  # as the journal has it
        before = len(finished)
        seeds = list(range(search.seeds_per_trial))
        todo = max(0, trials - len(finished))
        if before > trials:
            log.info('%s holds %d trials, more than --trials %d asks; judging its finalists', directory, before, trials)
        elif before:
            log.info('%d trials already finished in %s; %d to go', before, directory, todo)
        train_started = time.perf_counter()
        with (
            Progress('Search', todo * len(seeds) * steps, enabled=progress, unit='model-steps/s') as bar,
            stop_on_signals(trainer.stopping) as stop,
        ):
            while len(finished) < trials:
                size = min(batch, trials - len(finished))
                study, asked = ask_batch(search, finished, sampler=sampler, batch=batch, size=size)
                made = [trial_experiment(experiment, trial.params) for trial in asked]
                outcomes = trainer.train(made, seeds, steps, bar, stop)
                for trial, (seed_outcomes, failure) in zip(asked, outcomes, strict=True):
                    tell(study, trial, search, _figures(seed_outcomes, search) if not failure else None, failure)
                journal.append(study.get_trials(deepcopy=False)[len(finished) :])
                finished = journal.trials()
                table = write_table(directory, TRIALS_FILE, trials_table(finished, search, parameters))
                log.info('%d of %d trials finished; %s', len(finished), trials, _best_so_far(table, search))
            if stop():
                raise TrainingInterrupted('search stopped after its last batch was saved')
        train_seconds = time.perf_counter() - train_started
        table = read_table(directory, TRIALS_FILE)
        pareto = write_table(directory, PARETO_FILE, table[_front(table, search)])
        validation, finalists = _judge_finalists(
            experiment, directory, table, pareto, search, steps, trainer, parameters
        )
        winner = _winner(finalists, search)
        if winner is not None:
            _write_winner(directory, experiment, table, finalists, winner, search, sampler, steps)
        new = len(finished) - before
        summary = SearchSummary(
            experiment=experiment.name,
            title=experiment.config.experiment.name,
            sampler=sampler,
            batch=batch,
            steps=steps,
            schedule_steps=len(experiment.dopesheet),
            trials=len(table),
            failed=int((table['state'] == 'fail').sum()) if len(table) else 0,
            seeds_per_trial=search.seeds_per_trial,
            validate_seeds=list(search.validate_seeds),
            minimise=list(search.minimise),
            maximise=list(search.maximise),
            constraints=[str(b) for b in search.bounds()],
            best_column=search.best_column,
            parameters=parameters,
            pareto_trials=[int(t) for t in pareto['trial']] if len(pareto) else [],
            finalists=[int(t) for t in finalists['trial']] if len(finalists) else [],
            winner=winner,
            ray=trainer.description,
            trials_this_call=new,
            wall_seconds_this_call=time.perf_counter() - started,
            trials_per_second_this_call=new / train_seconds if new and train_seconds > 0 else None,
        )
        summary.write(directory)
    return SearchResult(directory, table, finalists, validation, summary)


@contextlib.contextmanager
def _each_note_once(logger: logging.Logger) -> Iterator[None]:
    """Say each of `logger`'s messages once: every trial builds its own schedule, and would repeat its notes."""
    said: set[str] = set()

    def first_time(record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in said:
            return False
        said.add(message)
        return True

    logger.addFilter(first_time)
    try:
        yield
    finally:
        logger.removeFilter(first_time)


def _figures(outcomes: Sequence[SeedOutcome], search: SearchSection) -> dict[str, list[float]]:
    """Each objective and constraint column's value per seed, from the seeds' sweep.csv rows."""
    rows = [outcome.figures() for outcome in outcomes]
    return {column: [float(row[column]) for row in rows] for column in figure_columns(search)}


def _best_so_far(table: pd.DataFrame, search: SearchSection) -> str:
    column = search.best_column
    done = table[table['state'] == 'complete']
    if 'feasible' in done:
        done = done[done['feasible'].astype(bool)]
    if done.empty:
        return 'none complete and feasible yet'
    best = done[column].max() if column in search.maximise else done[column].min()
    return f'best {column} so far {best:.4g}'


def _front(table: pd.DataFrame, search: SearchSection) -> pd.Series:
    """The complete trials on the Pareto front of the objectives' means, among those meeting the constraints
    when any does."""
    if table.empty:
        return pd.Series([], dtype=bool)
    candidates = table['state'] == 'complete'
    if 'feasible' in table and table['feasible'].astype(bool).any():
        candidates &= table['feasible'].astype(bool)
    on_front = pd.Series(False, index=table.index)
    if candidates.any():
        on_front[candidates] = pareto_front(table[candidates], search.minimise, search.maximise)
    return on_front


def _judge_finalists(
    experiment: Experiment,
    directory: Path,
    table: pd.DataFrame,
    pareto: pd.DataFrame,
    search: SearchSection,
    steps: int,
    trainer: Any,
    parameters: Sequence[str],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """validation.csv and finalists.csv: the best Pareto trials retrained on the fresh seeds (those already
    retrained in an earlier call are read back)."""
    chosen = _finalists(table, pareto, search)
    seeds = list(search.validate_seeds)
    kept = pd.DataFrame()
    if (directory / VALIDATION_FILE).exists():
        kept = read_table(directory, VALIDATION_FILE)
        kept = kept[kept['trial'].isin(chosen['trial']) & kept['seed'].isin(seeds)]
    have = {int(t) for t, rows in kept.groupby('trial') if len(rows) == len(seeds)} if len(kept) else set()
    kept = kept[kept['trial'].isin(have)] if len(kept) else kept
    todo = [row for row in chosen.to_dict('records') if int(row['trial']) not in have]
    rows = kept.to_dict('records') if len(kept) else []
    if todo:
        log.info('Retraining %d finalists on fresh seeds %s', len(todo), _seed_words(seeds))
        made = [trial_experiment(experiment, {p: row[p] for p in parameters}) for row in todo]
        with (
            Progress('Finalists', len(todo) * len(seeds) * steps, unit='model-steps/s') as bar,
            stop_on_signals('stopping; the finalists are retrained when the search is run again') as stop,
        ):
            trained = trainer.train(made, seeds, steps, bar, stop)
        for row, (outcomes, failure) in zip(todo, trained, strict=True):
            if failure:
                log.warning('Finalist trial %d failed on the fresh seeds: %s', row['trial'], failure)
            rows.extend({'trial': int(row['trial']), **outcome.figures()} for outcome in outcomes)
    order = {int(t): i for i, t in enumerate(chosen['trial'])}
    validation = pd.DataFrame(rows)
    if len(validation):
        validation = validation.sort_values(
            ['trial', 'seed'], key=lambda c: c.map(order) if c.name == 'trial' else c.map(seeds.index)
        ).reset_index(drop=True)
    write_table(directory, VALIDATION_FILE, validation)
    finalists = _finalists_table(chosen, validation, search, parameters)
    return validation, write_table(directory, FINALISTS_FILE, finalists)


def _finalists(table: pd.DataFrame, pareto: pd.DataFrame, search: SearchSection) -> pd.DataFrame:
    """The `search.finalists` trials to retrain: the Pareto trials, best on `best` first, then (when the front is
    smaller, as with one objective) the other complete trials that meet the constraints, best first."""
    best = search.best_column
    order = {'by': [best, 'trial'], 'ascending': [best in search.minimise, True]}
    others = table[(table['state'] == 'complete') & ~table['trial'].isin(pareto['trial'])]
    if 'feasible' in others and len(pareto) and pareto['feasible'].astype(bool).all():
        others = others[others['feasible'].astype(bool)]
    ranked = pd.concat([pareto.sort_values(**order), others.sort_values(**order)])
    return ranked.head(search.finalists)


def _finalists_table(
    chosen: pd.DataFrame, validation: pd.DataFrame, search: SearchSection, parameters: Sequence[str]
) -> pd.DataFrame:
    """One row per finalist: its parameters, each column's mean on the searched seeds, and its fresh-seed mean with
    the 95% bootstrap interval; whether it meets the constraints there and is on their Pareto front; the winner."""
    columns = figure_columns(search)
    rows = []
    for finalist in chosen.to_dict('records'):
        trial = int(finalist['trial'])
        mine = validation[validation['trial'] == trial] if len(validation) else validation
        row: dict[str, Any] = {'trial': trial, **{p: finalist[p] for p in parameters}, 'seeds': len(mine)}
        for column in columns:
            values = mine[column].to_numpy(float) if len(mine) else np.array([])
            low, high = bootstrap_interval(values)
            row[f'{column}_mean'] = float(values.mean()) if len(values) else math.nan
            row[f'{column}_low'], row[f'{column}_high'] = float(low), float(high)
            row[f'{column}_searched'] = finalist[column]
        bounds = search.bounds()
        row['feasible'] = bool(len(mine)) and all(b.excess(row[f'{b.column}_mean']) <= 0 for b in bounds)
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    means = table.rename(columns={f'{c}_mean': c for c in objectives(search)})
    candidates = table['feasible'] if table['feasible'].any() else table['seeds'] > 0
    table['pareto'] = False
    if candidates.any():
        table.loc[candidates, 'pareto'] = pareto_front(means[candidates], search.minimise, search.maximise).to_numpy()
    table['winner'] = False
    if table['pareto'].any():
        front = means[table['pareto']]
        winner = pick_best(front, search.minimise, search.maximise, search.best_column, label='trial')
        table.loc[table['trial'] == winner, 'winner'] = True
    return table


def _winner(finalists: pd.DataFrame, search: SearchSection) -> int | None:
    if finalists.empty or not finalists['winner'].any():
        return None
    return int(finalists.loc[finalists['winner'], 'trial'].iloc[0])


def _write_winner(
    directory: Path,
    experiment: Experiment,
    table: pd.DataFrame,
    finalists: pd.DataFrame,
    winner: int,
    search: SearchSection,
    sampler: str,
    steps: int,
) -> None:
    row = table.set_index('trial').loc[winner]
    values = {p.heading: row[p.heading] for p in search.parameters}
    made = trial_experiment(experiment, values)
    figures = finalists.set_index('trial').loc[winner]
    seeds = list(search.validate_seeds)
    length = len(experiment.dopesheet)
    steps_flag = f' --steps {steps}' if steps < length else ''
    origin = [
        f'Found by `ex-color search` of {experiment.path} ({sampler} sampler, {len(table)} trials of '
        f'{_plural(search.seeds_per_trial, "seed")} each, {steps} steps): trial {winner}, the winner on fresh seeds.',
        'Its parameters: ' + ', '.join(f'{name} = {value:.6g}' for name, value in values.items()) + '.',
        f'Its means over the fresh seeds {_seed_words(seeds)} (95% bootstrap intervals):',
        *(
            f'  {c} {figures[f"{c}_mean"]:.4g} [{figures[f"{c}_low"]:.4g}, {figures[f"{c}_high"]:.4g}]'
            for c in figure_columns(search)
        ),
        f'`ex-color run <this directory> --seed K{steps_flag}` (K one of those seeds) reproduces its row of '
        f'{VALIDATION_FILE}.',
    ]
    write_best(directory / BEST_DIR, made, origin, seeds[0])


def _plural(count: int, noun: str) -> str:
    return f'{count} {noun}' if count == 1 else f'{count} {noun}s'


def _seed_words(seeds: Sequence[int]) -> str:
    contiguous = list(seeds) == list(range(seeds[0], seeds[0] + len(seeds)))
    return f'{seeds[0]}–{seeds[-1]}' if contiguous and len(seeds) > 1 else ', '.join(map(str, seeds))


__all__ = ['SearchResult', 'default_batch', 'default_search_dir', 'run_search', 'search_section']
