import warnings

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ex_color.inference import InferenceModule, infer
from ex_color.intervention import BoundedFalloff, InterventionConfig, Suppression
from ex_color.model import CNColorMLP, UnknownLayerError

N = 300

# Lightning's own use of a deprecated torch API; not ours to fix.
pytestmark = pytest.mark.filterwarnings('ignore:.*isinstance\\(treespec, LeafSpec\\).*')


@pytest.fixture
def model() -> CNColorMLP:
    torch.manual_seed(0)
    return CNColorMLP(5, n_nonlinear=2)


@pytest.fixture
def colors() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(10, 30, 3)  # N = 300 rows


def _direct(model: CNColorMLP, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs and bottleneck activations by calling the submodules by hand (no hooks)."""
    model.eval()
    with torch.no_grad():
        latents = model.bottleneck(model.encoder(x.reshape(-1, 3)))
        return model.decoder(latents).clamp(0, 1).reshape(x.shape), latents


def _predict(module: InferenceModule, x: torch.Tensor) -> torch.Tensor:
    """The seed notebook's route: Trainer.predict over a DataLoader of 64-row batches."""
    trainer = L.Trainer(enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=False, logger=False)
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='.*does not have many workers.*')
        batches = trainer.predict(
            module,
            DataLoader(
                TensorDataset(x.reshape(-1, 3)),
                batch_size=64,
                collate_fn=lambda batch: torch.stack([row[0] for row in batch], 0),
            ),
        )
    assert batches is not None
    assert len(batches) == 5  # ceil(300 / 64)
    rows = [item for batch in batches for item in batch]  # as the seed flattens them
    return torch.cat(rows).cpu().reshape(x.shape)


def test_inference_module_matches_direct_call_and_captures_bottleneck(model, colors):
    expected_y, expected_latents = _direct(model, colors)
    module = InferenceModule(model, [], capture_layers=['bottleneck'])

    y = _predict(module, colors)

    torch.testing.assert_close(y, expected_y)
    latents = module.read_captured('bottleneck')
    assert latents.shape == (N, 5)
    assert latents.device.type == 'cpu'
    assert not latents.requires_grad
    torch.testing.assert_close(latents, expected_latents)


def test_inference_module_without_captures_and_tuple_batches(model, colors):
    expected_y, _ = _direct(model, colors)
    module = InferenceModule(model, [])
    torch.testing.assert_close(_predict(module, colors), expected_y)
    x = colors.reshape(-1, 3)[:64]
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(module.predict_step((x,), 0), expected_y.reshape(-1, 3)[:64])
        torch.testing.assert_close(module.predict_step([x], 0), expected_y.reshape(-1, 3)[:64])
        with pytest.raises(ValueError, match='1-tuple'):
            module.predict_step((x, x), 0)


def test_captures_accumulate_in_order_and_clear(model):
    module = InferenceModule(model, [], capture_layers=['encoder', 'bottleneck'])
    module.eval()
    torch.manual_seed(2)
    first, second = torch.rand(4, 3), torch.rand(2, 5, 3)  # a [..., 3] batch is flattened to [N, D]
    with torch.no_grad():
        module(first)
        module(second)
        expected = model.bottleneck(model.encoder(torch.cat([first, second.reshape(-1, 3)])))
    torch.testing.assert_close(module.read_captured('bottleneck'), expected)
    assert module.read_captured('encoder').shape == (14, 5)
    module.clear_captured()
    with pytest.raises(ValueError, match='nothing captured'):
        module.read_captured('bottleneck')


def test_read_captured_unknown_layer(model):
    module = InferenceModule(model, [], capture_layers=['bottleneck'])
    with pytest.raises(KeyError, match=r"'decoder\.0' was not captured; captured layers: \['bottleneck'\]"):
        module.read_captured('decoder.0')


def test_bad_layer_names_fail_at_construction(model):
    with pytest.raises(UnknownLayerError, match='valid layers'):
        InferenceModule(model, [], capture_layers=['latent'])
    with pytest.raises(UnknownLayerError, match='valid layers'):
        InferenceModule(model, [InterventionConfig(torch.neg, ['latent'])])


