"""The fast engine: members train as if alone, runs repeat exactly, resume, non-finite losses."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
import torch

from ex_color.loss import NonFiniteLossError, RegularizerConfig, Unitarity
from ex_color.training.engine import (
    EngineOptions,
    TrainingInterrupted,
    _Batches,
    data_generator,
    init_models,
    predraw_steps,
    train_ensemble,
)
from ex_color.training.schedule import TrainingSchedule

from .conftest import make_model

QUIET = {'progress': False}


def parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train(seeds, data, regularizers, schedule, steps, scale=None, **options):
    return train_ensemble(
        init_models(make_model, seeds),
        seeds,
        data,
        regularizers,
        schedule,
        steps=steps,
        options=EngineOptions(**(QUIET | options)),
        weight_scale=scale,
    )


def test_ensemble_members_train_as_if_alone(data, regularizers, schedule):
    seeds = [0, 1, 2]
    ensemble = train(seeds, data, regularizers, schedule, steps=300)
    for seed, member in zip(seeds, ensemble.models, strict=True):
        alone = train([seed], data, regularizers, schedule, steps=300).models[0]
        for name, value in parameters(alone).items():
            torch.testing.assert_close(parameters(member)[name], value, atol=1e-4, rtol=0, msg=f'seed {seed} {name}')
    # The members really differ: different seeds, different weights.
    w0, w1 = (parameters(m)['encoder.0.weight'] for m in ensemble.models[:2])
    assert not torch.allclose(w0, w1)


def test_training_changes_the_model_and_lowers_the_loss(data, regularizers, schedule):
    result = train([0], data, regularizers, schedule, steps=300)
    before = parameters(init_models(make_model, [0])[0])
    after = parameters(result.models[0])
    assert not torch.equal(before['decoder.0.weight'], after['decoder.0.weight'])
    recon = result.metrics.set_index('step')['train_recon']
    assert recon.iloc[-1] < recon.iloc[1] / 5


def test_same_seed_gives_identical_weights_and_metrics(data, regularizers, schedule):
    a = train([7], data, regularizers, schedule, steps=120)
    b = train([7], data, regularizers, schedule, steps=120)
    for name, value in parameters(a.models[0]).items():
        assert torch.equal(value, parameters(b.models[0])[name]), name
    pd.testing.assert_frame_equal(a.metrics, b.metrics)


def test_metrics_hold_terms_lr_and_weights_every_n_steps(data, regularizers, schedule):
    result = train([0, 1], data, regularizers, schedule, steps=101, log_every=20)
    metrics = result.metrics
    assert sorted(set(metrics['step'])) == [0, 20, 40, 60, 80, 100]
    assert sorted(set(metrics['seed'])) == [0, 1]
    for r in regularizers:
        assert f'weight_{r.name}' in metrics
    assert {'train_loss', 'train_recon', 'train_reg-unit', 'train_reg-separate', 'lr'} <= set(metrics.columns)
    row = metrics[(metrics.step == 40) & (metrics.seed == 1)].iloc[0]
    assert row['lr'] == pytest.approx(schedule.lr[40])
    assert row['weight_reg-anchor'] == pytest.approx(schedule.weights_at(40)['reg-anchor'])


def stop_after(calls: int):
    count = 0

    def should_stop() -> bool:
        nonlocal count
        count += 1
        return count > calls

    return should_stop


def test_resume_after_interrupt_equals_uninterrupted_run(tmp_path: Path, data, regularizers, schedule):
    common = {'chunk_steps': 50, 'checkpoint_every': 100, 'log_every': 10}
    whole = train([3, 4], data, regularizers, schedule, steps=250, **common)

    checkpoint = tmp_path / 'checkpoint.pt'
    # Interrupt mid-chunk (step 137), as a signal would, then resume from the checkpoint.
    with pytest.raises(TrainingInterrupted, match='step 137'):
        train(
            [3, 4],
            data,
            regularizers,
            schedule,
            steps=250,
            checkpoint_path=checkpoint,
            should_stop=stop_after(137),
            **common,
        )
    assert torch.load(checkpoint, weights_only=False)['step'] == 137
    resumed = train([3, 4], data, regularizers, schedule, steps=250, checkpoint_path=checkpoint, **common)

    for a, b in zip(whole.models, resumed.models, strict=True):
        for name, value in parameters(a).items():
            assert torch.equal(value, parameters(b)[name]), name
    pd.testing.assert_frame_equal(whole.metrics, resumed.metrics)


def test_checkpoint_for_other_seeds_is_refused(tmp_path: Path, data, regularizers, schedule):
    checkpoint = tmp_path / 'checkpoint.pt'
    train([1], data, regularizers, schedule, steps=20, checkpoint_path=checkpoint)
    with pytest.raises(ValueError, match='seeds'):
        train([2], data, regularizers, schedule, steps=20, checkpoint_path=checkpoint)


class NanAfter(torch.nn.Module):
    """A regularizer that works for `calls` steps, then returns NaN."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.calls = calls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls -= 1
        loss = x.square().sum(-1)
        return loss * float('nan') if self.calls < 0 else loss


