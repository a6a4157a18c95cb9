"""What every HTML report shares: file names, the Jinja2 environment, the directory lock, stale figures."""

from __future__ import annotations

import contextlib
import io
import math
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from ex_color.rundir import RunArtifactsError
from ex_color.signals import Interrupted, stop_on_signals
from ex_color.vis.export import SavedFigure
from ex_color.workdir import DirectoryError, lock

REPORT_FILE = 'report.html'
FIGURES_DIR = 'figures'
FIGURE_INDEX = 'index.json'
"""In figures/: every figure's paths, title and alt text, for tools (and the sweep report)."""
ERROR_SHADE_DECADES = (-5.0, 0.0)
"""Cell shading of the named-colour table: none at error 1e-5, full at error 1."""

ReportError = RunArtifactsError
"""A directory a report cannot be made from: not a run, sweep or comparison, or a file missing or damaged."""


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader('ex_color.vis', 'templates'),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters['g'] = lambda x: '—' if x is None or (isinstance(x, float) and math.isnan(x)) else f'{x:.2g}'
    env.filters['f3'] = lambda x: '—' if x is None or (isinstance(x, float) and math.isnan(x)) else f'{x:.3f}'
    env.filters['shade'] = error_shade
    return env


def error_shade(error: float) -> float:
    """Opacity of a table cell's shading for a per-colour error: 0 at ≤ 1e-5, 1 at ≥ 1, log-linear between."""
    if not error > 0:
        return 0.0
    low, high = ERROR_SHADE_DECADES
    return round(min(max((math.log10(error) - low) / (high - low), 0.0), 1.0), 3)


@dataclass(frozen=True)
class Table:
    """A table for the template: header and rows of already formatted cells."""

    columns: list[str]
    rows: list[list[str]]


class ReportInterrupted(Interrupted):
    """Ctrl-C (SIGINT) or SIGTERM while a report was drawn: the results are whole, the report is not written."""

    def __init__(self, directory: Path) -> None:
        super().__init__(
            f'interrupted while drawing the report of {directory}; the results are saved, '
            f'redraw it with: ex-color report {directory}'
        )
        self.directory = directory


@contextlib.contextmanager
def locked(directory: str | Path) -> Iterator[Callable[[], None]]:
    """Hold the directory's lock while its report is written, so a run or another report cannot interleave.

    Yields `stop_if_asked`, to call between figures: it raises ReportInterrupted once SIGINT or SIGTERM
    has arrived. Signals only set a flag meanwhile (one landing inside a finaliser could otherwise be
    swallowed), and the block ends with the same check, so an interrupted report never returns normally.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ReportError(f'{directory}: no such directory; expected a run, sweep or compare directory')

    try:
        with lock(directory), stop_on_signals('stopping the report at the next figure') as stop:

            def stop_if_asked() -> None:
                if stop():
                    raise ReportInterrupted(directory)

            try:
                yield stop_if_asked
            except ReportInterrupted as inner:  # in a report this one includes: redraw this one
                if inner.directory != directory:
                    raise ReportInterrupted(directory) from None
                raise
            stop_if_asked()
    except DirectoryError as e:
        raise ReportError(str(e)) from None


def remove_stale(figures_dir: Path, keep: Sequence[SavedFigure]) -> None:
    """Delete PNGs of figures this report no longer draws (e.g. after the experiment's evaluations changed)."""
    wanted = {Path(p).name for figure in keep for p in (figure.light, figure.dark)}
    for path in figures_dir.glob('*.png'):
        if path.name not in wanted:
            path.unlink()


def toml_tables(config_text: str) -> list[tuple[str, Table]]:
    """The experiment file as tables: one key/value table per section, one row per entry of a list section."""
    data = tomllib.loads(config_text)
    tables = []
    for section, content in data.items():
        if isinstance(content, dict):
            tables.append((section, Table(['key', 'value'], [[k, _value(v)] for k, v in content.items()])))
        elif isinstance(content, list) and all(isinstance(item, dict) for item in content):
            keys = list(dict.fromkeys(k for item in content for k in item))
            rows = [[_value(item[k]) if k in item else '' for k in keys] for item in content]
            tables.append((section, Table(keys, rows)))
        else:
            tables.append((section, Table(['value'], [[_value(content)]])))
    return tables


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return ', '.join(f'{k} = {_value(v)}' for k, v in value.items())
    if isinstance(value, list):
        return '[' + ', '.join(_value(v) for v in value) + ']'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


def dopesheet_table(csv_text: str, steps: Sequence[int]) -> Table:
    """The dopesheet as written, with each row's resolved step beside it."""
    frame = pd.read_csv(io.StringIO(csv_text), dtype=str, keep_default_na=False)
    columns = list(frame.columns)
    rows = frame.to_numpy().tolist()
    if len(rows) == len(steps):
        columns = ['resolved step', *columns]
        rows = [[str(step), *row] for step, row in zip(steps, rows, strict=True)]
    return Table(columns, rows)


__all__ = [
    'FIGURES_DIR',
    'FIGURE_INDEX',
    'REPORT_FILE',
    'ReportError',
    'ReportInterrupted',
    'Table',
    'dopesheet_table',
    'environment',
    'error_shade',
    'locked',
    'remove_stale',
    'toml_tables',
]
