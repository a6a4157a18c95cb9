"""plot_sweep_boxes and plot_error_vs_similarity: boxes, dots and stars at the table's values; r² by hand."""

import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba

from ex_color.vis.sweep import plot_error_vs_similarity, plot_pareto, plot_sweep_boxes
from ex_color.vis.theme import DARK

from .conftest import luminance, render_png

COLUMNS = ['ablated_selectivity_r2', 'val_recon', 'val_anchor']


@pytest.fixture
def table() -> pd.DataFrame:
    rng = np.random.default_rng(42)
    table = pd.DataFrame(
        {
            'seed': [10, 11, 12, 13, 14, 15, 16],
            'ablated_selectivity_r2': rng.uniform(0.5, 0.95, 7),
            'val_recon': rng.uniform(1e-4, 1e-3, 7),
            'val_anchor': rng.uniform(0.01, 0.1, 7),
            'ablated_red': rng.uniform(0, 1, 7),
        }
    )
    table.loc[2, 'val_anchor'] = np.nan
    return table


def by_gid(ax, gid: str) -> list:
    return [artist for artist in [*ax.lines, *ax.collections] if artist.get_gid() == gid]


def stars(ax) -> list:
    return [ln for ln in ax.lines if ln.get_label().startswith('best seed')]


# --- plot_sweep_boxes -----------------------------------------------------------------------


def test_one_box_per_column_with_the_column_median(table, close_figures):
    fig = plot_sweep_boxes(table, COLUMNS, title='Ex 2.9 sweep')
    close_figures.append(fig)

    assert len(fig.axes) == 3
    assert fig.get_suptitle() == 'Ex 2.9 sweep'
    for ax, column in zip(fig.axes, COLUMNS, strict=True):
        (median,) = by_gid(ax, 'median')
        expected = np.median(table[column].dropna())
        np.testing.assert_allclose(median.get_ydata(), [expected, expected])
        assert ax.get_ylabel() == column
    assert [ax.get_xlabel() for ax in fig.axes] == ['7 seeds', '7 seeds', '6 seeds']


def test_every_seed_is_a_dot_at_its_value_with_the_same_jitter_in_every_panel(table, close_figures):
    fig = plot_sweep_boxes(table, ['val_recon', 'val_anchor'])
    again = plot_sweep_boxes(table, ['val_recon', 'val_anchor'])
    close_figures.extend([fig, again])

    (recon_dots,) = by_gid(fig.axes[0], 'seeds')
    (anchor_dots,) = by_gid(fig.axes[1], 'seeds')
    recon, anchor = recon_dots.get_offsets(), anchor_dots.get_offsets()
    np.testing.assert_allclose(recon[:, 1], table['val_recon'])
    np.testing.assert_allclose(anchor[:, 1], table['val_anchor'].drop(index=2))  # the NaN seed is dropped
    assert np.all(np.abs(recon[:, 0]) < 0.25)  # within the box
    assert len(np.unique(recon[:, 0])) == 7  # spread out
    np.testing.assert_array_equal(anchor[:, 0], np.delete(recon[:, 0], 2))  # a seed keeps its x across panels
    (again_dots,) = by_gid(again.axes[0], 'seeds')
    np.testing.assert_array_equal(again_dots.get_offsets(), recon)  # deterministic


def test_the_highlighted_seed_is_a_star_at_its_value(table, close_figures):
    fig = plot_sweep_boxes(table, COLUMNS, highlight=13)
    close_figures.append(fig)

    best = table.set_index('seed').loc[13]
    for ax, column in zip(fig.axes, COLUMNS, strict=True):
        (star,) = stars(ax)
        assert star.get_marker() == '*'
        np.testing.assert_allclose(star.get_ydata(), [best[column]])
        (dots,) = by_gid(ax, 'seeds')
        # drawn over the seed's own dot
        np.testing.assert_allclose(star.get_xdata(), dots.get_offsets()[dots.get_offsets()[:, 1] == best[column], 0])
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ['best seed 13']


