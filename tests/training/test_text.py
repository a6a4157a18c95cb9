"""The text engine: members train as they would alone, resume is exact, regularizers read positions as samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ex_color.data.corpus import Corpus
from ex_color.data.token_labels import TokenLabel
from ex_color.loss import Anchor, AxisAlignedSubspace, RegularizerConfig
from ex_color.model import CharTransformer
from ex_color.training.engine import EngineOptions, TrainingInterrupted, data_generator, init_models
from ex_color.training.schedule import TrainingSchedule
from ex_color.training.text import TextData, next_token_loss, train_text_ensemble

TEXT = ''.join(f'item {i} costs {i * 7 % 100} units. ' for i in range(300))


@pytest.fixture(scope='module')
def data() -> TextData:
    corpus = Corpus.from_text(TEXT, 0.1)
    return TextData(corpus, context=12, batch_size=4, labels={'digit': TokenLabel('0123456789', 'next')})


def make(data: TextData) -> CharTransformer:
    return CharTransformer(
        len(data.corpus.vocab), data.context, layers=1, width=16, heads=2, k_bottleneck=4, logit_scale=8.0
    )


def regularizers() -> list[RegularizerConfig]:
    e0 = torch.tensor([1.0, 0, 0, 0])
    return [
        RegularizerConfig('reg-anchor', Anchor(e0), {'digit': 1.0}, ['bottleneck']),
        RegularizerConfig('reg-away', AxisAlignedSubspace([1, 2, 3]), {'~digit': 1.0}, ['bottleneck']),
    ]


def schedule(steps: int, lr: float = 3e-3) -> TrainingSchedule:
    return TrainingSchedule(
        lr=np.full(steps, lr),
        regularizer_names=('reg-anchor', 'reg-away'),
        weights=np.ones((steps, 2)),
        ignored_properties=(),
    )


def train(data, seeds, steps, **kwargs):
    options = kwargs.pop('options', EngineOptions(progress=False))
    return train_text_ensemble(
        init_models(lambda: make(data), seeds), seeds, data, regularizers(), schedule(steps), options=options, **kwargs
    )


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_training_lowers_the_loss(data):
    result = train(data, [0], 120)
    first, last = result.metrics.iloc[0], result.metrics.iloc[-1]
    assert last['train_recon'] < first['train_recon'] - 0.5
    assert list(result.metrics['step']) == [0, 50, 100, 119]


def test_a_member_trains_as_it_would_alone(data):
    together = train(data, [3, 5], 20)
    alone = train(data, [5], 20)
    assert_same_weights(together.models[1], alone.models[0])
    pd_rows = together.metrics[together.metrics['seed'] == 5].reset_index(drop=True)
    assert pd_rows['train_loss'].tolist() == alone.metrics['train_loss'].tolist()


def test_a_weight_scale_of_zero_is_training_without_the_terms(data):
    scaled = train(data, [1], 15, weight_scale=torch.zeros(1, 2))
    plain = train_text_ensemble(
        init_models(lambda: make(data), [1]),
        [1],
        data,
        [],
        TrainingSchedule(lr=np.full(15, 3e-3), regularizer_names=(), weights=np.ones((15, 0)), ignored_properties=()),
        options=EngineOptions(progress=False),
    )
    assert_same_weights(scaled.models[0], plain.models[0])


def test_resume_is_exact(data, tmp_path):
    whole = train(data, [2], 30)
    checkpoint = tmp_path / 'checkpoint.pt'
    calls = iter(range(1000))
    stop_at_17 = EngineOptions(
        progress=False, checkpoint_path=checkpoint, checkpoint_every=10, should_stop=lambda: next(calls) == 17
    )
    with pytest.raises(TrainingInterrupted):
        train(data, [2], 30, options=stop_at_17)
    resumed = train(data, [2], 30, options=EngineOptions(progress=False, checkpoint_path=checkpoint))
    assert_same_weights(resumed.models[0], whole.models[0])
    assert resumed.metrics['train_loss'].tolist() == whole.metrics['train_loss'].tolist()


def test_terms_read_every_position_as_a_sample(data):
    """The first logged terms, recomputed by hand from the same batch: the anchor over positions whose next
    character is a digit, the subspace term over the others, the cross-entropy over all."""
    result = train(
        data,
        [4],
        1,
    )
    model = init_models(lambda: make(data), [4])[0]
    x, y, labels = data.batch(data_generator(4))
    captured = []
    handle = model.bottleneck.register_forward_hook(lambda m, i, out: captured.append(out))
    with torch.no_grad():
        logits = model(x)
    handle.remove()
    z = captured[0]  # [B, T, 4]
    digit = labels['digit'].bool()
    assert digit.any() and (~digit).any()
    anchor = ((z - torch.tensor([1.0, 0, 0, 0])) ** 2).sum(-1)[digit].mean()
    away = (z[..., 0] ** 2)[~digit].mean()
    row = result.metrics.iloc[0]
    assert row['train_recon'] == pytest.approx(float(next_token_loss(logits, y)), rel=1e-5)
    assert row['train_reg-anchor'] == pytest.approx(float(anchor), rel=1e-5)
    assert row['train_reg-away'] == pytest.approx(float(away), rel=1e-5)
    assert torch.equal(digit, torch.isin(y, data.corpus.encode('0123456789')))
