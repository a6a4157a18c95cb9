"""A batch of search trials trained as one ensemble: every trial × every seed is a member with its own schedule.

A trial is the experiment with its [search] parameters set (`ex_color.config.search.trial_overrides`),
that is, an experiment like any other. Members that share their data and labels train as one
ensemble under per-member schedules (`ex_color.training.members`); trials that change a label's
power sample other labels, so each such group trains as an ensemble of its own. Every member is
then assessed as a run of its trial would be, so a trial's figures are the sweep.csv rows of its
seeds.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ex_color.config import Experiment, build_model, build_regularizers, build_route, load_experiment, training_data
from ex_color.config.search import trial_overrides
from ex_color.dataflow import SurgeryError
from ex_color.erasure import ErasureError
from ex_color.experiment import SeedOutcome, assess, checked_steps
from ex_color.loss import NonFiniteLossError
from ex_color.progress import Progress
from ex_color.training.engine import EngineOptions, init_models, train_ensemble
from ex_color.training.members import MemberSchedules
from ex_color.training.schedule import TrainingSchedule

log = logging.getLogger(__name__)


@dataclass
class TrialOutcome:
    """One trial: its parameter values, the experiment they make, and each seed's assessed run (none if it failed)."""

    values: dict[str, float]
    experiment: Experiment
    seeds: list[SeedOutcome]
    failure: str | None = None
    """Why the trial could not be trained (a loss that became NaN or infinite), or None."""

    def rows(self) -> list[dict[str, Any]]:
        """Each seed's sweep.csv row."""
        return [seed.figures() for seed in self.seeds]


def trial_experiment(experiment: Experiment, values: Mapping[str, float]) -> Experiment:
    """The experiment with one trial's parameter values set (as overrides after the experiment's own)."""
    search = experiment.config.search
    if search is None:
        raise ValueError(f'{experiment.path}: no [search] table')
    changes = trial_overrides(search, experiment.dopesheet, values)
    return load_experiment(experiment.path, overrides=[*experiment.overrides, *changes])


def _data_key(experiment: Experiment) -> str:
    """What members must share to train as one ensemble: the training data and its labels."""
    config = experiment.config
    return json.dumps([config.data.model_dump(), config.labels.model_dump()], sort_keys=True, default=str)


def train_trials(
    experiment: Experiment,
    trials: Sequence[Mapping[str, float]],
    seeds: Sequence[int],
    *,
    steps: int | None = None,
    options: EngineOptions | None = None,
    bar: Progress | None = None,
) -> list[TrialOutcome]:
    """Train every trial on every seed, as few ensembles as their labels allow; each trial's assessed seeds.

    Args:
        trials: each trial's parameter values, by the parameters' `heading`.
        seeds: the seeds each trial trains on (its figures are judged on their mean).
        steps: train only the first `steps` steps of every schedule.
        bar: advanced by each ensemble's model-steps.

    A trial whose loss becomes NaN or infinite is returned with its `failure` and no seeds; the
    trials that shared its ensemble are trained again without it (each member trains as it would alone).
    So is a trial whose trained model an evaluation cannot edit (a surgery or an erasure refused).
    """
    made = [trial_experiment(experiment, values) for values in trials]
    trained = train_experiments(made, seeds, checked_steps(experiment, steps), options=options, bar=bar)
    return [
        TrialOutcome(dict(values), trial, outcomes, failure)
        for values, trial, (outcomes, failure) in zip(trials, made, trained, strict=True)
    ]


Trained = tuple[list[SeedOutcome], str | None]
"""A trial's assessed seeds (in seed order), or none and why it failed."""


def train_experiments(
    made: Sequence[Experiment],
    seeds: Sequence[int],
    steps: int,
    *,
    options: EngineOptions | None = None,
    bar: Progress | None = None,
) -> list[Trained]:
    """`train_trials` for trials already made into experiments (what a Ray task receives: no files are read)."""
    options = options or EngineOptions(progress=False)
    groups: dict[str, list[int]] = {}
    for t, trial in enumerate(made):
        groups.setdefault(_data_key(trial), []).append(t)
    outcomes: dict[int, list[SeedOutcome]] = {}
    failures: dict[int, str] = {}
    for members in groups.values():
        while members:
            try:
                if bar is not None:
                    count = len(members) * len(seeds)
                    on_progress = bar.part(count, steps, then=f'evaluating {count} models')
                    options = dataclasses.replace(options, on_progress=on_progress)
                result = _train_group([made[t] for t in members], seeds, steps, options)
            except NonFiniteLossError as error:
                if error.member is None:
                    raise
                failed = members[error.member[0] // len(seeds)]
                failures[failed] = str(error)
                log.info('A trial failed (%s); training the rest of its ensemble again', error)
                members = [t for t in members if t != failed]
                continue
            for m, model in enumerate(result.models):
                t, seed = members[m // len(seeds)], result.seeds[m]
                if t in failures:
                    continue
                metrics = result.metrics.iloc[m :: len(result.seeds)].reset_index(drop=True)
                try:
                    outcomes.setdefault(t, []).append(assess(seed, model, metrics, made[t].config))
                except (SurgeryError, ErasureError) as error:  # this trained model cannot be edited as asked
                    failures[t] = f'seed {seed}: {type(error).__name__}: {error}'
                    outcomes.pop(t, None)
            break
    return [(outcomes.get(t, []), failures.get(t)) for t in range(len(made))]


def trials_task(
    made: list[Experiment], seeds: list[int], steps: int, threads: int, compile: bool = False
) -> tuple[list[Trained], float]:
    """Trials as a Ray worker trains them: on `threads` torch threads, no progress bar; with the seconds taken."""
    torch.set_num_threads(threads)  # not left to how the worker was started (OMP_NUM_THREADS)
    started = time.perf_counter()
    options = EngineOptions(progress=False, compile=compile)
    return train_experiments(made, seeds, steps, options=options), time.perf_counter() - started


def _train_group(made: Sequence[Experiment], seeds: Sequence[int], steps: int, options: EngineOptions) -> Any:
    """Trials that share their data and labels, each on every seed, as one ensemble under per-member schedules."""
    config = made[0].config
    regularizers = build_regularizers(config)
    member_seeds = [seed for _ in made for seed in seeds]
    schedules = [TrainingSchedule.from_dopesheet(trial.dopesheet, regularizers) for trial in made]
    return train_ensemble(
        init_models(lambda: build_model(config), member_seeds),
        member_seeds,
        training_data(config),
        regularizers,
        MemberSchedules.stack([schedule for schedule in schedules for _ in seeds]),
        steps=steps,
        options=options,
        routes=[build_route(config.prepared_route())] * len(member_seeds),
    )


__all__ = ['Trained', 'TrialOutcome', 'train_experiments', 'train_trials', 'trial_experiment', 'trials_task']
