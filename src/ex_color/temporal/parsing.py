"""Read dopesheet CSV text into property specs and keyframes, resolving relative steps.

Every problem raises DopesheetError with a one-line message naming the source, the row
(`row N` counts data rows under the header from 1, `line L` is the CSV line) and the column.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from ex_color.temporal.keyframes import MAX_STEPS, DopesheetError, Keyframe, PropertySpec, location
from ex_color.temporal.timing import DEFAULT_SPACE, DEFAULT_TIMING, SPACES, TIMING_FUNCTIONS, canonical_timing

STEP_COLUMN = 'STEP'
PHASE_COLUMN = 'PHASE'
ACTION_COLUMN = 'ACTION'
RESERVED_COLUMNS = (STEP_COLUMN, PHASE_COLUMN, ACTION_COLUMN)

# [0-9], not \d: \d and int() also accept other scripts' digits ('٣٠٠٠'), which a STEP must not use.
_ABSOLUTE = re.compile(r'[0-9]+')
_RELATIVE_WHOLE = re.compile(r'([+-])([0-9]+)')
_RELATIVE_FRACTION = re.compile(r'([+-])([0-9]+\.[0-9]*|\.[0-9]+)')
_DECIMAL = re.compile(r'[0-9]+\.[0-9]*|\.[0-9]+')
_MAX_STEP_DIGITS = 30
"""Longer STEP numbers are reported by their length: int() refuses more than 4,300 digits."""
_MAX_FRACTION_DIGITS = 30
_STEP_FORMS = 'a whole step >= 0 (e.g. 1000) or a relative step (+10, -10, +0.5, -0.5)'


@dataclass(frozen=True)
class StepSpec:
    """A STEP cell as written: absolute, or an offset from the absolute rows around it."""

    kind: Literal['absolute', 'after', 'before']
    """`absolute`; `after` (`+`: from the previous absolute row); `before` (`-`: from the next)."""
    amount: int | Fraction
    """The step, a whole offset, or (when `fractional`) a fraction of the gap in (0, 1)."""
    fractional: bool = False
    text: str = ''
    """The cell as written."""


@dataclass(frozen=True)
class _Row:
    """A data row with its position in the source, cells stripped and padded to the header."""

    row: int
    line: int
    cells: list[str]


def parse_step(text: str, where: str) -> StepSpec:
    """Parse one STEP cell; `where` prefixes the error message."""
    if not text:
        raise DopesheetError(f'{where}: empty STEP: expected {_STEP_FORMS}')
    if not text.isascii():
        raise DopesheetError(
            f'{where}: STEP {text!r} has characters other than ASCII (such as digits of another script); '
            f'expected {_STEP_FORMS} in the digits 0-9'
        )
    if _ABSOLUTE.fullmatch(text):
        return StepSpec('absolute', _whole(text, text, where), text=text)
    kind: Literal['after', 'before']
    if match := _RELATIVE_WHOLE.fullmatch(text):
        kind = 'after' if match[1] == '+' else 'before'
        return StepSpec(kind, _whole(match[2], text, where), text=text)
    if match := _RELATIVE_FRACTION.fullmatch(text):
        kind = 'after' if match[1] == '+' else 'before'
        whole_part, decimals = match[2].split('.')
        if len(decimals) > _MAX_FRACTION_DIGITS:
            raise DopesheetError(
                f'{where}: relative step {text[:12]}… has {len(decimals):,} digits after the point: '
                f'expected at most {_MAX_FRACTION_DIGITS}'
            )
        fraction = Fraction(1) if whole_part.lstrip('0') else Fraction(match[2])  # >= 1 however many digits
        if not 0 < fraction < 1:
            raise DopesheetError(
                f'{where}: relative step {text!r} has a decimal point, so it is a fraction of the gap between '
                f'the absolute rows around it and must lie strictly between 0 and 1 (write whole offsets '
                f'without a decimal point, e.g. +10)'
            )
        return StepSpec(kind, fraction, fractional=True, text=text)
    if _DECIMAL.fullmatch(text):
        raise DopesheetError(f'{where}: absolute step {text!r} is not a whole number: expected {_STEP_FORMS}')
    raise DopesheetError(f'{where}: malformed STEP {text!r}: expected {_STEP_FORMS}')


def _whole(digits: str, text: str, where: str) -> int:
    """A STEP's ASCII digits as an int below MAX_STEPS."""
    significant = digits.lstrip('0')
    value = int(digits) if len(significant) <= _MAX_STEP_DIGITS else None
    if value is not None and value < MAX_STEPS:
        return value
    limit = f'expected at most {MAX_STEPS:,} steps (steps 0 to {MAX_STEPS - 1:,})'
    if value is None:
        raise DopesheetError(f'{where}: STEP {text[:12]!r}… is a number of {len(significant):,} digits: {limit}')
    if text[0] in '+-':
        raise DopesheetError(f'{where}: relative step {text!r} is an offset of {value:,} steps: {limit}')
    raise DopesheetError(f'{where}: step {value:,} would make the sheet {value + 1:,} steps long: {limit}')


