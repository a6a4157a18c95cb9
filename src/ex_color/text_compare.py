"""Prepared vs post-hoc on a text model: `ex-color compare` for an experiment with `[data] kind = "text"`.

Per seed, the prepared model and each `[[models]]` entry (a control) train in one lockstep
ensemble (`ex_color.training.text`: same seed, initial weights, batches and labels; a model's
regularizers it does not keep weigh 0). Every evaluation is applied to the model it names and
measured on the held-out text (`ex_color.text_evaluation`), each ratio against that model's own
untouched version. For the first seed, each version also continues a few held-out prompts with
the same random draws, so a reader can see the concept disappear from the writing, or not.

The compare directory holds (besides config.toml, dopesheet.csv and seeds/):

    compare.csv     one row per seed × method: `ROW_COLUMNS`
    summary.csv     per method: the mean and a 95% bootstrap interval over seeds of each of `FIGURES`
    compare.json    `TextCompareFacts`: each model's untouched cross-entropy (the cost of anchoring),
                    the methods that remove the concept, the prompts and the first seed's continuations
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from ex_color.config import (
    BASELINE,
    PREPARED,
    Experiment,
    ExperimentConfig,
    ModelEntry,
    build_model,
    build_regularizers,
    model_weight_scale,
    text_corpus,
    text_data,
)
from ex_color.data.corpus import ALL, CHAR_CLASSES
from ex_color.files import write_atomic
from ex_color.rundir import RunArtifactsError, read_json
from ex_color.runner import SeedJob, SeedRunner
from ex_color.statistics import mean_and_interval
from ex_color.temporal import Dopesheet
from ex_color.text_evaluation import TextEvaluation, continue_text, evaluate_text_variants, prompts
from ex_color.training.engine import EngineOptions, init_models
from ex_color.training.schedule import TrainingSchedule
from ex_color.training.text import train_text_ensemble
from ex_color.variants import build_variants
from ex_color.workdir import record_files

log = logging.getLogger(__name__)

TABLE_FILE = 'compare.csv'
SUMMARY_FILE = 'summary.csv'
FACTS_FILE = 'compare.json'
CLASS_RATIOS = tuple(f'ratio_{c}' for c in (*CHAR_CLASSES, ALL))
FIGURES = (
    'target_ratio',
    'collateral_ratio',
    *CLASS_RATIOS,
    'target_mass_before',
    'target_mass_after',
    'untouched_ce',
)
"""The per-method figures summary.csv gives as `<figure>_mean, _low, _high`."""
EDIT_FIGURES = tuple(f for f in FIGURES if f not in ('target_mass_before', 'untouched_ce'))
"""The figures an edit's measurement fills (the untouched model's probability and cross-entropy are known anyway)."""
LABEL_COLUMNS = ('method', 'model', 'kind', 'targets', 'collateral_class')
ROW_COLUMNS = ('seed', *LABEL_COLUMNS, *FIGURES)
MASS_FALL = 5.0
"""A method removes the concept when the probability on it where it comes next falls at least this many times."""


@dataclass(frozen=True)
class TextSeedComparison:
    """One seed of a text comparison: its rows, its fitted edits, its models and (first seed) continuations."""

    seed: int
    rows: list[dict[str, Any]]
    edits: dict[str, dict[str, Any]]
    models: dict[str, nn.Module]
    continuations: dict[str, list[str]] = field(default_factory=dict)
    """Method → one continuation per prompt (`prompts(config)`), sampled with the same draws for every method."""
    evaluation_seconds: float = 0.0

    def to_state(self) -> dict[str, Any]:
        return {
            'models': {name: model.state_dict() for name, model in self.models.items()},
            'rows': self.rows,
            'edits': self.edits,
            'continuations': self.continuations,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], config: ExperimentConfig) -> TextSeedComparison:
        models = {}
        for name, weights in state['models'].items():
            models[name] = build_model(config)
            models[name].load_state_dict(weights)
        return cls(state['seed'], state['rows'], state['edits'], models, state['continuations'])

    def tracked(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        figures = {f'{row["method"]}_{f}': row[f] for row in self.rows for f in FIGURES}
        return figures, []


def train_text_models(
    config: ExperimentConfig,
    dopesheet: Dopesheet,
    seeds: Sequence[int],
    *,
    steps: int | None = None,
    options: EngineOptions | None = None,
) -> dict[str, list[nn.Module]]:
    """The prepared model and each `[[models]]` entry per seed, trained in lockstep; name → models in seed order."""
    regularizers = build_regularizers(config)
    seeds = list(seeds)
    entries = [ModelEntry(name=PREPARED), *config.compared_models()]
    result = train_text_ensemble(
        init_models(lambda: build_model(config), seeds * len(entries)),
        seeds * len(entries),
        text_data(config),
        regularizers,
        TrainingSchedule.from_dopesheet(dopesheet, regularizers),
        steps=steps,
        options=options,
        weight_scale=torch.tensor([model_weight_scale(config, m) for m in entries for _ in seeds]),
    )
    S = len(seeds)
    return {m.name: result.models[i * S : (i + 1) * S] for i, m in enumerate(entries)}


def assess_text_models(
    seed: int, models: dict[str, nn.Module], config: ExperimentConfig, *, continue_prompts: bool = False
) -> TextSeedComparison:
    """Every evaluation on the model it names, each measured against that model's untouched version."""
    started = time.perf_counter()
    others = {name: model for name, model in models.items() if name != PREPARED}
    failures: dict[str, str] = {}
    variants = build_variants(models[PREPARED], config, others, failures=failures)
    for why in failures.values():
        log.warning('Seed %d: %s; its figures are left empty for this seed', seed, why)
    model_of = {BASELINE: PREPARED, **{name: name for name in others}}
    model_of |= {e.name: e.model for e in config.evaluations}
    untouched = {name: BASELINE if model == PREPARED else model for name, model in model_of.items()}
    measured = evaluate_text_variants(variants, config, untouched)
    kinds = {e.name: e.kind for e in config.evaluations}
    targets = {e.name: e.targets for e in config.evaluations}
    order = [BASELINE, *others, *(e.name for e in config.prepared_evaluations())]
    order += [e.name for other in others for e in config.model_evaluations(other)]
    rows = []
    for name in (n for n in order if n in measured or n in failures):
        before = measured[untouched[name]]
        if name in failures:  # figures left NaN: summary.csv counts this seed as failed for the method
            row = _row(seed, name, model_of[name], kinds[name], before, before) | dict.fromkeys(EDIT_FIGURES, math.nan)
            rows.append(row | {'targets': '+'.join(targets[name]), 'collateral_class': ''})
        else:
            rows.append(_row(seed, name, model_of[name], kinds.get(name, 'baseline'), measured[name], before))
    continuations: dict[str, list[str]] = {}
    if continue_prompts:
        corpus = text_corpus(config)
        for name, v in variants.items():
            continuations[name] = [
                continue_text(v.model, v.interventions, corpus, p, seed=i) for i, p in enumerate(prompts(config))
            ]
    return TextSeedComparison(
        seed,
        rows,
        {name: v.edit.to_dict() for name, v in variants.items() if v.edit is not None},
        dict(models),
        continuations,
        time.perf_counter() - started,
    )


