"""Run an experiment: config in, run directory out.

`run_experiment` trains one seed (with the fast engine or the seed-faithful Lightning
trainer), applies the experiment's surgeries and interventions, evaluates every variant
and writes the run directory:

    config.toml     the resolved experiment (re-runnable: `ex-color run config.toml`)
    dopesheet.csv   the schedule it trained under
    metrics.csv     per-term losses, lr and weights every few steps
    model.pt        the trained model's state_dict
    results.json    headline figures per evaluation (written last: its presence marks a finished run)
    checkpoint.pt   training state while a run is unfinished (fast engine; removed when done)

Every file is written atomically (temporary file, then rename).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import tomli_w
import torch
from torch import nn

from ex_color.config import ConfigError, Experiment, ExperimentConfig
from ex_color.evaluation import Evaluation, evaluate, validation_losses
from ex_color.files import write_atomic
from ex_color.temporal import Dopesheet
from ex_color.training.engine import EngineOptions, TrainingInterrupted, init_models, train_ensemble
from ex_color.training.schedule import TrainingSchedule

log = logging.getLogger(__name__)

Engine = Literal['fast', 'lightning']
ENGINES: tuple[Engine, ...] = ('fast', 'lightning')
RESULTS_FILE = 'results.json'
CHECKPOINT_FILE = 'checkpoint.pt'
LOG_EVERY = 50


class RunExistsError(RuntimeError):
    """The output directory holds a finished or interrupted run that would be overwritten."""


@dataclass(frozen=True)
class RunResult:
    """Where a run was written and what it found."""

    directory: Path
    results: dict[str, Any]


def default_run_dir(experiment: Experiment, seed: int) -> Path:
    return Path('runs') / experiment.name / f'seed-{seed}'


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
) -> RunResult:
    """Train, operate and evaluate one seed of `experiment`; write its run directory.

    Args:
        seed: defaults to the experiment file's seed.
        out: run directory (default `runs/<experiment>/seed-<N>/`).
        engine: 'fast' (plain PyTorch) or 'lightning' (the seed's trainer).
        steps: train only the first `steps` steps of the schedule.
        resume: continue an interrupted run in `out` (fast engine), or return a finished one.

    Raises RunExistsError rather than overwrite a run in `out`, and TrainingInterrupted
    (after checkpointing) on SIGINT/SIGTERM.
    """
    if engine not in ENGINES:
        raise ConfigError(f'engine must be one of {ENGINES}, got {engine!r}')
    config = experiment.config
    seed = config.experiment.seed if seed is None else seed
    length = len(experiment.dopesheet)
    steps = length if steps is None else steps
    if not 0 < steps <= length:
        raise ConfigError(f'--steps must be in 1..{length} (the length of {experiment.dopesheet_path}), got {steps}')
    directory = Path(out) if out is not None else default_run_dir(experiment, seed)
    checkpoint = directory / CHECKPOINT_FILE
    results_path = directory / RESULTS_FILE
    if results_path.exists():
        if resume:
            log.info('%s is already finished', directory)
            return RunResult(directory, json.loads(results_path.read_text()))
        raise RunExistsError(f'{directory} already holds a finished run; choose another --out or remove it')
    if checkpoint.exists() and not resume:
        raise RunExistsError(f'{directory} holds an interrupted run; pass --resume to continue it, or remove it')
    if resume and engine == 'lightning' and checkpoint.exists():
        raise RunExistsError('--resume is supported by the fast engine only')

    directory.mkdir(parents=True, exist_ok=True)
    write_inputs(directory, experiment, seed)

    log.info('Training %s seed %d with the %s engine for %d steps', experiment.name, seed, engine, steps)
    started = time.perf_counter()
    if engine == 'fast':
        with stop_on_signals() as stop_requested:
            options = EngineOptions(
                checkpoint_path=checkpoint,
                metrics_path=directory / 'metrics.csv',
                checkpoint_every=checkpoint_every,
                progress=progress,
                should_stop=stop_requested,
            )
            (outcome,) = train_chunk(config, experiment.dopesheet, [seed], steps=steps, options=options)
        train_seconds = time.perf_counter() - started - outcome.evaluation_seconds
    else:
        model, metrics = train_lightning(experiment, seed, steps, progress=progress)
        train_seconds = time.perf_counter() - started
        outcome = assess(seed, model, metrics, config)

    results = write_run(directory, experiment, outcome, engine=engine, steps=steps, train_seconds=train_seconds)
    checkpoint.unlink(missing_ok=True)
    return RunResult(directory, results)


@dataclass
class SeedOutcome:
    """One trained seed: its model, training metrics and every reported figure."""

    seed: int
    model: nn.Module
    metrics: pd.DataFrame
    """This seed's rows of the training metrics (step, lr, loss, loss_<term>, weight_<name>)."""
    evaluations: dict[str, Evaluation]
    """'baseline' and each evaluation of the experiment."""
    validation: dict[str, float]
    """`val_recon` and `val_<name>` for the regularizers marked for validation."""
    evaluation_seconds: float = 0.0

    def final_train_loss(self) -> dict[str, float]:
        """Each logged loss term at the last logged step."""
        last = self.metrics.iloc[-1]
        return {c: float(last[c]) for c in self.metrics.columns if c.startswith('loss')}


def assess(seed: int, model: nn.Module, metrics: pd.DataFrame, config: ExperimentConfig) -> SeedOutcome:
    """Evaluate every variant of a trained model and its validation losses."""
    started = time.perf_counter()
    evaluations = evaluate_variants(model, config)
    validation = validation_losses(model, config.validation_regularizers())
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
    seeds = list(seeds)
    regularizers = config.build_regularizers()
    schedule = TrainingSchedule.from_dopesheet(dopesheet, regularizers)
    result = train_ensemble(
        init_models(config.build_model, seeds),
        seeds,
        config.training_data(),
        regularizers,
        schedule,
        steps=steps,
        options=options,
    )
    outcomes = []
    for seed, model in zip(seeds, result.models, strict=True):
        metrics = result.metrics[result.metrics['seed'] == seed].reset_index(drop=True)
        outcomes.append(assess(seed, model, metrics, config))
    return outcomes


def run_results(
    experiment: Experiment, outcome: SeedOutcome, *, engine: str, steps: int, train_seconds: float
) -> dict[str, Any]:
    """What results.json holds for one seed."""
    return {
        'experiment': experiment.name,
        'title': experiment.config.experiment.name,
        'seed': outcome.seed,
        'engine': engine,
        'steps': steps,
        'train_seconds': train_seconds,
        'evaluations': {name: e.to_dict() for name, e in outcome.evaluations.items()},
        'validation': outcome.validation,
        'final_train_loss': outcome.final_train_loss(),
    }


def write_run(
    directory: Path, experiment: Experiment, outcome: SeedOutcome, *, engine: str, steps: int, train_seconds: float
) -> dict[str, Any]:
    """Write a complete run directory for one trained seed; results.json goes last."""
    write_inputs(directory, experiment, outcome.seed)
    write_atomic(directory / 'metrics.csv', outcome.metrics.to_csv(index=False))
    buffer = io.BytesIO()
    torch.save(outcome.model.state_dict(), buffer)
    write_atomic(directory / 'model.pt', buffer.getvalue())
    results = run_results(experiment, outcome, engine=engine, steps=steps, train_seconds=train_seconds)
    write_atomic(directory / RESULTS_FILE, json.dumps(results, indent=2) + '\n')
    return results


def variants(model: nn.Module, config: ExperimentConfig) -> dict[str, tuple[nn.Module, list]]:
    """Each model variant to evaluate: name → (model, interventions); 'baseline' first."""
    return config.build_variants(model)


def evaluate_variants(model: nn.Module, config: ExperimentConfig) -> dict[str, Evaluation]:
    """The reported figures for the baseline and every evaluation the experiment lists."""
    return {name: evaluate(m, interventions) for name, (m, interventions) in variants(model, config).items()}


def train_lightning(
    experiment: Experiment, seed: int, steps: int, progress: bool | None
) -> tuple[nn.Module, pd.DataFrame]:
    """Train as the seed notebook does: DataLoader + WeightedRandomSampler + TrainingModule + L.Trainer."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

    from ex_color.data.cube_sampler import cube_training_tensors
    from ex_color.labelling import collate_with_generated_labels
    from ex_color.seed import set_deterministic_mode
    from ex_color.training import TrainingModule

    config = experiment.config
    set_deterministic_mode(seed)
    model = config.build_model()
    samples = cube_training_tensors(config.training_cube())
    dataset = TensorDataset(samples.colors, samples.vibrancies)
    labels = config.labels
    loader = DataLoader(
        dataset,
        batch_size=config.data.batch_size,
        sampler=WeightedRandomSampler(samples.weights.tolist(), num_samples=len(dataset), replacement=True),
        collate_fn=partial(
            collate_with_generated_labels,
            soft=labels.soft,
            red=labels.red,
            vibrant=labels.vibrant,
            desaturated=labels.desaturated,
        ),
    )
    module = TrainingModule(model, experiment.dopesheet, torch.nn.MSELoss(), config.build_regularizers())
    with tempfile.TemporaryDirectory() as logs:
        trainer = L.Trainer(
            max_steps=steps,
            logger=CSVLogger(logs, name='', version=''),
            log_every_n_steps=LOG_EVERY,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=progress if progress is not None else sys.stderr.isatty(),
            accelerator='cpu',
            deterministic=True,
        )
        trainer.fit(module, loader)
        logged = pd.read_csv(Path(logs) / 'metrics.csv')
    return model, _lightning_metrics(logged, module)


def _lightning_metrics(logged: pd.DataFrame, module: Any) -> pd.DataFrame:
    """Lightning's CSV log in the fast engine's columns: step, lr, loss, loss_<term>, weight_<name>."""
    terms = [c for c in logged.columns if c.startswith('train_') and c != 'train_loss']
    columns = {'train_loss': 'loss'} | {c: 'loss_' + c.removeprefix('train_') for c in terms}
    table = logged.rename(columns=columns)
    table = table[['step', 'lr', 'loss', *[c for c in table.columns if c.startswith('loss_')]]]
    table = table.groupby('step', as_index=False).first()
    for r, name in enumerate(module.schedule.regularizer_names):
        table[f'weight_{name}'] = module.schedule.weights[table['step'].to_numpy(), r]
    return table


def write_inputs(directory: Path, experiment: Experiment, seed: int) -> None:
    """The resolved config (with this run's seed; re-runnable from the run directory) and the dopesheet."""
    resolved = experiment.config.model_dump(mode='json', exclude_none=True)
    resolved['experiment']['seed'] = seed
    resolved['experiment']['dopesheet'] = 'dopesheet.csv'
    write_atomic(directory / 'config.toml', tomli_w.dumps(resolved).encode())
    write_atomic(directory / 'dopesheet.csv', experiment.dopesheet_path.read_bytes())


@contextlib.contextmanager
def stop_on_signals() -> Iterator[Callable[[], bool]]:
    """Turn SIGINT/SIGTERM into a flag the training loop polls, so it can checkpoint first."""
    requested = False

    def handler(signum: int, _frame: object) -> None:
        nonlocal requested
        if requested:  # a second signal: stop now
            raise KeyboardInterrupt
        requested = True
        log.warning('Received %s; checkpointing and stopping', signal.Signals(signum).name)

    try:
        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave signals alone
        yield lambda: False
        return
    try:
        yield lambda: requested
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def read_metrics(directory: Path) -> pd.DataFrame:
    return pd.read_csv(directory / 'metrics.csv')


__all__ = [
    'ENGINES',
    'RunExistsError',
    'RunResult',
    'TrainingInterrupted',
    'default_run_dir',
    'evaluate_variants',
    'read_metrics',
    'run_experiment',
    'train_chunk',
    'variants',
    'write_run',
]
