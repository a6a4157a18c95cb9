"""TrainingModule on a model of your own: any objective, tuple/dict outputs, checked batches, loud failures."""

from __future__ import annotations

import logging
import re

import lightning as L
import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ex_color.loss import Anchor, AngularAnchor, AntiAnchor, RegularizerConfig, RegularizerCoverageError, Unitarity
from ex_color.model import L2Norm
from ex_color.temporal import Dopesheet
from ex_color.training import TrainingModule

pytestmark = pytest.mark.usefixtures('one_thread')

N_CLASSES = 5
N_FEATURES = 8
K = 4  # bottleneck width
E0 = torch.eye(K)[0]


class Classifier(nn.Module):
    """An MLP with a unit-norm bottleneck; returns `(logits [B, classes], z [B, K])`."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(N_FEATURES, 32), nn.GELU(), nn.Linear(32, K))
        self.bottleneck = L2Norm()
        self.head = nn.Linear(K, N_CLASSES)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = self.bottleneck(self.encoder(x))
        return self.head(z), z


class Blobs(Dataset):
    """`(x [F], y [], {'c<k>': 0/1 for each class k})` per example: batches collate to `(x, y, labels)`."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x = torch.tensor(x, dtype=torch.float32)
        self.y = torch.tensor(y, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        labels = {f'c{k}': (self.y[i] == k).float() for k in range(N_CLASSES)}
        return self.x[i], self.y[i], labels


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    centers = np.random.default_rng(0).normal(scale=4.0, size=(N_CLASSES, N_FEATURES))  # same classes for every split
    x, y = make_blobs(n_samples=n, centers=centers, cluster_std=1.0, random_state=seed)
    return x, y


def sheet(steps: int, lr: float = 0.01, **weights: float) -> Dopesheet:
    """A constant schedule of `steps` steps."""
    header = ','.join(['STEP', 'lr', *weights])
    row = ','.join(str(v) for v in (lr, *weights.values()))
    last = f'{steps - 1},{row}\n' if steps > 1 else ''
    return Dopesheet.from_string(f'{header}\n0,{row}\n{last}')


def trainer(**kwargs) -> L.Trainer:
    options = {
        'enable_checkpointing': False,
        'enable_model_summary': False,
        'enable_progress_bar': False,
        'logger': False,
        'accelerator': 'cpu',
    }
    return L.Trainer(**(options | kwargs))


def anchored_classifier_regularizers() -> list[RegularizerConfig]:
    return [
        RegularizerConfig('reg-anchor', AngularAnchor(E0), {'c0': 1.0}, ['bottleneck']),
        # Everything that is not class 0 is pushed out of e₀'s hemisphere: a complement label.
        RegularizerConfig('reg-anti-anchor', AntiAnchor(E0), {'~c0': 1.0}, ['bottleneck']),
    ]


# --- acceptance: a classifier with one class anchored to latent dim 0 ---


def test_a_classifier_with_an_anchored_class():
    torch.manual_seed(0)
    dopesheet = sheet(301, lr=0.01, **{'reg-anchor': 1.0, 'reg-anti-anchor': 1.0})
    model = Classifier()
    module = TrainingModule(model, dopesheet, nn.CrossEntropyLoss(), anchored_classifier_regularizers(), output=0)
    loader = DataLoader(Blobs(*blobs(1000, seed=1)), batch_size=64, shuffle=True)
    trainer(max_steps=len(dopesheet)).fit(module, loader)

    x_test, y_test = blobs(500, seed=2)
    model.eval()
    with torch.no_grad():
        logits, z = model(torch.tensor(x_test, dtype=torch.float32))
    y_test = torch.tensor(y_test)
    accuracy = float((logits.argmax(-1) == y_test).float().mean())
    cosine = z @ E0  # z is unit-norm
    assert accuracy > 0.95
    assert float(cosine[y_test == 0].min()) >= 0.9  # every held-out sample of the anchored class
    assert float(cosine[y_test != 0].max()) < 0.9  # and no sample of another class is there
    assert float(cosine[y_test != 0].mean()) < 0.25  # the others are pushed out of e₀'s hemisphere


def test_without_the_regularizers_class_0_is_not_at_the_anchor():
    """The control for the acceptance test: the same training, no regularizers, so the test can fail."""
    torch.manual_seed(0)
    dopesheet = sheet(301, lr=0.01)
    model = Classifier()
    module = TrainingModule(model, dopesheet, nn.CrossEntropyLoss(), [], output=0)
    trainer(max_steps=len(dopesheet)).fit(module, DataLoader(Blobs(*blobs(1000, seed=1)), batch_size=64))
    with torch.no_grad():
        x_test, y_test = blobs(500, seed=2)
        _, z = model(torch.tensor(x_test, dtype=torch.float32))
    assert float((z[torch.tensor(y_test) == 0] @ E0).min()) < 0.9


# --- batches and outputs ---


class DictModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(N_FEATURES, K)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        z = self.encoder(x)
        return {'latent': z, 'reconstruction': z @ self.encoder.weight}


def fit_one(module: TrainingModule, batch: object, steps: int = 1, **kwargs) -> None:
    """Train on the same batch `steps` times (a list of batches is a valid DataLoader stand-in)."""
    trainer(max_steps=steps, **kwargs).fit(module, DataLoader([batch] * steps, batch_size=None))


def x_batch(b: int = 6) -> Tensor:
    return torch.randn(b, N_FEATURES, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize('output', ['reconstruction', lambda out: out['reconstruction']])
def test_a_dict_output_is_selected_by_key_or_callable(output):
    """Reconstruction through the selected output: the objective sees the same tensor the model returned."""
    seen: list[tuple[Tensor, Tensor]] = []

    def objective(output: Tensor, target: Tensor) -> Tensor:
        seen.append((output.detach().clone(), target))
        return (output - target).square().mean()

    model = DictModel()
    x = x_batch()
    expected = model(x)['reconstruction'].detach()
    module = TrainingModule(model, sheet(1), objective, [], output=output, label_check_steps=0)
    fit_one(module, (x, {}))
    assert torch.equal(seen[0][0], expected)
    assert seen[0][1] is x or torch.equal(seen[0][1], x)  # (x, labels): the target is x


def test_a_tuple_or_dict_output_without_a_selector_is_one_line():
    module = TrainingModule(Classifier(), sheet(2), nn.CrossEntropyLoss(), [])
    batch = (x_batch(), torch.zeros(6, dtype=torch.long), {})
    with pytest.raises(TypeError, match=r'^the model returned a tuple of 2 \(Tensor, Tensor\); pass output=') as e:
        fit_one(module, batch)
    assert '\n' not in str(e.value)
    with pytest.raises(TypeError, match=r'output=2 needs a tuple or list with that index'):
        fit_one(TrainingModule(Classifier(), sheet(2), nn.CrossEntropyLoss(), [], output=2), batch)
    with pytest.raises(TypeError, match=r"output='logits' needs a dict with that key; .*keys \['latent', 're"):
        fit_one(TrainingModule(DictModel(), sheet(2), nn.MSELoss(), [], output='logits'), (x_batch(), {}))


def test_the_target_of_a_three_element_batch_is_y():
    targets: list[Tensor] = []

    def objective(logits: Tensor, y: Tensor) -> Tensor:
        targets.append(y)
        return nn.functional.cross_entropy(logits, y)

    y = torch.tensor([0, 1, 2, 3, 4, 0])
    fit_one(TrainingModule(Classifier(), sheet(1), objective, [], output=0), (x_batch(), y, {}))
    assert torch.equal(targets[0], y)


EXPECTED_FORMAT = r'\(x, \{name: \[B\] tensor\}\) or \(x, y, \{name: \[B\] tensor\}\)'


@pytest.mark.parametrize(
    ('batch', 'error', 'says'),
    [
        # A TensorDataset (x, y): labels missing (formerly "'Tensor' object has no attribute 'get'").
        (
            (x_batch(), torch.zeros(6)),
            ValueError,
            r'^a batch is \(x, y\) of tensors \[6, 8\] and \[6\], without labels',
        ),
        # Labels [B, 1] used to broadcast silently against [B].
        ((x_batch(), {'c0': torch.zeros(6, 1)}), ValueError, r"^label 'c0' has shape \[6, 1\]; expected \[B\] = \[6\]"),
        ((x_batch(), {'c0': torch.zeros(5)}), ValueError, r"^label 'c0' has shape \[5\]; expected \[B\] = \[6\]"),
        ((x_batch(), [torch.zeros(6)]), TypeError, r'^the labels \(batch\[1\]\) are a list of 1'),
        ((x_batch(), {'c0': [0, 1]}), TypeError, r"^label 'c0' is a list"),
        ((x_batch(), {'~c0': torch.zeros(6)}), ValueError, r"^label name '~c0' in the batch"),
        ((x_batch(), {}, {}, {}), TypeError, r'^a batch is a (tuple|list) of 4'),
        (x_batch(), TypeError, r'^a batch is a tensor \[6, 8\]'),
        # (x, None, labels): a missing target used to raise AttributeError deep in the loss.
        ((x_batch(), None, {'c0': torch.zeros(6)}), TypeError, r'^batch\[1\] \(y\) is None'),
    ],
)
def test_a_batch_in_the_wrong_format_is_one_line_stating_the_format(batch, error, says):
    module = TrainingModule(DictModel(), sheet(1), nn.MSELoss(), [], output='reconstruction')
    with pytest.raises(error, match=says) as caught:
        fit_one(module, batch)
    message = str(caught.value)
    assert '\n' not in message
    assert re.search(EXPECTED_FORMAT, message)


def test_a_tensor_dataset_of_x_and_y_is_refused_at_the_first_step():
    dataset = TensorDataset(*map(torch.as_tensor, blobs(32, seed=0)))
    module = TrainingModule(Classifier(), sheet(5), nn.CrossEntropyLoss(), anchored_classifier_regularizers(), output=0)
    with pytest.raises(ValueError, match=r'without labels; expected \(x, \{name'):
        trainer(max_steps=5).fit(module, DataLoader(dataset, batch_size=8))


def test_a_non_scalar_objective_is_refused_and_leaves_the_model_unhooked():
    model = Classifier()
    regularizers = [RegularizerConfig('reg-unit', Unitarity(), None, ['encoder'])]
    module = TrainingModule(model, sheet(1), nn.CrossEntropyLoss(reduction='none'), regularizers, output=0)
    with pytest.raises(ValueError, match=r'^the objective returned \[6\]; expected a scalar'):
        fit_one(module, labelled_batch())
    assert not any(m._forward_hooks for m in model.modules())


# --- loud failures: regularizers that never apply, a step budget that is not the schedule's ---


def mislabelled() -> list[RegularizerConfig]:
    return [
        RegularizerConfig('reg-anchor', AngularAnchor(E0), {'cluster2': 1.0}, ['bottleneck']),
        RegularizerConfig('reg-unit', Unitarity(), None, ['encoder']),
    ]


def labelled_batch() -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    y = torch.tensor([0, 1, 2, 3, 4, 2])
    return x_batch(), y, {'c2': (y == 2).float(), 'c3': (y == 3).float()}


def test_labels_that_never_appear_are_a_warning_naming_the_regularizer(caplog):
    module = TrainingModule(Classifier(), sheet(20), nn.CrossEntropyLoss(), mislabelled(), output=0)
    with caplog.at_level(logging.WARNING, logger='ex_color'):
        fit_one(module, labelled_batch(), steps=20)
    problems = [r.getMessage() for r in caplog.records if 'matched no label' in r.getMessage()]
    assert problems == [
        "regularizer 'reg-anchor' matched no label in the first 20 steps: its labels ['cluster2'] never appeared; "
        "batches carried ['c2', 'c3']"
    ]


def test_the_label_check_covers_the_first_n_steps_only(caplog):
    """A label that first appears at step 3 satisfies a 5-step check but not a 3-step one."""
    batches = [labelled_batch() for _ in range(5)]
    for batch in batches[:3]:
        batch[2].pop('c2')
    regularizers = [RegularizerConfig('reg-anchor', AngularAnchor(E0), {'c2': 1.0}, ['bottleneck'])]
    for steps, warned in ((3, True), (5, False)):
        caplog.clear()
        module = TrainingModule(
            Classifier(), sheet(5), nn.CrossEntropyLoss(), regularizers, output=0, label_check_steps=steps
        )
        with caplog.at_level(logging.WARNING, logger='ex_color'):
            trainer(max_steps=5).fit(module, DataLoader(batches, batch_size=None))
        assert ('matched no label in the first 3 steps' in caplog.text) is warned


def test_strict_makes_the_label_check_an_error():
    module = TrainingModule(Classifier(), sheet(20), nn.CrossEntropyLoss(), mislabelled(), output=0, strict=True)
    with pytest.raises(RegularizerCoverageError, match=r"^regularizer 'reg-anchor' matched no label in the first 20"):
        fit_one(module, labelled_batch(), steps=20)


def test_labels_that_appear_but_weigh_nothing_are_reported(caplog):
    regularizers = [RegularizerConfig('reg-anchor', AngularAnchor(E0), {'c3': 1.0}, ['bottleneck'])]
    x, y, labels = labelled_batch()
    labels['c3'] = torch.zeros(6)
    module = TrainingModule(Classifier(), sheet(4), nn.CrossEntropyLoss(), regularizers, output=0)
    with caplog.at_level(logging.WARNING, logger='ex_color'):
        fit_one(module, (x, y, labels), steps=4)
    assert "regularizer 'reg-anchor' weighed every sample 0 in the first 4 steps" in caplog.text


def test_a_phase_training_never_uses_is_reported_at_construction(caplog):
    regularizers = [RegularizerConfig('reg-unit', Unitarity(), None, ['encoder'], phase='Train')]
    with caplog.at_level(logging.WARNING, logger='ex_color'):
        TrainingModule(Classifier(), sheet(4), nn.CrossEntropyLoss(), regularizers, output=0)
    assert "regularizer 'reg-unit' has phase 'Train', but training runs in phase 'train'" in caplog.text
    with pytest.raises(RegularizerCoverageError, match="regularizer 'reg-unit' has phase 'Train'"):
        TrainingModule(Classifier(), sheet(4), nn.CrossEntropyLoss(), regularizers, output=0, strict=True)


def test_matching_labels_and_phases_report_nothing(caplog):
    regularizers = [RegularizerConfig('reg-anchor', AngularAnchor(E0), {'c2': 1.0, '~c3': 0.5}, ['bottleneck'])]
    dopesheet = sheet(6, **{'reg-anchor': 1.0})
    module = TrainingModule(Classifier(), dopesheet, nn.CrossEntropyLoss(), regularizers, output=0, strict=True)
    with caplog.at_level(logging.WARNING, logger='ex_color'):
        fit_one(module, labelled_batch(), steps=6)
    assert not [r for r in caplog.records if r.name.startswith('ex_color')]


def test_a_step_budget_longer_than_the_dopesheet_is_a_warning(caplog):
    """Trainer(max_epochs=2) over 3 batches per epoch runs 6 steps of a 4-step dopesheet, holding its last row."""
    module = TrainingModule(Classifier(), sheet(4, lr=0.02), nn.CrossEntropyLoss(), [], output=0)
    with caplog.at_level(logging.WARNING, logger='ex_color'):
        trainer(max_epochs=2).fit(module, DataLoader([labelled_batch()] * 3, batch_size=None))
    assert module.global_step == 6
    budget = [r.getMessage() for r in caplog.records if 'the trainer will run' in r.getMessage()]
    assert len(budget) == 1
    assert budget[0].startswith(
        'the trainer will run 6 steps (max_epochs=2 × 3 batches per epoch, max_steps unset) but the dopesheet has 4 '
        '(steps 0–3): steps 4 onward hold its last row (lr=0.02)'
    )


def test_a_step_budget_shorter_than_the_dopesheet_is_a_warning_unless_planned(caplog):
    with caplog.at_level(logging.WARNING, logger='ex_color'):
        fit_one(TrainingModule(Classifier(), sheet(10), nn.CrossEntropyLoss(), [], output=0), labelled_batch(), 3)
    assert 'the trainer will run 3 steps (Trainer(max_steps=3)) but the dopesheet has 10' in caplog.text
    assert 'steps 3–9 never run' in caplog.text
    caplog.clear()
    module = TrainingModule(Classifier(), sheet(10), nn.CrossEntropyLoss(), [], output=0, planned_steps=3)
    with caplog.at_level(logging.WARNING, logger='ex_color'):
        fit_one(module, labelled_batch(), 3)
    assert 'the trainer will run' not in caplog.text


@pytest.mark.parametrize('persistent', [False, True])
def test_loader_workers_restarted_every_epoch_of_a_long_run_are_a_warning(caplog, persistent):
    """The seed's loader restarts its workers each 16-batch epoch: with spawn, minutes of re-imported torch."""
    module = TrainingModule(Classifier(), sheet(12), nn.CrossEntropyLoss(), [], output=0)
    loader = DataLoader([labelled_batch()], batch_size=None, num_workers=1, persistent_workers=persistent)
    with caplog.at_level(logging.WARNING, logger='ex_color'):
        trainer(max_steps=12).fit(module, loader)
    restarts = [r.getMessage() for r in caplog.records if 'worker processes afresh' in r.getMessage()]
    if persistent:
        assert restarts == []
    else:
        assert restarts == [
            'the DataLoader starts its 1 worker processes afresh for each of about 12 epochs (1 batches each); pass '
            'persistent_workers=True, or num_workers=0 for data this small (with the spawn or forkserver start '
            'method each restart imports torch again, which can take longer than the training)'
        ]


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, kernel_size=3, padding=1)
        self.head = nn.Linear(3, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.conv(x).mean(dim=(-2, -1)))


class LastMetrics(L.Callback):
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}


