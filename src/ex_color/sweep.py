"""Sweep an experiment over many seeds: ensembles of seeds trained together, the best run picked.

`run_sweep` reads as its pipeline: the multi-seed runner (`ex_color.runner`) trains chunks of
seeds, each one call of `experiment.train_chunk` (one ensemble, trained, its variants built and
evaluated), here or on Ray, and saves each seed as its chunk finishes → sweep.csv → the Pareto
front on the experiment's objectives → the best seed's run directory. The sweep directory holds:

    config.toml, dopesheet.csv   what was swept (a rerun must match them)
    seeds/seed-<N>.pt            each finished seed: model, metrics, figures (a rerun skips these)
    sweep.csv                    one row per seed: final train losses, val_*, and per evaluation
                                 <name>_mse_max, _mse_median, _selectivity_r2, _<colour>
    pareto.csv                   the rows no other row dominates on the experiment's [sweep]
                                 objectives (columns to minimise and to maximise)
    sweep.json                   summary: seeds, objectives, best seed, chunk size, where it ran, timings
    best/                        the best seed's run directory, as `ex-color run` writes it
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ex_color.backends import chunk_trainer
from ex_color.compiling import resolve_compile
from ex_color.config import Experiment, ExperimentConfig, build_model, sweep_objectives
from ex_color.device import resolve_device
from ex_color.experiment import SeedOutcome, check_text_engine, checked_steps, train_chunk
from ex_color.rundir import write_run
from ex_color.runner import ENGINE, SeedFiles, SeedJob, SeedRunner, parse_seeds
from ex_color.statistics import pareto_front
from ex_color.sweepdir import BEST_DIR, SweepSummary, write_pareto, write_sweep_table

log = logging.getLogger(__name__)


def outcome_from_state(state: dict[str, Any], config: ExperimentConfig) -> SeedOutcome:
    """A sweep's seed file read back, its model rebuilt from `config`."""
    return SeedOutcome.from_state(state, build_model(config))


SWEEP = SeedJob(
    kind='sweep',
    train_chunk=train_chunk,
    keys=('train_seconds', 'model', 'metrics', 'evaluations', 'validation', 'row'),
    label='Sweep',
    from_state=outcome_from_state,
)
"""A sweep's unit of work: one ensemble of seeds, each assessed as `ex-color run` assesses one."""


@dataclass(frozen=True)
class SweepResult:
    directory: Path
    table: pd.DataFrame
    """sweep.csv: one row per seed."""
    pareto: pd.DataFrame
    best_seed: int
    summary: SweepSummary
    """sweep.json."""


def default_sweep_dir(experiment: Experiment) -> Path:
    return Path('runs') / experiment.runs_name / 'sweep'


def run_sweep(
    experiment: Experiment,
    seeds: Sequence[int],
    *,
    out: str | Path | None = None,
    chunk: int | None = None,
    steps: int | None = None,
    progress: bool | None = None,
    ray: str | None = None,
    ray_cpus: int | None = None,
    loggers: Sequence[str] = (),
    device: str = 'cpu',
    compile: bool | None = None,
) -> SweepResult:
    """Train and evaluate every seed (as ensembles of `chunk` seeds) and summarise the sweep.

    Finished seeds found in `out` are skipped, so an interrupted sweep continues where it
    stopped; locally the chunk in progress also resumes from its checkpoint.

    Args:
        chunk: seeds per ensemble (default: up to MAX_CHUNK locally; on Ray the unfinished
            seeds spread over the cluster's CPUs, see `ex_color.ray_runner`).
        ray: None to train here; else each chunk is a Ray task on 'local' (RAY_ADDRESS if
            set, else a new cluster on this machine), 'auto' or a cluster's address.
        ray_cpus: CPUs and torch threads per Ray task (default 1).
        loggers: also track each newly finished seed as a run of its own, grouped by the sweep
            (`ex_color.tracking`): its config, every logged step and its sweep.csv row as `final/...`.
        compile: train with the compiled step; None → the default (`ex_color.compiling`: eager).
    """
    seeds = list(seeds)
    check_text_engine(experiment.config, compile=compile)
    steps = checked_steps(experiment, steps)
    device = resolve_device(device)
    compile = resolve_compile(compile, 'sweep')
    directory = Path(out) if out is not None else default_sweep_dir(experiment)
    started = time.perf_counter()
    with SeedRunner(
        SWEEP,
        experiment,
        directory,
        steps,
        seeds,
        chunk=chunk,
        trainer=chunk_trainer(experiment, steps, directory, ray=ray, ray_cpus=ray_cpus, device=device, compile=compile),
        loggers=loggers,
        device=device,
        compile=compile,
    ) as runner:
        files = runner.files
        report = runner.run(
            progress=progress,
            after_chunk=lambda: write_sweep_table(directory, _rows(files, seeds)),
        )
        table = write_sweep_table(directory, _rows(files, seeds))
        minimise, maximise, best_column, shown = sweep_objectives(experiment.config)
        for column in (*minimise, *maximise):
            missing = table.loc[table[column].isna(), 'seed'].tolist()
            if missing:
                log.warning('%s is NaN for seeds %s; they rank last on it', column, ', '.join(map(str, missing)))
        pareto = write_pareto(directory, table[pareto_front(table, minimise, maximise)])
        best_seed = pick_best(pareto, minimise, maximise, best_column)
        best_state = files.read(best_seed)
        best = outcome_from_state(best_state, experiment.config)
        results = best.results(experiment, engine=ENGINE, steps=steps, train_seconds=best_state['train_seconds'])
        write_run(directory / BEST_DIR, experiment, best.model, best.metrics, results)
        summary = SweepSummary(
            experiment=experiment.name,
            title=experiment.config.experiment.name,
            seeds=seeds,
            steps=steps,
            chunk=report.chunk,
            ray=report.description,
            minimise=minimise,
            maximise=maximise,
            best_column=best_column,
            print=shown,
            best_seed=best_seed,
            pareto_seeds=[int(s) for s in pareto['seed']],
            train_seconds_this_call=report.train_seconds,
            wall_seconds_this_call=time.perf_counter() - started,
            best_column_median=float(table[best_column].median()),
        )
        summary.write(directory)
    return SweepResult(directory, table, pareto, best_seed, summary)


def pick_best(
    pareto: pd.DataFrame, minimise: Sequence[str], maximise: Sequence[str], best: str, *, label: str = 'seed'
) -> int:
    """The Pareto row's `label` (its seed, or a search's trial) with the best `best` column; ties go to the other
    objectives in order, then to the lowest label."""
    order = [best, *(c for c in (*maximise, *minimise) if c != best)]
    ascending = [c in minimise for c in order]
    return int(pareto.sort_values([*order, label], ascending=[*ascending, True]).iloc[0][label])


def _rows(files: SeedFiles, seeds: Sequence[int]) -> list[dict]:
    """sweep.csv's rows: each finished seed's, in the order of `seeds`."""
    return [files.read(seed)['row'] for seed in seeds if files.exists(seed)]


__all__ = ['SWEEP', 'SweepResult', 'default_sweep_dir', 'parse_seeds', 'pick_best', 'run_sweep']