def test_infer_matches_inference_module(model, colors):
    module = InferenceModule(model, [], capture_layers=['bottleneck', 'decoder.0'])
    y_module = _predict(module, colors)

    result = infer(model, colors, capture_layers=['bottleneck', 'decoder.0'])

    assert result.outputs.shape == colors.shape
    torch.testing.assert_close(result.outputs, y_module)
    assert set(result.captured) == {'bottleneck', 'decoder.0'}
    torch.testing.assert_close(result.captured['bottleneck'], module.read_captured('bottleneck'))
    torch.testing.assert_close(result.captured['decoder.0'], module.read_captured('decoder.0'))
    assert result.captured['decoder.0'].shape == (N, 16)


def test_infer_chunking_gives_identical_results(model, colors):
    whole = infer(model, colors, capture_layers=['bottleneck'])
    chunked = infer(model, colors, capture_layers=['bottleneck'], batch_size=7)  # 43 chunks, last of 6 rows
    torch.testing.assert_close(chunked.outputs, whole.outputs)
    torch.testing.assert_close(chunked.captured['bottleneck'], whole.captured['bottleneck'])


def test_infer_accepts_numpy_and_restores_training_mode(model):
    with torch.no_grad():
        model.decoder[-1].bias.fill_(5.0)  # unclamped outputs would exceed 1
    model.train()
    x = np.random.default_rng(0).random((2, 3, 3))  # float64
    result = infer(model, x)
    assert result.outputs.shape == (2, 3, 3)
    assert result.outputs.dtype == torch.float32
    assert result.outputs.max() <= 1.0  # eval mode during inference
    assert model.training and all(m.training for m in model.modules())
    torch.testing.assert_close(result.outputs, _direct(model, torch.as_tensor(x, dtype=torch.float32))[0])
    result.outputs[0, 0, 0] = 0.5  # an ordinary tensor, not a read-only inference tensor


def test_infer_with_suppression_removes_positive_dim_0(model, colors):
    with torch.no_grad():
        # Centre the pre-norm dim 0 on the data, so about half the rows are aligned with v.
        model.encoder[-1].bias[0] -= model.encoder(colors)[..., 0].median()
    suppress = Suppression([1.0, 0.0, 0.0, 0.0, 0.0], BoundedFalloff(0, 1, 0))
    intervention = InterventionConfig(suppress, ['bottleneck'])

    plain = infer(model, colors, capture_layers=['bottleneck'])
    result = infer(model, colors, [intervention], capture_layers=['bottleneck'])

    before, after = plain.captured['bottleneck'], result.captured['bottleneck']
    assert (before[:, 0] > 0).any() and (before[:, 0] < 0).any()  # the test data exercises both branches
    # Suppression with a step falloff: a − (a·v)v wherever a·v > 0, i.e. dim 0 → 0, else unchanged.
    assert (after[:, 0] <= 0).all()
    expected = before.clone()
    expected[before[:, 0] > 0, 0] = 0.0
    torch.testing.assert_close(after, expected)
    model.eval()
    with torch.no_grad():
        expected_y = model.decoder(expected).clamp(0, 1).reshape(colors.shape)
    torch.testing.assert_close(result.outputs, expected_y)
    # The intervened InferenceModule route agrees.
    module = InferenceModule(model, [intervention], capture_layers=['bottleneck'])
    torch.testing.assert_close(_predict(module, colors), result.outputs)
    torch.testing.assert_close(module.read_captured('bottleneck'), after)


def test_infer_empty_input(model):
    result = infer(model, torch.zeros(0, 3), capture_layers=['bottleneck'])
    assert result.outputs.shape == (0, 3)
    assert result.captured['bottleneck'].shape == (0, 5)


@pytest.mark.parametrize('batch_size', [0, -5, 2.5])
def test_infer_rejects_bad_batch_size(model, batch_size):
    with pytest.raises(ValueError, match='batch_size'):
        infer(model, torch.zeros(4, 3), batch_size=batch_size)