def test_a_highlighted_seed_without_a_value_has_no_star_in_that_panel(table, close_figures):
    fig = plot_sweep_boxes(table, COLUMNS, highlight=12)  # val_anchor is NaN for seed 12
    close_figures.append(fig)

    assert [len(stars(ax)) for ax in fig.axes] == [1, 1, 0]


def test_no_highlight_no_star_and_no_legend(table, close_figures):
    fig = plot_sweep_boxes(table, COLUMNS)
    close_figures.append(fig)

    assert not any(stars(ax) for ax in fig.axes)
    assert not fig.legends


def test_bad_sweep_input_is_an_error(table):
    with pytest.raises(ValueError, match=r"no column 'val_unit': available columns are \['seed', "):
        plot_sweep_boxes(table, ['val_recon', 'val_unit'])
    with pytest.raises(ValueError, match='at least one column'):
        plot_sweep_boxes(table, [])
    with pytest.raises(ValueError, match='no rows'):
        plot_sweep_boxes(table.iloc[:0], COLUMNS)
    with pytest.raises(ValueError, match=r'highlight seed 99 is not in the table: seeds are \[10, 11'):
        plot_sweep_boxes(table, COLUMNS, highlight=99)
    with pytest.raises(ValueError, match='needs a seed column'):
        plot_sweep_boxes(table.drop(columns='seed'), COLUMNS, highlight=10)


def test_sweep_boxes_in_both_themes(table, close_figures):
    light = plot_sweep_boxes(table, COLUMNS, highlight=10)
    dark = plot_sweep_boxes(table, COLUMNS, highlight=10, theme='dark')
    close_figures.extend([light, dark])

    assert luminance(light.get_facecolor()) > 0.8
    assert luminance(dark.get_facecolor()) < 0.2
    # every box line (box, whiskers, caps) shows on the dark background
    ax = dark.axes[0]
    box_lines = [ln for ln in ax.lines if ln.get_gid() != 'median' and not ln.get_label().startswith('best seed')]
    assert box_lines
    assert all(to_rgba(ln.get_color()) == to_rgba(DARK.spine) for ln in box_lines)
    (median,) = by_gid(ax, 'median')
    assert luminance(median.get_color()) > 0.7
    (dots,) = by_gid(ax, 'seeds')
    assert luminance(dots.get_facecolor()[0]) > 0.4
    assert render_png(light) != render_png(dark)


def test_default_figure_size_grows_with_the_columns(table, close_figures):
    one = plot_sweep_boxes(table, ['val_recon'])
    four = plot_sweep_boxes(table, [*COLUMNS, 'ablated_red'])
    sized = plot_sweep_boxes(table, COLUMNS, figsize=(5, 2))
    close_figures.extend([one, four, sized])

    assert four.get_size_inches()[0] == pytest.approx(4 * one.get_size_inches()[0])
    np.testing.assert_allclose(sized.get_size_inches(), (5, 2))


# --- plot_error_vs_similarity ---------------------------------------------------------------


@pytest.fixture
def points() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    similarity = rng.uniform(0, 1, 40)
    error = 0.1 * similarity + rng.normal(0, 0.03, 40)  # r ≈ 0.7, so r and r² differ
    colors = rng.uniform(-0.2, 1.2, (40, 3))  # some outside the gamut
    return similarity, error, colors


def r2_in_title(fig) -> str:
    match = re.search(r'r² = (\S+)$', fig.get_suptitle())
    assert match, fig.get_suptitle()
    return match.group(1)


def test_dots_sit_at_similarity_and_error_in_their_true_colours(points, close_figures):
    similarity, error, colors = points
    fig = plot_error_vs_similarity(similarity, error, colors, target='red')
    close_figures.append(fig)

    (ax,) = fig.axes
    (scatter,) = ax.collections
    np.testing.assert_allclose(scatter.get_offsets(), np.stack([similarity, error], axis=1))
    np.testing.assert_allclose(scatter.get_facecolors()[:, :3], np.clip(colors, 0, 1))
    assert ax.get_xlabel() == 'Similarity to red (cubed)'
    assert ax.get_ylabel() == 'Per-colour error'


