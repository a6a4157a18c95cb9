"""Turn a dopesheet into per-step learning rates and regularizer weights.

Both trainers read the schedule through `TrainingSchedule`, so they agree on which
dopesheet columns matter and on the weight of a regularizer the sheet does not mention.
A column that matches no regularizer is ignored: with a warning when it holds a non-zero
value, with an info note when it is zero at every step (it could weight nothing). An
experiment file declares the columns it leaves unused on purpose in
`experiment.unused_columns`; `load_experiment` drops those before a schedule is built.
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ex_color.loss import RegularizerConfig
from ex_color.loss.config import LR_COLUMN
from ex_color.temporal import Dopesheet, DopesheetError, schedule_table
from ex_color.temporal.keyframes import location

log = logging.getLogger(__name__)
_warned: weakref.WeakKeyDictionary[Dopesheet, set[tuple[str, str]]] = weakref.WeakKeyDictionary()
"""What has been reported about each live sheet (by the sheet itself: a later sheet may reuse a dead one's id)."""


def _warn_once(sheet: Dopesheet, kind: str, name: str, message: str, level: int = logging.WARNING) -> None:
    """A sheet's mismatches are reported once, not again for every chunk of a sweep."""
    reported = _warned.setdefault(sheet, set())
    if (kind, name) not in reported:
        reported.add((kind, name))
        log.log(level, message, name)


LR_PROPERTY = LR_COLUMN
MAX_SCHEDULE_VALUE = 1e6
"""The largest learning rate or regularizer weight a dopesheet may key. Far above any useful value, it
keeps `weight × term` and Adam's steps finite in float32 (a keyed 1e308 would overflow)."""


def check_schedule_values(dopesheet: Dopesheet, regularizer_names: Iterable[str]) -> None:
    """Every keyed `lr` and regularizer weight is a number in [0, MAX_SCHEDULE_VALUE].

    Interpolation never leaves the range of the keyframes around a step, so checking the keyed
    values checks every step. Raises DopesheetError naming the first bad cell in file order
    (source, row, line and column). Columns that match nothing are not checked: they are ignored.
    """
    what = {name: f'the weight of regularizer {name!r}' for name in regularizer_names}
    what[LR_PROPERTY] = 'the learning rate'
    specs = {spec.name: spec for spec in dopesheet.properties if spec.name in what}
    in_file_order = sorted(dopesheet.keyframes, key=lambda k: (k.row is None, k.row or 0, k.step))
    for keyframe in in_file_order:
        for name, spec in specs.items():
            value = keyframe.values.get(name)
            if value is None or 0 <= value <= MAX_SCHEDULE_VALUE:
                continue
            if not math.isfinite(value):
                problem = 'is not finite'
            elif value < 0:
                problem = 'is negative'
            else:
                problem = 'is above the limit'
            where = location(dopesheet.source, row=keyframe.row, line=keyframe.line, column=spec.label)
            raise DopesheetError(
                f'{where}: {what[name]}, {value:g}, {problem}: expected a number from 0 to {MAX_SCHEDULE_VALUE:,.0f}'
            )


@dataclass(frozen=True)
class TrainingSchedule:
    """The dopesheet resolved once into a table: `lr [steps]` and `weights [steps, R]`.

    `weights[:, r]` is the schedule weight of `regularizer_names[r]`; regularizers the
    sheet does not mention have weight 1 at every step.
    """

    lr: np.ndarray
    regularizer_names: tuple[str, ...]
    weights: np.ndarray
    ignored_properties: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.lr)

    @classmethod
    def from_dopesheet(cls, dopesheet: Dopesheet, regularizers: Sequence[RegularizerConfig]) -> TrainingSchedule:
        """The sheet's table as lr and weights; a DopesheetError (a ValueError) for a missing `lr` column or a
        value outside [0, MAX_SCHEDULE_VALUE] (see `check_schedule_values`)."""
        if LR_PROPERTY not in dopesheet.props:
            raise DopesheetError(
                f"{dopesheet.source}: no '{LR_PROPERTY}' column: expected one; the trainers take the learning rate "
                'from it'
            )
        check_schedule_values(dopesheet, [r.name for r in regularizers])
        names, values = schedule_table(dopesheet)
        columns = {name: values[:, i] for i, name in enumerate(names)}
        steps = values.shape[0]
        regularizer_names = tuple(r.name for r in regularizers)
        weights = np.ones((steps, len(regularizer_names)), dtype=np.float64)
        for r, name in enumerate(regularizer_names):
            if name in columns:
                weights[:, r] = columns[name]
            else:
                _warn_once(
                    dopesheet, 'weight', name, "Regularizer '%s' has no dopesheet column; its weight is 1 at every step"
                )
        for name in dopesheet.left_out:  # noted when training starts, not when the file is read (an error stays 1 line)
            _warn_once(dopesheet, 'column', name, "Dopesheet column '%s' is declared unused and left out", logging.INFO)
        ignored = tuple(n for n in names if n != LR_PROPERTY and n not in regularizer_names)
        for name in ignored:
            # A column of zeros would weight nothing even if a regularizer read it: a note, not a warning.
            if columns[name].any():
                _warn_once(dopesheet, 'column', name, "Dopesheet column '%s' matches no regularizer and is ignored")
            else:
                _warn_once(
                    dopesheet,
                    'column',
                    name,
                    "Dopesheet column '%s' matches no regularizer and is zero at every step; ignored",
                    logging.INFO,
                )
        return cls(
            lr=columns[LR_PROPERTY].copy(),
            regularizer_names=regularizer_names,
            weights=weights,
            ignored_properties=ignored,
        )

    def weights_at(self, step: int) -> dict[str, float]:
        """Regularizer weights at one step, by name."""
        row = self.weights[step]
        return {name: float(row[r]) for r, name in enumerate(self.regularizer_names)}
