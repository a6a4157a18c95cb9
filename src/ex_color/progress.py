"""One progress bar for long work: a run's training steps, or a sweep's or comparison's model-steps."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


class Progress:
    """A rich progress bar over `total` units (steps, or models × steps), when enabled; silent otherwise.

    `update(completed)` moves it; `note` (e.g. the loss) is shown beside the speed. Enter it to
    show the bar, exit to stop drawing.

    Args:
        label: the bar's name ('Training', 'Sweep', 'Compare').
        unit: what the speed counts ('it/s', 'model-steps/s').
        enabled: None → only when stderr is a terminal.
    """

    def __init__(
        self, label: str, total: int, *, completed: int = 0, enabled: bool | None = None, unit: str = 'it/s'
    ) -> None:
        self.label, self.total, self.completed, self.unit = label, total, completed, unit
        self.enabled = enabled if enabled is not None else sys.stderr.isatty()
        self.note = ''
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn(f'[bold]{self.label}'),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(f'{{task.fields[speed]}} {self.unit}'),
                TextColumn('{task.fields[note]}'),
                TimeRemainingColumn(),
            )
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=self.total, completed=self.completed, speed='-', note='')
        return self

    def update(self, completed: int, note: str = '') -> None:
        self.completed, self.note = completed, note
        if self.bar is not None:
            speed = self.bar.tasks[0].speed
            self.bar.update(self.task, completed=completed, speed=f'{speed:,.0f}' if speed else '-', note=note)

    def part(self, weight: int, steps: int | None = None, then: str = '') -> Callable[[int], None]:
        """A callback for one part of the work from here on (a chunk of `weight` models): its steps → the bar.

        `then`: the note once the part's `steps` are done (e.g. 'evaluating 60 models'), so that a bar at
        the end of its training does not look stuck while the part's models are evaluated."""
        base = self.completed

        def advance(steps_done: int) -> None:
            self.update(base + steps_done * weight, note=then if steps is not None and steps_done >= steps else '')

        return advance

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


__all__ = ['Progress']
