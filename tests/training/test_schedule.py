"""TrainingSchedule: the dopesheet as per-step lr and regularizer weights."""

from __future__ import annotations

import pytest

from ex_color.temporal import Dopesheet
from ex_color.training.schedule import TrainingSchedule


def test_lr_and_weights_match_the_dopesheet_at_every_step(short_sheet, regularizers):
    schedule = TrainingSchedule.from_dopesheet(short_sheet, regularizers)
    assert len(schedule) == len(short_sheet) == 301
    for step in range(len(short_sheet)):
        props = short_sheet[step].props
        assert schedule.lr[step] == props['lr']
        for name, weight in schedule.weights_at(step).items():
            assert weight == props[name]


def test_missing_lr_column_is_an_error(regularizers):
    sheet = Dopesheet.from_string('STEP,reg-unit\n0,1\n5,1\n')
    with pytest.raises(ValueError, match="'lr'"):
        TrainingSchedule.from_dopesheet(sheet, regularizers)


def test_columns_that_match_nothing_are_ignored(regularizers):
    sheet = Dopesheet.from_string('STEP,lr,reg-planar-v,reg-unit\n0,0.1,5,2\n5,0.1,5,2\n')
    schedule = TrainingSchedule.from_dopesheet(sheet, regularizers)
    assert schedule.ignored_properties == ('reg-planar-v',)
    assert schedule.weights_at(3) == {
        'reg-unit': 2.0,
        'reg-anchor': 1.0,
        'reg-separate': 1.0,
        'reg-planar-d': 1.0,
        'reg-anti-anchor': 1.0,
    }
