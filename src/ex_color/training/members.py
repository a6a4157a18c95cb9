"""Per-member schedules: an ensemble whose members each follow their own dopesheet.

A schedule search trains a batch of trials as one ensemble, each trial with its own learning
rate and regularizer weights. `MemberSchedules` stacks the members' `TrainingSchedule`s into
`lr [S, steps]` and `weights [S, steps, R]`; `MemberAdam` is Adam with one learning rate per
member. Both are elementwise in the member axis, so a member trains exactly as it would in an
ensemble of one with the same schedule (`tests/training/test_members.py`).

An ensemble without per-member schedules keeps torch's own Adam and the shared schedule, so
sweeps and comparisons compute exactly what they computed before.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from torch import Tensor

from ex_color.training.schedule import TrainingSchedule


@dataclass(frozen=True)
class MemberSchedules:
    """Each member's learning rate `lr [S, steps]` and regularizer weights `weights [S, steps, R]` (float64)."""

    lr: np.ndarray
    weights: np.ndarray
    regularizer_names: tuple[str, ...]

    @classmethod
    def stack(cls, schedules: Sequence[TrainingSchedule]) -> MemberSchedules:
        """One schedule per member, all of one length and one set of regularizers (a ValueError otherwise)."""
        if not schedules:
            raise ValueError('per-member schedules: expected one schedule per member, got none')
        names, length = schedules[0].regularizer_names, len(schedules[0])
        for i, schedule in enumerate(schedules):
            if schedule.regularizer_names != names:
                raise ValueError(
                    f'per-member schedules: member {i} weighs {list(schedule.regularizer_names)}, member 0 '
                    f'{list(names)}; expected the same regularizers'
                )
            if len(schedule) != length:
                raise ValueError(
                    f'per-member schedules: member {i} has {len(schedule)} steps, member 0 {length}; expected one '
                    'length (the last keyframe must not move)'
                )
        lr = np.stack([s.lr for s in schedules]).astype(np.float64)
        weights = np.stack([s.weights for s in schedules]).astype(np.float64)
        return cls(lr, weights, tuple(names))

    @property
    def members(self) -> int:
        return self.lr.shape[0]

    def __len__(self) -> int:
        return self.lr.shape[1]

    def select(self, members: Iterable[int]) -> MemberSchedules:
        """The schedules of some members, in the order given (e.g. one trial, to train it alone)."""
        index = list(members)
        return MemberSchedules(self.lr[index], self.weights[index], self.regularizer_names)

    def lr_at(self, step: int) -> Tensor:
        """Each member's learning rate at `step`, `[S]` float64."""
        return torch.from_numpy(self.lr[:, step].copy())

    @cached_property
    def _weights32(self) -> Tensor:
        """`weights` as float32 `[S, steps, R]`, converted once rather than at every step."""
        return torch.from_numpy(self.weights.astype(np.float32))

    def weights_at(self, step: int) -> dict[str, Tensor]:
        """Each regularizer's weight for every member at `step`: name → `[S]` float32, as the loss uses it."""
        row = self._weights32[:, step, :]  # [S, R]
        return {name: row[:, r] for r, name in enumerate(self.regularizer_names)}

    def weights_table(self) -> Tensor:
        """Every step's weights for every member, float32 `[steps, S, R]` (what the compiled step reads)."""
        return self._weights32.permute(1, 0, 2).contiguous()

    def as_tensors(self) -> dict[str, Tensor]:
        """What a checkpoint records, to refuse resuming with other schedules."""
        return {'lr': torch.from_numpy(self.lr.copy()), 'weights': torch.from_numpy(self.weights.copy())}


class MemberAdam(torch.optim.Optimizer):
    """Adam (no weight decay, no amsgrad) with one learning rate per member of stacked parameters `[S, ...]`.

    Set `member_lr` (`[S]`) before each `step`. The update of member s is Adam's with learning rate
    `member_lr[s]`: `p -= lr / (1 − β1ᵗ) · m / (√(v / (1 − β2ᵗ)) + ε)`, elementwise, so it does not depend on
    the other members.
    """

    def __init__(self, params: Iterable[Tensor], betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, {'betas': betas, 'eps': eps})
        self.member_lr: Tensor | None = None

    def init_state(self) -> None:
        """Create every parameter's state (zero moments, step 0) now, as the compiled engine needs it up front."""
        for group in self.param_groups:
            for p in group['params']:
                state = self.state[p]
                if not state:
                    state['step'] = 0
                    state['exp_avg'] = torch.zeros_like(p)
                    state['exp_avg_sq'] = torch.zeros_like(p)

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        if self.member_lr is None:
            raise RuntimeError('MemberAdam: set member_lr ([S]) before step()')
        self.init_state()
        for group in self.param_groups:
            beta1, beta2 = group['betas']
            for p in group['params']:
                if p.grad is None:
                    continue
                state = self.state[p]
                state['step'] += 1
                t = state['step']
                adam_update(
                    p,
                    p.grad,
                    state['exp_avg'],
                    state['exp_avg_sq'],
                    bias1=1 - beta1**t,
                    bias2_sqrt=math.sqrt(1 - beta2**t),
                    member_lr=self.member_lr,
                    betas=(beta1, beta2),
                    eps=group['eps'],
                )


def adam_update(
    p: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    *,
    bias1: float | Tensor,
    bias2_sqrt: float | Tensor,
    member_lr: Tensor,
    betas: tuple[float, float],
    eps: float,
) -> None:
    """One Adam update of stacked parameters `p [S, ...]` in place, member s with learning rate `member_lr[s]`.

    `bias1 = 1 − β1ᵗ` and `bias2_sqrt = √(1 − β2ᵗ)` are numbers (eager) or 0-dim tensors (compiled, so
    that the step count is an input rather than a constant compiled into the graph).
    """
    beta1, beta2 = betas
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    denom = (exp_avg_sq.sqrt() / bias2_sqrt).add_(eps)
    step_size = (member_lr / bias1).to(device=p.device, dtype=p.dtype)
    step_size = step_size.view(-1, *([1] * (p.dim() - 1)))
    p.sub_(step_size * exp_avg / denom)


__all__ = ['MemberAdam', 'MemberSchedules', 'adam_update']
