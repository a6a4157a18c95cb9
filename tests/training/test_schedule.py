"""TrainingSchedule: the dopesheet as per-step lr and regularizer weights."""

from __future__ import annotations

import logging

import pytest

from ex_color.temporal import Dopesheet, DopesheetError
from ex_color.training.schedule import MAX_SCHEDULE_VALUE, TrainingSchedule, check_schedule_values

from .conftest import SHORT_SHEET


def test_lr_and_weights_match_the_dopesheet_at_every_step(short_sheet, regularizers):
    schedule = TrainingSchedule.from_dopesheet(short_sheet, regularizers)
    assert len(schedule) == len(short_sheet) == 301
    alone = Dopesheet.from_string(SHORT_SHEET)  # no table yet: each frame is computed for its step alone
    for step in range(len(short_sheet)):
        # the schedule, a frame and a step alone come from one computation (Track.values_at): bit for bit
        props = short_sheet[step].props
        assert alone[step].props == props
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


@pytest.mark.parametrize(
    ('cells', 'says'),
    [
        ('-0.01,1', "row 2 (line 3), column 'lr': the learning rate, -0.01, is negative"),
        ('1e308,1', "row 2 (line 3), column 'lr': the learning rate, 1e+308, is above the limit"),
        ('0.1,-2', "row 2 (line 3), column 'reg-unit': the weight of regularizer 'reg-unit', -2, is negative"),
        ('0.1,1000001', "row 2 (line 3), column 'reg-unit': the weight of regularizer 'reg-unit', 1e+06, is above"),
    ],
)
def test_learning_rates_and_weights_outside_0_to_a_million_are_refused(regularizers, cells, says):
    sheet = Dopesheet.from_string(f'STEP,lr,reg-unit\n0,0.1,1\n5,{cells}\n', source='sheet.csv')
    with pytest.raises(DopesheetError) as caught:
        TrainingSchedule.from_dopesheet(sheet, regularizers)
    message = str(caught.value)
    assert message.startswith(f'sheet.csv, {says}')
    assert message.endswith(': expected a number from 0 to 1,000,000')
    with pytest.raises(DopesheetError, match=r'^sheet\.csv, row 2 \(line 3\), column '):
        check_schedule_values(sheet, [r.name for r in regularizers])


def test_the_first_bad_cell_in_file_order_is_named(regularizers):
    sheet = Dopesheet.from_string('STEP,lr,reg-unit\n10,0.1,-1\n0,-0.1,1\n', source='sheet.csv')  # rows out of order
    with pytest.raises(DopesheetError, match=r"^sheet\.csv, row 1 \(line 2\), column 'reg-unit'"):
        check_schedule_values(sheet, [r.name for r in regularizers])


def test_zero_and_the_limit_itself_are_allowed(regularizers):
    sheet = Dopesheet.from_string(f'STEP,lr,reg-unit\n0,0,0\n5,{MAX_SCHEDULE_VALUE!r},{MAX_SCHEDULE_VALUE!r}\n')
    schedule = TrainingSchedule.from_dopesheet(sheet, regularizers)
    assert schedule.lr[[0, 5]].tolist() == [0.0, 1e6]
    assert schedule.weights_at(5)['reg-unit'] == 1e6


def test_an_unmatched_column_warns_unless_it_is_zero_at_every_step(regularizers, caplog):
    # 'extra' is non-zero between its zero keys; 'zeros' could weight nothing, even if a regularizer read it
    sheet = Dopesheet.from_string('STEP,lr,extra,zeros\n0,0.1,0,0\n5,0.1,0.5,0\n10,0.1,0,0\n')
    with caplog.at_level(logging.INFO, logger='ex_color.training.schedule'):
        schedule = TrainingSchedule.from_dopesheet(sheet, regularizers)
        TrainingSchedule.from_dopesheet(sheet, regularizers)  # the same sheet again (a sweep's next chunk): no repeat
    assert schedule.ignored_properties == ('extra', 'zeros')
    about = {(r.levelname, r.getMessage()) for r in caplog.records if 'matches no regularizer' in r.getMessage()}
    assert about == {
        ('WARNING', "Dopesheet column 'extra' matches no regularizer and is ignored"),
        ('INFO', "Dopesheet column 'zeros' matches no regularizer and is zero at every step; ignored"),
    }
    assert sum('matches no regularizer' in r.getMessage() for r in caplog.records) == 2
