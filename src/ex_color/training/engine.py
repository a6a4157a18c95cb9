"""The fast trainer: plain PyTorch, an ensemble of S models in one process.

A step costs a few hundred kFLOPs, so time goes to Python and framework overhead. This
engine keeps that overhead per *ensemble* step, not per model: the schedule is a table
computed once, the training colours are one tensor, batches are drawn on-tensor, and the
S members run as one stacked model (`StackedChain`). Each member has its own seed,
initial weights, data stream and labels, and its loss is its own batch mean, so (Adam
being elementwise) every member trains exactly as it would alone.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from ex_color.columns import train_loss_column
from ex_color.loss import (
    TOTAL_LOSS,
    NonFiniteLossError,
    RegularizerConfig,
    check_finite,
    expected_weight_problems,
    phase_problems,
    total_loss,
)
from ex_color.training.callbacks import (
    Checkpointer,
    EngineCallback,
    Loop,
    MetricsCallback,
    MetricsFile,
    ProgressCallback,
)
from ex_color.training.compiled import MIN_MEMBERS, CompiledStep
from ex_color.training.data import TrainingData
from ex_color.training.members import MemberAdam, MemberSchedules
from ex_color.training.routing import MemberRoutes, Route
from ex_color.training.schedule import TrainingSchedule
from ex_color.training.stacked import StackedChain

log = logging.getLogger(__name__)

SMALL_ENSEMBLE = 16


@dataclass
class EnsembleResult:
    """Trained members (ordinary models, in seed order) and the metrics written while training."""

    seeds: list[int]
    models: list[nn.Module]
    metrics: pd.DataFrame
    steps: int


class TrainingInterrupted(RuntimeError):
    """Training stopped on request (a signal); unless `resumable` is False, a checkpoint holds the state."""

    def __init__(self, message: str, *, resumable: bool = True) -> None:
        super().__init__(message)
        self.resumable = resumable


@dataclass
class EngineOptions:
    """How the engine runs (not what it learns): logging, checkpoints, progress."""

    log_every: int = 50
    """Write per-term losses, lr and weights every this many steps (and at the last step)."""
    checkpoint_every: int = 500
    """Save a checkpoint every this many steps, when a path is set."""
    checkpoint_path: Path | None = None
    metrics_path: Path | None = None
    """Where the metrics table (CSV) is written at each checkpoint, on stop and at the end."""
    chunk_steps: int | None = None
    """Batches are pre-drawn this many steps at a time per member (default: `predraw_steps`)."""
    progress: bool | None = None
    """Show a progress bar; None → only when stderr is a terminal."""
    device: str = 'cpu'
    """Where the members train ('cpu', 'cuda', 'cuda:1'; see `ex_color.device.resolve_device`). Batches are
    drawn on the CPU as everywhere (the same stream on every device); the trained models come back on the CPU."""
    should_stop: Callable[[], bool] = field(default=lambda: False)
    """Polled every step; True → checkpoint and raise TrainingInterrupted."""
    on_progress: Callable[[int], None] | None = None
    """Called with the number of steps done, every few steps (e.g. to drive an outer progress bar)."""
    on_metrics: Callable[[list[dict[str, Any]]], None] | None = None
    """Called with each logged step's new metrics rows, one per member (e.g. to send them to a tracker)."""
    callbacks: Sequence[EngineCallback] = ()
    """More hooks around the loop, called after the ones these options make (see `EngineCallback`)."""
    compile: bool = False
    """Train with the compiled step (`ex_color.training.compiled`): faster, rounds differently from eager."""
    compile_threads: int | None = None
    """Threads of the compiled kernels (default: `torch.get_num_threads()`); compiled results depend on it."""

    def make_callbacks(self) -> list[EngineCallback]:
        """The loop's callbacks: checkpoints, the metrics file, the tracker's rows, progress, then `callbacks`."""
        made: list[EngineCallback] = []
        if self.checkpoint_path is not None:
            made.append(Checkpointer(Path(self.checkpoint_path), self.checkpoint_every))
        if self.metrics_path is not None:
            made.append(MetricsFile(Path(self.metrics_path), self.checkpoint_every))
        if self.on_metrics is not None:
            made.append(MetricsCallback(self.on_metrics))
        made.append(ProgressCallback(self.progress, self.on_progress))
        return [*made, *self.callbacks]


