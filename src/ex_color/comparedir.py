"""The compare directory's tables and facts: written and read here, and nowhere else.

compare.csv     one row per seed × method (`ROW_COLUMNS`)
hue_error.csv   error along hue per seed × method: `seed, method, hue, error`
summary.csv     per method: the mean of each of `FIGURES` over seeds, with a 95% bootstrap interval
compare.json    `CompareFacts`: what removes its target, with the least collateral, each model's fairness
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ex_color.config import BASELINE, CONTROL, PREPARED
from ex_color.files import write_atomic
from ex_color.rundir import RunArtifactsError, read_json
from ex_color.workdir import DirectoryError, check_recorded_files, record_files

TABLE_FILE = 'compare.csv'
HUE_FILE = 'hue_error.csv'
SUMMARY_FILE = 'summary.csv'
FACTS_FILE = 'compare.json'

FIGURES = ('target_error', 'selectivity_r2', 'collateral_max', 'collateral_median', 'baseline_median')
"""The per-method figures summary.csv gives as `<figure>_mean, _low, _high`, in the summary table's order."""
TEXT_COLUMNS = ('method', 'model', 'kind', 'targets')
ROW_COLUMNS = ('seed', *TEXT_COLUMNS, *FIGURES[:4], 'mse_max', 'mse_median', 'baseline_median')
"""compare.csv's columns."""
MEASURED = ROW_COLUMNS[5:-1]
"""The columns an edit's measurement fills (NaN for a seed whose edit could not be fitted)."""
SUMMARY_COLUMNS = (*TEXT_COLUMNS, 'seeds', 'failed', *(f'{f}_{s}' for f in FIGURES for s in ('mean', 'low', 'high')))
REMOVAL_THRESHOLD = 0.1
"""A method removes its target when the mean error at the target is at least this (RMS ≈ 0.32 per channel)..."""
UNTOUCHED_FACTOR = 10.0
"""...and at least this many times the untouched model's (an edit of a model that never learnt the target removes
nothing)."""
BASELINE_KIND = 'baseline'
"""The `kind` of an untouched model's rows."""
ONE_SEED_CAVEAT = (
    "Only one seed was compared, so each interval is that seed's value and says nothing about spread: "
    'compare at least 2 seeds (20 for a finding) before drawing a conclusion.'
)
"""Said first, in the verdict and on the command line, when a comparison has a single seed."""
REMOVAL_RULE = (
    'a method removes its target when its mean target error is at least {threshold} and at least '
    f"{UNTOUCHED_FACTOR:g} times the unedited model's"
)
"""The two rules above in words, for every sentence that says whether a method removes its target."""


def removes_target(error: Any, untouched_error: Any) -> Any:
    """Whether an edit removes its target: its target error is at least REMOVAL_THRESHOLD and at least
    UNTOUCHED_FACTOR times the untouched model's. Numbers or pandas Series alike (elementwise)."""
    return (error >= REMOVAL_THRESHOLD) & (error >= UNTOUCHED_FACTOR * untouched_error)


FAIRNESS_RATIO = 2.0
"""A model is a fair comparison when its median error is at most this many times the prepared model's."""


@dataclass(frozen=True)
class ModelFacts:
    """How one `[[models]]` entry (a control, a routed model) compares with the prepared model before any edit."""

    keep: list[str]
    """The regularizers it keeps."""
    baseline_median: float
    prepared_baseline_median: float
    ratio: float
    fair: bool
    """`ratio` is at most `FAIRNESS_RATIO`."""
    route: dict[str, Any] | None = None
    """Its gradient route (`layer`, `dims`, `labels`, `others`), if any."""


