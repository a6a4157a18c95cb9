"""Alt texts say what the data shows: checked on small hand-made inputs whose answer we know."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ex_color.vis.describe import (
    HUE_NAMES,
    color_name,
    describe_colors,
    describe_dopesheet,
    describe_error_series,
    describe_hue_profile,
    describe_latents,
    describe_similarity_scatter,
    describe_sweep_boxes,
    describe_training_curves,
    hue_name,
    hue_profile,
    join,
)


@pytest.mark.parametrize(
    ('hue', 'name'),
    [(0.0, 'red'), (1 / 12, 'orange'), (1 / 6, 'yellow'), (1 / 3, 'green'), (0.5, 'cyan'), (2 / 3, 'blue'),
     (5 / 6, 'magenta'), (0.99, 'red'), (0.03, 'red'), (0.05, 'orange'), (1.0, 'red')],
)  # fmt: skip
def test_hue_name_is_the_nearest_named_hue(hue, name):
    assert hue_name(hue) == name


@given(st.integers(0, 11), st.floats(-1 / 25, 1 / 25))
def test_hue_name_within_15_degrees_of_a_named_hue(index, offset):
    assert hue_name(index / 12 + offset) == HUE_NAMES[index]


def test_color_name_is_the_nearest_named_colour():
    assert color_name((0.9, 0.1, 0.05)) == 'red'
    assert color_name((0.02, 0.02, 0.02)) == 'black'
    assert color_name((0.52, 0.5, 0.49)) == 'gray'
    assert color_name((0.1, 0.9, 0.95)) == 'cyan'


def test_join():
    assert join([]) == ''
    assert join(['a']) == 'a'
    assert join(['a', 'b']) == 'a and b'
    assert join(['a', 'b', 'c']) == 'a, b and c'


def test_hue_profile_reads_vivid_colours_at_the_named_hues():
    hues = np.arange(24) / 24
    vivid = np.stack([hues, np.ones(24), np.ones(24)], axis=1)
    dull = np.stack([hues, np.full(24, 0.5), np.ones(24)], axis=1)
    hsv = np.concatenate([vivid, dull])
    error = np.concatenate([np.arange(24) / 100, np.full(24, 9.0)])  # the dull colours must be ignored
    profile = hue_profile(hsv, error)
    assert list(profile) == list(HUE_NAMES)
    # Named hue i (30° apart) is sample 2i of 24 (15° apart).
    assert profile == {name: pytest.approx(2 * i / 100) for i, name in enumerate(HUE_NAMES)}


def test_hue_profile_tiers():
    profile = dict.fromkeys(HUE_NAMES, 0.001) | {'red': 0.3, 'orange': 0.08, 'magenta': 0.01}
    assert describe_hue_profile(profile) == (
        'error is high at red (up to 0.3), moderate at orange and magenta and near zero at '
        'yellow, lime, green, teal, cyan, azure, blue, purple and pink'
    )


def test_hue_profile_of_a_good_model_names_no_tiers():
    profile = dict.fromkeys(HUE_NAMES, 1e-5) | {'yellow': 2e-4, 'red': 1e-4, 'cyan': 5e-5}
    assert (
        describe_hue_profile(profile) == 'error is small at every hue (at most 0.0002), largest at yellow, red and cyan'
    )


def test_describe_colors_finds_where_reconstruction_fails():
    true = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.5], [0.0, 0.0, 0.0]])
    pred = true.copy()
    pred[0] = [0.2, 0.2, 0.2]  # red lost: error (0.64 + 0.04 + 0.04) / 3 = 0.24
    text = describe_colors('Predicted', true, pred)
    assert 'titled "Predicted"' in text
    assert 'disagree most near red (error 0.24)' in text
    assert '1 of 4 patches have error above 0.01' in text
    assert 'greys, black and white are almost unchanged (largest error 0)' in text

    close = true.copy()
    close[1] += 0.01  # green off by 0.01 in every channel: error 1e-4
    assert 'agree closely everywhere: the largest error is 0.0001, at green' in describe_colors('P', true, close)
    assert 'greyscale gradient' in describe_colors('True colors', true)


def test_describe_error_series_gives_range_profile_and_median():
    hsv = np.array([[0.0, 1.0, 1.0], [1 / 3, 1.0, 1.0], [2 / 3, 1.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    error = np.array([0.3, 0.0, 0.001, 0.002, 0.0])
    text = describe_error_series('Err', hsv, error)
    assert 'ranging from zero to 0.3' in text
    # With three vivid samples, each named hue reads its nearest: red's 0.3 reaches orange to pink.
    assert 'high at red, orange, yellow, magenta and pink (up to 0.3)' in text
    assert 'near zero at lime, green, teal, cyan, azure, blue and purple' in text
    assert 'greys, black and white have error at most 0.002' in text
    assert 'median over all 5 colours is 0.001' in text


def test_describe_latents_names_the_colour_at_the_top_of_each_dimension():
    latents = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.6, 0.8]])
    true = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    text = describe_latents('L', latents, true, [(1, 0, 2)])
    assert '1 row of 1 spherical plots' in text
    assert 'Every latent lies on the unit sphere' in text
    assert 'Dimension 0 spans 0.00 to 1.00, with red at the top (1.00)' in text
    assert 'Dimension 1 spans 0.00 to 1.00, with blue at the top (1.00)' in text
    assert 'Dimension 2 spans 0.00 to 0.80, with white at the top (0.80)' in text

    latents[:, 0] = 0
    ablated = describe_latents('L', latents, true, [(1, 0, 2)])
    assert 'Dimension 0 is zero for every colour' in ablated
    assert 'unit sphere' not in ablated  # the first point now has norm 0


def test_describe_similarity_scatter():
    similarity = np.array([0.0, 0.05, 0.5, 1.0])
    error = np.array([0.001, 0.002, 0.1, 0.3])
    colors = np.array([[0, 1, 1], [0, 0, 1], [1, 0.5, 0], [1, 0, 0]], dtype=float)
    text = describe_similarity_scatter('S', similarity, error, colors, r2=0.97, target='red')
    assert 'r² = 0.970: error rises with similarity to red' in text
    assert 'largest error is at red (0.3)' in text
    assert 'below 0.1 have error at most 0.002' in text
    assert 'does not rise' in describe_similarity_scatter('S', similarity, error[::-1], colors, r2=0.9)


def test_describe_dopesheet_and_training_curves():
    table = pd.DataFrame({'lr': [0.1, 0.5, 0.2], 'reg-a': [1.0, 0.5, 0.0]}, index=pd.RangeIndex(3, name='STEP'))
    text = describe_dopesheet('D', table, {'Train': 0})
    assert 'training step from 0 to 2' in text
    assert 'reg-a starts at its peak, 1, and ends at 0.' in text
    assert 'lr starts at 0.1, peaks at 0.5 at step 1 and ends at 0.2.' in text
    assert 'Phases: Train from step 0.' in text

    metrics = pd.DataFrame({'step': [0, 50], 'lr': [0.1, 0.1], 'train_loss': [1.0, 0.01], 'train_recon': [0.5, 0.001]})
    curves = describe_training_curves('T', metrics)
    assert 'from 0 to 50' in curves
    assert 'The total loss goes from 1 to 0.01. Recon goes from 0.5 to 0.001.' in curves
    assert 'lr' not in curves.split('y-axis.')[1]


def test_the_training_curves_alt_text_says_where_a_sparse_term_applied():
    """A label-weighted term is 0 in batches without its labels: 'goes from 0 to 0' hid that it worked."""
    metrics = pd.DataFrame(
        {
            'step': [0, 50, 100, 150],
            'train_loss': [1.0, 0.5, 0.2, 0.1],
            'train_reg-anchor': [0.0, 0.09, 0.0, 0.03],
            'train_reg-never': [0.0, 0.0, float('nan'), 0.0],
        }
    )
    curves = describe_training_curves('T', metrics)
    assert 'The total loss goes from 1 to 0.1.' in curves
    assert (
        'Reg-anchor is above 0 at 2 of 4 logged steps (0 at the others, as in a batch without a sample of its '
        'labels), between 0.03 and 0.09; the last, at step 150, is 0.03.'
    ) in curves
    assert 'Reg-never is 0 at every logged step.' in curves
    assert 'from 0 to 0' not in curves


def test_describe_sweep_boxes():
    table = pd.DataFrame({'seed': [0, 1, 2], 'score': [0.5, 0.9, 0.7]})
    text = describe_sweep_boxes('B', table, ['score'], best_seed=1)
    assert 'over 3 seeds' in text
    assert 'score: median 0.7, from 0.5 to 0.9; best seed 1: 0.9.' in text


def test_describe_pareto():
    from ex_color.vis.describe import describe_pareto

    table = pd.DataFrame({'seed': [0, 1, 2], 'val_recon': [1e-4, 2e-4, 5e-4], 'sel': [0.5, 0.9, 0.7]})
    text = describe_pareto('P', table, 'val_recon', 'sel', [0, 1], best_seed=1)
    assert 'one dot per seed (3 seeds)' in text
    assert 'X-axis: val_recon, from 0.0001 to 0.0005. Y-axis: sel, from 0.5 to 0.9.' in text
    assert 'The Pareto seeds, labelled: 0 and 1.' in text
    assert 'The best seed, 1, is starred at val_recon = 0.0002, sel = 0.9.' in text