def test_non_finite_loss_stops_naming_term_and_step_and_keeps_checkpoint(tmp_path: Path, data, regularizers, schedule):
    bad = RegularizerConfig('reg-bad', NanAfter(160), None, ['bottleneck'])
    checkpoint, metrics = tmp_path / 'checkpoint.pt', tmp_path / 'metrics.csv'
    with pytest.raises(NonFiniteLossError) as error:
        train(
            [0],
            data,
            [*regularizers, bad],
            schedule,
            steps=300,
            checkpoint_path=checkpoint,
            metrics_path=metrics,
            checkpoint_every=100,
            chunk_steps=50,
            log_every=10,
        )
    message = str(error.value)
    assert 'step 160' in message and 'reg-bad' in message and 'bottleneck' in message
    assert '\n' not in message
    # The last good checkpoint (step 100) is intact, and metrics up to the failure are kept.
    assert torch.load(checkpoint, weights_only=False)['step'] == 100
    logged = pd.read_csv(metrics)
    assert logged['step'].max() == 150
    assert logged['train_loss'].notna().all()


def test_steps_beyond_the_schedule_are_refused(data, regularizers, schedule):
    with pytest.raises(ValueError, match='steps'):
        train([0], data, regularizers, schedule, steps=len(schedule) + 1)


def test_soft_labels_are_the_probabilities_and_hard_labels_are_draws_from_them(data):
    """`soft = true` hands the regularizers each sample's probability; hard labels are 0/1 draws from it."""
    soft = dataclasses.replace(data, soft=True)
    for source, expect_soft in ((soft, True), (data, False)):
        batches = _Batches(source, [data_generator(0), data_generator(1)])
        batches.draw(0, 3)
        for step in range(3):
            colors, labels = batches.batch(step)
            index = batches.indices[step]  # [S, B]
            assert torch.equal(colors, source.colors[index])
            for name, label in labels.items():
                probability = source.label_probabilities[name][index].to(label.dtype)
                if expect_soft:
                    assert torch.equal(label, probability), name
                else:
                    assert set(label.unique().tolist()) <= {0.0, 1.0}, name
                    assert bool((label[probability == 0] == 0).all()), name  # never drawn where impossible


def test_soft_labels_change_training(data, regularizers, schedule):
    hard = train([0], data, regularizers, schedule, steps=20)
    soft = train([0], dataclasses.replace(data, soft=True), regularizers, schedule, steps=20)
    assert not torch.equal(
        parameters(hard.models[0])['encoder.0.weight'], parameters(soft.models[0])['encoder.0.weight']
    )


def test_a_term_its_labels_never_select_is_a_nan_column(data, regularizers, short_sheet):
    """Every regularizer gets a loss column, so a sweep's table always has it; NaN where the term was skipped."""
    never = RegularizerConfig('reg-never', Unitarity(), {'no-such-label': 1.0}, ['bottleneck'])
    everything = [*regularizers, never]
    schedule = TrainingSchedule.from_dopesheet(short_sheet, everything)
    result = train([0], data, everything, schedule, steps=3, log_every=1)
    assert result.metrics['train_reg-never'].isna().all()
    assert not result.metrics['train_reg-unit'].isna().any()
    columns = [c for c in result.metrics.columns if c.startswith('train_')]
    assert columns == ['train_loss', 'train_recon', *(f'train_{r.name}' for r in [*regularizers, never])]


