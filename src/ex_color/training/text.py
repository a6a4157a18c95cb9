"""Training a character language model under the dopesheet: S independent models stepped in lockstep.

Why not the stacked engine or `torch.func`: a transformer step here is a few hundred MFLOPs of
matrix products, so the time goes to arithmetic, not to Python. Stacking members would save
only the dispatch (a few percent) and would need every op batched over members. Instead each
member is an ordinary model with its own data stream, and the loop steps every member once per
step: one backward over the members' summed losses, one Adam step over all their parameters
(elementwise, so a member trains exactly as it would alone). The loop shares the colour engine's
callbacks (checkpoints, the metrics file, trackers, progress), options and metrics columns, so
`run`, `sweep` and `compare` drive it the same way, and resume is exact.

Per step, member s draws `batch_size` windows of `context + 1` training tokens from its own
generator: inputs `x [B, T]` and next tokens `y [B, T]`. Its loss is the next-token
cross-entropy (the `recon` term: the model's own objective) plus the regularizers, which read
each captured layer `[B, T, D]` as `B·T` samples `[B·T, D]`, with each label per position `[B·T]`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ex_color.data.corpus import Corpus, windows
from ex_color.data.token_labels import TokenLabel, draw_labels
from ex_color.loss import NonFiniteLossError, RegularizerConfig, check_finite, total_loss
from ex_color.model import forward_hooks
from ex_color.training.callbacks import Loop
from ex_color.training.engine import (
    EngineOptions,
    EnsembleResult,
    TrainingInterrupted,
    data_generator,
    metric_rows,
)
from ex_color.training.schedule import TrainingSchedule

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextData:
    """What a text model trains on: the corpus's training tokens, cut into windows, and the labels per position."""

    corpus: Corpus
    context: int
    batch_size: int
    labels: Mapping[str, TokenLabel] = field(default_factory=dict)
    soft: bool = False

    def __post_init__(self) -> None:
        if len(self.corpus.train) <= self.context + 1:
            raise ValueError(
                f'the training part of {self.corpus.name} ({len(self.corpus.train)} characters) is shorter than '
                f'one window of {self.context + 1}'
            )

    def batch(self, generator: torch.Generator) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """One member's batch: inputs `[B, T]`, next tokens `[B, T]` and labels `{name: [B, T]}`."""
        train = self.corpus.train
        starts = torch.randint(len(train) - self.context, (self.batch_size,), generator=generator)
        window = windows(train, starts, self.context + 1)
        x, y = window[:, :-1], window[:, 1:]
        return x, y, draw_labels(self.probabilities(x, y), self.soft, generator)

    def probabilities(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Each label's probability per position, `{name: [B, T]}` (labels with scale 0 left out)."""
        return {
            name: label.probabilities(x, y, self._members[name])
            for name, label in self.labels.items()
            if label.scale > 0
        }

    def members(self, chars: str) -> Tensor:
        return self.corpus.members(chars)

    @cached_property
    def _members(self) -> dict[str, Tensor]:
        """Each label's characters as a `[vocab]` indicator, built once (not at every step)."""
        return {name: self.members(label.chars) for name, label in self.labels.items()}


def next_token_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean next-token cross-entropy in nats: logits `[B, T, V]`, targets `[B, T]` → `[]`."""
    return F.cross_entropy(logits.flatten(0, -2), targets.flatten())


def train_text_ensemble(
    models: Sequence[nn.Module],
    seeds: Sequence[int],
    data: TextData,
    regularizers: Sequence[RegularizerConfig],
    schedule: TrainingSchedule,
    *,
    steps: int | None = None,
    options: EngineOptions | None = None,
    weight_scale: Tensor | None = None,
) -> EnsembleResult:
    """Train S initialised text models (one per seed) in lockstep for `steps` steps of `schedule`.

    Arguments are as for `ex_color.training.engine.train_ensemble` (`weight_scale [S, R]` turns
    regularizers off per member, as for a control model); the models are copied, not modified.
    Returns the trained members with the metrics table (rows in member order at each logged step).
    """
    options = options or EngineOptions()
    seeds = list(seeds)
    if len(models) != len(seeds):
        raise ValueError(f'got {len(models)} models for {len(seeds)} seeds')
    steps = len(schedule) if steps is None else steps
    if not 0 < steps <= len(schedule):
        raise ValueError(f'steps must be in 1..{len(schedule)} (the schedule length), got {steps}')
    scale = None if weight_scale is None else torch.as_tensor(weight_scale, dtype=torch.float32)
    if scale is not None and scale.shape != (len(seeds), len(regularizers)):
        raise ValueError(f'weight_scale must be [members, regularizers], got {list(scale.shape)}')
    device = torch.device(options.device)
    members = nn.ModuleList(copy.deepcopy(m) for m in models).to(device).train()
    # Fused: one kernel for every parameter of every member (elementwise, so a member still trains as alone).
    optimizer = torch.optim.Adam(members.parameters(), lr=float(schedule.lr[0]), fused=True)
    generators = [data_generator(seed) for seed in seeds]
    loop = Loop(seeds, steps, members, optimizer, generators, scale)
    layers = sorted({layer for r in regularizers for layer in r.layer_affinities})
    names = [r.name for r in regularizers]
    callbacks = options.make_callbacks()

    def fire(hook: str, *args: Any) -> None:
        for callback in callbacks:
            getattr(callback, hook)(loop, *args)

    try:
        fire('on_train_start')
        for step in range(loop.start, steps):
            loop.chunk_generator_states = [g.get_state() for g in generators]  # what a checkpoint here resumes from
            if options.should_stop():
                fire('on_stop', step)
                raise TrainingInterrupted(f'training stopped at step {step}')
            fire('on_step_start', step)
            lr = float(schedule.lr[step])
            for group in optimizer.param_groups:
                group['lr'] = lr
            shared = schedule.weights_at(step)
            totals, member_terms = [], []
            for s, model in enumerate(members):
                weights = shared if scale is None else {n: shared[n] * float(scale[s, r]) for r, n in enumerate(names)}
                total, terms = _member_loss(model, data.batch(generators[s]), regularizers, layers, weights, device)
                totals.append(total)
                member_terms.append(terms)
            total = torch.stack(totals)  # [S]
            terms = {n: torch.stack([t[n] for t in member_terms]) for n in member_terms[0]}  # {name: [S]}
            if not bool(torch.isfinite(total).all()):
                fire('on_failure')  # the last good checkpoint is kept as it is
                check_finite(terms, regularizers, step)
                raise NonFiniteLossError(f'non-finite total loss at step {step}', term='total', step=step)
            optimizer.zero_grad(set_to_none=True)
            total.sum().backward()
            optimizer.step()
            if step % options.log_every == 0 or step == steps - 1:
                weights = shared if scale is None else {n: shared[n] * scale[:, r] for r, n in enumerate(names)}
                rows = metric_rows(step, seeds, lr, weights, total, terms)
                loop.metrics.extend(rows)
                fire('on_log', rows)
            fire('on_step_end', step, total)
        loop.chunk_generator_states = []
        fire('on_train_end')
    finally:
        for callback in callbacks:
            callback.close()
    trained = [m.cpu().eval() for m in members]
    return EnsembleResult(seeds=seeds, models=trained, metrics=pd.DataFrame(loop.metrics), steps=steps)


def _member_loss(
    model: nn.Module,
    batch: tuple[Tensor, Tensor, dict[str, Tensor]],
    regularizers: Sequence[RegularizerConfig],
    layers: Sequence[str],
    weights: Mapping[str, float | Tensor],
    device: torch.device,
) -> tuple[Tensor, dict[str, Tensor]]:
    """One member's total loss `[]` and its terms: cross-entropy plus the regularizers, one sample per position."""
    x, y, labels = batch
    captured: dict[str, Tensor] = {}
    with forward_hooks(model, layers, lambda name, out: captured.__setitem__(name, out.flatten(0, -2))):
        logits = model(x.to(device))
    ce = next_token_loss(logits, y.to(device))
    flat = {name: value.flatten().to(device) for name, value in labels.items()}  # [B·T], as the activations
    return total_loss(ce, regularizers, captured, flat, weights)


__all__ = ['TextData', 'next_token_loss', 'train_text_ensemble']
