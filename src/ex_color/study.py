"""The Optuna side of `ex-color search`: the study's file, its samplers, and one batch asked and told.

The study lives in the search directory as an Optuna journal file (`study.journal`), so that
`optuna-dashboard study.journal` opens it. Only finished trials (complete or failed) are ever
written there, a whole batch at a time and atomically, so an interrupted batch leaves no trace.

Each batch is asked of a fresh in-memory study that holds the journal's finished trials, with
a sampler seeded by the search's seed and the number of trials finished. What a batch proposes
therefore depends only on the trials before it: a search interrupted and run again proposes
what an uninterrupted one would have.

Samplers (`--sampler`):
- `tpe` (default): multivariate TPE with the constant liar, so that the trials of one batch,
  asked before any of them is told, are kept apart instead of collapsing onto one proposal. It
  makes good use of few trials, which is what a search of a few hundred trials needs.
- `nsga2`: NSGA-II with a population of one batch, so that a batch is one generation.
- `random`: uniform proposals, a baseline for the others.
TPE and NSGA-II honour the [search] constraints, which each trial records (`Trial.set_constraint`) as how far
its means break them: trials that break one are steered away from.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, Trial, TrialState

from ex_color.config.schema import KeyframeStepParameter, SearchSection
from ex_color.files import DamagedFileError

log = logging.getLogger(__name__)

JOURNAL_FILE = 'study.journal'
STUDY_NAME = 'search'
SAMPLERS = ('tpe', 'nsga2', 'random')
DEFAULT_SAMPLER = 'tpe'
FIGURES_ATTR = 'figures'
"""A trial's user attribute: each objective and constraint column's value per seed."""
FAILURE_ATTR = 'failure'
"""A failed trial's user attribute: why."""


def objectives(search: SearchSection) -> list[str]:
    """The objective columns in the study's order: minimised, then maximised."""
    return [*search.minimise, *search.maximise]


def directions(search: SearchSection) -> list[str]:
    return ['minimize'] * len(search.minimise) + ['maximize'] * len(search.maximise)


def distributions(search: SearchSection) -> dict[str, BaseDistribution]:
    """Each parameter's range, by its trials.csv heading; a keyframe's STEP takes whole steps."""
    made: dict[str, BaseDistribution] = {}
    for p in search.parameters:
        if isinstance(p, KeyframeStepParameter):
            made[p.heading] = IntDistribution(int(p.low), int(p.high))
        else:
            made[p.heading] = FloatDistribution(p.low, p.high, log=p.log)
    return made


def make_sampler(name: str, search: SearchSection, *, batch: int, finished: int) -> optuna.samplers.BaseSampler:
    """The sampler for the batch after `finished` trials, seeded from the search's seed and `finished`."""
    seed = (search.seed * 1_000_003 + finished) % 2**32
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
        if name == 'tpe':
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
        if name == 'nsga2':
            return optuna.samplers.NSGAIISampler(population_size=batch, seed=seed)
        if name == 'random':
            return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f'unknown sampler {name!r}; expected one of {", ".join(SAMPLERS)}')


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna logs every trial at INFO and warns about experimental options we chose on purpose."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


class StudyJournal:
    """`study.journal`: the search's finished trials in Optuna's journal storage."""

    def __init__(self, path: Path, search: SearchSection) -> None:
        self.path, self.search = path, search

    def trials(self) -> list[FrozenTrial]:
        """The finished trials, in order (none before the first batch)."""
        if not self.path.exists():
            return []
        try:
            study = optuna.load_study(study_name=STUDY_NAME, storage=self._storage(self.path))
            trials = study.get_trials(deepcopy=False)
        except (KeyError, ValueError) as error:
            raise DamagedFileError(
                f'{self.path}: not the study of an ex-color search ({error}); remove it to start the search again'
            ) from None
        if study.directions != [optuna.study.StudyDirection[d.upper()] for d in directions(self.search)]:
            raise DamagedFileError(
                f"{self.path}: its objectives are not this search's; remove it or choose another --out"
            )
        return [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.FAIL)]

    def append(self, trials: Sequence[FrozenTrial]) -> None:
        """Add a batch's finished trials, atomically: a copy with them replaces the file."""
        staged = self.path.with_name(self.path.name + '.partial')
        if self.path.exists():
            shutil.copyfile(self.path, staged)
        else:
            staged.unlink(missing_ok=True)
        storage = self._storage(staged)
        study = optuna.create_study(
            study_name=STUDY_NAME, storage=storage, directions=directions(self.search), load_if_exists=True
        )
        study.add_trials(trials)
        staged.replace(self.path)

    @classmethod
    def load(cls, path: Path) -> optuna.Study:
        """The study in a search's journal file, as optuna-dashboard sees it."""
        return optuna.load_study(study_name=STUDY_NAME, storage=cls._storage(path))

    @staticmethod
    def _storage(path: Path) -> JournalStorage:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
            return JournalStorage(JournalFileBackend(str(path)))


def ask_batch(
    search: SearchSection, finished: Sequence[FrozenTrial], *, sampler: str, batch: int, size: int
) -> tuple[optuna.Study, list[Trial]]:
    """A study holding the finished trials, and `size` new trials asked of it."""
    study = optuna.create_study(
        directions=directions(search), sampler=make_sampler(sampler, search, batch=batch, finished=len(finished))
    )
    study.add_trials(finished)
    ranges = distributions(search)
    return study, [study.ask(ranges) for _ in range(size)]


def tell(
    study: optuna.Study,
    trial: Trial,
    search: SearchSection,
    figures: dict[str, list[float]] | None,
    failure: str | None,
) -> None:
    """Tell a trial's outcome: its objectives' means over seeds, or failed (with why)."""
    if figures is None:
        trial.set_user_attr(FAILURE_ATTR, failure or 'failed')
        study.tell(trial, state=TrialState.FAIL)
        return
    means = {column: _mean(values) for column, values in figures.items()}
    trial.set_user_attr(FIGURES_ATTR, figures)
    missing = [c for c in objectives(search) if math.isnan(means[c])]
    if missing:
        trial.set_user_attr(FAILURE_ATTR, f'{", ".join(missing)} is NaN')
        study.tell(trial, state=TrialState.FAIL)
        return
    for bound in search.bounds():  # Optuna's samplers steer away from trials with a constraint above 0
        trial.set_constraint(str(bound), bound.excess(means[bound.column]))
    study.tell(trial, [means[c] for c in objectives(search)])


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float('nan')


def figure_columns(search: SearchSection) -> list[str]:
    """The columns a trial records per seed: its objectives, then the constraints' other columns."""
    return list(dict.fromkeys([*objectives(search), *(bound.column for bound in search.bounds())]))


__all__ = [
    'DEFAULT_SAMPLER',
    'JOURNAL_FILE',
    'SAMPLERS',
    'StudyJournal',
    'ask_batch',
    'directions',
    'distributions',
    'figure_columns',
    'make_sampler',
    'objectives',
    'quiet_optuna',
    'tell',
]
