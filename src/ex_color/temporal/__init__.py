"""Keyframed schedules: dopesheets (CSV), timing functions and a step-by-step timeline.

Pure Python and numpy; nothing here imports torch.
"""

from ex_color.temporal.dopesheet import Dopesheet, Frame, ScheduleTable, schedule_table
from ex_color.temporal.keyframes import MAX_STEPS, MAX_TABLE_BYTES, DopesheetError, Keyframe, PropertySpec
from ex_color.temporal.timeline import Timeline
from ex_color.temporal.timing import (
    LOG_FLOOR,
    SPACES,
    TIMING_FUNCTIONS,
    SpaceName,
    TimingFunction,
    TimingName,
    get_timing,
    interpolate,
    linear,
    minjerk,
    step_end,
)
from ex_color.temporal.track import Track

__all__ = [
    'LOG_FLOOR',
    'MAX_STEPS',
    'MAX_TABLE_BYTES',
    'SPACES',
    'TIMING_FUNCTIONS',
    'Dopesheet',
    'DopesheetError',
    'Frame',
    'Keyframe',
    'PropertySpec',
    'ScheduleTable',
    'SpaceName',
    'Timeline',
    'TimingFunction',
    'TimingName',
    'Track',
    'get_timing',
    'interpolate',
    'linear',
    'minjerk',
    'schedule_table',
    'step_end',
]
