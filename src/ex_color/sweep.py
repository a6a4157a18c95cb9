"""Sweep an experiment over many seeds: ensembles of seeds trained together, the best run picked.

A sweep is a list of chunks of seeds; each chunk is one call of `train_chunk` (one
ensemble, trained and evaluated). Locally the chunks run one after another in this
process (`LocalChunks`); with `ray=...` each is a Ray task (`ex_color.ray_sweep`, imported
only then). Either way each chunk's seeds are saved as it finishes. The sweep directory holds:

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

import contextlib
import importlib
import io
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import pandas as pd
import torch

from ex_color.config import ConfigError, Experiment, build_model, sweep_objectives
from ex_color.evaluation import Evaluation
from ex_color.experiment import SeedOutcome, check_seed, checked_steps, stop_on_signals, train_chunk
from ex_color.files import read_torch, write_atomic
from ex_color.rundir import RunArtifactsError, identity, resolved_config, write_inputs, write_run
from ex_color.statistics import pareto_front
from ex_color.tracking import check_trackers, track_seed
from ex_color.training.engine import EngineOptions
from ex_color.workdir import claim, lock

log = logging.getLogger(__name__)

MAX_SEEDS = 100_000
"""The most seeds one sweep call takes."""
MAX_CHUNK = 60
"""Seeds per ensemble by default: enough to amortise per-step overhead, small in memory."""
CHUNK_CHECKPOINT = 'chunk.pt'


@dataclass(frozen=True)
class SweepResult:
    directory: Path
    table: pd.DataFrame
    """sweep.csv: one row per seed."""
    pareto: pd.DataFrame
    best_seed: int
    summary: dict[str, Any]


def parse_seeds(text: str) -> list[int]:
    """'0-59' → [0, …, 59]; '1,3,7-9' → [1, 3, 7, 8, 9]. Order kept, duplicates refused.

    At most MAX_SEEDS seeds, each in [0, 2⁶³); checked before anything is allocated.
    """
    seeds: list[int] = []
    for part in text.split(','):
        part = part.strip()
        lo, sep, hi = part.partition('-')
        if not (lo.isascii() and lo.isdigit() and (not sep or (hi.isascii() and hi.isdigit()))):
            raise ConfigError(f"--seeds: cannot read {part!r}; expected e.g. '0-59' or '1,3,7-9'")
        first, last = int(lo), int(hi) if sep else int(lo)
        if last < first:
            raise ConfigError(f'--seeds: range {part!r} runs backwards')
        for seed in (first, last):
            check_seed(seed, '--seeds')
        if len(seeds) + last - first + 1 > MAX_SEEDS:
            raise ConfigError(f'--seeds: more than {MAX_SEEDS:,} seeds; run them in parts')
        seeds.extend(range(first, last + 1))
    seen: set[int] = set()
    for seed in seeds:
        if seed in seen:
            raise ConfigError(f'--seeds: seed {seed} is listed twice')
        seen.add(seed)
    return seeds


def default_sweep_dir(experiment: Experiment) -> Path:
    return Path('runs') / experiment.name / 'sweep'


def sweep_row(outcome: SeedOutcome) -> dict[str, Any]:
    """One seed's row of sweep.csv."""
    return outcome.figures()


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
) -> SweepResult:
    """Train and evaluate every seed (as ensembles of `chunk` seeds) and summarise the sweep.

    Finished seeds found in `out` are skipped, so an interrupted sweep continues where it
    stopped; locally the chunk in progress also resumes from its checkpoint.

    Args:
        chunk: seeds per ensemble (default: up to MAX_CHUNK locally; on Ray the unfinished
            seeds spread over the cluster's CPUs, see `ex_color.ray_sweep`).
        ray: None to train here; else each chunk is a Ray task on 'local' (RAY_ADDRESS if
            set, else a new cluster on this machine), 'auto' or a cluster's address.
        ray_cpus: CPUs and torch threads per Ray task (default 1).
        loggers: also track each newly finished seed as a run of its own, grouped by the sweep
            (`ex_color.tracking`): its config, every logged step and its sweep.csv row as `final/...`.
    """
    seeds = list(seeds)
    if not seeds:
        raise ConfigError('--seeds: no seeds given')
    steps = checked_steps(experiment, steps)
    if chunk is not None and chunk < 1:
        raise ConfigError(f'--chunk must be >= 1, got {chunk}')
    if ray_cpus is not None and (ray is None or ray_cpus < 1):
        raise ConfigError('--ray-cpus needs --ray' if ray is None else f'--ray-cpus must be >= 1, got {ray_cpus}')
    directory = Path(out) if out is not None else default_sweep_dir(experiment)
    loggers = check_trackers(loggers)
    trainer: ChunkTrainer
    if ray is None:
        trainer = LocalChunks(experiment, steps, directory / CHUNK_CHECKPOINT)
    else:
        trainer = _ray_sweep().RayChunks(experiment, steps, address=ray, num_cpus=ray_cpus)
    work = identity(experiment, engine='fast', steps=steps)
    claim(directory, 'sweep', work, write=False)  # a wrong --out fails before a cluster starts
    with trainer:  # a cluster that cannot be reached fails before the directory is written
        claim(directory, 'sweep', work)
        with lock(directory):
            return _sweep(experiment, seeds, directory, chunk, steps, progress, trainer, loggers)


