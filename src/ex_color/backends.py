"""Where a multi-seed job's chunks train: here (`runner.LocalChunks`) or on Ray (`ray_runner.RayChunks`).

Ray is imported only when asked for, so the core install never needs it.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ex_color.config import ConfigError, Experiment
from ex_color.runner import CHUNK_CHECKPOINT, ChunkTrainer, LocalChunks


def chunk_trainer(
    experiment: Experiment,
    steps: int,
    directory: Path,
    *,
    ray: str | None = None,
    ray_cpus: int | None = None,
    device: str = 'cpu',
    compile: bool = False,
) -> ChunkTrainer:
    """Chunks trained in this process (checkpointed in `directory`), or, with `ray`, as Ray tasks.

    Args:
        ray: None to train here; else each chunk is a Ray task on 'local' (RAY_ADDRESS if set, else a new
            cluster on this machine), 'auto' or a cluster's address.
        ray_cpus: CPUs and torch threads per Ray task (default 1).
        device: where chunks trained here train (resolved, see `ex_color.device`); Ray tasks train on CPUs.
        compile: train with the compiled step (`ex_color.compiling`), here or in the Ray tasks.
    """
    if ray_cpus is not None and (ray is None or ray_cpus < 1):
        raise ConfigError('--ray-cpus needs --ray' if ray is None else f'--ray-cpus must be >= 1, got {ray_cpus}')
    if ray is not None and device != 'cpu':
        raise ConfigError(f'--device {device} trains chunks here; with --ray each chunk is a task on CPUs')
    if ray is None:
        return LocalChunks(experiment, steps, directory / CHUNK_CHECKPOINT, device, compile=compile)
    try:
        ray_runner = importlib.import_module('ex_color.ray_runner')
    except ImportError as error:
        if error.name != 'ray' and not (error.name or '').startswith('ray.'):
            raise
        raise ConfigError("--ray needs Ray: pip install 'ex-color[ray]'") from None
    return ray_runner.RayChunks(experiment, steps, address=ray, num_cpus=ray_cpus, compile=compile)


__all__ = ['chunk_trainer']