@dataclass(frozen=True)
class CompareFacts:
    """compare.json: the facts the verdict is written from."""

    experiment: str
    title: str
    seeds: list[int]
    removal_threshold: float
    removes: list[str]
    """The methods that remove their target (see `REMOVAL_THRESHOLD`, `UNTOUCHED_FACTOR`)."""
    compared_targets: str | None = None
    """The baseline's targets: only methods with these are ranked against each other."""
    other_targets: list[str] = field(default_factory=list)
    least_collateral: str | None = None
    models: dict[str, ModelFacts] = field(default_factory=dict)
    """Each model compared with the prepared one, by name."""
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each evaluation's settings: kind, model, layer, targets, and a fitted erasure's settings."""
    failed: dict[str, list[int]] = field(default_factory=dict)
    """Method → the seeds whose edit could not be fitted."""
    wall_seconds_this_call: float | None = None

    def write(self, directory: Path) -> None:
        write_atomic(directory / FACTS_FILE, json.dumps(asdict(self), indent=2) + '\n')

    @classmethod
    def read(cls, directory: Path) -> CompareFacts:
        """A comparison's compare.json; a RunArtifactsError naming it when it is not one."""
        path = directory / FACTS_FILE
        data = read_json(path)
        if not isinstance(data, dict):
            raise RunArtifactsError(f'{path}: expected a JSON object, got {type(data).__name__}')
        try:
            models = data.get('models', {})
            if CONTROL in data:  # compare.json of an older ex-color: one control, no [[models]]
                control = data.pop(CONTROL)
                models = {CONTROL: control} if control is not None else {}
            return cls(**{**data, 'models': {name: ModelFacts(**m) for name, m in models.items()}})
        except (TypeError, AttributeError) as e:
            raise RunArtifactsError(f'{path}: not the facts of a comparison ({e})') from None


@dataclass(frozen=True)
class Verdict:
    """What compare.json concludes, derived from summary.csv alone (so a report can check the two agree)."""

    removes: list[str]
    compared_targets: str
    other_targets: list[str]
    least_collateral: str | None
    prepared_median: float
    medians: dict[str, float]
    """Each other model's untouched median error, by name."""
    ratios: dict[str, float]
    """Each other model's untouched median error over the prepared model's."""
    fair: dict[str, bool]
    """Each other model's ratio is at most `FAIRNESS_RATIO`."""

    @classmethod
    def of(cls, summary: pd.DataFrame) -> Verdict:
        """Which methods remove their target (see `REMOVAL_THRESHOLD`, `UNTOUCHED_FACTOR`); the one with the least
        collateral damage among those with the baseline's targets (`compared_targets`; the others are
        `other_targets`); and each other model's fairness (`FAIRNESS_RATIO`)."""
        by_method = summary.set_index('method')
        edited = by_method[by_method['kind'] != BASELINE_KIND]
        untouched_rows = by_method[by_method['kind'] == BASELINE_KIND]
        untouched = dict(zip(untouched_rows['model'], untouched_rows['target_error_mean'], strict=True))
        untouched_error = edited['model'].map(untouched)
        removes = edited[removes_target(edited['target_error_mean'], untouched_error)]
        # Collateral damage is measured away from each method's own targets: only methods with the baseline's
        # targets (the first evaluation's) are ranked against each other.
        compared_targets = str(by_method.loc[BASELINE, 'targets'])
        comparable = removes[removes['targets'] == compared_targets]
        least = None
        if len(comparable):
            # Equal up to rounding (ablate and prune are the same edit of a unit-norm bottleneck): the first in order.
            lowest = comparable['collateral_max_mean'].min()
            close = np.isclose(comparable['collateral_max_mean'], lowest, rtol=1e-6, atol=0)
            least = str(comparable.index[close][0])
        prepared_median = float(by_method.loc[BASELINE, 'baseline_median_mean'])
        medians = {
            str(row['model']): float(row['baseline_median_mean'])
            for _, row in untouched_rows.iterrows()
            if row['model'] != PREPARED
        }
        ratios = {m: median / prepared_median if prepared_median > 0 else float('inf') for m, median in medians.items()}
        return cls(
            removes=[str(m) for m in removes.index],
            compared_targets=compared_targets,
            other_targets=[str(m) for m in edited.index[edited['targets'] != compared_targets]],
            least_collateral=least,
            prepared_median=prepared_median,
            medians=medians,
            ratios=ratios,
            fair={m: bool(r <= FAIRNESS_RATIO) for m, r in ratios.items()},
        )

    def contradiction(self, facts: CompareFacts) -> str | None:
        """What `facts` (compare.json) says that this verdict (from summary.csv) does not; None when they agree.

        Fields a compare.json of an older ex-color lacks are not checked.
        """
        said = {'removes': facts.removes, 'least_collateral': facts.least_collateral}
        if facts.compared_targets is not None:
            said |= {'compared_targets': facts.compared_targets, 'other_targets': facts.other_targets}
        for name, stored in said.items():
            if stored != getattr(self, name):
                return f'{name} is {stored!r}, but {SUMMARY_FILE} gives {getattr(self, name)!r}'
        for name, model in facts.models.items():
            if name not in self.ratios:
                return f'it compares model {name!r}, which {SUMMARY_FILE} lacks'
            if model.fair != self.fair[name] or not np.isclose(model.ratio, self.ratios[name], rtol=1e-9, atol=0):
                return f'the {name} ratio is {model.ratio:.6g}, but {SUMMARY_FILE} gives {self.ratios[name]:.6g}'
        return None