def test_terms_that_can_never_apply_are_warned_about_once_before_training(data, regularizers, short_sheet, caplog):
    """A label the data never draws and a phase training never uses: each a warning naming the regularizer."""
    never = RegularizerConfig('reg-never', Unitarity(), {'no-such-label': 1.0, '~also-missing': 1.0}, ['bottleneck'])
    other_phase = RegularizerConfig('reg-phase', Unitarity(), None, ['bottleneck'], phase='Train')
    everything = [*regularizers, never, other_phase]
    schedule = TrainingSchedule.from_dopesheet(short_sheet, everything)
    with caplog.at_level('WARNING', logger='ex_color.training.engine'):
        train([0], data, everything, schedule, steps=3)
    messages = [r.getMessage() for r in caplog.records if r.name == 'ex_color.training.engine']
    assert len(messages) == 2
    assert messages[0].startswith("regularizer 'reg-phase' has phase 'Train', but training runs in phase 'train'")
    assert messages[1].startswith(
        "regularizer 'reg-never' never applies: its labels ['no-such-label', 'also-missing'] are never in a batch "
        "(labels drawn: ['desaturated', 'red', 'vibrant'])"
    )


def test_huge_batches_are_predrawn_in_fewer_steps_and_members_still_train_as_if_alone(data, regularizers, schedule):
    big = dataclasses.replace(data, batch_size=8192)
    assert predraw_steps(8192, len(big.label_probabilities)) == 51  # 8 MiB a member, 8192 × (8 + 4·3) bytes a step
    cheap = [r for r in regularizers if r.name != 'reg-separate']  # its [B, B] similarities would dominate
    alone = train([3], big, cheap, schedule, steps=60)  # crosses a pre-draw boundary at step 51
    together = train([5, 3], big, cheap, schedule, steps=60)
    for name, value in parameters(alone.models[0]).items():
        assert torch.equal(value, parameters(together.models[1])[name]), name


def test_a_member_whose_scale_turns_terms_off_trains_as_if_they_were_never_there(data, regularizers, short_sheet):
    # Member 0 keeps every term; member 1 (same seed) keeps only reg-unit and reg-separate, as a control does.
    keep = ['reg-unit', 'reg-separate']
    scale = torch.tensor([[1.0] * len(regularizers), [1.0 if r.name in keep else 0.0 for r in regularizers]])
    schedule = TrainingSchedule.from_dopesheet(short_sheet, regularizers)
    pair = train_ensemble(
        init_models(make_model, [5, 5]),
        [5, 5],
        data,
        regularizers,
        schedule,
        steps=200,
        options=EngineOptions(**QUIET),
        weight_scale=scale,
    )
    kept = [r for r in regularizers if r.name in keep]
    control = train([5], data, kept, TrainingSchedule.from_dopesheet(short_sheet, kept), steps=200).models[0]
    prepared = train([5], data, regularizers, schedule, steps=200).models[0]
    for alone, member in ((prepared, pair.models[0]), (control, pair.models[1])):
        for name, value in parameters(alone).items():
            torch.testing.assert_close(parameters(member)[name], value, atol=1e-4, rtol=0, msg=name)
    # The scale mattered: the two members started alike and ended apart.
    assert (
        parameters(pair.models[0])['encoder.0.weight'] - parameters(pair.models[1])['encoder.0.weight']
    ).abs().max() > 1e-2
    # Member s's rows are metrics.iloc[s::2]; their weights show the scale.
    rows = pair.metrics
    step_100 = rows[rows['step'] == 100]
    assert list(step_100['weight_reg-anchor']) == [pytest.approx(0.05), 0.0]
    assert list(step_100['weight_reg-unit']) == [pytest.approx(0.1), pytest.approx(0.1)]


def test_a_weight_scale_of_the_wrong_shape_or_sign_is_refused(data, regularizers, schedule):
    for scale, message in ((torch.ones(2, 3), r'\[2, 5\]'), (-torch.ones(2, 5), '>= 0')):
        with pytest.raises(ValueError, match=message):
            train_ensemble(
                init_models(make_model, [0, 1]), [0, 1], data, regularizers, schedule, steps=2, weight_scale=scale
            )


def test_checkpoint_for_another_weight_scale_is_refused(tmp_path: Path, data, regularizers, schedule):
    checkpoint = tmp_path / 'checkpoint.pt'
    options = EngineOptions(progress=False, checkpoint_path=checkpoint)
    ones = torch.ones(2, len(regularizers))
    train_ensemble(
        init_models(make_model, [1, 1]),
        [1, 1],
        data,
        regularizers,
        schedule,
        steps=20,
        options=options,
        weight_scale=ones,
    )
    with pytest.raises(ValueError, match='per-member regularizer weights'):
        train_ensemble(
            init_models(make_model, [1, 1]),
            [1, 1],
            data,
            regularizers,
            schedule,
            steps=20,
            options=options,
            weight_scale=ones * 0,
        )
