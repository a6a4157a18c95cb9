"""plot_dopesheet and plot_training_curves: the drawn lines are the schedule table and the logged losses."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba
from matplotlib.lines import Line2D

from ex_color.temporal import Dopesheet
from ex_color.vis.theme import DARK, LIGHT
from ex_color.vis.training import lr_is_log_scaled, plot_dopesheet, plot_training_curves

from .conftest import luminance, render_png

EX_2_9 = Path(__file__).parents[2] / 'experiments' / 'ex-2.9' / 'dopesheet.csv'

SHEET_CSV = """\
STEP,PHASE,ACTION,lr,reg-anchor,reg-unit
0,Warmup,,1e-6,0,0.1
10,Train,,0.01,0.5,
30,,,0.001,0.2,0.1
"""


def line(ax, label: str) -> Line2D:
    (found,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return found


def vertical_lines_at(ax, color: str) -> list[float]:
    """x of each vertical line of `color` (the guides and phase markers)."""
    xs = []
    for ln in ax.get_lines():
        x = np.asarray(ln.get_xdata(), dtype=float)
        if len(x) == 2 and x[0] == x[1] and to_rgba(ln.get_color()) == to_rgba(color):
            xs.append(float(x[0]))
    return sorted(xs)


@pytest.fixture
def sheet() -> Dopesheet:
    return Dopesheet.from_string(SHEET_CSV)


# --- plot_dopesheet -------------------------------------------------------------------------


def test_lines_are_the_schedule_table(sheet, close_figures):
    fig = plot_dopesheet(sheet, title='Schedule')
    close_figures.append(fig)

    weights_ax, lr_ax = fig.axes
    table = sheet.table()
    for ax, name in [(weights_ax, 'reg-anchor'), (weights_ax, 'reg-unit'), (lr_ax, 'lr')]:
        drawn = line(ax, name)
        np.testing.assert_array_equal(drawn.get_xdata(), np.arange(31))
        np.testing.assert_array_equal(drawn.get_ydata(), table.column(name))
    assert [t.get_text() for t in weights_ax.get_legend().get_texts()] == ['reg-anchor', 'reg-unit']
    assert not [ln for ln in lr_ax.get_lines() if ln.get_label() in ('reg-anchor', 'reg-unit')]
    assert fig.get_suptitle() == 'Schedule'
    assert weights_ax.get_ylabel() == 'Weight'
    assert lr_ax.get_ylabel() == 'Learning rate'
    assert lr_ax.get_xlabel() == 'Step'
    assert weights_ax.get_xlim() == lr_ax.get_xlim() == (0, 30)


def test_lr_is_log_scaled_only_when_positive_and_spanning_more_than_two_decades(close_figures):
    assert lr_is_log_scaled(np.array([1e-6, 1e-2]))
    assert not lr_is_log_scaled(np.array([1e-3, 1e-1]))  # exactly two decades
    assert not lr_is_log_scaled(np.array([0.0, 1e-6, 1e-2]))
    for lr_cells, scale in [('1e-6|0.01|0.001', 'log'), ('0.01|0.1|0.05', 'linear'), ('0|0.01|0.001', 'linear')]:
        a, b, c = lr_cells.split('|')
        sheet = Dopesheet.from_string(f'STEP,lr,reg-anchor\n0,{a},0\n10,{b},1\n30,{c},0\n')
        fig = plot_dopesheet(sheet)
        close_figures.append(fig)
        assert fig.axes[1].get_yscale() == scale, lr_cells


def test_keyframes_are_guides_and_phases_are_named(sheet, close_figures):
    fig = plot_dopesheet(sheet)
    close_figures.append(fig)

    weights_ax, lr_ax = fig.axes
    for ax in (weights_ax, lr_ax):
        assert vertical_lines_at(ax, LIGHT.guide) == [0, 10, 30]  # every keyframe step
        assert vertical_lines_at(ax, LIGHT.spine) == [0, 10]  # the phase starts
    assert [t.get_text() for t in weights_ax.texts] == ['Warmup', 'Train']
    assert [t.xy[0] for t in weights_ax.texts] == [0, 10]
    assert not lr_ax.texts


def test_a_sheet_of_only_weights_or_only_lr_gets_one_panel(close_figures):
    weights_only = plot_dopesheet(Dopesheet.from_string('STEP,PHASE,reg-anchor\n0,A,0\n20,B,1\n'))
    lr_only = plot_dopesheet(Dopesheet.from_string('STEP,PHASE,lr\n0,A,1e-8\n20,B,0.1\n'))
    close_figures.extend([weights_only, lr_only])

    (ax,) = weights_only.axes
    assert [ln.get_label() for ln in ax.get_lines() if not ln.get_label().startswith('_')] == ['reg-anchor']
    assert ax.get_xlabel() == 'Step'
    (ax,) = lr_only.axes
    np.testing.assert_array_equal(line(ax, 'lr').get_ydata()[[0, 20]], [1e-8, 0.1])
    assert ax.get_yscale() == 'log'
    assert [t.get_text() for t in ax.texts] == ['A', 'B']  # phases named on the only panel


def test_ex_2_9_sheet_in_both_themes(close_figures):
    sheet = Dopesheet.from_csv(EX_2_9)
    light = plot_dopesheet(sheet, title='Ex 2.9')
    dark = plot_dopesheet(sheet, title='Ex 2.9', theme='dark')
    close_figures.extend([light, dark])

    weights_ax, lr_ax = dark.axes
    assert len([ln for ln in weights_ax.get_lines() if ln.get_label().startswith('reg-')]) == 6
    assert lr_ax.get_yscale() == 'log'  # 1e-8 → 0.1
    assert vertical_lines_at(weights_ax, DARK.guide) == sheet.steps
    assert luminance(light.get_facecolor()) > 0.8
    assert luminance(dark.get_facecolor()) < 0.2
    assert luminance(weights_ax.texts[0].get_color()) > 0.7  # the phase name
    assert render_png(light).startswith(b'\x89PNG')
    assert render_png(dark).startswith(b'\x89PNG')


def test_bad_theme_is_an_error(sheet):
    with pytest.raises(ValueError, match="theme must be 'light' or 'dark'"):
        plot_dopesheet(sheet, theme='sepia')


# --- plot_training_curves -------------------------------------------------------------------


@pytest.fixture
def metrics() -> pd.DataFrame:
    steps = np.arange(0, 50, 10)
    recon = np.array([0.5, 0.2, 0.1, 0.05, 0.04])
    anchor = np.array([0.1, 0.0, 0.02, -1e-9, 0.01])  # exactly 0, then slightly negative
    return pd.DataFrame(
        {
            'step': steps,
            'seed': 3,
            'lr': 0.01,
            'train_loss': recon + anchor,
            'train_recon': recon,
            'train_reg-anchor': anchor,
            'weight_reg-anchor': 0.5,
        }
    )


def test_one_line_per_loss_column_on_a_log_axis(metrics, close_figures):
    fig = plot_training_curves(metrics, title='Losses')
    close_figures.append(fig)

    (ax,) = fig.axes
    assert ax.get_yscale() == 'log'
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ['total', 'recon', 'reg-anchor (3 of 5 steps)']
    np.testing.assert_array_equal(line(ax, 'total').get_xdata(), [0, 10, 20, 30, 40])
    np.testing.assert_allclose(line(ax, 'total').get_ydata(), metrics['train_loss'])
    np.testing.assert_allclose(line(ax, 'recon').get_ydata(), metrics['train_recon'])
    assert line(ax, 'total').get_linewidth() > line(ax, 'recon').get_linewidth()
    assert fig.get_suptitle() == 'Losses'
    assert ax.get_xlabel() == 'Step'
    assert 'Loss' in ax.get_ylabel()


def test_a_term_that_is_0_at_some_steps_joins_its_positive_values_with_a_dot_at_each(metrics, close_figures):
    """A log axis cannot show 0: masking the zeros used to break a sparse term into invisible fragments."""
    fig = plot_training_curves(metrics)
    close_figures.append(fig)

    anchor = line(fig.axes[0], 'reg-anchor (3 of 5 steps)')
    np.testing.assert_array_equal(anchor.get_xdata(), [0, 20, 40])
    np.testing.assert_allclose(anchor.get_ydata(), [0.1, 0.02, 0.01])
    assert anchor.get_marker() == 'o'
    assert line(fig.axes[0], 'recon').get_marker() in ('None', None, '')  # positive everywhere: a plain line
    assert render_png(fig).startswith(b'\x89PNG')


def test_rows_are_drawn_in_step_order(metrics, close_figures):
    fig = plot_training_curves(metrics.iloc[::-1])
    close_figures.append(fig)

    recon = line(fig.axes[0], 'recon')
    np.testing.assert_array_equal(recon.get_xdata(), [0, 10, 20, 30, 40])
    np.testing.assert_allclose(recon.get_ydata(), [0.5, 0.2, 0.1, 0.05, 0.04])


def test_several_seeds_are_an_error(metrics):
    two_seeds = pd.concat([metrics, metrics.assign(seed=5)])
    with pytest.raises(ValueError, match=r'several seeds \[3, 5\]'):
        plot_training_curves(two_seeds)


def test_bad_metrics_are_an_error(metrics):
    with pytest.raises(ValueError, match=r"lack column\(s\) \['step'\]"):
        plot_training_curves(metrics.drop(columns='step'))
    with pytest.raises(ValueError, match=r"lack column\(s\) \['train_loss'\]"):
        plot_training_curves(metrics.drop(columns='train_loss'))
    with pytest.raises(ValueError, match='no rows'):
        plot_training_curves(metrics.iloc[:0])


def test_training_curves_in_both_themes(metrics, close_figures):
    light = plot_training_curves(metrics.drop(columns='seed'))
    dark = plot_training_curves(metrics, theme='dark')
    close_figures.extend([light, dark])

    assert luminance(light.get_facecolor()) > 0.8
    assert luminance(dark.get_facecolor()) < 0.2
    assert luminance(line(dark.axes[0], 'total').get_color()) > 0.7  # the total stands out on dark
    assert render_png(light) != render_png(dark)