class ChunkTrainer(Protocol):
    """Trains chunks of seeds (in this process or elsewhere); entered around the sweep."""

    description: str | None
    """Where the chunks run, for sweep.json: None here, else e.g. 'Ray: 2 CPUs, 1 per task'."""

    stopping: str
    """What a SIGINT or SIGTERM does, for the warning logged when one arrives."""

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: object) -> Any: ...

    def default_chunk(self, seeds: int, todo: int) -> int:
        """Seeds per chunk when --chunk is not given: `seeds` in the sweep, `todo` unfinished."""
        ...

    def train(
        self, chunks: Sequence[list[int]], bar: SweepProgress, should_stop: Callable[[], bool]
    ) -> Iterator[tuple[list[SeedOutcome], float]]:
        """Each chunk's outcomes, as it finishes, with its training seconds (evaluation excluded)."""
        ...


class LocalChunks:
    """Trains the chunks one after another in this process, each checkpointed to `chunk.pt`."""

    def __init__(self, experiment: Experiment, steps: int, checkpoint: Path) -> None:
        self.experiment, self.steps, self.checkpoint = experiment, steps, checkpoint
        self.description = None
        self.stopping = 'checkpointing the chunk and stopping'

    def __enter__(self) -> LocalChunks:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def default_chunk(self, seeds: int, todo: int) -> int:
        # From the whole sweep, not what is left, so a rerun keeps the chunk of chunk.pt.
        return min(seeds, MAX_CHUNK)

    def train(
        self, chunks: Sequence[list[int]], bar: SweepProgress, should_stop: Callable[[], bool]
    ) -> Iterator[tuple[list[SeedOutcome], float]]:
        for index, seeds in enumerate(chunks):
            log.info('Chunk %d/%d: seeds %s', index + 1, len(chunks), _span(seeds))
            options = EngineOptions(
                checkpoint_path=self.checkpoint,
                progress=False,
                should_stop=should_stop,
                on_progress=bar.chunk(len(seeds)),
            )
            drop_stale_checkpoint(self.checkpoint, seeds)
            started = time.perf_counter()
            outcomes = train_chunk(
                self.experiment.config, self.experiment.dopesheet, seeds, steps=self.steps, options=options
            )
            yield outcomes, time.perf_counter() - started - sum(o.evaluation_seconds for o in outcomes)
            self.checkpoint.unlink(missing_ok=True)  # the chunk's seeds are saved


def _ray_sweep() -> ModuleType:
    """`ex_color.ray_sweep`, or a ConfigError when Ray is not installed."""
    try:
        return importlib.import_module('ex_color.ray_sweep')
    except ImportError as error:
        if error.name != 'ray' and not (error.name or '').startswith('ray.'):
            raise
        raise ConfigError("--ray needs Ray: pip install 'ex-color[ray]'") from None


