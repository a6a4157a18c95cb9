"""Dopesheet: a keyframed schedule of hyperparameters, phases and actions, read from CSV.

A sheet is a pure function of the step: `sheet[t]` gives the frame at step t, and
`sheet.table()` gives every property at every step as one `[steps, props]` array, computed
once; both come from one computation, so they agree bit for bit. The file format is described in
docs/experiment-file.md ("The dopesheet CSV") and the curves in docs/maths.md ("The dopesheet").
"""

from __future__ import annotations

import dataclasses
import logging
import operator
import os
import stat
from bisect import bisect_right
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING, NamedTuple, SupportsIndex, TextIO

import numpy as np

from ex_color.temporal.keyframes import MAX_STEPS, MAX_TABLE_BYTES, DopesheetError, Keyframe, PropertySpec, location
from ex_color.temporal.parsing import STEP_COLUMN, parse_dopesheet_csv
from ex_color.temporal.track import Track

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    """The schedule at one step.

    Steps before the first PHASE row belong to no phase (`phase` None, both flags False).
    Each PHASE cell starts a new phase, even if it repeats the current name.
    """

    step: int
    phase: str | None
    is_phase_start: bool
    """True at the first step of a named phase."""
    is_phase_end: bool
    """True at the last step of a named phase (the step before the next PHASE row, or the sheet's last)."""
    actions: list[str] = field(default_factory=list)
    """Events at exactly this step (from the ACTION column)."""
    props: dict[str, float] = field(default_factory=dict)
    """Value of every property at this step, in column order."""


class ScheduleTable(NamedTuple):
    """Every property at every step; unpacks as `names, values = table`."""

    names: list[str]
    """Property names in column order."""
    values: np.ndarray
    """`[steps, props]` float64, read-only: `values[t, j]` is property `names[j]` at step t."""

    def column(self, name: str) -> np.ndarray:
        """One property over all steps: `[steps]`."""
        return self.values[:, self.names.index(name)]


