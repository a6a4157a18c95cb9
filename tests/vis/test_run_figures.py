"""The report's figure data: variants of a saved run, views of latent space, the error panels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ex_color.evaluation import error_cube, evaluate
from ex_color.rundir import load_run
from ex_color.vis.run_figures import (
    SEED_LATENT_DIMS,
    VariantView,
    error_series_cubes,
    latent_dims,
    run_figure_jobs,
    variant_views,
)


def test_latent_dims_are_the_seeds_for_5d():
    assert latent_dims(5) == SEED_LATENT_DIMS


@pytest.mark.parametrize('n_dims', [3, 4, 6, 8])
def test_latent_dims_are_distinct_triples_in_range(n_dims):
    views = latent_dims(n_dims)
    assert 1 <= len(views) <= 6
    assert len(set(views)) == len(views)
    for triple in views:
        assert len(set(triple)) == 3
        assert all(0 <= d < n_dims for d in triple)


def test_latent_dims_of_too_few_dims_is_empty():
    assert latent_dims(2) == []


def test_error_series_cubes_slice_the_error_cube_as_the_seed_does():
    error = np.random.default_rng(0).random(error_cube().shape)
    by_hue, by_saturation, by_value = error_series_cubes(error)
    assert by_hue.space == 'hsv' and by_saturation.space == 'svh' and by_value.space == 'vsh'
    # Against hue: full saturation, 5 values 10 apart from 1 down; against s and v: 6 hues 40 apart, at v or s = 1.
    assert by_hue.shape == (240, 1, 5)
    assert by_saturation.shape == (48, 1, 6)
    assert by_value.shape == (48, 1, 6)
    np.testing.assert_array_equal(by_hue['MSE'][:, 0, 0], error[:, -1, -1])
    np.testing.assert_array_equal(by_saturation['MSE'][:, 0, 1], error[40, :, -1])
    np.testing.assert_array_equal(by_value['MSE'][:, 0, 2], error[80, -1, :])


def test_variant_views_reproduce_the_saved_results(short_run):
    run = load_run(short_run)
    views = variant_views(run)
    assert list(views) == ['baseline', 'ablated', 'pruned', 'suppressed']
    for name, view in views.items():
        saved = run.results.evaluations[name]
        # The same numbers as results.json, by a second route: the views' error cube.
        assert float(view.error.max()) == pytest.approx(saved.mse_max, rel=1e-5), name
        assert float(np.median(view.error)) == pytest.approx(saved.mse_median, rel=1e-3, abs=1e-9), name
        assert [t.name for t in view.targets] == saved.targets == ['red'], name
    assert views['ablated'].same_outputs(views['pruned'])
    assert not views['ablated'].same_outputs(views['baseline'])
    np.testing.assert_array_equal(views['ablated'].latents[:, 0], 0)
    assert views['pruned'].latents.shape == (8000, 4)
    torch.testing.assert_close(
        torch.tensor(np.linalg.norm(views['baseline'].latents, axis=1)), torch.ones(8000), atol=1e-5, rtol=0
    )
    assert evaluate(run.model).mse_max == pytest.approx(run.results.evaluations['baseline'].mse_max)


def test_figure_jobs_skip_a_variant_that_repeats_another(short_run):
    run = load_run(short_run)
    views = variant_views(run)
    names = [job.name for job in run_figure_jobs(run, views)]
    assert not [n for n in names if 'pruned' in n]
    assert 'latents-ablated' in names and 'selectivity-suppressed' in names
    assert 'selectivity-baseline' not in names  # nothing was removed, so there is no selectivity to show


def test_same_outputs_tolerance():
    base = VariantView('a', np.zeros((2, 3)), np.zeros(4), np.zeros((1, 5)), np.zeros((1, 3)), np.zeros(2), [])
    near = VariantView('b', np.full((2, 3), 1e-7), np.zeros(4), np.ones((1, 5)), np.zeros((1, 3)), np.zeros(2), [])
    far = VariantView('c', np.zeros((2, 3)), np.full(4, 1e-3), np.zeros((1, 5)), np.zeros((1, 3)), np.zeros(2), [])
    assert base.same_outputs(near)  # latents may differ (ablate vs prune); outputs decide
    assert not base.same_outputs(far)
