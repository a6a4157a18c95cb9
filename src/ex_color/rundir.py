"""The run directory: what a run writes, and reading it back, side by side.

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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import tomli_w
import torch
from torch import nn

from ex_color.config import ConfigError, Experiment, build_model, load_experiment
from ex_color.evaluation import Evaluation
from ex_color.files import write_atomic

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
    evaluations: dict[str, Evaluation]
    """'baseline' and each evaluation of the experiment."""
    validation: dict[str, float] = field(default_factory=dict)
    """`val_recon` and `val_<name>` for the regularizers marked for validation."""
    final_train_loss: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + '\n'

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResults:
        return cls(**{**data, 'evaluations': {n: Evaluation(**e) for n, e in data['evaluations'].items()}})


def write_inputs(directory: Path, experiment: Experiment, seed: int) -> None:
    """The resolved config (with this run's seed; re-runnable from the run directory) and the dopesheet."""
    resolved = experiment.config.model_dump(mode='json', exclude_none=True)
    resolved['experiment']['seed'] = seed
    resolved['experiment']['dopesheet'] = DOPESHEET_FILE
    write_atomic(directory / CONFIG_FILE, tomli_w.dumps(resolved).encode())
    write_atomic(directory / DOPESHEET_FILE, experiment.dopesheet_path.read_bytes())


def write_run(
    directory: Path, experiment: Experiment, model: nn.Module, metrics: pd.DataFrame, results: RunResults
) -> None:
    """Write a complete run directory for one trained seed; results.json goes last."""
    write_inputs(directory, experiment, results.seed)
    write_atomic(directory / METRICS_FILE, metrics.to_csv(index=False))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    write_atomic(directory / MODEL_FILE, buffer.getvalue())
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
    """A JSON file a run or sweep wrote; a damaged one is a RunArtifactsError naming it."""
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunArtifactsError(f'{path}: not valid JSON ({e})') from None


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
    model = build_model(experiment.config)
    try:
        model.load_state_dict(torch.load(directory / MODEL_FILE, weights_only=True))
    except Exception as e:  # a truncated file, or weights of another shape
        raise RunArtifactsError(f'{directory / MODEL_FILE}: cannot load the model of config.toml ({e})') from None
    model.eval()
    metrics = pd.read_csv(directory / METRICS_FILE)
    return Run(directory, experiment, model, metrics, results)


__all__ = [
    'CHECKPOINT_FILE',
    'RESULTS_FILE',
    'Run',
    'RunArtifactsError',
    'RunResults',
    'load_run',
    'read_json',
    'read_results',
    'write_inputs',
    'write_run',
]