def resolve_steps(specs: Sequence[StepSpec], wheres: Sequence[str]) -> list[int]:
    """Resolve written steps (in file order) to absolute steps, in the same order.

    `+N` = previous absolute row + N; `-N` = next absolute row − N; `+F` = round(prev + F·(next − prev));
    `-F` = round(next − F·(next − prev)). "Previous/next absolute row" are the nearest rows above/below
    in file order whose STEP is absolute. Fractions use exact decimal arithmetic and Python's `round`
    (ties to even). `wheres[i]` prefixes errors about row i.
    """
    previous: list[int | None] = []
    last: int | None = None
    for spec in specs:
        previous.append(last)
        if spec.kind == 'absolute':
            last = int(spec.amount)
    following: list[int | None] = [None] * len(specs)
    last = None
    for i in range(len(specs) - 1, -1, -1):
        following[i] = last
        if specs[i].kind == 'absolute':
            last = int(specs[i].amount)

    steps: list[int] = []
    for spec, prev, nxt, where in zip(specs, previous, following, wheres, strict=True):
        steps.append(_resolve_one(spec, prev, nxt, where))
    return steps


def _resolve_one(spec: StepSpec, prev: int | None, nxt: int | None, where: str) -> int:
    """Resolve one written step given the absolute steps above (`prev`) and below (`nxt`) it."""
    if spec.kind == 'absolute':
        return int(spec.amount)
    needs_above = spec.kind == 'after' or spec.fractional
    needs_below = spec.kind == 'before' or spec.fractional
    missing = [
        side
        for side, needed, found in (('above', needs_above, prev), ('below', needs_below, nxt))
        if needed and found is None
    ]
    if missing:
        wanted = ' and '.join(side for side, needed in (('above', needs_above), ('below', needs_below)) if needed)
        raise DopesheetError(
            f'{where}: relative step {spec.text!r} needs an absolute STEP in a row {wanted} it; '
            f'found none {" or ".join(missing)}'
        )
    if spec.fractional:
        assert prev is not None and nxt is not None
        gap = nxt - prev
        exact = prev + spec.amount * gap if spec.kind == 'after' else nxt - spec.amount * gap
        step = round(exact)
        how = f'round({float(exact)})'
    elif spec.kind == 'after':
        assert prev is not None
        step = prev + int(spec.amount)
        how = f'{prev} + {spec.amount}'
    else:
        assert nxt is not None
        step = nxt - int(spec.amount)
        how = f'{nxt} - {spec.amount}'
    if step < 0:
        raise DopesheetError(f'{where}: relative step {spec.text!r} resolves to {how} = {step}: expected a step >= 0')
    # Past its neighbours, a relative row would silently reorder the sheet or lengthen it.
    if spec.kind == 'after' and nxt is not None and step > nxt:
        raise DopesheetError(
            f'{where}: relative step {spec.text!r} resolves to {how} = {step}, past the next absolute STEP {nxt}: '
            f'expected a step between {prev} and {nxt} (write an absolute STEP to go further)'
        )
    if spec.kind == 'before' and prev is not None and step < prev:
        raise DopesheetError(
            f'{where}: relative step {spec.text!r} resolves to {how} = {step}, before the previous absolute STEP '
            f'{prev}: expected a step between {prev} and {nxt}'
        )
    if step >= MAX_STEPS:
        raise DopesheetError(
            f'{where}: relative step {spec.text!r} resolves to {how} = {step}, which would make the sheet '
            f'{step + 1:,} steps long: expected at most {MAX_STEPS:,} steps (steps 0 to {MAX_STEPS - 1:,})'
        )
    return step


