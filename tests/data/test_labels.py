"""Label probabilities, Bernoulli draws and the DataLoader collate function."""

import pickle
from functools import partial

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from ex_color.data.color_cube import ColorCube
from ex_color.data.cube_sampler import vibrancy
from ex_color.data.cyclic import arange_cyclic
from ex_color.data.labels import collate_with_generated_labels, label_probabilities, sample_labels

COLORS = torch.tensor(
    [
        [1.0, 0.0, 0.0],  # red
        [1.0, 0.5, 0.0],  # orange
        [0.5, 0.5, 0.5],  # grey
        [0.2, 0.4, 0.6],
    ],
    dtype=torch.float64,
)
# red:    redness 1 → 1¹⁰·.5 = .5;          vibrancy 1 → .5;            desaturated (1-1)¹⁰ → 0
# orange: redness 1·(1-.25) = .75 → .75¹⁰·.5; vibrancy 1 → .5;          desaturated 0
# grey:   redness .5·(1-.5) = .25 → .25¹⁰·.5; vibrancy 0 → 0;           desaturated 1¹⁰·.5 = .5
# 4th:    redness .2·(1-.2-.3) = .1 → 1e-10·.5; vibrancy .6-.2 = .4 → .4¹⁰⁰·.5; desaturated .6¹⁰·.5
EXPECTED = {
    'red': [0.5, 0.75**10 * 0.5, 0.25**10 * 0.5, 0.1**10 * 0.5],
    'vibrant': [0.5, 0.5, 0.0, 0.4**100 * 0.5],
    'desaturated': [0.0, 0.0, 0.5, 0.6**10 * 0.5],
}


def test_label_probabilities_by_hand():
    probabilities = label_probabilities(COLORS)
    assert list(probabilities) == ['red', 'vibrant', 'desaturated']
    for name, expected in EXPECTED.items():
        torch.testing.assert_close(probabilities[name], torch.tensor(expected, dtype=torch.float64), rtol=1e-9, atol=0)


def test_label_scales_and_omitted_labels():
    probabilities = label_probabilities(COLORS, red=1.0, vibrant=None, desaturated=0)
    assert list(probabilities) == ['red']
    # red with scale 1: 1, .75¹⁰, .25¹⁰, .1¹⁰
    torch.testing.assert_close(
        probabilities['red'], torch.tensor([1.0, 0.75**10, 0.25**10, 0.1**10], dtype=torch.float64)
    )


def test_given_vibrancies_are_used():
    # red colour but told its vibrancy is .5: vibrant .5¹⁰⁰·.5, desaturated .5¹⁰·.5 = 1/2048
    probabilities = label_probabilities(COLORS[:1], torch.tensor([0.5], dtype=torch.float64))
    torch.testing.assert_close(probabilities['vibrant'], torch.tensor([0.5**101], dtype=torch.float64))
    torch.testing.assert_close(probabilities['desaturated'], torch.tensor([1 / 2048], dtype=torch.float64))


def test_label_probabilities_keep_leading_shape():
    probabilities = label_probabilities(COLORS.reshape(2, 2, 3))
    assert all(p.shape == (2, 2) for p in probabilities.values())


def test_mismatched_vibrancies_are_an_error():
    with pytest.raises(ValueError, match='vibrancies'):
        label_probabilities(COLORS, torch.zeros(3))


def test_sample_labels_are_zero_or_one_with_the_right_mean():
    generator = torch.Generator().manual_seed(0)
    probabilities = {'a': torch.full((20_000,), 0.3), 'never': torch.zeros(5), 'always': torch.ones(5)}
    labels = sample_labels(probabilities, generator)
    assert set(labels) == {'a', 'never', 'always'}
    assert labels['a'].shape == (20_000,)
    assert set(labels['a'].unique().tolist()) == {0.0, 1.0}
    # std of the mean is sqrt(.3·.7/20000) ≈ .0032; allow ~5σ
    assert labels['a'].mean().item() == pytest.approx(0.3, abs=0.016)
    assert labels['never'].sum() == 0
    assert labels['always'].sum() == 5


