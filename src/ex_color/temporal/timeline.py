"""Timeline: a cursor that walks a dopesheet one step at a time, for training loops."""

from __future__ import annotations

import operator
from collections.abc import Iterator
from typing import SupportsIndex

from ex_color.temporal.dopesheet import Dopesheet, Frame


class Timeline:
    """Steps through `dopesheet` from step 0, reading props from its precomputed table.

    `state` is the frame at the current step; `step()` moves to the next step and returns it.
    Stepping past the last step (`len(timeline) − 1`) raises StopIteration and leaves the
    timeline where it was: check `remaining` first, or iterate (`for state in timeline`).
    """

    def __init__(self, dopesheet: Dopesheet) -> None:
        self.dopesheet = dopesheet
        self._names, self._values = dopesheet.table()
        self._state = self._frame(0)

    def __len__(self) -> int:
        """Number of steps in the dopesheet."""
        return len(self.dopesheet)

    @property
    def state(self) -> Frame:
        """The frame at the current step (`.step`, `.phase`, `.actions`, `.props`, phase flags)."""
        return self._state

    @property
    def remaining(self) -> int:
        """How many more times `step()` can be called before the end."""
        return len(self) - 1 - self._state.step

    def step(self) -> Frame:
        """Advance one step and return the new state; StopIteration if already at the last step."""
        if self.remaining <= 0:
            raise StopIteration(f'timeline is at its last step {self._state.step}; there is no next step')
        self._state = self._frame(self._state.step + 1)
        return self._state

    def seek(self, step: SupportsIndex) -> Frame:
        """Jump to `step` (e.g. when resuming training) and return its state; IndexError if out of range."""
        step = operator.index(step)
        if not 0 <= step < len(self):
            raise IndexError(f'step {step} is out of range: the timeline has steps 0 to {len(self) - 1}')
        self._state = self._frame(step)
        return self._state

    def __iter__(self) -> Iterator[Frame]:
        """Yield the current state, then each following one up to the last step."""
        yield self._state
        while self.remaining > 0:
            yield self.step()

    def _frame(self, t: int) -> Frame:
        return self.dopesheet._frame(t, dict(zip(self._names, self._values[t].tolist(), strict=True)))

    def __repr__(self) -> str:
        return f'Timeline(step={self._state.step}/{len(self) - 1}, phase={self._state.phase!r})'