def test_r2_in_the_title_is_the_squared_correlation(points, close_figures):
    similarity, error, colors = points
    fig = plot_error_vs_similarity(similarity, error, colors, title='Ablated')
    given = plot_error_vs_similarity(similarity, error, colors, r2=0.123456)
    close_figures.extend([fig, given])

    expected = np.corrcoef(similarity, error)[0, 1] ** 2
    assert f'{expected:.3f}' != f'{np.sqrt(expected):.3f}'  # showing r instead of r² would fail
    assert fig.get_suptitle().startswith('Ablated')
    assert r2_in_title(fig) == f'{expected:.3f}'
    assert r2_in_title(given) == '0.123'


def test_bad_points_are_an_error(points):
    similarity, error, colors = points
    with pytest.raises(ValueError, match=r'error must have the shape of similarity \[40\], got \[39\]'):
        plot_error_vs_similarity(similarity, error[:-1], colors)
    with pytest.raises(ValueError, match=r'colors must have shape \[40, 3\], got \[40, 4\]'):
        plot_error_vs_similarity(similarity, error, np.ones((40, 4)))
    with pytest.raises(ValueError, match=r'similarity must be 1-D \[N\], got shape \[40, 1\]'):
        plot_error_vs_similarity(similarity[:, None], error[:, None], colors)
    with pytest.raises(ValueError, match='at least one point'):
        plot_error_vs_similarity([], [], np.zeros((0, 3)))


def test_error_vs_similarity_in_both_themes(points, close_figures):
    similarity, error, colors = points
    light = plot_error_vs_similarity(similarity, error, colors)
    dark = plot_error_vs_similarity(similarity, error, colors, theme='dark')
    close_figures.extend([light, dark])

    assert luminance(light.get_facecolor()) > 0.8
    assert luminance(dark.get_facecolor()) < 0.2
    (scatter,) = dark.axes[0].collections
    assert to_rgba(scatter.get_edgecolors()[0]) == to_rgba(DARK.spine)  # black dots keep an outline
    assert render_png(light) != render_png(dark)


# --- plot_pareto ------------------------------------------------------------------------------


def test_pareto_seeds_are_accented_and_labelled_and_the_best_starred(table, close_figures):
    fig = plot_pareto(table, 'val_recon', 'ablated_selectivity_r2', pareto_seeds=[11, 14], best_seed=14)
    close_figures.append(fig)
    ax = fig.axes[0]
    [others] = by_gid(ax, 'seeds')
    [front] = by_gid(ax, 'pareto')
    on_front = table['seed'].isin([11, 14]).to_numpy()
    np.testing.assert_allclose(front.get_offsets(), table.loc[on_front, ['val_recon', 'ablated_selectivity_r2']])
    np.testing.assert_allclose(others.get_offsets(), table.loc[~on_front, ['val_recon', 'ablated_selectivity_r2']])
    assert sorted(t.get_text() for t in ax.texts) == ['11', '14']
    [star] = stars(ax)
    best = table.set_index('seed').loc[14]
    assert (star.get_xdata()[0], star.get_ydata()[0]) == (best['val_recon'], best['ablated_selectivity_r2'])
    assert (ax.get_xlabel(), ax.get_ylabel()) == ('val_recon', 'ablated_selectivity_r2')
    assert ax.get_xscale() == 'linear'  # 1e-4 … 1e-3 spans less than a decade here


def test_pareto_x_axis_is_logarithmic_over_decades(table, close_figures):
    wide = table.assign(val_recon=np.geomspace(1e-6, 1e-2, len(table)))
    fig = plot_pareto(wide, 'val_recon', 'ablated_selectivity_r2')
    close_figures.append(fig)
    assert fig.axes[0].get_xscale() == 'log'
    assert fig.axes[0].get_legend() is None  # nothing marked, nothing to explain
    with pytest.raises(ValueError, match="no column 'val_anchr'"):
        plot_pareto(table, 'val_recon', 'val_anchr')
