"""rundir.read_metrics: a run's metrics.csv in the names losses are reported under, whichever version wrote it."""

from __future__ import annotations

import pandas as pd
import pytest

from ex_color.rundir import RunArtifactsError, read_metrics


def test_losses_are_read_under_their_reported_names(tmp_path):
    path = tmp_path / 'metrics.csv'
    path.write_text('step,lr,train_loss,train_recon,train_reg-anchor,weight_reg-anchor\n0,0.1,1.5,1.0,0.5,0.2\n')
    metrics = read_metrics(path)
    assert list(metrics.columns) == ['step', 'lr', 'train_loss', 'train_recon', 'train_reg-anchor', 'weight_reg-anchor']
    assert metrics.loc[0, 'train_reg-anchor'] == 0.5


def test_a_run_written_before_the_renaming_reads_the_same(tmp_path):
    old, new = tmp_path / 'old.csv', tmp_path / 'new.csv'
    old.write_text(
        'step,lr,loss,loss_recon,loss_reg-anchor,weight_reg-anchor\n0,0.1,1.5,1.0,0.5,0.2\n50,0.1,0.7,0.6,,0.2\n'
    )
    new.write_text(
        'step,lr,train_loss,train_recon,train_reg-anchor,weight_reg-anchor\n0,0.1,1.5,1.0,0.5,0.2\n50,0.1,0.7,0.6,,0.2\n'
    )
    pd.testing.assert_frame_equal(read_metrics(old), read_metrics(new))


@pytest.mark.parametrize('text', ['step,lr\n0,0.1\n', 'step,lr,train_loss\n', '\x00\x01garbage'])
def test_a_table_without_steps_and_losses_is_one_error_naming_the_file(tmp_path, text):
    path = tmp_path / 'metrics.csv'
    path.write_text(text)
    with pytest.raises(RunArtifactsError, match=str(path)):
        read_metrics(path)