class Dopesheet:
    """A keyframed schedule: properties interpolated between rows, plus phases and actions.

    Build with `Dopesheet.from_csv(path_or_file)` or `Dopesheet.from_string(text)`. Its length is
    the last keyframe's step + 1; valid steps are `0 … len(sheet) − 1` (others raise IndexError).
    """

    def __init__(
        self, properties: Sequence[PropertySpec], keyframes: Sequence[Keyframe], *, source: str = '<memory>'
    ) -> None:
        """Build from specs (column order) and keyframes (any order; sorted here by step).

        Raises DopesheetError when there are no keyframes, two keyframes share a step, a keyframe
        keys an unknown property, a property has no keyed value at all, or the sheet is longer
        than `MAX_STEPS` or its table would take more than `MAX_TABLE_BYTES`.
        """
        self.source = source
        if not keyframes:
            raise DopesheetError(f'{source}: no keyframes: expected at least one row')
        ordered = sorted(keyframes, key=lambda k: k.step)
        self._check_keyframes(properties, ordered, source)
        self._check_size(len(properties), ordered[-1], source)
        self.keyframes: tuple[Keyframe, ...] = tuple(ordered)
        """Rows sorted by resolved step."""
        self.properties: tuple[PropertySpec, ...] = tuple(properties)
        """How each property moves, in column order."""
        self._length = ordered[-1].step + 1
        self.left_out: tuple[str, ...] = ()
        """Columns `without` left out of this sheet (noted when a trainer reads the sheet)."""
        self._tracks: dict[str, Track] = {}
        for spec in properties:
            keyed = [k for k in ordered if spec.name in k.values]
            if not keyed:
                raise DopesheetError(
                    f'{location(source, column=spec.label)}: no values in this column: expected at least one keyframe'
                )
            self._tracks[spec.name] = Track(spec, [k.step for k in keyed], [k.values[spec.name] for k in keyed])
        self._phase_starts = [k.step for k in ordered if k.phase is not None]
        self._phase_names = [k.phase for k in ordered if k.phase is not None]
        self._actions = {k.step: k.actions for k in ordered if k.actions}
        self._table: np.ndarray | None = None
        log.debug('Dopesheet %s: %d steps, properties %s', source, self._length, self.props)

    @staticmethod
    def _check_keyframes(properties: Sequence[PropertySpec], ordered: Sequence[Keyframe], source: str) -> None:
        names = [spec.name for spec in properties]
        if len(set(names)) != len(names):
            duplicate = next(n for n in names if names.count(n) > 1)
            raise DopesheetError(f'{source}: duplicate property {duplicate!r}: expected each property once')
        for before, after in pairwise(ordered):
            if before.step == after.step:
                first, second = sorted((before, after), key=lambda k: (k.row is None, k.row or 0))
                raise DopesheetError(
                    f'{_where(source, second)}: resolves to step {second.step}, the same step as '
                    f'{_row_name(first)}: expected one row per step'
                )
        if ordered[0].step < 0:
            raise DopesheetError(f'{_where(source, ordered[0])}: step {ordered[0].step}: expected a step >= 0')
        known = set(names)
        for keyframe in ordered:
            if unknown := set(keyframe.values) - known:
                where = location(source, row=keyframe.row, line=keyframe.line)
                raise DopesheetError(f'{where}: unknown properties {sorted(unknown)}: expected {names}')

    @staticmethod
    def _check_size(n_properties: int, last: Keyframe, source: str) -> None:
        """Refuse a sheet too long, or a table too large, before anything the size of the sheet is allocated."""
        length = last.step + 1
        if length > MAX_STEPS:
            raise DopesheetError(
                f'{_where(source, last)}: step {last.step:,} makes the sheet {length:,} steps long: '
                f'expected at most {MAX_STEPS:,} steps'
            )
        size = length * n_properties * 8
        if size > MAX_TABLE_BYTES:
            raise DopesheetError(
                f'{_where(source, last)}: the schedule table would take {length:,} steps × {n_properties} '
                f'properties × 8 bytes = {size / 2**20:,.0f} MiB: expected at most {MAX_TABLE_BYTES / 2**20:,.0f} '
                'MiB (fewer steps or property columns)'
            )

    @classmethod
    def from_csv(cls, path_or_file: str | os.PathLike[str] | TextIO, *, source: str | None = None) -> Dopesheet:
        """Read a dopesheet from a CSV path or an open text or binary file; `source` names it in errors.

        Errors name the file path (or the file object's `name`, else `<stream>`). A path must be a
        regular file: a directory, FIFO or device is refused without being read.
        """
        if isinstance(path_or_file, str | os.PathLike):
            default_source = os.fspath(path_or_file)
        else:
            default_source = str(getattr(path_or_file, 'name', '<stream>'))
        source = source or default_source
        try:
            if isinstance(path_or_file, str | os.PathLike):
                try:
                    text = read_regular_file(path_or_file).decode('utf-8-sig')
                except UnreadableFileError as error:
                    raise DopesheetError(f'{source}: {error}: expected a dopesheet CSV file') from None
            else:
                text = path_or_file.read()
                if isinstance(text, bytes):
                    text = text.decode('utf-8-sig')
        except UnicodeDecodeError as error:
            raise DopesheetError(f'{source}: not UTF-8 text: {error}') from None
        return cls.from_string(text, source=source)

    @classmethod
    def from_string(cls, text: str, *, source: str = '<string>') -> Dopesheet:
        """Parse dopesheet CSV text; `source` names it in error messages."""
        properties, keyframes = parse_dopesheet_csv(text, source)
        return cls(properties, keyframes, source=source)

    def without(self, names: Collection[str]) -> Dopesheet:
        """This sheet without the property columns `names`: the same rows, steps, phases and actions.

        KeyError for a name that is not a property of this sheet.
        """
        for name in names:
            self.track(name)
        dropped = set(names)
        keyframes = [
            dataclasses.replace(k, values={n: v for n, v in k.values.items() if n not in dropped})
            for k in self.keyframes
        ]
        sheet = Dopesheet([p for p in self.properties if p.name not in dropped], keyframes, source=self.source)
        sheet.left_out = (*self.left_out, *(n for n in names if n not in self.left_out))
        return sheet

    def __len__(self) -> int:
        """Number of steps: the last keyframe's step + 1."""
        return self._length

    @property
    def props(self) -> list[str]:
        """Property names in column order (without `:space:timing`)."""
        return [spec.name for spec in self.properties]

    @property
    def phases(self) -> set[str]:
        """Names of the phases in the sheet."""
        return set(self._phase_names)  # type: ignore[arg-type]

    @property
    def steps(self) -> list[int]:
        """Resolved steps of the rows, ascending."""
        return [k.step for k in self.keyframes]

    def track(self, prop: str) -> Track:
        """The keyframes and curve of property `prop`."""
        try:
            return self._tracks[prop]
        except KeyError:
            raise KeyError(f'unknown property {prop!r}: expected one of {self.props}') from None

    def value(self, prop: str, t: SupportsIndex) -> float:
        """Value of property `prop` at step `t`: `table().column(prop)[t]`, bit for bit (see `__getitem__`)."""
        track = self.track(prop)
        t = self._check_step(t)
        if self._table is not None:
            return float(self._table[t, self.props.index(prop)])
        return track.value_at(t)

    def __getitem__(self, t: SupportsIndex) -> Frame:
        """The frame at step `t`; its props are row t of `table()`, bit for bit.

        Row t is read from the table once it has been built; before that, the step is computed alone by the
        same code that fills the table (`Track.values_at`), so a single lookup never builds a long sheet's table.
        """
        t = self._check_step(t)
        if self._table is not None:
            return self._frame(t, dict(zip(self.props, self._table[t].tolist(), strict=True)))
        return self._frame(t, {name: track.value_at(t) for name, track in self._tracks.items()})

    def __iter__(self) -> Iterator[Frame]:
        """Frames for steps 0 … len − 1, props taken from the table."""
        names, values = self.table()
        for t in range(self._length):
            yield self._frame(t, dict(zip(names, values[t].tolist(), strict=True)))

    def table(self) -> ScheduleTable:
        """Every property at every step: `values [steps, props]` float64, computed once then reused."""
        if self._table is None:
            table = np.empty((self._length, len(self._tracks)), dtype=np.float64)
            for j, track in enumerate(self._tracks.values()):
                table[:, j] = track.sample(self._length)
            table.flags.writeable = False
            self._table = table
        return ScheduleTable(self.props, self._table)

    def to_frame(self) -> pd.DataFrame:
        """The table as a pandas DataFrame: index `STEP` (0 … len − 1), one column per property."""
        import pandas as pd

        names, values = self.table()
        return pd.DataFrame(values.copy(), index=pd.RangeIndex(self._length, name=STEP_COLUMN), columns=names)

    def _check_step(self, t: SupportsIndex) -> int:
        t = operator.index(t)
        if not 0 <= t < self._length:
            raise IndexError(f'step {t} is out of range: {self.source} has steps 0 to {self._length - 1}')
        return t

    def _frame(self, t: int, props: dict[str, float]) -> Frame:
        """The frame at a checked step `t` with the given property values."""
        j = bisect_right(self._phase_starts, t) - 1
        if j < 0:
            phase, starts, ends = None, False, False
        else:
            phase = self._phase_names[j]
            starts = self._phase_starts[j] == t
            next_start = self._phase_starts[j + 1] if j + 1 < len(self._phase_starts) else self._length
            ends = next_start == t + 1
        return Frame(
            step=t,
            phase=phase,
            is_phase_start=starts,
            is_phase_end=ends,
            actions=list(self._actions.get(t, ())),
            props=props,
        )

    def __repr__(self) -> str:
        return f'Dopesheet({self.source!r}, steps={self._length}, props={self.props}, phases={sorted(self.phases)})'


