"""The sweep directory's tables and summary: written and read here, and nowhere else.

sweep.csv    one row per finished seed (columns: `ex_color.columns`, `config.run_columns`)
pareto.csv   the rows of sweep.csv on the Pareto front of the [sweep] objectives
sweep.json   `SweepSummary`
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ex_color.files import write_atomic
from ex_color.rundir import RunArtifactsError, read_json

TABLE_FILE = 'sweep.csv'
PARETO_FILE = 'pareto.csv'
SUMMARY_FILE = 'sweep.json'
BEST_DIR = 'best'


@dataclass(frozen=True)
class SweepSummary:
    """sweep.json: what was swept, how the seeds rank, and what this call cost.

    A sweep writes every field; a summary from an older ex-color may lack those after `chunk`,
    and is read with their defaults (the report ranks seeds from the experiment file, not from here).
    """

    experiment: str
    """The experiment directory's name, e.g. 'ex-2.9'."""
    title: str
    seeds: list[int]
    steps: int
    chunk: int
    """Seeds per ensemble."""
    ray: str | None = None
    """Where the chunks ran: None for this machine, else e.g. 'Ray: 2 CPUs, 1 per task'."""
    minimise: list[str] = field(default_factory=list)
    maximise: list[str] = field(default_factory=list)
    best_column: str | None = None
    print: list[str] = field(default_factory=list)
    """Columns printed for the best seed."""
    best_seed: int | None = None
    pareto_seeds: list[int] = field(default_factory=list)
    train_seconds_this_call: float | None = None
    wall_seconds_this_call: float | None = None
    best_column_median: float | None = None
    """The median over seeds of `best_column` (written as `<best_column>_median`)."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data[f'{self.best_column}_median'] = data.pop('best_column_median')
        return data

    def write(self, directory: Path) -> None:
        write_atomic(directory / SUMMARY_FILE, json.dumps(self.to_dict(), indent=2) + '\n')

    @classmethod
    def read(cls, directory: Path) -> SweepSummary:
        """A sweep's sweep.json; a RunArtifactsError naming it when it is not one."""
        path = directory / SUMMARY_FILE
        data = read_json(path)
        try:
            data = dict(data)
            if data.get('best_column') is not None:
                data['best_column_median'] = data.pop(f'{data["best_column"]}_median', None)
            return cls(**data)
        except (TypeError, ValueError) as e:
            raise RunArtifactsError(f'{path}: not the summary of a sweep ({type(e).__name__}: {e})') from None


def write_sweep_table(directory: Path, rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """sweep.csv from the finished seeds' rows (in seed-list order)."""
    table = pd.DataFrame(list(rows))
    write_atomic(directory / TABLE_FILE, table.to_csv(index=False))
    return table


def write_pareto(directory: Path, pareto: pd.DataFrame) -> pd.DataFrame:
    write_atomic(directory / PARETO_FILE, pareto.to_csv(index=False))
    return pareto


def read_sweep_table(directory: Path) -> pd.DataFrame:
    return pd.read_csv(directory / TABLE_FILE)


__all__ = [
    'BEST_DIR',
    'PARETO_FILE',
    'SUMMARY_FILE',
    'TABLE_FILE',
    'SweepSummary',
    'read_sweep_table',
    'write_pareto',
    'write_sweep_table',
]