def _row(seed: int, method: str, model: str, kind: str, e: TextEvaluation, untouched: TextEvaluation) -> dict:
    row: dict[str, Any] = {
        'seed': seed,
        'method': method,
        'model': model,
        'kind': kind,
        'targets': '+'.join(e.targets),
        'collateral_class': e.collateral_class,
        'target_ratio': e.target_ratio,
        'collateral_ratio': e.collateral_ratio,
        **{f'ratio_{c}': e.class_ce_ratio[c] for c in (*CHAR_CLASSES, ALL)},
        'target_mass_before': e.untouched_target_mass,
        'target_mass_after': e.target_mass,
        'untouched_ce': untouched.class_ce[ALL],
    }
    return {c: row[c] for c in ROW_COLUMNS}


def text_compare_chunk(
    config: ExperimentConfig,
    dopesheet: Dopesheet,
    seeds: Sequence[int],
    *,
    steps: int | None = None,
    options: EngineOptions | None = None,
) -> list[TextSeedComparison]:
    """Train the models of `seeds` in lockstep, then assess each seed (continuations for the smallest seed)."""
    trained = train_text_models(config, dopesheet, seeds, steps=steps, options=options)
    first = min(seeds)
    return [
        assess_text_models(seed, {n: m[i] for n, m in trained.items()}, config, continue_prompts=seed == first)
        for i, seed in enumerate(seeds)
    ]


TEXT_COMPARE = SeedJob(
    kind='compare',
    train_chunk=text_compare_chunk,
    keys=('identity', 'rows', 'edits', 'continuations'),
    members=2,
    label='Compare',
    from_state=TextSeedComparison.from_state,
)
"""A text comparison's unit of work (`members` is set from the experiment: one per model)."""


