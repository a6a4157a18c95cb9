"""The run directory: what a run writes, and reading it back, side by side.

    manifest.json   what the directory holds (written first; see `ex_color.workdir`)
    config.toml     the resolved experiment (re-runnable: `ex-color run config.toml`)
    dopesheet.csv   the schedule it trained under
    metrics.csv     per-term losses, lr and weights every few steps
    model.pt        the trained model's state_dict
    results.json    headline figures per evaluation (written last: its presence marks a finished run)
    checkpoint.pt   training state while a run is unfinished (fast engine; removed when done)

Every file is written atomically (temporary file, then rename).
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import tomli_w
import torch
from torch import nn

from ex_color.columns import train_loss_column
from ex_color.compiling import compile_fields
from ex_color.config import ConfigError, Experiment, build_model, load_experiment, text_corpus
from ex_color.device import device_fields
from ex_color.evaluation import Evaluation
from ex_color.files import write_atomic
from ex_color.loss import TOTAL_LOSS
from ex_color.text_evaluation import TextEvaluation
from ex_color.workdir import (
    MANIFEST_FILE,
    DirectoryError,
    check_manifest,
    check_recorded_files,
    fingerprint,
    record_files,
    write_manifest,
)

log = logging.getLogger(__name__)

CONFIG_FILE = 'config.toml'
DOPESHEET_FILE = 'dopesheet.csv'
METRICS_FILE = 'metrics.csv'
MODEL_FILE = 'model.pt'
RESULTS_FILE = 'results.json'
CHECKPOINT_FILE = 'checkpoint.pt'


class RunArtifactsError(ValueError):
    """A directory lacks a file a run should hold, or holds one that cannot be read."""


@dataclass(frozen=True)
class RunResults:
    """What results.json holds: one seed's headline figures."""

    experiment: str
    """The experiment directory's name, e.g. 'ex-2.9'."""
    title: str
    seed: int
    engine: str
    steps: int
    train_seconds: float
    evaluations: dict[str, Evaluation | TextEvaluation]
    """'baseline' and each evaluation of the experiment."""
    validation: dict[str, float] = field(default_factory=dict)
    """`val_recon` and `val_<name>` for the regularizers marked for validation."""
    final_train_loss: dict[str, float] = field(default_factory=dict)
    device: str = 'cpu'
    """Where it trained (`ex_color.device`); runs written before devices were recorded trained on the CPU."""
    compiled: bool = False
    """Whether the fast engine's step was compiled (`ex_color.compiling`); earlier runs were eager."""
    compile_threads: int | None = None
    """The compiled kernels' threads (compiled results depend on them); None when eager."""

    def to_json(self) -> str:
        data = asdict(replace(self, evaluations={}))
        data['evaluations'] = {name: e.to_dict() for name, e in self.evaluations.items()}
        return json.dumps(data, indent=2) + '\n'

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResults:
        return cls(**{**data, 'evaluations': {n: evaluation_from_dict(e) for n, e in data['evaluations'].items()}})

    @property
    def is_text(self) -> bool:
        """Whether these are a text model's figures (`TextEvaluation`)."""
        return any(isinstance(e, TextEvaluation) for e in self.evaluations.values())


def evaluation_from_dict(data: dict[str, Any]) -> Evaluation | TextEvaluation:
    """A variant's figures as results.json and seed files hold them: a text model's (with `class_ce`) or a colour
    model's."""
    return TextEvaluation.from_dict(data) if 'class_ce' in data else Evaluation.from_dict(data)


def resolved_config(experiment: Experiment, seed: int) -> dict[str, Any]:
    """The experiment as config.toml records it: with this run's seed and the dopesheet beside it."""
    resolved = experiment.config.model_dump(mode='json', exclude_none=True)
    resolved['experiment']['seed'] = seed
    resolved['experiment']['dopesheet'] = DOPESHEET_FILE
    return resolved


def identity(experiment: Experiment, **fields: Any) -> dict[str, Any]:
    """The fingerprint of work on `experiment` (see `ex_color.workdir`): the config without its seed,
    the dopesheet's hash, and `fields` (a run's seed, engine and steps; a sweep's steps)."""
    config = resolved_config(experiment, 0)
    del config['experiment']['seed']
    del config['tracking']  # where a run is tracked never changes what it computes
    config.pop('search', None)  # nor does what a search of it would vary (a search adds it to its own identity)
    if experiment.config.is_text:  # the corpus is a file outside the directory (or Python's own): its text counts
        fields = {'corpus_sha256': text_corpus(experiment.config).sha256, **fields}
    return fingerprint(config, dopesheet_bytes(experiment), **fields)


def dopesheet_bytes(experiment: Experiment) -> bytes:
    """The dopesheet the experiment was loaded with (after overrides), as CSV."""
    return experiment.dopesheet_csv or experiment.dopesheet_path.read_bytes()


def run_identity(
    experiment: Experiment, *, seed: int, engine: str, steps: int, device: str = 'cpu', compile: bool = False
) -> dict[str, Any]:
    return identity(
        experiment, seed=seed, engine=engine, steps=steps, **device_fields(device), **compile_fields(compile)
    )


def _identity_of(experiment: Experiment, results: RunResults) -> dict[str, Any]:
    """The fingerprint of the run that `results` describes."""
    return run_identity(
        experiment,
        seed=results.seed,
        engine=results.engine,
        steps=results.steps,
        device=results.device,
        compile=results.compiled,
    )


