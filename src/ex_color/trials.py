"""A batch of search trials trained as one ensemble: every trial × every seed is a member with its own schedule.

A trial is the experiment with its [search] parameters set (`ex_color.config.search.trial_overrides`),
that is, an experiment like any other. Members that share their data and labels train as one
ensemble under per-member schedules (`ex_color.training.members`); trials that change a label's
power sample other labels, so each such group trains as an ensemble of its own. Every member is
then assessed as a run of its trial would be, so a trial's figures are the sweep.csv rows of its
seeds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ex_color.config import Experiment, build_model, build_regularizers, load_experiment, training_data
from ex_color.config.search import trial_overrides
from ex_color.experiment import SeedOutcome, assess, checked_steps
from ex_color.training.engine import EngineOptions, init_models, train_ensemble
from ex_color.training.members import MemberSchedules
from ex_color.training.schedule import TrainingSchedule


@dataclass
class TrialOutcome:
    """One trial: its parameter values, the experiment they make, and each seed's assessed run."""

    values: dict[str, float]
    experiment: Experiment
    seeds: list[SeedOutcome]

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
) -> list[TrialOutcome]:
    """Train every trial on every seed, as few ensembles as their labels allow; each trial's assessed seeds.

    Args:
        trials: each trial's parameter values, by the parameters' `heading`.
        seeds: the seeds each trial trains on (its figures are judged on their mean).
        steps: train only the first `steps` steps of every schedule.
    """
    made = [trial_experiment(experiment, values) for values in trials]
    steps = checked_steps(experiment, steps)
    groups: dict[str, list[int]] = {}
    for t, trial in enumerate(made):
        groups.setdefault(_data_key(trial), []).append(t)
    outcomes: dict[int, list[SeedOutcome]] = {}
    for members in groups.values():
        config = made[members[0]].config
        regularizers = build_regularizers(config)
        member_seeds = [seed for _ in members for seed in seeds]
        schedules = [TrainingSchedule.from_dopesheet(made[t].dopesheet, regularizers) for t in members]
        result = train_ensemble(
            init_models(lambda config=config: build_model(config), member_seeds),
            member_seeds,
            training_data(config),
            regularizers,
            MemberSchedules.stack([schedule for schedule in schedules for _ in seeds]),
            steps=steps,
            options=options or EngineOptions(progress=False),
        )
        per_member = len(member_seeds)
        for m, model in enumerate(result.models):
            t, seed = members[m // len(seeds)], member_seeds[m]
            metrics = result.metrics.iloc[m::per_member].reset_index(drop=True)
            outcomes.setdefault(t, []).append(assess(seed, model, metrics, made[t].config))
    return [TrialOutcome(dict(values), made[t], outcomes[t]) for t, values in enumerate(trials)]


__all__ = ['TrialOutcome', 'train_trials', 'trial_experiment']
