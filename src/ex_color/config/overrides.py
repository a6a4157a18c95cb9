"""Overrides: try one change without editing the experiment's files (`--set PATH=VALUE`, `overrides=[...]`).

Two kinds, told apart by their first name:

- `PATH=VALUE` changes the experiment file: `labels.magenta.power=5`, `regularizers.1.name=x`,
  `experiment.name="Delete magenta"`. PATH is dotted keys as in the file, with list indices
  from 0; every table on the way must exist, the last key may be new (the schema then says if
  it is allowed). VALUE is written as in TOML (`5`, `0.08`, `true`, `[1, 0, 0]`, `"text"`); text
  that is not a TOML value is taken as a string.
- `dopesheet.COLUMN@STEP=VALUE` changes one cell of the dopesheet: `dopesheet.reg-anchor@1000=0.08`.
  STEP is a keyframe row's STEP as written (`+10`) or the step it resolves to (`1000`); VALUE is a
  number, or empty to clear the cell (`dopesheet.lr@+10=`).

The changed experiment is validated like the file, and the run's `config.toml`, `dopesheet.csv`
and fingerprint record the result, so a run directory always says what was trained.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ex_color.config.schema import ConfigError, did_you_mean

DOPESHEET_PREFIX = 'dopesheet.'
FLAG = '--set'


@dataclass(frozen=True)
class FileOverride:
    """A change to the experiment file: the value at `path`."""

    text: str
    path: list[str]
    value: Any


@dataclass(frozen=True)
class CellOverride:
    """A change to one dopesheet cell: `column` in the row whose STEP is `step`."""

    text: str
    column: str
    step: str
    value: str


@dataclass(frozen=True)
class Overrides:
    file: list[FileOverride]
    cells: list[CellOverride]

    @property
    def texts(self) -> list[str]:
        return [o.text for o in (*self.file, *self.cells)]


def parse_overrides(texts: Sequence[str] | str) -> Overrides:
    """Each `PATH=VALUE` as a file or cell override (one string is one override); a one-line ConfigError naming
    the first malformed one."""
    file, cells, seen = [], [], {}
    for text in [texts] if isinstance(texts, str) else texts:
        if not isinstance(text, str):
            raise ConfigError(f'{FLAG} {text!r}: expected a string PATH=VALUE, e.g. labels.red.power=5')
        if '\n' in text or '\r' in text:
            raise ConfigError(f'{FLAG} {text!r}: a line break in an override; expected one PATH=VALUE per --set')
        name, equals, value = text.partition('=')
        name = name.strip()
        if not equals or not name or '..' in name or name.startswith('.') or name.endswith('.'):
            raise ConfigError(f'{FLAG} {text!r}: expected PATH=VALUE, e.g. labels.red.power=5')
        if name in seen:
            raise ConfigError(f'{FLAG} {name} is given twice ({seen[name]!r} and {text!r}); expected it once')
        seen[name] = text
        if name.startswith(DOPESHEET_PREFIX):
            column, at, step = name.removeprefix(DOPESHEET_PREFIX).partition('@')
            if not at or not column or not step:
                raise ConfigError(f'{FLAG} {text!r}: expected dopesheet.COLUMN@STEP=VALUE, e.g. dopesheet.lr@1000=0.1')
            cells.append(CellOverride(text, column.strip(), step.strip(), value.strip()))
        else:
            file.append(FileOverride(text, name.split('.'), _toml_value(value.strip())))
    return Overrides(file, cells)


def _toml_value(text: str) -> Any:
    """`text` as a TOML value (`5`, `0.08`, `[1, 0]`, `"x"`), else the text itself as a string."""
    try:
        return tomllib.loads(f'value = {text}')['value']
    except tomllib.TOMLDecodeError:
        return text


def apply_file_overrides(raw: dict[str, Any], overrides: Sequence[FileOverride], source: str) -> dict[str, Any]:
    """A copy of the parsed experiment file with each override's value set; a one-line ConfigError naming the
    override when a table on its path does not exist."""
    changed = copy.deepcopy(raw)
    for override in overrides:
        node: Any = changed
        for depth, key in enumerate(override.path):
            last = depth == len(override.path) - 1
            where = '.'.join(override.path[: depth + 1])
            if isinstance(node, list):
                if not (key.isdigit() and int(key) < len(node)):
                    raise ConfigError(
                        f'{FLAG} {override.text}: {where}: {source} has {len(node)} entries there; expected an index '
                        f'0–{len(node) - 1}'
                    )
                if last:
                    node[int(key)] = override.value
                else:
                    node = node[int(key)]
            elif isinstance(node, dict):
                if last:
                    node[key] = override.value
                elif key not in node:
                    known = ', '.join(map(str, node)) or 'nothing'
                    raise ConfigError(
                        f'{FLAG} {override.text}: {where}: no such table in {source}{did_you_mean(key, node)}; it has '
                        f'{known}'
                    )
                else:
                    node = node[key]
            else:
                parent = '.'.join(override.path[:depth])
                raise ConfigError(
                    f'{FLAG} {override.text}: {parent} is a value ({node!r}), not a table; expected a path to a value'
                )
    return changed


__all__ = ['CellOverride', 'FileOverride', 'Overrides', 'apply_file_overrides', 'parse_overrides']
