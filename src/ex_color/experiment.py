"""Run an experiment: config in, run directory out.

`run_experiment` reads as its pipeline: train one seed (the fast engine, or the
seed-faithful Lightning trainer) → build each variant (surgeries, interventions) →
evaluate them → write the run directory (`ex_color.rundir`). `train_chunk` is the same
for an ensemble of seeds, the unit of work of a sweep.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
import torch
from torch import nn

from ex_color.compiling import resolve_compile
from ex_color.config import (
    LIGHTNING_SEED_LIMIT,
    ConfigError,
    Experiment,
    ExperimentConfig,
    build_labels,
    build_model,
    build_regularizers,
    build_route,
    check_seed,
    text_data,
    training_data,
    validation_regularizers,
)
from ex_color.device import resolve_device
from ex_color.evaluation import Evaluation, evaluate_variants, validation_losses
from ex_color.rundir import (
    CHECKPOINT_FILE,
    RESULTS_FILE,
    RunResults,
    evaluation_from_dict,
    read_results,
    resolved_config,
    run_identity,
    write_inputs,
    write_run,
)
from ex_color.signals import stop_on_signals
from ex_color.temporal import Dopesheet
from ex_color.text_evaluation import TextEvaluation, evaluate_text_variants, text_validation
from ex_color.training.engine import (
    EngineOptions,
    EnsembleResult,
    TrainingInterrupted,
    init_models,
    train_ensemble,
)
from ex_color.training.schedule import TrainingSchedule
from ex_color.training.text import train_text_ensemble
from ex_color.variants import build_variants
from ex_color.workdir import claim, lock

if TYPE_CHECKING:
    from ex_color.tracking import Tracker

log = logging.getLogger(__name__)

Engine = Literal['fast', 'lightning']
ENGINES: tuple[Engine, ...] = ('fast', 'lightning')
LOG_EVERY = 50


class RunExistsError(RuntimeError):
    """The output directory holds a finished or interrupted run that would be overwritten."""


@dataclass(frozen=True)
class RunResult:
    """Where a run was written and what it found."""

    directory: Path
    results: RunResults
    trained: bool = True
    """False when the run was finished before this call (`resume` returned it as it was)."""


@dataclass
class SeedOutcome:
    """One trained seed: its model, training metrics and every reported figure."""

    seed: int
    model: nn.Module
    metrics: pd.DataFrame
    """This seed's rows of the training metrics (step, lr, train_loss, train_<term>, weight_<name>)."""
    evaluations: dict[str, Evaluation | TextEvaluation]
    """'baseline' and each evaluation of the experiment."""
    validation: dict[str, float]
    """`val_recon` and `val_<name>` for the regularizers marked for validation."""
    evaluation_seconds: float = 0.0

    def final_train_loss(self) -> dict[str, float]:
        """Each logged loss term at the last logged step."""
        last = self.metrics.iloc[-1]
        return {c: float(last[c]) for c in self.metrics.columns if c.startswith('train_')}

    def figures(self) -> dict[str, Any]:
        """This seed's row of sweep.csv: final train losses, validation losses, every variant's figures."""
        row: dict[str, Any] = {'seed': self.seed}
        row.update(self.final_train_loss())
        row.update(self.validation)
        for name, e in self.evaluations.items():
            row.update(e.row(name))
        return row

    def tracked(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A tracker's view of this seed: its sweep.csv row as final figures, and its metric rows."""
        return self.figures(), self.metrics.to_dict('records')

    def to_state(self) -> dict[str, Any]:
        """A sweep's seed file (`ex_color.runner.SeedFiles`); `from_state` reads it back."""
        return {
            'model': self.model.state_dict(),
            'metrics': self.metrics.to_dict('list'),
            'evaluations': {name: e.to_dict() for name, e in self.evaluations.items()},
            'validation': self.validation,
            'row': self.figures(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], model: nn.Module) -> SeedOutcome:
        """A saved seed, its weights loaded into `model` (a freshly built model of its experiment)."""
        model.load_state_dict(state['model'])
        return cls(
            seed=state['seed'],
            model=model,
            metrics=pd.DataFrame(state['metrics']),
            evaluations={name: evaluation_from_dict(e) for name, e in state['evaluations'].items()},
            validation=state['validation'],
        )

    def results(
        self,
        experiment: Experiment,
        *,
        engine: str,
        steps: int,
        train_seconds: float,
        device: str = 'cpu',
        compile: bool = False,
    ) -> RunResults:
        """What results.json holds for this seed."""
        return RunResults(
            experiment=experiment.name,
            title=experiment.config.experiment.name,
            seed=self.seed,
            engine=engine,
            steps=steps,
            train_seconds=train_seconds,
            evaluations=self.evaluations,
            validation=self.validation,
            final_train_loss=self.final_train_loss(),
            device=device,
            compiled=compile,
            compile_threads=torch.get_num_threads() if compile else None,
        )


def default_run_dir(experiment: Experiment, seed: int) -> Path:
    return Path('runs') / experiment.runs_name / f'seed-{seed}'


def run_experiment(
    experiment: Experiment,
    *,
    seed: int | None = None,
    out: str | Path | None = None,
    engine: Engine = 'fast',
    steps: int | None = None,
    resume: bool = False,
    progress: bool | None = None,
    checkpoint_every: int = 500,
    tracker: Tracker | None = None,
    device: str = 'cpu',
    compile: bool | None = None,
) -> RunResult:
    """Train, operate and evaluate one seed of `experiment`; write its run directory.

    Args:
        seed: defaults to the experiment file's seed.
        out: run directory (default `runs/<experiment>/seed-<N>/`).
        engine: 'fast' (plain PyTorch) or 'lightning' (the seed's trainer).
        steps: train only the first `steps` steps of the schedule.
        resume: continue an interrupted run in `out` (fast engine), or return a finished one.
        tracker: also log the config, every logged step and the final figures there (`ex_color.tracking`);
            the caller finishes it (after adding the report, say).
        device: 'cpu' (default), 'cuda', 'cuda:N' or 'auto' (see `ex_color.device`).
        compile: train with the compiled step (fast engine); None → the default (`ex_color.compiling`: eager).

    Raises RunExistsError rather than overwrite a run in `out`, and TrainingInterrupted
    (after checkpointing) on SIGINT/SIGTERM.
    """
    if engine not in ENGINES:
        raise ConfigError(f'engine must be one of {ENGINES}, got {engine!r}')
    seed = experiment.config.experiment.seed if seed is None else seed
    check_seed(seed, '--seed', LIGHTNING_SEED_LIMIT) if engine == 'lightning' else check_seed(seed, '--seed')
    steps = checked_steps(experiment, steps)
    device = resolve_device(device)
    if compile and engine != 'fast':
        raise ConfigError('--compile applies to the fast engine; the Lightning engine trains eager')
    check_text_engine(experiment.config, engine, compile)
    compile = engine == 'fast' and resolve_compile(compile, 'run')  # EX_COLOR_COMPILE sets the fast engine's default
    directory = Path(out) if out is not None else default_run_dir(experiment, seed)
    claim(
        directory,
        'run',
        run_identity(experiment, seed=seed, engine=engine, steps=steps, device=device, compile=compile),
    )
    with lock(directory):
        if (directory / RESULTS_FILE).exists():
            if resume:
                log.info('%s is already finished', directory)
                return RunResult(directory, read_results(directory), trained=False)
            raise RunExistsError(
                f'{directory} already holds a finished run; --resume shows it again, or choose another --out or '
                'remove it'
            )
        checkpoint = directory / CHECKPOINT_FILE
        if checkpoint.exists() and not resume:
            raise RunExistsError(f'{directory} holds an interrupted run; pass --resume to continue it, or remove it')

        write_inputs(directory, experiment, seed)
        if tracker is not None:
            tracker.log_config(resolved_config(experiment, seed) | {'engine': engine, 'steps': steps})
        log.info('Training %s seed %d with the %s engine for %d steps', experiment.name, seed, engine, steps)
        started = time.perf_counter()
        if engine == 'fast':
            on_metrics = tracker.log_rows if tracker is not None else None
            model, metrics = train_fast(
                experiment,
                seed,
                steps,
                directory,
                progress,
                checkpoint_every,
                on_metrics,
                device=device,
                compile=compile,
            )
        else:
            loggers = tracker.loggers if tracker is not None else ()
            model, metrics = train_lightning_seed(experiment, seed, steps, progress, loggers, device=device)
        train_seconds = time.perf_counter() - started
        log.info(
            'Trained in %.1f s; evaluating %d variants', train_seconds, len(experiment.config.prepared_evaluations())
        )
        outcome = assess(seed, model, metrics, experiment.config)
        results = outcome.results(
            experiment, engine=engine, steps=steps, train_seconds=train_seconds, device=device, compile=compile
        )
        write_run(directory, experiment, model, metrics, results)
        if tracker is not None:
            tracker.log_final(outcome.figures(), step=steps - 1)
        checkpoint.unlink(missing_ok=True)
    return RunResult(directory, results)


def check_text_engine(config: ExperimentConfig, engine: str = 'fast', compile: bool | None = None) -> None:
    """A text experiment trains with the fast engine's text loop (`ex_color.training.text`), eager, unrouted."""
    if not config.is_text:
        return
    if engine != 'fast':
        raise ConfigError('--engine lightning trains colour models; a text experiment trains with the fast engine')
    if compile:
        raise ConfigError('--compile applies to colour models; a text experiment trains eager')
    for i, m in enumerate(config.models or []):
        if m.route is not None:
            raise ConfigError(
                f'models.{i}.route (model {m.name!r}): gradient routing applies to colour experiments, not yet to '
                'text; remove the route'
            )


def checked_steps(experiment: Experiment, steps: int | None) -> int:
    """`steps`, or the dopesheet's length when None; a ConfigError unless in 1..length."""
    length = len(experiment.dopesheet)
    steps = length if steps is None else steps
    if not 0 < steps <= length:
        raise ConfigError(f'--steps must be in 1..{length} (the length of {experiment.dopesheet_path}), got {steps}')
    return steps


def train_fast(
    experiment: Experiment,
    seed: int,
    steps: int,
    directory: Path,
    progress: bool | None,
    checkpoint_every: int,
    on_metrics: Callable[[list[dict[str, Any]]], None] | None = None,
    *,
    device: str = 'cpu',
    compile: bool = False,
) -> tuple[nn.Module, pd.DataFrame]:
    """One seed with the fast engine on `device`, checkpointing into `directory` (and resuming from it)."""
    with stop_on_signals() as stop_requested:
        options = EngineOptions(
            checkpoint_path=directory / CHECKPOINT_FILE,
            metrics_path=directory / 'metrics.csv',
            checkpoint_every=checkpoint_every,
            progress=progress,
            should_stop=stop_requested,
            on_metrics=on_metrics,
            device=device,
            compile=compile,
        )
        result = train_seeds(experiment.config, experiment.dopesheet, [seed], steps=steps, options=options)
    return result.models[0], result.metrics


def train_lightning_seed(
    experiment: Experiment,
    seed: int,
    steps: int,
    progress: bool | None,
    loggers: Sequence[Any] = (),
    *,
    device: str = 'cpu',
) -> tuple[nn.Module, pd.DataFrame]:
    """One seed as the seed notebook trains it (see `ex_color.training.lightning_run`), also logging to `loggers`."""
    from ex_color.training.lightning_run import train_lightning

    config = experiment.config
    return train_lightning(
        lambda: build_model(config),
        experiment.dopesheet,
        build_regularizers(config),
        training_data(config),
        seed=seed,
        steps=steps,
        log_every=LOG_EVERY,
        progress=progress,
        loggers=loggers,
        device=device,
        route=build_route(config.prepared_route()),
    )


def train_seeds(
    config: ExperimentConfig,
    dopesheet: Dopesheet,
    seeds: Sequence[int],
    *,
    steps: int | None = None,
    options: EngineOptions | None = None,
) -> EnsembleResult:
    """Train `seeds` as one ensemble with the fast engine; the models in seed order and their metrics."""
    regularizers = build_regularizers(config)
    if config.is_text:
        return train_text_ensemble(
            init_models(lambda: build_model(config), seeds),
            list(seeds),
            text_data(config),
            regularizers,
            TrainingSchedule.from_dopesheet(dopesheet, regularizers),
            steps=steps,
            options=options,
        )
    return train_ensemble(
        init_models(lambda: build_model(config), seeds),
        list(seeds),
        training_data(config),
        regularizers,
        TrainingSchedule.from_dopesheet(dopesheet, regularizers),
        steps=steps,
        options=options,
        routes=[build_route(config.prepared_route())] * len(seeds),
    )


def assess(seed: int, model: nn.Module, metrics: pd.DataFrame, config: ExperimentConfig) -> SeedOutcome:
    """Build every variant of a trained model and evaluate it; add the validation losses."""
    started = time.perf_counter()
    evaluations: dict[str, Evaluation | TextEvaluation]
    if config.is_text:
        evaluations = dict(evaluate_text_variants(build_variants(model, config), config))
        validation = text_validation(model, config)
    else:
        evaluations = dict(evaluate_variants(build_variants(model, config)))
        validation = validation_losses(model, validation_regularizers(config), build_labels(config))
    return SeedOutcome(seed, model, metrics, evaluations, validation, time.perf_counter() - started)


def train_chunk(
    config: ExperimentConfig,
    dopesheet: Dopesheet,
    seeds: Sequence[int],
    *,
    steps: int | None = None,
    options: EngineOptions | None = None,
) -> list[SeedOutcome]:
    """Train `seeds` as one ensemble with the fast engine, then assess every member.

    The unit of work of a sweep: a pure function of its arguments (all picklable), so a
    distributed task (e.g. a Ray remote function) can run it as is.
    """
    result = train_seeds(config, dopesheet, seeds, steps=steps, options=options)
    outcomes = []
    for seed, model in zip(result.seeds, result.models, strict=True):
        metrics = result.metrics[result.metrics['seed'] == seed].reset_index(drop=True)
        outcomes.append(assess(seed, model, metrics, config))
    return outcomes


__all__ = [
    'ENGINES',
    'RunExistsError',
    'RunResult',
    'SeedOutcome',
    'TrainingInterrupted',
    'assess',
    'check_text_engine',
    'default_run_dir',
    'run_experiment',
    'train_chunk',
    'train_seeds',
]
