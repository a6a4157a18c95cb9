"""The data a dopesheet is made of: property specs, keyframe rows, its size limits and its error type."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ex_color.temporal.timing import DEFAULT_SPACE, DEFAULT_TIMING, SpaceName, TimingName

MAX_STEPS = 10_000_000
"""The longest schedule: a sheet's last step is at most `MAX_STEPS − 1` (days of training on a CPU)."""
MAX_TABLE_BYTES = 2**30
"""The largest schedule table, `steps × properties × 8` bytes (1 GiB), computed before it is allocated."""


class DopesheetError(ValueError):
    """A dopesheet that cannot be read or built.

    The message is one line: where (source, `row N (line L)`, column) and what was expected.
    `row` counts data rows under the header from 1; `line` is the CSV line the row starts on.
    """

    def __init__(self, message: str) -> None:
        super().__init__(' '.join(message.splitlines()))


def location(source: str, *, row: int | None = None, line: int | None = None, column: str | None = None) -> str:
    """`'sheet.csv, row 3 (line 4), column STEP'`: the prefix of every DopesheetError message."""
    parts = [source]
    if row is not None:
        parts.append(f'row {row}' + (f' (line {line})' if line is not None else ''))
    elif line is not None:
        parts.append(f'line {line}')
    if column is not None:
        parts.append(f'column {column}')
    return ', '.join(parts)


@dataclass(frozen=True)
class PropertySpec:
    """One property column: its name and how it moves between keyframes."""

    name: str
    """Name without the header's `:space:timing` suffix, e.g. `lr`."""
    space: SpaceName = DEFAULT_SPACE
    """`linear` or `log`: the coordinates interpolation happens in."""
    timing: TimingName = DEFAULT_TIMING
    """`minjerk`, `linear` or `step-end` (aliases already resolved)."""
    header: str | None = None
    """The column header as written, for error messages; None when built in code."""

    @property
    def label(self) -> str:
        """How error messages name this column."""
        return repr(self.header if self.header is not None else self.name)


@dataclass(frozen=True)
class Keyframe:
    """One dopesheet row at its resolved step. Treat `values` and `actions` as read-only."""

    step: int
    """Resolved absolute step."""
    values: Mapping[str, float] = field(default_factory=dict)
    """Keyed property values at this step (blank cells are absent)."""
    phase: str | None = None
    """Name of the phase starting here, or None if this row starts no phase."""
    actions: tuple[str, ...] = ()
    """Events at this step, in written order."""
    written_step: str | None = None
    """The STEP cell as written (e.g. `+0.5`); None when built in code."""
    row: int | None = None
    """1-based data row in the source (the header is not counted); None when built in code."""
    line: int | None = None
    """CSV line the row starts on; None when built in code."""