class UnreadableFileError(ValueError):
    """A path that is not a readable regular file; the message says what it is ('is a directory')."""


_FILE_TYPES = {
    stat.S_ISFIFO: 'a FIFO',
    stat.S_ISCHR: 'a character device',
    stat.S_ISBLK: 'a block device',
    stat.S_ISSOCK: 'a socket',
}


def file_type_problem(mode: int) -> str | None:
    """What is wrong with a file of this `st_mode` for reading it whole: None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return 'is a directory'
    kind = next((name for test, name in _FILE_TYPES.items() if test(mode)), 'something else')
    return f'is not a regular file (it is {kind})'


def read_regular_file(path: str | os.PathLike[str]) -> bytes:
    """The whole content of a regular file; else UnreadableFileError saying what `path` is.

    Opens without blocking and checks what it opened before reading, so a FIFO is never
    waited on and a device such as /dev/zero is never read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0))
    except FileNotFoundError:
        raise UnreadableFileError('does not exist') from None
    except IsADirectoryError:
        raise UnreadableFileError('is a directory') from None
    except OSError as error:
        raise UnreadableFileError(f'cannot be read ({error.strerror or error})') from None
    try:
        if problem := file_type_problem(os.fstat(fd).st_mode):
            raise UnreadableFileError(problem)
        with os.fdopen(fd, 'rb', closefd=False) as file:
            return file.read()
    finally:
        os.close(fd)


def schedule_table(dopesheet: Dopesheet) -> ScheduleTable:
    """`(names, values [steps, props])` for `dopesheet`: every property at every step (cached)."""
    return dopesheet.table()


def _where(source: str, keyframe: Keyframe) -> str:
    """Location prefix for an error about `keyframe`'s row."""
    return location(source, row=keyframe.row, line=keyframe.line, column=STEP_COLUMN)


def _row_name(keyframe: Keyframe) -> str:
    if keyframe.row is None:
        return f'the keyframe at step {keyframe.step}'
    return f'row {keyframe.row} (line {keyframe.line})'
