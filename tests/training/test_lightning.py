"""The seed-faithful Lightning trainer: the seed's training cell, schedule-driven lr and weights."""

from __future__ import annotations

from functools import partial

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from ex_color.labelling import collate_with_generated_labels
from ex_color.seed import set_deterministic_mode
from ex_color.training import TrainingModule

from .conftest import make_model

pytestmark = pytest.mark.usefixtures('one_thread')


class RecordSchedule(L.Callback):
    """Records the optimizer's lr and the module's schedule weights as each step runs."""

    def __init__(self) -> None:
        self.lr: list[float] = []
        self.logged: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.lr.append(trainer.optimizers[0].param_groups[0]['lr'])
        self.logged.append({k: float(v) for k, v in trainer.callback_metrics.items()})


@pytest.fixture
def loader(data) -> DataLoader:
    vibrancies = data.colors.amax(-1) - data.colors.amin(-1)
    dataset = TensorDataset(data.colors, vibrancies)
    return DataLoader(
        dataset,
        batch_size=32,
        sampler=WeightedRandomSampler(data.weights.tolist(), num_samples=len(dataset), replacement=True),
        collate_fn=partial(collate_with_generated_labels, soft=False, red=0.5, vibrant=0.5, desaturated=0.5),
    )


def fit(module: TrainingModule, loader: DataLoader, max_steps: int, *callbacks: L.Callback) -> None:
    trainer = L.Trainer(
        max_steps=max_steps,
        callbacks=list(callbacks),
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        logger=False,
        accelerator='cpu',
    )
    trainer.fit(module, loader)


def test_seed_training_cell_runs_and_follows_the_schedule(short_sheet, regularizers, loader):
    set_deterministic_mode(0)
    model = make_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    module = TrainingModule(model, short_sheet, torch.nn.MSELoss(), regularizers)
    record = RecordSchedule()
    fit(module, loader, len(short_sheet), record)

    assert len(record.lr) == len(short_sheet)
    # Step i trains with the lr the dopesheet gives at t = i.
    for step in (0, 1, 50, 150, 300):
        assert record.lr[step] == pytest.approx(short_sheet[step].props['lr'], rel=1e-12)
    # Every loss term is logged, and the model (not a copy) was trained.
    assert {'train_loss', 'train_recon', 'train_reg-unit', 'train_reg-separate', 'train_reg-anti-anchor'} <= set(
        record.logged[-1]
    )
    assert not torch.equal(before['encoder.0.weight'], model.state_dict()['encoder.0.weight'])
    assert record.logged[-1]['train_recon'] < record.logged[0]['train_recon'] / 5
    # Capture hooks are gone after training: the model is an ordinary module again.
    assert not any(m._forward_hooks for m in model.modules())


def test_regularizer_weight_follows_the_schedule(short_sheet, regularizers, loader):
    """The logged total is recon + Σ weight(t)·term: check it against the weights of the sheet."""
    set_deterministic_mode(0)
    module = TrainingModule(make_model(), short_sheet, torch.nn.MSELoss(), regularizers)
    record = RecordSchedule()
    fit(module, loader, 40, record)
    for step in (3, 20, 39):
        logged = record.logged[step]
        props = short_sheet[step].props
        expected = logged['train_recon'] + sum(
            props[r.name] * logged[f'train_{r.name}'] for r in regularizers if f'train_{r.name}' in logged
        )
        assert logged['train_loss'] == pytest.approx(expected, rel=1e-5)


def test_unknown_layer_is_refused_before_training(short_sheet):
    from ex_color.loss import RegularizerConfig, Unitarity

    bad = RegularizerConfig('reg-unit', Unitarity(), None, ['bottlenek'])
    with pytest.raises(KeyError, match='bottlenek'):
        TrainingModule(make_model(), short_sheet, torch.nn.MSELoss(), [bad])


def test_unmatched_sheet_column_and_missing_weight_are_reported(caplog, regularizers):
    from ex_color.temporal import Dopesheet

    sheet = Dopesheet.from_string('STEP,lr,reg-unit,reg-planar-v\n0,0.01,1,1\n10,0.01,1,1\n')
    with caplog.at_level('WARNING'):
        module = TrainingModule(make_model(), sheet, torch.nn.MSELoss(), regularizers)
    assert "'reg-planar-v' matches no regularizer" in caplog.text
    assert "'reg-anchor' has no dopesheet column" in caplog.text
    assert module.schedule.weights_at(5)['reg-anchor'] == 1.0
