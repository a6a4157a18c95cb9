"""Turn a dopesheet into per-step learning rates and regularizer weights.

Both trainers read the schedule through `TrainingSchedule`, so they agree on which
dopesheet columns matter and on the weight of a regularizer the sheet does not mention.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ex_color.loss import RegularizerConfig
from ex_color.temporal import Dopesheet, schedule_table

log = logging.getLogger(__name__)
_warned: set[tuple[int, str, str]] = set()


def _warn_once(sheet: Dopesheet, kind: str, name: str, message: str) -> None:
    """A sheet's mismatches are reported once, not again for every chunk of a sweep."""
    key = (id(sheet), kind, name)
    if key not in _warned:
        _warned.add(key)
        log.warning(message, name)


LR_PROPERTY = 'lr'


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
        names, values = schedule_table(dopesheet)
        columns = {name: values[:, i] for i, name in enumerate(names)}
        if LR_PROPERTY not in columns:
            raise ValueError(f"dopesheet has no '{LR_PROPERTY}' column; the trainers need it for the learning rate")
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
        ignored = tuple(n for n in names if n != LR_PROPERTY and n not in regularizer_names)
        for name in ignored:
            _warn_once(dopesheet, 'column', name, "Dopesheet column '%s' matches no regularizer and is ignored")
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
