"""Label probabilities, Bernoulli draws and the DataLoader collate function."""

import pickle
from functools import partial

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from ex_color.data.color import redness
from ex_color.data.color_cube import ColorCube
from ex_color.data.cube_sampler import vibrancy
from ex_color.data.cyclic import arange_cyclic
from ex_color.data.labels import (
    ConceptLabel,
    collate_with_generated_labels,
    label_probabilities,
    probabilities_of,
    sample_labels,
    seed_labels,
    target_hsv,
)

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


# Label definitions by kind ------------------------------------------------------------------

KIND_COLORS = torch.tensor(
    [
        [1.0, 0.0, 0.0],  # red
        [0.0, 1.0, 0.0],  # green
        [0.0, 1.0, 1.0],  # cyan
        [0.5, 0.5, 0.5],  # grey
        [0.2, 0.4, 0.6],
    ],
    dtype=torch.float64,
)


def test_primary_labels_by_hand():
    # green·(1 − r/2 − b/2): red 0; green 1; cyan 1·(1 − 0 − ½) = ½; grey ½·(1 − ¼ − ¼) = ¼;
    # (.2,.4,.6): .4·(1 − .1 − .3) = .24
    green = ConceptLabel.primary('green', power=2, scale=0.5).probabilities(KIND_COLORS)
    torch.testing.assert_close(green, torch.tensor([0, 1, 0.25, 0.0625, 0.24**2], dtype=torch.float64) * 0.5)
    # blue·(1 − r/2 − g/2): cyan 1·(1 − ½) = ½; (.2,.4,.6) .6·(1 − .1 − .2) = .42
    blue = ConceptLabel.primary('blue', power=1, scale=1).probabilities(KIND_COLORS)
    torch.testing.assert_close(blue, torch.tensor([0, 0, 0.5, 0.25, 0.42], dtype=torch.float64))


def test_primary_red_is_the_seeds_redness_bit_for_bit():
    colors = torch.rand(4096, 3, generator=torch.Generator().manual_seed(0))
    label = ConceptLabel.primary('red', power=10, scale=0.5)
    assert torch.equal(label.probabilities(colors), redness(colors) ** 10 * 0.5)
    assert torch.equal(seed_labels()['red'].probabilities(colors), redness(colors) ** 10 * 0.5)


def test_vibrancy_and_desaturation_by_hand():
    # s·v = max − min: red 1, green 1, cyan 1, grey 0, (.2,.4,.6) .4
    vibrant = ConceptLabel('vibrancy', power=3, scale=1).probabilities(KIND_COLORS)
    torch.testing.assert_close(vibrant, torch.tensor([1, 1, 1, 0, 0.4**3], dtype=torch.float64))
    desaturated = ConceptLabel('desaturation', power=2, scale=0.25).probabilities(KIND_COLORS)
    torch.testing.assert_close(desaturated, torch.tensor([0, 0, 0, 1, 0.6**2], dtype=torch.float64) * 0.25)


def test_similarity_label_by_hand():
    # Similarity to cyan (h=.5, s=v=1). Red: 180° away → hs = 0, r = 1 → 0. Green: 60° away →
    # hs = (90 − 60)/90 = ⅓, r = 1 → ⅓. Cyan: 1. Grey (s=0, v=.5): (1 − |0 − 1|) = 0 → 0.
    # (.2,.4,.6): h = 7/12 (210°), s = 2/3, v = .6; a = 30° → hs = 2/3; r = (.4 + 1)/2 = .7;
    #   sim = (.7·⅔ + .3)·(1 − ⅓)·(1 − .4) = (23/30)·(2/3)·.6 = .30666…
    cyan = ConceptLabel.similarity('cyan', power=1, scale=1).probabilities(KIND_COLORS)
    torch.testing.assert_close(cyan, torch.tensor([0, 1 / 3, 1, 0, 23 / 30 * 2 / 3 * 0.6], dtype=torch.float64))
    by_triple = ConceptLabel.similarity([0.5, 1, 1], power=10, scale=0.5).probabilities(KIND_COLORS)
    torch.testing.assert_close(by_triple, cyan**10 * 0.5)


def test_a_scale_of_zero_leaves_a_label_out():
    labels = {'a': ConceptLabel('vibrancy', power=1, scale=0), 'b': ConceptLabel('vibrancy', power=1, scale=1)}
    assert list(probabilities_of(labels, KIND_COLORS)) == ['b']


@pytest.mark.parametrize(
    ('make', 'match'),
    [
        (lambda: ConceptLabel.primary('cyan', power=1, scale=1), 'red, green or blue'),
        (lambda: ConceptLabel.similarity('vermilion', power=1, scale=1), 'unknown colour'),
        (lambda: ConceptLabel.similarity([0.5, 1.2, 1], power=1, scale=1), r'in \[0, 1\]'),
        (lambda: ConceptLabel('vibrancy', power=-1, scale=1), 'power'),
        (lambda: ConceptLabel('vibrancy', power=1, scale=1.5), 'scale'),
    ],
)
def test_bad_label_definitions_are_one_line_errors(make, match):
    with pytest.raises(ValueError, match=match) as caught:
        make()
    assert '\n' not in str(caught.value)


def test_target_hsv_of_named_colours_and_triples():
    assert target_hsv('cyan') == (0.5, 1.0, 1.0)
    assert target_hsv([0.25, 0.5, 1]) == (0.25, 0.5, 1.0)


def test_validation_labels_mark_colours_at_least_as_likely_as_not():
    # Similarity to cyan to the 10th: cyan 1 → 1; (.2,.4,.6) .307¹⁰ ≈ 7e-6 → 0.
    label = ConceptLabel.similarity('cyan', power=10, scale=0.5)
    assert label.validation_labels(KIND_COLORS).tolist() == [0, 0, 1, 0, 0]