def write_inputs(directory: Path, experiment: Experiment, seed: int) -> None:
    """The resolved config (with this run's seed; re-runnable from the run directory) and the dopesheet."""
    write_atomic(directory / CONFIG_FILE, tomli_w.dumps(resolved_config(experiment, seed)).encode())
    write_atomic(directory / DOPESHEET_FILE, dopesheet_bytes(experiment))


def write_run(
    directory: Path, experiment: Experiment, model: nn.Module, metrics: pd.DataFrame, results: RunResults
) -> None:
    """Write a complete run directory for one trained seed (its manifest first, results.json last)."""
    write_manifest(directory, 'run', _identity_of(experiment, results))
    write_inputs(directory, experiment, results.seed)
    write_atomic(directory / METRICS_FILE, metrics.to_csv(index=False))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    write_atomic(directory / MODEL_FILE, buffer.getvalue())
    record_files(directory, [MODEL_FILE])
    write_atomic(directory / RESULTS_FILE, results.to_json())


@dataclass(frozen=True)
class Run:
    """A finished run, read back from its directory."""

    directory: Path
    experiment: Experiment
    model: nn.Module
    metrics: pd.DataFrame
    results: RunResults


def read_json(path: Path) -> Any:
    """A JSON file ex-color wrote; a damaged one is a RunArtifactsError naming it."""
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunArtifactsError(f'{path}: not valid JSON ({e})') from None
    except OSError as e:
        raise RunArtifactsError(f'{path}: cannot be read ({e.strerror})') from None


def read_results(directory: Path) -> RunResults:
    """A finished run's results.json."""
    path = Path(directory) / RESULTS_FILE
    try:
        return RunResults.from_dict(read_json(path))
    except (TypeError, KeyError, AttributeError) as e:
        raise RunArtifactsError(f'{path}: not the results of a run ({type(e).__name__}: {e})') from None


def load_run(directory: str | Path) -> Run:
    """Read a finished run directory (config.toml, dopesheet.csv, model.pt, metrics.csv, results.json)."""
    directory = Path(directory)
    for name in (RESULTS_FILE, CONFIG_FILE, DOPESHEET_FILE, MODEL_FILE, METRICS_FILE):
        if not (directory / name).is_file():
            raise RunArtifactsError(
                f'{directory}: no {name}; expected a finished run directory (ex-color run writes one)'
            )
    try:
        experiment = load_experiment(directory / CONFIG_FILE)
    except ConfigError as e:
        raise RunArtifactsError(str(e)) from None
    results = read_results(directory)
    check_run_files(directory, experiment, results)
    model = build_model(experiment.config)
    try:
        model.load_state_dict(torch.load(directory / MODEL_FILE, weights_only=True))
    except Exception as e:  # a truncated file, or weights of another shape
        reason = str(e).splitlines()[0] if str(e) else 'the file is empty or truncated'
        raise RunArtifactsError(
            f'{directory / MODEL_FILE}: cannot load the model config.toml describes '
            f'({type(e).__name__}: {reason[:200]})'
        ) from None
    try:  # it loads: but is it the model this run trained (not one copied from another run)?
        check_recorded_files(directory, [MODEL_FILE])
    except DirectoryError as e:
        raise RunArtifactsError(f'{e}; expected the model this run trained') from None
    model.eval()
    metrics = read_metrics(directory / METRICS_FILE)
    return Run(directory, experiment, model, metrics, results)


def read_metrics(path: Path) -> pd.DataFrame:
    """A run's metrics.csv: a RunArtifactsError naming it when it is damaged or lacks step and loss."""
    try:
        metrics = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise RunArtifactsError(f'{path}: not a metrics table ({e})') from None
    if 'loss' in metrics.columns:  # written before losses were named as reported (loss_<term> → train_<term>)
        old = {c: train_loss_column(c.removeprefix('loss_')) for c in metrics.columns if c.split('_')[0] == 'loss'}
        metrics = metrics.rename(columns=old)
    missing = {'step', train_loss_column(TOTAL_LOSS)} - set(metrics.columns)
    if missing or metrics.empty:
        raise RunArtifactsError(
            f'{path}: expected columns step, train_loss, train_<term>… with one row per logged step'
        )
    return metrics


def check_run_files(directory: Path, experiment: Experiment, results: RunResults) -> None:
    """The run's config.toml and dopesheet.csv are the ones it trained under (its manifest says so)."""
    check_inputs(directory, 'run', _identity_of(experiment, results))


def check_inputs(directory: Path, kind: str, expected: dict[str, Any]) -> None:
    """Before redrawing from a directory's files: they are the ones its manifest recorded.

    A directory from before manifests were written is drawn as it is, with a warning.
    """
    if not (directory / MANIFEST_FILE).exists():
        log.warning('%s has no %s (an older ex-color?); drawing from its files as they are', directory, MANIFEST_FILE)
        return
    try:
        check_manifest(directory, kind)
    except DirectoryError as e:
        raise RunArtifactsError(str(e)) from None
    try:
        check_manifest(directory, kind, expected)
    except DirectoryError as e:
        raise RunArtifactsError(f'{e} (its config.toml or dopesheet.csv changed after it was written)') from None


__all__ = [
    'CHECKPOINT_FILE',
    'RESULTS_FILE',
    'Run',
    'RunArtifactsError',
    'RunResults',
    'check_inputs',
    'evaluation_from_dict',
    'identity',
    'load_run',
    'read_json',
    'read_results',
    'run_identity',
    'write_inputs',
    'write_run',
]
