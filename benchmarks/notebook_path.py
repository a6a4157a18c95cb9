"""Where the seed notebook's Lightning time goes: its own loader and Trainer against ex-color's engines.

Run with `python benchmarks/notebook_path.py [--steps N]`. Trains Ex 2.9's model, schedule and
regularizers for the first N steps (default 600) five ways, one after another in this process:

1. the seed notebook as written: a DataLoader with `num_workers=2` (workers started afresh
   every epoch: the 1,000 training colours make an epoch of 16 batches), a Lightning Trainer;
   once with Linux's default start method for Python 3.11 (fork), once with spawn (macOS's and
   Windows' default; Python 3.14 on Linux defaults to forkserver, which also re-imports);
2. the same with `persistent_workers=True` (the workers start once);
3. the same with `num_workers=0` (batches made in the training process);
4. ex-color's Lightning engine (`--engine lightning`: `exp.loader()`, no workers);
5. ex-color's fast engine (`--engine fast`, the default).

Prints seconds and steps/s for each (six rows: case 1 twice) and the ratios to the fast engine. Numbers from one run on
one machine: compare the ratios.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from ex_color.config import build_model, build_regularizers, load_experiment
from ex_color.data import ColorCube, arange_cyclic, vibrancy
from ex_color.experiment import train_lightning_seed, train_seeds
from ex_color.labelling import collate_with_generated_labels
from ex_color.seed import set_deterministic_mode
from ex_color.training import TrainingModule
from ex_color.training.engine import EngineOptions

ROOT = Path(__file__).resolve().parents[1]


def seed_loader(num_workers: int, persistent: bool, context: str | None = None) -> DataLoader:
    """The seed notebook's training loader (its `prep_data`), with the worker settings varied."""
    cube = ColorCube.from_hsv(h=arange_cyclic(step_size=10 / 360), s=np.linspace(0, 1, 10), v=np.linspace(0, 1, 10))
    colours = torch.tensor(cube.rgb_grid.reshape(-1, 3), dtype=torch.float32)
    vibrancies = torch.tensor(vibrancy(cube).flatten(), dtype=torch.float32)
    dataset = TensorDataset(colours, vibrancies)
    labeller = partial(collate_with_generated_labels, soft=False, red=0.5, vibrant=0.5, desaturated=0.5)
    return DataLoader(
        dataset,
        batch_size=64,
        num_workers=num_workers,
        persistent_workers=persistent and num_workers > 0,
        multiprocessing_context=context if num_workers > 0 else None,
        sampler=WeightedRandomSampler(cube.bias.flatten().tolist(), num_samples=len(dataset), replacement=True),
        collate_fn=labeller,
    )


def seed_path(experiment, steps: int, num_workers: int, persistent: bool, context: str | None = None) -> float:
    """Seconds for the seed notebook's training cell, as written but for the loader's worker settings."""
    set_deterministic_mode(0)
    loader = seed_loader(num_workers, persistent, context)
    model = build_model(experiment.config)
    module = TrainingModule(
        model, experiment.dopesheet, torch.nn.MSELoss(), build_regularizers(experiment.config), planned_steps=steps
    )
    trainer = L.Trainer(
        max_steps=steps,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        logger=False,
    )
    started = time.perf_counter()
    trainer.fit(module, loader)
    return time.perf_counter() - started


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=600)
    args = parser.parse_args()
    steps = args.steps
    logging.getLogger('lightning').setLevel(logging.ERROR)
    warnings.filterwarnings('ignore')
    experiment = load_experiment(ROOT / 'experiments' / 'ex-2.9')
    options = EngineOptions(progress=False)
    seconds = {
        'seed notebook (num_workers=2), fork': seed_path(experiment, steps, 2, persistent=False),
        'seed notebook (num_workers=2), spawn': seed_path(experiment, steps, 2, persistent=False, context='spawn'),
        'seed notebook, persistent_workers=True': seed_path(experiment, steps, 2, persistent=True),
        'seed notebook, num_workers=0': seed_path(experiment, steps, 0, persistent=False),
        'ex-color Lightning engine': timed(lambda: train_lightning_seed(experiment, 0, steps, progress=False)),
        'ex-color fast engine': timed(
            lambda: train_seeds(experiment.config, experiment.dopesheet, [0], steps=steps, options=options)
        ),
    }
    fast = seconds['ex-color fast engine']
    print(f'{steps} steps of Ex 2.9, torch threads {torch.get_num_threads()}')
    for name, s in seconds.items():
        print(f'  {name:<40} {s:7.1f} s  {steps / s:7.0f} steps/s  {s / fast:6.1f}× the fast engine')


if __name__ == '__main__':
    main()