@dataclass(frozen=True)
class TextCompareFacts:
    """compare.json of a text comparison."""

    experiment: str
    title: str
    seeds: list[int]
    untouched_ce: dict[str, float]
    """Each model's held-out cross-entropy before any edit (mean over seeds): the cost of anchoring, by model."""
    removes: list[str]
    """Methods whose mean probability on the concept, where it comes next, falls at least `MASS_FALL` times."""
    least_collateral: str | None
    """Of those, the one with the lowest mean collateral ratio."""
    mass_fall: float = MASS_FALL
    prompts: list[str] = field(default_factory=list)
    continuation_seed: int | None = None
    continuations: dict[str, list[str]] = field(default_factory=dict)
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    wall_seconds_this_call: float | None = None
    domain: str = 'text'

    def write(self, directory: Path) -> None:
        write_atomic(directory / FACTS_FILE, json.dumps(asdict(self), indent=2) + '\n')

    @classmethod
    def read(cls, directory: Path) -> TextCompareFacts:
        path = directory / FACTS_FILE
        data = read_json(path)
        if not isinstance(data, dict) or data.get('domain') != 'text':
            raise RunArtifactsError(f'{path}: not the facts of a text comparison')
        try:
            return cls(**data)
        except TypeError as e:
            raise RunArtifactsError(f'{path}: not the facts of a text comparison ({e})') from None


def summarise_text(table: pd.DataFrame) -> pd.DataFrame:
    """summary.csv: per method, each figure's mean over seeds with a 95% bootstrap interval."""
    rows = []
    for _, group in table.groupby('method', sort=False):
        first = group.iloc[0]
        row: dict[str, Any] = {c: first[c] for c in ('method', 'model', 'kind', 'targets')}
        row['collateral_class'] = group['collateral_class'].mode().iloc[0]
        row['seeds'] = len(group)
        rows.append(row | mean_and_interval(group, FIGURES))
    return pd.DataFrame(rows)


def text_facts(
    experiment: Experiment,
    seeds: Sequence[int],
    summary: pd.DataFrame,
    first: TextSeedComparison,
    wall_seconds: float,
) -> TextCompareFacts:
    config = experiment.config
    by_method = summary.set_index('method')
    edited = by_method[by_method['kind'] != 'baseline']
    removes = edited[edited['target_mass_after_mean'] * MASS_FALL <= edited['target_mass_before_mean']]
    least = str(removes['collateral_ratio_mean'].idxmin()) if len(removes) else None
    untouched = by_method[by_method['kind'] == 'baseline']
    return TextCompareFacts(
        experiment=experiment.name,
        title=config.experiment.name,
        seeds=list(seeds),
        untouched_ce={str(r['model']): float(r['untouched_ce_mean']) for _, r in untouched.iterrows()},
        removes=[str(m) for m in removes.index],
        least_collateral=least,
        prompts=prompts(config),
        continuation_seed=first.seed,
        continuations=first.continuations,
        methods={
            e.name: {'kind': e.kind, 'model': e.model, 'layer': e.layer, 'targets': e.targets}
            for e in config.evaluations
        },
        wall_seconds_this_call=wall_seconds,
    )


@dataclass(frozen=True)
class TextCompareResult:
    directory: Path
    table: pd.DataFrame
    summary: pd.DataFrame
    facts: TextCompareFacts


def finish_text_compare(
    runner: SeedRunner, experiment: Experiment, seeds: Sequence[int], directory: Path, started: float
) -> TextCompareResult:
    """After `ex_color.compare.run_compare`'s runner has every seed: the text comparison's tables and facts."""
    seeds = list(seeds)
    compared = [TextSeedComparison.from_state(runner.files.read(seed), experiment.config) for seed in seeds]
    table = pd.DataFrame([row for seed in compared for row in seed.rows], columns=list(ROW_COLUMNS))
    summary = summarise_text(table)
    first = next((c for c in compared if c.continuations), compared[0])
    facts = text_facts(experiment, seeds, summary, first, time.perf_counter() - started)
    write_text_comparison(directory, table, summary, facts)
    return TextCompareResult(directory, table, summary, facts)


def write_text_comparison(directory: Path, table: pd.DataFrame, summary: pd.DataFrame, facts: TextCompareFacts) -> None:
    write_atomic(directory / TABLE_FILE, table.to_csv(index=False))
    write_atomic(directory / SUMMARY_FILE, summary.to_csv(index=False))
    facts.write(directory)
    record_files(directory, [TABLE_FILE, SUMMARY_FILE, FACTS_FILE])


__all__ = [
    'FIGURES',
    'MASS_FALL',
    'ROW_COLUMNS',
    'TEXT_COMPARE',
    'TextCompareFacts',
    'TextCompareResult',
    'TextSeedComparison',
    'assess_text_models',
    'finish_text_compare',
    'summarise_text',
    'text_compare_chunk',
    'text_facts',
    'train_text_models',
    'write_text_comparison',
]
