"""What happens around the fast engine's training loop, as callbacks: checkpoints, the metrics file,
a tracker's rows and the progress bar (minGPT-style: the loop trains, callbacks save, log and show).

`train_ensemble` fires the hooks of `EngineCallback` on a `Loop`, the state it trains.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from ex_color.files import DamagedFileError, read_torch, write_atomic
from ex_color.progress import Progress

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1
PROGRESS_EVERY = 25


@dataclass
class Loop:
    """What the training loop holds, as its callbacks see it."""

    seeds: list[int]
    steps: int
    """The step the loop stops before."""
    chain: nn.Module
    """The members, as one module (`StackedChain`, or an `nn.ModuleList` of separate models)."""
    optimizer: torch.optim.Optimizer
    generators: list[torch.Generator]
    weight_scale: Tensor | None
    member_schedules: dict[str, Tensor] | None = None
    """Each member's own lr and weights (`MemberSchedules.as_tensors`), when the members have their own."""
    start: int = 0
    """The first step this call trains (after a resume, the checkpoint's)."""
    metrics: list[dict[str, Any]] = field(default_factory=list)
    """Every logged row so far, one per member per logged step."""
    chunk_generator_states: list[Tensor] = field(default_factory=list)
    """The data generators as they were when the current chunk of batches was drawn (what a resume redraws from)."""
    compiled: bool = False
    """Whether the step is compiled; a checkpoint resumes only in the mode that wrote it."""


class EngineCallback:
    """Hooks around the training loop, minGPT-style: the loop trains, callbacks save, log and show progress.

    Every hook is optional. `on_step_start` runs before step `step` trains; `on_stop` when a stop was
    requested at that step (the loop then raises TrainingInterrupted); `on_failure` before a non-finite
    loss is raised; `close` always, last.
    """

    def on_train_start(self, loop: Loop) -> None: ...

    def on_step_start(self, loop: Loop, step: int) -> None: ...

    def on_log(self, loop: Loop, rows: list[dict[str, Any]]) -> None: ...

    def on_step_end(self, loop: Loop, step: int, total: Tensor) -> None: ...

    def on_stop(self, loop: Loop, step: int) -> None: ...

    def on_failure(self, loop: Loop) -> None: ...

    def on_train_end(self, loop: Loop) -> None: ...

    def close(self) -> None: ...


class Checkpointer(EngineCallback):
    """Resumes from `path` when it exists; saves the state there every `every` steps, on a stop and at the end."""

    def __init__(self, path: Path, every: int) -> None:
        self.path, self.every = path, every

    def on_train_start(self, loop: Loop) -> None:
        if self.path.exists():
            loop.start, loop.metrics = load_checkpoint(
                self.path,
                loop.seeds,
                loop.weight_scale,
                loop.chain,
                loop.optimizer,
                loop.generators,
                member_schedules=loop.member_schedules,
                compiled=loop.compiled,
            )
            log.info('Resuming from step %d (%s)', loop.start, self.path)

    def on_step_start(self, loop: Loop, step: int) -> None:
        if step % self.every == 0 and step > loop.start:
            self._save(loop, step)

    def on_stop(self, loop: Loop, step: int) -> None:
        self._save(loop, step)

    def on_train_end(self, loop: Loop) -> None:
        self._save(loop, loop.steps)

    def _save(self, loop: Loop, step: int) -> None:
        """The state at the start of `step`."""
        save_checkpoint(
            self.path,
            step,
            loop.seeds,
            loop.weight_scale,
            loop.chain,
            loop.optimizer,
            loop.chunk_generator_states,
            loop.metrics,
            member_schedules=loop.member_schedules,
            compiled=loop.compiled,
        )


class MetricsFile(EngineCallback):
    """Writes the metrics table (CSV) to `path` with every checkpoint, on a stop, on a failure and at the end."""

    def __init__(self, path: Path, every: int) -> None:
        self.path, self.every = path, every

    def on_step_start(self, loop: Loop, step: int) -> None:
        if step % self.every == 0 and step > loop.start:
            self._write(loop)

    def on_stop(self, loop: Loop, step: int) -> None:
        self._write(loop)

    def on_failure(self, loop: Loop) -> None:
        self._write(loop)

    def on_train_end(self, loop: Loop) -> None:
        self._write(loop)

    def _write(self, loop: Loop) -> None:
        write_atomic(self.path, pd.DataFrame(loop.metrics).to_csv(index=False))