WRITTEN_TOGETHER = [TABLE_FILE, HUE_FILE, SUMMARY_FILE, FACTS_FILE]
"""The files of one comparison, in the order they are written; the manifest records their SHA-256 last."""


def write_comparison(
    directory: Path, table: pd.DataFrame, hue: pd.DataFrame, summary: pd.DataFrame, facts: CompareFacts
) -> None:
    """compare.csv, hue_error.csv, summary.csv and compare.json, then their SHA-256 in the manifest.

    Each file is atomic, but four files cannot be replaced at once: a kill between them leaves
    files of two comparisons, which `check_written_together` then refuses (run the command again).
    """
    write_atomic(directory / TABLE_FILE, table.to_csv(index=False))
    write_atomic(directory / HUE_FILE, hue.to_csv(index=False))
    write_atomic(directory / SUMMARY_FILE, summary.to_csv(index=False))
    facts.write(directory)
    record_files(directory, WRITTEN_TOGETHER)


def check_written_together(directory: Path) -> None:
    """The comparison's files are the ones its last run wrote together; RunArtifactsError naming the first that is
    not (a directory whose manifest recorded no SHA-256, from an older ex-color, is not checked)."""
    try:
        check_recorded_files(directory, WRITTEN_TOGETHER)
    except DirectoryError as e:
        raise RunArtifactsError(f'{e}; run the same ex-color compare again to write them together') from None


def read_table(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """A CSV of the comparison: text columns kept as written (a method may be called 'nan'), the rest numbers.

    A RunArtifactsError naming the file when it cannot be read, lacks one of `columns` or has no rows.
    """
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise RunArtifactsError(f'{path}: not a readable CSV ({type(e).__name__}: {e})') from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise RunArtifactsError(f'{path}: no column {missing[0]!r}; expected {list(columns)}')
    if frame.empty:
        raise RunArtifactsError(f'{path}: no rows')
    for column in frame.columns:
        if column not in TEXT_COLUMNS:
            frame[column] = pd.to_numeric(frame[column].str.strip().replace('', 'nan'), errors='coerce')
    return frame


__all__ = [
    'FACTS_FILE',
    'FAIRNESS_RATIO',
    'FIGURES',
    'HUE_FILE',
    'MEASURED',
    'ONE_SEED_CAVEAT',
    'REMOVAL_RULE',
    'REMOVAL_THRESHOLD',
    'ROW_COLUMNS',
    'SUMMARY_COLUMNS',
    'SUMMARY_FILE',
    'TABLE_FILE',
    'TEXT_COLUMNS',
    'UNTOUCHED_FACTOR',
    'CompareFacts',
    'ModelFacts',
    'Verdict',
    'check_written_together',
    'read_table',
    'removes_target',
    'write_comparison',
]