def _sweep(
    experiment: Experiment,
    seeds: list[int],
    directory: Path,
    chunk: int | None,
    steps: int,
    progress: bool | None,
    trainer: ChunkTrainer,
    loggers: list[str],
) -> SweepResult:
    write_inputs(directory, experiment, experiment.config.experiment.seed)
    started = time.perf_counter()
    work = identity(experiment, engine='fast', steps=steps)
    done = {seed for seed in seeds if _seed_file(directory, seed).exists()}
    for seed in done:  # before any training: a seed file from other work is refused now, not after
        _read_seed(directory, seed, work)
    todo = [seed for seed in seeds if seed not in done]
    if done:
        log.info('%d of %d seeds already finished in %s; %d to go', len(done), len(seeds), directory, len(todo))
    chunk = chunk or trainer.default_chunk(len(seeds), len(todo))
    chunks = [todo[i : i + chunk] for i in range(0, len(todo), chunk)]
    train_seconds = 0.0
    with (
        SweepProgress(len(seeds) * steps, len(done) * steps, progress) as bar,
        stop_on_signals(trainer.stopping) as stop,
        contextlib.closing(trainer.train(chunks, bar, stop)) as finished,
    ):
        for outcomes, chunk_train_seconds in finished:
            train_seconds += chunk_train_seconds
            for outcome in outcomes:
                _save_seed(directory, outcome, chunk_train_seconds / len(outcomes), work)
                if loggers:
                    track_seed(
                        loggers,
                        directory=directory,
                        experiment=experiment.name,
                        group=f'{experiment.name}/{directory.name}',
                        seed=outcome.seed,
                        config=resolved_config(experiment, outcome.seed) | {'engine': 'fast', 'steps': steps},
                        figures=sweep_row(outcome),
                        step=steps - 1,
                        rows=outcome.metrics.to_dict('records'),
                        settings=experiment.config.tracking,
                    )
            _write_table(directory, seeds, work)

    table = _write_table(directory, seeds, work)
    minimise, maximise, best_column, shown = sweep_objectives(experiment.config)
    for column in (*minimise, *maximise):
        missing = table.loc[table[column].isna(), 'seed'].tolist()
        if missing:
            log.warning('%s is NaN for seeds %s; they rank last on it', column, ', '.join(map(str, missing)))
    pareto = table[pareto_front(table, minimise, maximise)]
    write_atomic(directory / 'pareto.csv', pareto.to_csv(index=False))
    best_seed = pick_best(pareto, minimise, maximise, best_column)
    best, best_train_seconds = _load_seed(directory, best_seed, experiment, work)
    results = best.results(experiment, engine='fast', steps=steps, train_seconds=best_train_seconds)
    write_run(directory / 'best', experiment, best.model, best.metrics, results)
    summary = {
        'experiment': experiment.name,
        'title': experiment.config.experiment.name,
        'seeds': seeds,
        'steps': steps,
        'chunk': chunk,
        'ray': trainer.description,
        'minimise': minimise,
        'maximise': maximise,
        'best_column': best_column,
        'print': shown,
        'best_seed': best_seed,
        'pareto_seeds': [int(s) for s in pareto['seed']],
        'train_seconds_this_call': train_seconds,
        'wall_seconds_this_call': time.perf_counter() - started,
        f'{best_column}_median': float(table[best_column].median()),
    }
    write_atomic(directory / 'sweep.json', json.dumps(summary, indent=2) + '\n')
    return SweepResult(directory, table, pareto, best_seed, summary)


def pick_best(pareto: pd.DataFrame, minimise: Sequence[str], maximise: Sequence[str], best: str) -> int:
    """The Pareto seed with the best `best` column; ties go to the other objectives in order."""
    order = [best, *(c for c in (*maximise, *minimise) if c != best)]
    ascending = [c in minimise for c in order]
    return int(pareto.sort_values([*order, 'seed'], ascending=[*ascending, True]).iloc[0]['seed'])


def _span(seeds: Sequence[int]) -> str:
    return f'{seeds[0]}–{seeds[-1]}' if len(seeds) > 1 else str(seeds[0])


def drop_stale_checkpoint(path: Path, seeds: list[int]) -> None:
    """A chunk checkpoint for other seeds (e.g. after changing --chunk) cannot be resumed."""
    if path.exists() and read_torch(path).get('seeds') != seeds:
        log.warning('Discarding %s: it belongs to a chunk of other seeds', path)
        path.unlink()