class MetricsCallback(EngineCallback):
    """Hands each logged step's rows to `send` (e.g. a tracker)."""

    def __init__(self, send: Callable[[list[dict[str, Any]]], None]) -> None:
        self.send = send

    def on_log(self, loop: Loop, rows: list[dict[str, Any]]) -> None:
        self.send(rows)


class ProgressCallback(EngineCallback):
    """Every few steps: the bar (steps, it/s, loss) when `enabled`, and `on_progress(steps done)` if given."""

    def __init__(self, enabled: bool | None, on_progress: Callable[[int], None] | None) -> None:
        self.enabled, self.on_progress = enabled, on_progress
        self.bar: Progress | None = None

    def on_train_start(self, loop: Loop) -> None:
        self.bar = Progress('Training', loop.steps, completed=loop.start, enabled=self.enabled).__enter__()

    def on_step_end(self, loop: Loop, step: int, total: Tensor) -> None:
        if step % PROGRESS_EVERY == 0 or step == loop.steps - 1:
            if self.bar is not None and self.bar.enabled:
                self.bar.update(step + 1, note=f'loss {float(total.detach().mean()):.3g}')
            if self.on_progress is not None:
                self.on_progress(step + 1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def save_checkpoint(
    path: Path,
    step: int,
    seeds: list[int],
    weight_scale: Tensor | None,
    chain: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator_states: list[Tensor],
    metrics: list[dict[str, Any]],
    member_schedules: dict[str, Tensor] | None = None,
    compiled: bool = False,
) -> None:
    """Write the state at the start of `step` atomically (temp file, then rename)."""
    state = {
        'version': CHECKPOINT_VERSION,
        'step': step,
        'seeds': seeds,
        'weight_scale': weight_scale,
        'member_schedules': member_schedules,
        'compiled': compiled,
        'chain': chain.state_dict(),
        'optimizer': optimizer.state_dict(),
        'generators': generator_states,
        'metrics': [row for row in metrics if row['step'] < step],
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getvalue())
    log.debug('Checkpoint at step %d → %s', step, path)


def load_checkpoint(
    path: Path,
    seeds: list[int],
    weight_scale: Tensor | None,
    chain: nn.Module,
    optimizer: torch.optim.Optimizer,
    generators: list[torch.Generator],
    member_schedules: dict[str, Tensor] | None = None,
    compiled: bool = False,
) -> tuple[int, list[dict[str, Any]]]:
    state = read_torch(path)
    if not isinstance(state, dict) or state.get('version') != CHECKPOINT_VERSION:
        raise DamagedFileError(f'{path}: not a checkpoint of this ex-color; remove it to start the run again')
    if state.get('compiled', False) != compiled:
        written, wanted = ('compiled', 'eager') if compiled is False else ('eager', 'compiled')
        raise ValueError(f'{path}: checkpoint was trained {written}; it resumes only {written}, not {wanted}')
    if state['seeds'] != seeds:
        raise ValueError(f'{path}: checkpoint is for seeds {state.get("seeds")}, not {seeds}')
    saved_scale = state.get('weight_scale')
    if (saved_scale is None) != (weight_scale is None) or (
        saved_scale is not None and not torch.equal(saved_scale, weight_scale)
    ):
        raise ValueError(f'{path}: checkpoint was trained with other per-member regularizer weights')
    saved = state.get('member_schedules')
    if (saved is None) != (member_schedules is None) or (
        saved is not None and any(not torch.equal(saved[k], member_schedules[k]) for k in ('lr', 'weights'))
    ):
        raise ValueError(f'{path}: checkpoint was trained with other per-member schedules')
    chain.load_state_dict(state['chain'])
    optimizer.load_state_dict(state['optimizer'])
    for g, g_state in zip(generators, state['generators'], strict=False):
        g.set_state(g_state)
    return state['step'], state['metrics']


__all__ = [
    'Checkpointer',
    'EngineCallback',
    'Loop',
    'MetricsCallback',
    'MetricsFile',
    'ProgressCallback',
    'load_checkpoint',
    'save_checkpoint',
]