def test_a_regularizer_on_a_conv_map_by_hand():
    """feature_dim=1 on a conv layer's [B, C, H, W]: the logged term is the mean over samples and positions of
    ‖x[b, :, h, w] − p‖², worked out with loops over the activations of the untrained model."""
    torch.manual_seed(0)
    model = ConvNet()
    images = torch.randn(4, 1, 5, 5)
    p = torch.tensor([0.5, -0.5, 1.0])
    regularizers = [RegularizerConfig('reg-anchor', Anchor(p), None, ['conv'], feature_dim=1)]
    with torch.no_grad():
        conv = model.conv(images)  # [B, C, H, W], before the one step changes the weights
    expected = sum(
        sum((float(conv[b, c, h, w]) - float(p[c])) ** 2 for c in range(3))
        for b in range(4)
        for h in range(5)
        for w in range(5)
    ) / (4 * 5 * 5)
    module = TrainingModule(model, sheet(1, **{'reg-anchor': 1.0}), nn.CrossEntropyLoss(), regularizers)
    record = LastMetrics()
    fit_one(module, (images, torch.tensor([0, 1, 0, 1]), {}), callbacks=[record])
    assert record.metrics['train_reg-anchor'] == pytest.approx(expected, rel=1e-5)


# --- layers a regularizer cannot read: run twice, not [B, D], not one tensor ---


