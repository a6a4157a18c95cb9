"""Per-member schedules: each member follows its own lr and weights, and trains as it would alone."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ex_color.temporal import Dopesheet
from ex_color.training.engine import TrainingInterrupted
from ex_color.training.members import MemberAdam, MemberSchedules
from ex_color.training.schedule import TrainingSchedule

from .conftest import SHORT_SHEET
from .test_engine import parameters, stop_after
from .test_engine import train as train_ensemble_of

STEPS = 150


def trial_sheet(anchor_peak: float, anti_anchor_peak: float, lr_peak: float) -> Dopesheet:
    """The short Ex 2.9 sheet with three of its cells changed, as a schedule search changes them."""
    lines = SHORT_SHEET.splitlines()
    lines[3] = f'100,,,{lr_peak},0.01,{anchor_peak},0.01,{anti_anchor_peak},0.1'
    return Dopesheet.from_string('\n'.join(lines) + '\n')


@pytest.fixture
def trials(regularizers) -> MemberSchedules:
    sheets = [trial_sheet(0.05, 0.01, 0.1), trial_sheet(0.5, 0.0, 0.03), trial_sheet(0.0, 0.1, 0.2)]
    return MemberSchedules.stack([TrainingSchedule.from_dopesheet(s, regularizers) for s in sheets])


def train(*args, steps=STEPS, **options):
    return train_ensemble_of(*args, steps=steps, **options)


def test_each_trial_trains_in_the_ensemble_as_it_would_alone(data, regularizers, trials):
    seeds = [7, 7, 7]  # one seed: the members differ only by their schedules
    batch = train(seeds, data, regularizers, trials)
    for s, member in enumerate(batch.models):
        alone = train([7], data, regularizers, trials.select([s])).models[0]
        for name, value in parameters(alone).items():
            torch.testing.assert_close(parameters(member)[name], value, atol=1e-4, rtol=0, msg=f'trial {s} {name}')
    final = [parameters(m)['encoder.0.weight'] for m in batch.models]
    assert (final[0] - final[1]).abs().max() > 1e-2 and (final[0] - final[2]).abs().max() > 1e-2
    # Each member's rows log its own lr and weights.
    step_100 = batch.metrics[batch.metrics['step'] == 100]
    assert list(step_100['lr']) == pytest.approx([0.1, 0.03, 0.2])
    assert list(step_100['weight_reg-anchor']) == pytest.approx([0.05, 0.5, 0.0])


def test_a_shared_schedule_given_per_member_trains_as_the_shared_schedule_does(data, regularizers, schedule):
    """Two routes to one computation: MemberAdam with every lr alike against torch's Adam."""
    same = MemberSchedules.stack([schedule, schedule])
    per_member = train([1, 2], data, regularizers, same)
    shared = train([1, 2], data, regularizers, schedule)
    for a, b in zip(per_member.models, shared.models, strict=True):
        for name, value in parameters(b).items():
            torch.testing.assert_close(parameters(a)[name], value, atol=1e-4, rtol=0, msg=name)
    pd.testing.assert_frame_equal(per_member.metrics, shared.metrics, atol=1e-4, rtol=1e-3)


def test_member_adam_is_adam_with_each_members_learning_rate():
    """Against torch.optim.Adam run on each member's slice with that member's lr, an independent implementation."""
    torch.manual_seed(0)
    start = torch.randn(3, 4, 5)
    lrs = torch.tensor([0.1, 0.01, 0.0], dtype=torch.float64)
    stacked = start.clone().requires_grad_()
    ours = MemberAdam([stacked])
    theirs = [start[s].clone().requires_grad_() for s in range(3)]
    reference = [torch.optim.Adam([p], lr=float(lrs[s]), foreach=False) for s, p in enumerate(theirs)]
    for step in range(25):
        target = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(step))
        ours.zero_grad()
        ((stacked - target) ** 2).sum().backward()
        ours.member_lr = lrs
        ours.step()
        for s, (p, opt) in enumerate(zip(theirs, reference, strict=True)):
            opt.zero_grad()
            ((p - target[s]) ** 2).sum().backward()
            opt.step()
    for s, p in enumerate(theirs):
        torch.testing.assert_close(stacked[s].detach(), p.detach(), atol=1e-6, rtol=1e-5)
    assert torch.equal(stacked[2].detach(), start[2])  # lr 0: untouched


def test_resume_with_per_member_schedules_equals_the_uninterrupted_run(tmp_path: Path, data, regularizers, trials):
    common = {'chunk_steps': 40, 'checkpoint_every': 50, 'log_every': 10}
    whole = train([3, 4, 5], data, regularizers, trials, **common)
    checkpoint = tmp_path / 'checkpoint.pt'
    with pytest.raises(TrainingInterrupted, match='step 77'):
        train([3, 4, 5], data, regularizers, trials, checkpoint_path=checkpoint, should_stop=stop_after(77), **common)
    other = MemberSchedules(trials.lr * 2, trials.weights, trials.regularizer_names)
    with pytest.raises(ValueError, match='other per-member schedules'):
        train([3, 4, 5], data, regularizers, other, checkpoint_path=checkpoint, **common)
    resumed = train([3, 4, 5], data, regularizers, trials, checkpoint_path=checkpoint, **common)
    for a, b in zip(whole.models, resumed.models, strict=True):
        for name, value in parameters(a).items():
            assert torch.equal(value, parameters(b)[name]), name
    pd.testing.assert_frame_equal(whole.metrics, resumed.metrics)


def test_schedules_that_do_not_stack_or_fit_are_refused(data, regularizers, schedule, trials):
    longer = dataclasses.replace(
        schedule,
        lr=np.concatenate([schedule.lr, [0.1]]),
        weights=np.concatenate([schedule.weights, schedule.weights[-1:]]),
    )
    with pytest.raises(ValueError, match='member 1 has 302 steps, member 0 301'):
        MemberSchedules.stack([schedule, longer])
    with pytest.raises(ValueError, match='got 3 per-member schedules for 2 members'):
        train([1, 2], data, regularizers, trials)
    with pytest.raises(ValueError, match='expected the regularizers'):
        train([1, 2, 3], data, regularizers[::-1], trials)