def _batch(colors: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Items as TensorDataset(colours, vibrancies) yields them."""
    dataset = TensorDataset(colors, vibrancy(colors))
    return [dataset[i] for i in range(len(dataset))]


def test_collate_soft_returns_probabilities():
    colors, labels = collate_with_generated_labels(_batch(COLORS), soft=True)
    torch.testing.assert_close(colors, COLORS)
    assert list(labels) == ['red', 'vibrant', 'desaturated']
    for name, expected in EXPECTED.items():
        torch.testing.assert_close(labels[name], torch.tensor(expected, dtype=torch.float64), rtol=1e-9, atol=0)


def test_collate_without_vibrancies_computes_them():
    _, from_pairs = collate_with_generated_labels(_batch(COLORS))
    _, from_colors = collate_with_generated_labels([(c,) for c in COLORS])
    for name in from_pairs:
        torch.testing.assert_close(from_colors[name], from_pairs[name])


def test_collate_hard_draws_labels_with_the_right_mean():
    # 4000 copies of red and grey: red label p = .5 for red, ≈ 5e-7 for grey; desaturated 0 for red, .5 for grey
    colors = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5]]).repeat(2000, 1)
    torch.manual_seed(0)
    _, labels = collate_with_generated_labels(_batch(colors), soft=False, red=0.5, vibrant=0.5, desaturated=0.5)
    for label in labels.values():
        assert label.shape == (4000,)
        assert set(label.unique().tolist()) <= {0.0, 1.0}
    is_red = torch.arange(4000) % 2 == 0
    # std of each mean: sqrt(.25/2000) ≈ .011; allow ~5σ
    assert labels['red'][is_red].mean().item() == pytest.approx(0.5, abs=0.06)
    assert labels['desaturated'][~is_red].mean().item() == pytest.approx(0.5, abs=0.06)
    assert labels['desaturated'][is_red].sum() == 0
    assert labels['vibrant'][~is_red].sum() == 0

    # seeded global RNG → the same draw again
    torch.manual_seed(0)
    _, again = collate_with_generated_labels(_batch(colors), soft=False)
    for name in labels:
        torch.testing.assert_close(again[name], labels[name])


def test_collate_is_picklable_for_worker_processes():
    labeller = partial(collate_with_generated_labels, soft=False, red=0.5, vibrant=0.5, desaturated=0.5)
    restored = pickle.loads(pickle.dumps(labeller))
    colors, labels = restored(_batch(COLORS))
    assert colors.shape == (4, 3)
    assert set(labels) == {'red', 'vibrant', 'desaturated'}


def test_collate_through_a_dataloader_like_the_seed():
    cube = ColorCube.from_hsv(h=arange_cyclic(step_size=30 / 360), s=np.linspace(0, 1, 4), v=np.linspace(0, 1, 4))
    colors = torch.tensor(cube.rgb_grid.reshape(-1, 3), dtype=torch.float32)
    vibrancies = torch.tensor(vibrancy(cube).flatten(), dtype=torch.float32)
    dataset = TensorDataset(colors, vibrancies)
    loader = DataLoader(
        dataset,
        batch_size=64,
        num_workers=0,
        sampler=WeightedRandomSampler(weights=cube.bias.flatten().tolist(), num_samples=len(dataset), replacement=True),
        collate_fn=partial(collate_with_generated_labels, soft=False, red=0.5, vibrant=0.5, desaturated=0.5),
    )
    torch.manual_seed(0)
    batches = list(loader)
    assert len(batches) == 3  # 192 samples / 64
    for batch_colors, labels in batches:
        assert batch_colors.shape == (64, 3)
        assert batch_colors.dtype == torch.float32
        assert set(labels) == {'red', 'vibrant', 'desaturated'}
        for label in labels.values():
            assert label.shape == (64,)
            assert set(label.unique().tolist()) <= {0.0, 1.0}
        # every colour came from the dataset
        assert (batch_colors[:, None, :] == colors[None, :, :]).all(dim=-1).any(dim=-1).all()


def test_labelling_module_reexports():
    from ex_color import labelling

    assert labelling.collate_with_generated_labels is collate_with_generated_labels
    assert labelling.label_probabilities is label_probabilities