PREDRAW_BYTES_PER_MEMBER = 8 * 2**20
"""Memory for one member's pre-drawn batches (indices and uniform draws for its labels)."""


def predraw_steps(batch_size: int, labels: int) -> int:
    """Steps of batches pre-drawn at once: 100, fewer for batches so large that 100 would not fit the budget.

    It depends on the member's batch and labels only, never on the ensemble's size, so a
    member draws the same stream alone and in an ensemble.
    """
    per_step = batch_size * (8 + 4 * labels)  # int64 indices and float32 uniforms
    return max(1, min(100, PREDRAW_BYTES_PER_MEMBER // per_step))


def data_generator(seed: int) -> torch.Generator:
    """The RNG of one member's data stream (batches and labels), derived from its seed."""
    state = np.random.SeedSequence([seed, 1]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & 0x7FFF_FFFF_FFFF_FFFF)


def init_models(make_model: Callable[[], nn.Module], seeds: Sequence[int]) -> list[nn.Module]:
    """One freshly initialised model per seed: `torch.manual_seed(seed)` then `make_model()`.

    The Lightning trainer initialises the same way, so both engines start from the same weights.
    """
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(make_model())
    return models


class _Batches:
    """Per-member batches and labels, pre-drawn a chunk of steps at a time.

    Each member draws from its own generator in the same order whatever the ensemble's
    size, which is what makes a member's stream identical alone and in an ensemble.
    """

    def __init__(
        self, data: TrainingData, generators: list[torch.Generator], device: torch.device | str = 'cpu'
    ) -> None:
        self.data, self.device = data, device
        self.colors = data.colors.to(device)
        self.generators = generators
        self.label_names = list(data.label_probabilities)
        probabilities = [data.label_probabilities[n] for n in self.label_names]
        self.probabilities = (torch.stack(probabilities) if probabilities else torch.empty(0, len(data.colors))).to(
            device
        )  # [L, N]
        self.start = 0
        self.indices = torch.empty(0)
        self.uniform = torch.empty(0)

    def draw(self, start: int, steps: int) -> None:
        B = self.data.batch_size
        L = len(self.label_names)
        indices, uniform = [], []
        for g in self.generators:
            indices.append(
                torch.multinomial(self.data.weights, steps * B, replacement=True, generator=g).view(steps, B)
            )
            if not self.data.soft:
                uniform.append(torch.rand(steps, L, B, generator=g))
        self.start = start
        self.indices = torch.stack(indices, dim=1).to(self.device)  # [T, S, B]
        if uniform:
            self.uniform = torch.stack(uniform, dim=2).to(self.device)  # [T, L, S, B]

    def batch(self, step: int) -> tuple[Tensor, dict[str, Tensor]]:
        """Colours `[S, B, 3]` and labels {name: `[S, B]`} for one step of the current chunk."""
        idx = self.indices[step - self.start]  # [S, B]
        colors = self.colors[idx]
        p = self.probabilities[:, idx]  # [L, S, B]
        labels = p.to(colors.dtype) if self.data.soft else (self.uniform[step - self.start] < p).to(colors.dtype)
        return colors, {name: labels[i] for i, name in enumerate(self.label_names)}


def train_ensemble(
    models: Sequence[nn.Module],
    seeds: Sequence[int],
    data: TrainingData,
    regularizers: Sequence[RegularizerConfig],
    schedule: TrainingSchedule | MemberSchedules,
    *,
    steps: int | None = None,
    options: EngineOptions | None = None,
    weight_scale: Tensor | None = None,
    routes: Sequence[Route | None] | None = None,
) -> EnsembleResult:
    """Train S initialised models (one per seed) together for `steps` steps of `schedule`.

    Args:
        models: S models of one chain architecture (e.g. from `init_models`); not modified.
        seeds: S seeds; each seeds its member's data stream.
        data: the colours to sample batches from and their label probabilities.
        regularizers: terms added to the MSE reconstruction loss, weighted by the schedule.
        schedule: per-step learning rate and regularizer weights, shared by every member; or
            `MemberSchedules`, each member's own (trained with `MemberAdam`, one learning rate per member).
        steps: how many steps to train (default: the whole schedule).
        options: logging, checkpointing and progress settings.
        weight_scale: `[S, R]`, each member's factor on each regularizer's schedule weight (R in the
            order of `regularizers`); a 0 turns a term off for that member, as for a control model.
            Default: 1 everywhere. A seed may then appear twice (e.g. a prepared and a control model).
        routes: `[S]`, each member's gradient route or None (`ex_color.training.routing`); default: none.

    Returns: the trained members as ordinary models, with the metrics table (rows in member order
    at each logged step, so member s's rows are `metrics.iloc[s::S]`).
    """
    options = options or EngineOptions()
    seeds = list(seeds)
    if len(models) != len(seeds):
        raise ValueError(f'got {len(models)} models for {len(seeds)} seeds')
    steps = len(schedule) if steps is None else steps
    if not 0 < steps <= len(schedule):
        raise ValueError(f'steps must be in 1..{len(schedule)} (the schedule length), got {steps}')

    per_member = isinstance(schedule, MemberSchedules)
    if per_member:
        _check_member_schedules(schedule, len(seeds), regularizers)
    scale = _checked_weight_scale(weight_scale, len(seeds), regularizers)
    member_routes = MemberRoutes(routes if routes is not None else [None] * len(seeds))
    if len(member_routes.routes) != len(seeds):
        raise ValueError(f'got {len(member_routes.routes)} routes for {len(seeds)} members')
    # Once, before the loop: a term that can never apply (a phase other than 'train', labels no training
    # example can carry). The command line refuses these when it loads the experiment file.
    never = expected_weight_problems(regularizers, data.label_probabilities, data.weights)
    for problem in [*phase_problems(regularizers), *never.values()]:
        log.warning(problem)
    members = len(seeds)
    if options.compile and members < MIN_MEMBERS:
        # The compiled step runs a lone model beside a copy of itself (see ex_color.training.compiled).
        models, seeds = [models[0]] * MIN_MEMBERS, seeds * MIN_MEMBERS
        scale = scale.expand(MIN_MEMBERS, -1).clone() if scale is not None else None
        member_routes = member_routes.select([0] * MIN_MEMBERS)
        if isinstance(schedule, MemberSchedules):
            schedule = schedule.select([0] * MIN_MEMBERS)
    regularizer_names = [r.name for r in regularizers]
    chunk_steps = options.chunk_steps or predraw_steps(data.batch_size, len(data.label_probabilities))
    device = torch.device(options.device)
    scale_here = scale.to(device) if scale is not None else None  # the checkpoint keeps the CPU copy
    chain = StackedChain(models, device)
    layers = sorted({layer for r in regularizers for layer in r.layer_affinities})
    widths = _layer_widths(chain, member_routes.layers, data.colors.shape[-1], device)
    optimizer: torch.optim.Optimizer
    if per_member or options.compile:
        optimizer = MemberAdam(chain.parameters())
    else:
        optimizer = torch.optim.Adam(chain.parameters(), lr=float(schedule.lr[0]), foreach=True)
    threads = options.compile_threads or torch.get_num_threads()
    compiled = CompiledStep(chain, optimizer, regularizers, layers, threads) if options.compile else None
    generators = [data_generator(seed) for seed in seeds]
    batches = _Batches(data, generators, device)
    loop = Loop(seeds, steps, chain, optimizer, generators, scale, compiled=options.compile)
    if isinstance(schedule, MemberSchedules):
        loop.member_schedules = schedule.as_tensors()
    callbacks = options.make_callbacks()
    weight_table = lr_table = None
    if compiled is not None:
        weight_table = _weight_table(schedule, scale_here, len(seeds), device)  # [steps, S, R]
        lr_table = _lr_table(schedule, len(seeds))  # [steps, S]

    def fire(hook: str, *args: Any) -> None:
        for callback in callbacks:
            getattr(callback, hook)(loop, *args)

    def schedule_at(step: int) -> tuple[float | Tensor, Mapping[str, float | Tensor]]:
        """The learning rate (a number, or `[S]`) and each regularizer's weight (times its per-member scale)."""
        weights: Mapping[str, float | Tensor]
        if isinstance(schedule, MemberSchedules):
            lr: float | Tensor = schedule.lr_at(step)  # [S]
            weights = {name: w.to(device) for name, w in schedule.weights_at(step).items()}
        else:
            lr = float(schedule.lr[step])
            weights = schedule.weights_at(step)
        if scale_here is not None:
            weights = {name: weights[name] * scale_here[:, r] for r, name in enumerate(regularizer_names)}
        return lr, weights

    # Compiled kernels run on the threads they were built for, whatever the ensemble's size.
    loop_threads = threads if compiled is not None else _threads_for(len(seeds))
    try:
        fire('on_train_start')
        with _intra_op_threads(loop_threads):
            for step in range(loop.start, steps):
                if step == loop.start or step % chunk_steps == 0:
                    # A resumed run restores the generators as they were at its chunk's start,
                    # so redrawing the chunk gives the batches the interrupted run had.
                    chunk_start = step - step % chunk_steps
                    loop.chunk_generator_states = [g.get_state() for g in generators]
                    batches.draw(chunk_start, min(chunk_steps, steps - chunk_start))
                if options.should_stop():
                    fire('on_stop', step)
                    raise TrainingInterrupted(f'training stopped at step {step}')
                fire('on_step_start', step)

                colours, labels = batches.batch(step)
                masks = member_routes.masks(labels, widths) if member_routes else None
                if compiled is not None:
                    assert weight_table is not None and lr_table is not None
                    total, terms, finite = compiled(colours, labels, weight_table[step], lr_table[step], masks)
                else:
                    lr, weights = schedule_at(step)
                    if isinstance(lr, Tensor):
                        optimizer.member_lr = lr  # type: ignore[attr-defined]
                    else:
                        for group in optimizer.param_groups:
                            group['lr'] = lr
                    outputs, captured = chain.forward(colours, capture=layers, masks=masks)
                    recon = (outputs - colours).square().mean(dim=(-2, -1))  # [S]
                    total, terms = total_loss(recon, regularizers, captured, labels, weights)
                    finite = bool(torch.isfinite(total).all())
                    if finite:
                        optimizer.zero_grad(set_to_none=True)
                        total.sum().backward()
                        optimizer.step()
                if not finite:
                    fire('on_failure')  # the last good checkpoint is kept as it is
                    check_finite(terms, regularizers, step)
                    raise NonFiniteLossError(
                        f'non-finite total loss at step {step}: a schedule weight is not finite',
                        term='total',
                        step=step,
                    )

                if step % options.log_every == 0 or step == steps - 1:
                    if compiled is not None:  # the compiled step reads tables; the log shows the schedule's values
                        lr, weights = schedule_at(step)
                    rows = metric_rows(step, seeds, lr, weights, total, terms)[:members]
                    loop.metrics.extend(rows)
                    fire('on_log', rows)
                fire('on_step_end', step, total)
        loop.chunk_generator_states = []
        fire('on_train_end')
    finally:
        for callback in callbacks:
            callback.close()
    return EnsembleResult(
        seeds=seeds[:members], models=chain.to_models()[:members], metrics=pd.DataFrame(loop.metrics), steps=steps
    )


def _check_member_schedules(
    schedules: MemberSchedules, members: int, regularizers: Sequence[RegularizerConfig]
) -> None:
    """One schedule per member, weighing these regularizers in this order; a ValueError otherwise."""
    if schedules.members != members:
        raise ValueError(f'got {schedules.members} per-member schedules for {members} members')
    names = tuple(r.name for r in regularizers)
    if schedules.regularizer_names != names:
        raise ValueError(
            f'the per-member schedules weigh {list(schedules.regularizer_names)}; expected the regularizers '
            f'{list(names)}, in that order'
        )


def _checked_weight_scale(
    weight_scale: Tensor | None, members: int, regularizers: Sequence[RegularizerConfig]
) -> Tensor | None:
    """`weight_scale` as float32 `[S, R]`, or None for 1 everywhere; a ValueError for a wrong shape or value."""
    if weight_scale is None:
        return None
    scale = torch.as_tensor(weight_scale, dtype=torch.float32)
    if scale.shape != (members, len(regularizers)):
        raise ValueError(
            f'weight_scale must be [members, regularizers] = [{members}, {len(regularizers)}], got {list(scale.shape)}'
        )
    if not bool(torch.isfinite(scale).all()) or bool((scale < 0).any()):
        raise ValueError('weight_scale must be finite and >= 0')
    return scale


def _weight_table(
    schedule: TrainingSchedule | MemberSchedules, scale: Tensor | None, members: int, device: torch.device
) -> Tensor:
    """Every step's regularizer weights for every member, times `scale [S, R]` if given: float32 `[steps, S, R]`."""
    if isinstance(schedule, MemberSchedules):
        table = schedule.weights_table().to(device)
    else:
        shared = torch.from_numpy(np.asarray(schedule.weights, dtype=np.float32)).to(device)  # [steps, R]
        table = shared.unsqueeze(1).expand(-1, members, -1)
    return (table * scale if scale is not None else table).contiguous()


def _lr_table(schedule: TrainingSchedule | MemberSchedules, members: int) -> Tensor:
    """Every step's learning rate for every member, float64 `[steps, S]`."""
    if isinstance(schedule, MemberSchedules):
        return torch.from_numpy(np.ascontiguousarray(schedule.lr.T))
    return torch.from_numpy(np.asarray(schedule.lr, dtype=np.float64)).unsqueeze(1).expand(-1, members).contiguous()


def _layer_widths(chain: StackedChain, layers: Sequence[str], in_features: int, device: torch.device) -> dict[str, int]:
    """The width D of each of `layers` (read from a forward pass of one zero input per member)."""
    if not layers:
        return {}
    with torch.no_grad():
        _, captured = chain.forward(torch.zeros(chain.size, 1, in_features, device=device), capture=layers)
    return {layer: captured[layer].shape[-1] for layer in layers}


def _threads_for(members: int) -> int:
    """Intra-op threads for an ensemble step.

    A small ensemble's ops are too small to split between threads, and when another
    process is busy the threads' spin-waits slow a step tenfold; large ensembles gain.
    """
    return 1 if members < SMALL_ENSEMBLE else torch.get_num_threads()


@contextmanager
def _intra_op_threads(n: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def metric_rows(
    step: int,
    seeds: list[int],
    lr: float | Tensor,
    weights: Mapping[str, float | Tensor],
    total: Tensor,
    terms: Mapping[str, Tensor],
) -> list[dict[str, Any]]:
    """One metrics row per member: `train_loss`, and `train_<name>` for every term (NaN at a step its labels
    skipped; see `ex_color.columns.train_loss_column`).

    The learning rate and each weight is a number, or `[S]` per member (see `weight_scale`, `MemberSchedules`)."""
    names = list(dict.fromkeys([*terms, *weights]))  # the reconstruction term first, then every regularizer
    present = [n for n in names if n in terms]
    stacked = torch.stack([total.detach(), *(terms[n].detach() for n in present)]).tolist()  # [1 + T, S]
    values = dict(zip(present, stacked[1:], strict=True))
    member_weights = {n: w.tolist() if isinstance(w, Tensor) else [w] * len(seeds) for n, w in weights.items()}
    member_lr = lr.tolist() if isinstance(lr, Tensor) else [lr] * len(seeds)
    rows = []
    for s, seed in enumerate(seeds):
        row: dict[str, Any] = {
            'step': step,
            'seed': seed,
            'lr': member_lr[s],
            train_loss_column(TOTAL_LOSS): stacked[0][s],
        }
        row.update({train_loss_column(n): values[n][s] if n in values else math.nan for n in names})
        row.update({f'weight_{n}': w[s] for n, w in member_weights.items()})
        rows.append(row)
    return rows