def parse_property_header(header: str, where: str) -> PropertySpec:
    """Parse a property header `name`, `name:space` or `name:space:timing` (blank parts are defaults)."""
    parts = [part.strip() for part in header.split(':')]
    if len(parts) > 3:
        raise DopesheetError(
            f'{where}: header {header!r} has {len(parts)} parts: expected name, name:space or name:space:timing'
        )
    name, space, timing = [*parts, '', ''][:3]
    if not name:
        raise DopesheetError(f'{where}: header {header!r} has no property name: expected name[:space[:timing]]')
    space = space or DEFAULT_SPACE
    if space not in SPACES:
        raise DopesheetError(
            f'{where}: unknown space {space!r} in header {header!r}: expected one of {", ".join(SPACES)}'
        )
    timing = timing or DEFAULT_TIMING
    if timing not in TIMING_FUNCTIONS:
        raise DopesheetError(
            f'{where}: unknown timing {timing!r} in header {header!r}: expected one of {", ".join(TIMING_FUNCTIONS)}'
        )
    return PropertySpec(name=name, space=space, timing=canonical_timing(timing), header=header)  # type: ignore[arg-type]


def parse_value(text: str, where: str) -> float:
    """Parse a property cell as a finite float, written in ASCII (float() also takes other scripts' digits)."""
    if not text.isascii():
        raise DopesheetError(
            f'{where}: expected a number in the digits 0-9 (e.g. 0.01 or 1e-8), got {text!r}, which has '
            'characters other than ASCII'
        )
    try:
        value = float(text)
    except ValueError:
        raise DopesheetError(f'{where}: expected a number (e.g. 0.01 or 1e-8), got {text!r}') from None
    if not math.isfinite(value):
        raise DopesheetError(f'{where}: expected a finite number, got {text!r}')
    return value


def parse_actions(text: str) -> tuple[str, ...]:
    """Split an ACTION cell on commas, stripping names and dropping empty ones."""
    return tuple(name for name in (part.strip() for part in text.split(',')) if name)


def _read_records(text: str, source: str) -> list[tuple[int, list[str]]]:
    """All CSV records as (line the record starts on, stripped cells); blank lines give empty records.

    Lines may end in LF, CRLF or a lone CR. A quoted cell must close on the line it opens:
    an unbalanced quote would otherwise swallow the rows below it into one cell.
    """
    if text.startswith('\ufeff'):
        text = text[1:]
    # newline='': split lines at \n, \r\n and a lone \r alike, and leave the endings to csv.
    reader = csv.reader(io.StringIO(text, newline=''), strict=True)
    records = []
    end_of_previous = 0
    start = 1
    try:
        for cells in reader:
            start, end_of_previous = end_of_previous + 1, reader.line_num
            if end_of_previous > start and any('\n' in cell or '\r' in cell for cell in cells):
                raise DopesheetError(
                    f'{location(source, line=start)}: a quoted cell runs from line {start} to line '
                    f'{end_of_previous}: expected each row on one line (is a closing quote missing?)'
                )
            stripped = [cell.strip() for cell in cells]
            records.append((start, stripped))
    except csv.Error as error:
        start = end_of_previous + 1
        if 'unexpected end of data' in str(error):
            raise DopesheetError(
                f'{location(source, line=start)}: unbalanced quote: a quote opened on line {start} is never '
                'closed: expected a closing " in the same cell'
            ) from None
        raise DopesheetError(f'{location(source, line=start)}: not valid CSV: {error}') from None
    return records


def parse_dopesheet_csv(text: str, source: str) -> tuple[list[PropertySpec], list[Keyframe]]:
    """Parse dopesheet CSV `text` into property specs (column order) and keyframes (file order).

    Fully blank lines (and rows whose cells are all blank) are skipped; a row shorter than the
    header is padded with blanks. Duplicate steps and empty columns are checked by `Dopesheet`.
    """
    records = _read_records(text, source)
    first = next((i for i, (_, cells) in enumerate(records) if any(cells)), None)
    if first is None:
        raise DopesheetError(f'{source}: empty dopesheet: expected a header row with a STEP column')
    header_line, header = records[first]
    reserved, properties = _parse_header(header, header_line, source)

    rows: list[_Row] = []
    for number, (line, cells) in enumerate(records[first + 1 :], start=1):
        if not any(cells):
            continue
        if len(cells) > len(header):
            if any(cells[len(header) :]):
                raise DopesheetError(
                    f'{location(source, row=number, line=line)}: row has {len(cells)} cells: '
                    f'expected at most {len(header)}, one per header column'
                )
            cells = cells[: len(header)]
        rows.append(_Row(number, line, cells + [''] * (len(header) - len(cells))))
    if not rows:
        raise DopesheetError(f'{location(source, line=header_line)}: no rows under the header: expected at least one')

    step_col = reserved[STEP_COLUMN]
    step_wheres = [location(source, row=r.row, line=r.line, column=STEP_COLUMN) for r in rows]
    specs = [parse_step(r.cells[step_col], where) for r, where in zip(rows, step_wheres, strict=True)]
    steps = resolve_steps(specs, step_wheres)

    keyframes = []
    for r, step in zip(rows, steps, strict=True):
        values = {}
        for column, spec in properties:
            if cell := r.cells[column]:
                values[spec.name] = parse_value(cell, location(source, row=r.row, line=r.line, column=spec.label))
        phase = (r.cells[reserved[PHASE_COLUMN]] or None) if PHASE_COLUMN in reserved else None
        actions = parse_actions(r.cells[reserved[ACTION_COLUMN]]) if ACTION_COLUMN in reserved else ()
        keyframes.append(
            Keyframe(
                step=step,
                values=values,
                phase=phase,
                actions=actions,
                written_step=r.cells[step_col],
                row=r.row,
                line=r.line,
            )
        )
    return [spec for _, spec in properties], keyframes


