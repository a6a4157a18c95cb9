"""The Lightning adapter: train one seed as the seed notebook does, and return the fast engine's metrics.

DataLoader + WeightedRandomSampler + `collate_with_labels` + `TrainingModule` under
`L.Trainer`: slower than the fast engine, but step for step what the notebook did.
"""

from __future__ import annotations

import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.loggers import CSVLogger, Logger
from torch import nn

from ex_color.columns import train_loss_column
from ex_color.loss import RECON_TERM, TOTAL_LOSS, RegularizerConfig
from ex_color.seed import set_deterministic_mode
from ex_color.temporal import Dopesheet
from ex_color.training.data import TrainingData
from ex_color.training.engine import TrainingInterrupted
from ex_color.training.lightning import TrainingModule
from ex_color.training.routing import Route


def train_lightning(
    make_model: Callable[[], nn.Module],
    dopesheet: Dopesheet,
    regularizers: Sequence[RegularizerConfig],
    data: TrainingData,
    *,
    seed: int,
    steps: int,
    log_every: int = 50,
    progress: bool | None = None,
    loggers: Sequence[Logger] = (),
    device: str = 'cpu',
    route: Route | None = None,
) -> tuple[nn.Module, pd.DataFrame]:
    """Seed everything, build the model and train it for `steps` steps; return it with its metrics.

    The metrics table has the fast engine's columns: step, lr, train_loss, train_<term>, weight_<name>.
    `loggers` (Lightning loggers, e.g. from `ex_color.tracking`) receive what the Trainer logs. `device`:
    'cpu', 'cuda' or 'cuda:N' (batches are drawn on the CPU either way); the model comes back on the CPU.
    """
    set_deterministic_mode(seed)
    model = make_model()
    loader = data.loader()
    module = TrainingModule(model, dopesheet, torch.nn.MSELoss(), regularizers, planned_steps=steps, route=route)
    with tempfile.TemporaryDirectory() as logs:
        trainer = L.Trainer(
            max_steps=steps,
            logger=[CSVLogger(logs, name='', version=''), *loggers],
            log_every_n_steps=min(log_every, steps),  # Lightning logs nothing in a run shorter than this
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=progress if progress is not None else sys.stderr.isatty(),
            accelerator='cpu' if device == 'cpu' else 'gpu',
            devices=1 if device in ('cpu', 'cuda') else [int(device.removeprefix('cuda:'))],
            deterministic=True,
        )
        sigint = signal.getsignal(signal.SIGINT)
        try:
            trainer.fit(module, loader)
        except SystemExit:  # Lightning turns Ctrl-C into a graceful shutdown and sys.exit(1)
            raise TrainingInterrupted(
                f'training stopped at step {trainer.global_step} (the Lightning engine keeps no checkpoint)',
                resumable=False,
            ) from None
        finally:
            signal.signal(signal.SIGINT, sigint)  # Lightning ignores SIGINT from then on
        logged = pd.read_csv(Path(logs) / 'metrics.csv')
    return model.cpu(), _metrics_table(logged, module, seed)


def _metrics_table(logged: pd.DataFrame, module: TrainingModule, seed: int) -> pd.DataFrame:
    """Lightning's CSV log in the fast engine's columns and order: step, seed, lr, train_loss, train_<term>,
    weight_<name>."""
    terms = [TOTAL_LOSS, RECON_TERM, *module.schedule.regularizer_names]  # the fast engine's order
    losses = [train_loss_column(t) for t in terms]
    logged = logged.reindex(columns=[*logged.columns, *(c for c in losses if c not in logged)])  # never-logged: NaN
    table = logged[['step', 'lr', *losses]].groupby('step', as_index=False).first()
    table.insert(1, 'seed', seed)
    for r, name in enumerate(module.schedule.regularizer_names):
        table[f'weight_{name}'] = module.schedule.weights[table['step'].to_numpy(), r]
    return table