class Siamese(nn.Module):
    """The same bottleneck module runs twice per forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(3, 4)
        self.bottleneck = L2Norm()
        self.dec = nn.Linear(8, 3)

    def forward(self, x: Tensor) -> Tensor:
        a = self.bottleneck(self.enc(x))
        b = self.bottleneck(self.enc(1 - x))
        return self.dec(torch.cat([a, b], -1))


def test_a_layer_that_runs_twice_per_forward_is_refused_at_the_first_step():
    model = Siamese()
    regularizers = [RegularizerConfig('r', AngularAnchor(E0), {'red': 1.0}, ['bottleneck'])]
    module = TrainingModule(model, sheet(3), nn.MSELoss(), regularizers)
    batch = (torch.rand(6, 3), {'red': torch.ones(6)})
    with pytest.raises(ValueError, match=r"^layer 'bottleneck' ran 2 times in one forward pass; .*its own module$"):
        fit_one(module, batch, steps=3)
    assert module.global_step == 0
    assert not any(m._forward_hooks for m in model.modules())


class Sequence3D(nn.Module):
    """`[B, T, F]` → a `[B, T, K]` latent (`latent`) → `[B, T, F]`; `lstm` outputs a tuple."""

    def __init__(self) -> None:
        super().__init__()
        self.latent = nn.Linear(N_FEATURES, K)
        self.lstm = nn.LSTM(K, K, batch_first=True)
        self.out = nn.Linear(K, N_FEATURES)

    def forward(self, x: Tensor) -> Tensor:
        h, _ = self.lstm(self.latent(x))
        return self.out(h)


class Conv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x).mean(dim=1, keepdim=True)  # [B, 1, H, W], like x


@pytest.mark.parametrize(
    ('model', 'x', 'layer', 'says'),
    [
        (Sequence3D(), torch.randn(4, 7, N_FEATURES), 'latent', r'\[4, 7, 4\], but feature_dim=-1 .*expects \[B, D\]'),
        # T == B with labels used to train silently, taking the batch for an ensemble dim.
        (Sequence3D(), torch.randn(6, 6, N_FEATURES), 'latent', r'\[6, 6, 4\], but feature_dim=-1'),
        (Conv(), torch.randn(6, 1, 5, 5), 'conv', r'\[6, 3, 5, 5\], but feature_dim=-1'),
    ],
)
def test_a_layer_not_b_by_d_with_the_default_feature_dim_is_one_line_naming_feature_dim(model, x, layer, says):
    regularizers = [RegularizerConfig('r', Unitarity(), {'c0': 1.0}, [layer])]
    module = TrainingModule(model, sheet(1), nn.MSELoss(), regularizers)
    with pytest.raises(ValueError, match=rf"^regularizer 'r': layer '{layer}' outputs {says}") as caught:
        fit_one(module, (x, {'c0': torch.ones(x.shape[0])}))
    message = str(caught.value)
    assert '\n' not in message
    assert 'pass feature_dim=' in message and '2 for [B, T, D], 1 for [B, C, H, W]' in message
    assert not any(m._forward_hooks for m in model.modules())


def test_the_same_layers_train_with_feature_dim():
    for model, x, layer, feature_dim in (
        (Sequence3D(), torch.randn(6, 6, N_FEATURES), 'latent', 2),
        (Conv(), torch.randn(6, 1, 5, 5), 'conv', 1),
    ):
        regularizers = [RegularizerConfig('r', Unitarity(), {'c0': 1.0}, [layer], feature_dim=feature_dim)]
        module = TrainingModule(model, sheet(1), nn.MSELoss(), regularizers)
        fit_one(module, (x, {'c0': torch.ones(x.shape[0])}))
        assert module.global_step == 1


def test_a_tuple_output_layer_is_one_line_naming_the_module_to_use():
    regularizers = [RegularizerConfig('r', Unitarity(), None, ['lstm'])]
    module = TrainingModule(Sequence3D(), sheet(1), nn.MSELoss(), regularizers)
    with pytest.raises(
        TypeError,
        match=r"^regularizer 'r': layer 'lstm' outputs a tuple of 2 \(Tensor, tuple\); .*"
        r'must output one tensor: name the module that computes the part you mean',
    ) as caught:
        fit_one(module, (torch.randn(4, 7, N_FEATURES), {}))
    assert '\n' not in str(caught.value)


def test_a_layer_whose_first_dim_is_not_the_batch_is_refused():
    class Transposed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.latent = nn.Linear(N_FEATURES, K)

        def forward(self, x: Tensor) -> Tensor:
            return self.latent(x.transpose(0, 1))  # [T, B, K]

    regularizers = [RegularizerConfig('r', Unitarity(), None, ['latent'], feature_dim=-1)]
    module = TrainingModule(Transposed(), sheet(1), lambda out, x: out.mean(), regularizers)
    with pytest.raises(
        ValueError,
        match=r"^regularizer 'r': layer 'latent' outputs a tensor \[7, 4, 4\]; expected "
        r'the batch first, \[B, \.\.\.\] with B = 4',
    ):
        fit_one(module, (torch.randn(4, 7, N_FEATURES), {}))


# --- constructor arguments ---


def test_planned_steps_must_be_at_least_one():
    with pytest.raises(ValueError, match=r'^planned_steps must be a whole number >= 1, got 0$'):
        TrainingModule(Classifier(), sheet(4), nn.CrossEntropyLoss(), [], output=0, planned_steps=0)
    TrainingModule(Classifier(), sheet(4), nn.CrossEntropyLoss(), [], output=0, planned_steps=1)


def test_duplicate_regularizer_names_are_refused_at_construction():
    regularizers = [
        RegularizerConfig('reg-unit', Unitarity(), None, ['encoder']),
        RegularizerConfig('reg-unit', Unitarity(), None, ['bottleneck']),
    ]
    with pytest.raises(ValueError, match=r"^regularizer names must be unique .*repeated: \['reg-unit'\]$"):
        TrainingModule(Classifier(), sheet(4), nn.CrossEntropyLoss(), regularizers, output=0)


def test_complement_labels_that_weigh_nothing_say_every_sample_carried_the_label(caplog):
    regularizers = [RegularizerConfig('reg-away', AngularAnchor(E0), {'~c3': 1.0}, ['bottleneck'])]
    x, y, _ = labelled_batch()
    module = TrainingModule(Classifier(), sheet(2), nn.CrossEntropyLoss(), regularizers, output=0)
    with caplog.at_level(logging.WARNING, logger='ex_color'):
        fit_one(module, (x, y, {'c3': torch.ones(6)}), steps=2)
    assert (
        "regularizer 'reg-away' weighed every sample 0 in the first 2 steps: every sample carried 'c3', "
        "so '~c3' is 0 everywhere"
    ) in caplog.text
    assert 'no sample carried' not in caplog.text


def test_a_regularizer_named_loss_is_refused_at_construction():
    """Its term would be reported as train_loss, the total's name: Lightning used to fail at the first step."""
    with pytest.raises(ValueError, match=r"^RegularizerConfig name 'loss' is reserved for the total loss"):
        RegularizerConfig('loss', Unitarity(), None, ['encoder'])