def set_cells(text: str, cells: Sequence[tuple[str, str, str]], source: str) -> str:
    """Dopesheet CSV `text` with cells replaced: each `(property, step, value)` sets that property's cell in the row
    whose STEP is `step` as written (`+10`) or as resolved (`1000`); an empty value clears the cell. The property
    `STEP` rewrites the row's STEP itself (rows are found by the steps of the sheet as given).

    The sheet is rewritten as plain CSV (cells stripped, blank lines dropped). A DopesheetError names the first
    property or step the sheet lacks; the result is checked by parsing it like any sheet.
    """
    properties, keyframes = parse_dopesheet_csv(text, source)
    records = [cells_ for _, cells_ in _read_records(text, source) if any(cells_)]
    header, rows = records[0], records[1:]
    names = [spec.name for spec in properties]
    written: dict[tuple[str, int], str] = {}
    for name, step, value in cells:
        if name == STEP_COLUMN:  # moves the keyframe; rows are found by the steps the sheet had before any change
            column = header.index(STEP_COLUMN)
        elif name not in names:
            raise DopesheetError(f'{source}: no property column {name!r}; expected one of {", ".join(names)}')
        else:
            column = next(i for i, h in enumerate(header) if h and parse_property_header(h, source).name == name)
        index = next(
            (i for i, k in enumerate(keyframes) if step in (k.written_step, str(k.step))),
            None,
        )
        if index is None:
            written = ', '.join(k.written_step for k in keyframes)
            raise DopesheetError(
                f'{source}: no row with STEP {step!r}; expected one of {written} (or the steps they resolve to)'
            )
        if (name, index) in written:
            raise DopesheetError(
                f'{source}: {name}@{step} and {name}@{written[name, index]} are one cell; expected it set once'
            )
        written[name, index] = step
        row = rows[index] + [''] * (len(header) - len(rows[index]))
        row[column] = value
        rows[index] = row
    out = io.StringIO()
    csv.writer(out, lineterminator='\n').writerows([header, *rows])
    parse_dopesheet_csv(out.getvalue(), source)
    return out.getvalue()


def _parse_header(header: list[str], line: int, source: str) -> tuple[dict[str, int], list[tuple[int, PropertySpec]]]:
    """Column indices of the reserved columns, and (index, spec) of each property column."""
    reserved: dict[str, int] = {}
    properties: list[tuple[int, PropertySpec]] = []
    seen: dict[str, int] = {}
    for index, text in enumerate(header):
        where = location(source, line=line, column=f'{index + 1} ({text!r})')
        if text in RESERVED_COLUMNS:
            if text in reserved:
                raise DopesheetError(f'{where}: duplicate {text} column (also column {reserved[text] + 1})')
            reserved[text] = index
            continue
        name = text.split(':', 1)[0].strip()
        if name in RESERVED_COLUMNS:
            raise DopesheetError(f'{where}: reserved column {name} takes no space or timing: expected just {name}')
        spec = parse_property_header(text, where)
        if spec.name in seen:
            raise DopesheetError(
                f'{where}: duplicate property {spec.name!r} (also column {seen[spec.name] + 1}): '
                f'expected each property once'
            )
        seen[spec.name] = index
        properties.append((index, spec))
    if STEP_COLUMN not in reserved:
        near = [text for text in header if text.strip().upper() == STEP_COLUMN]
        hint = f' (found {near[0]!r}; reserved column names are upper case)' if near else ''
        raise DopesheetError(f'{location(source, line=line)}: no STEP column in the header{hint}: expected STEP')
    return reserved, properties