def _seed_file(directory: Path, seed: int) -> Path:
    return directory / 'seeds' / f'seed-{seed}.pt'


SEED_KEYS = ('seed', 'train_seconds', 'model', 'metrics', 'evaluations', 'validation', 'row')


def read_seed_file(path: Path, seed: int, work: dict[str, Any], keys: Sequence[str], kind: str) -> dict[str, Any]:
    """A finished seed's saved state, checked to be `kind`'s file (sweep or compare) for `seed` of `work`.

    A RunArtifactsError (before any training uses it) for a damaged file, another seed's, or other
    work's. Files written before seed files recorded their work's identity are checked by seed only.
    """
    state = read_torch(path)
    if not isinstance(state, dict) or any(key not in state for key in keys):
        raise RunArtifactsError(f'{path}: not a seed file of ex-color {kind}; remove it and run again')
    if state['seed'] != seed or state.get('identity', work) != work:
        which = f'seed {state["seed"]}' if state['seed'] != seed else 'another experiment, schedule or --steps'
        raise RunArtifactsError(f'{path}: holds the results of {which}; remove it and run again')
    return state


def _read_seed(directory: Path, seed: int, work: dict[str, Any]) -> dict[str, Any]:
    return read_seed_file(_seed_file(directory, seed), seed, work, SEED_KEYS, 'sweep')


def _save_seed(directory: Path, outcome: SeedOutcome, train_seconds: float, work: dict[str, Any]) -> None:
    state = {
        'seed': outcome.seed,
        'identity': work,
        'train_seconds': train_seconds,
        'model': outcome.model.state_dict(),
        'metrics': outcome.metrics.to_dict('list'),
        'evaluations': {name: e.to_dict() for name, e in outcome.evaluations.items()},
        'validation': outcome.validation,
        'row': sweep_row(outcome),
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(_seed_file(directory, outcome.seed), buffer.getvalue())


def _load_seed(directory: Path, seed: int, experiment: Experiment, work: dict[str, Any]) -> tuple[SeedOutcome, float]:
    """A finished seed, and its share of its chunk's training time."""
    state = _read_seed(directory, seed, work)
    model = build_model(experiment.config)
    model.load_state_dict(state['model'])
    outcome = SeedOutcome(
        seed=seed,
        model=model,
        metrics=pd.DataFrame(state['metrics']),
        evaluations={name: Evaluation.from_dict(e) for name, e in state['evaluations'].items()},
        validation=state['validation'],
    )
    return outcome, state['train_seconds']


def _write_table(directory: Path, seeds: Sequence[int], work: dict[str, Any]) -> pd.DataFrame:
    rows = [_read_seed(directory, seed, work)['row'] for seed in seeds if _seed_file(directory, seed).exists()]
    table = pd.DataFrame(rows)
    write_atomic(directory / 'sweep.csv', table.to_csv(index=False))
    return table


class SweepProgress:
    """One progress bar over the whole sweep (or comparison), in model-steps (models × steps)."""

    def __init__(self, total: int, completed: int, enabled: bool | None, label: str = 'Sweep') -> None:
        self.total, self.completed = total, completed
        self.label = label
        self.enabled = enabled if enabled is not None else sys.stderr.isatty()
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> SweepProgress:
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn(f'[bold]{self.label}'),
                BarColumn(),
                TextColumn('{task.fields[seeds]}'),
                TextColumn('{task.fields[speed]} model-steps/s'),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self.bar.start()
            self.task = self.bar.add_task('sweep', total=self.total, completed=self.completed, seeds='', speed='-')
        return self

    def chunk(self, size: int) -> Any:
        """A callback for one chunk's engine: steps done → the bar's model-steps."""
        base = self.completed

        def on_progress(steps_done: int) -> None:
            self.completed = base + steps_done * size
            if self.bar is not None:
                speed = self.bar.tasks[0].speed
                self.bar.update(
                    self.task,
                    completed=self.completed,
                    seeds=f'{self.completed * 100 // self.total}%',
                    speed=f'{speed:,.0f}' if speed else '-',
                )

        return on_progress

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
