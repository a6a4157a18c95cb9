"""Prepared vs post-hoc: does anchoring a concept while training beat erasing it afterwards?

For every seed, the experiment's models train side by side in one ensemble: the *prepared* model
(every regularizer of the experiment) and each `[[models]]` entry, such as a *control* or a
*routed* model (same architecture, data, schedule and seed, keeping only the regularizers its
`keep` names, turned off for it with the engine's per-member `weight_scale`, and trained with its
gradient `route`, if any). Every evaluation is then applied to the model it names and measured the
same way: target error, selectivity r², collateral error (max and median over colours far from the
target) and the untouched model's median error.

`run_compare` reads as its pipeline: the multi-seed runner (`ex_color.runner`) trains chunks of
seeds, each one call of `compare_chunk`, here or on Ray, and saves each seed as its chunk
finishes → compare.csv and hue_error.csv from the seeds → summary.csv → compare.json.

The compare directory holds:

    config.toml, dopesheet.csv   what was compared (a rerun must match them)
    seeds/seed-<N>.pt            each finished seed: its models and its rows (a rerun skips these)
    compare.csv                  one row per seed × method: an evaluation, or an untouched model
                                 ('baseline' is the prepared model; the others go by their names)
    hue_error.csv                error along hue (saturation and value 1) per seed × method
    summary.csv                  per method: the mean and a 95% bootstrap interval over seeds of
                                 each of `comparedir.FIGURES`
    compare.json                 which methods remove the target, which with the least collateral
                                 damage, and whether each other model reconstructs as well as the prepared one
    figures/, report.html        drawn by `ex_color.vis.compare_report`
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ex_color.backends import chunk_trainer
from ex_color.comparedir import (
    FIGURES,
    MEASURED,
    REMOVAL_THRESHOLD,
    ROW_COLUMNS,
    CompareFacts,
    ModelFacts,
    Verdict,
    write_comparison,
)
from ex_color.compiling import resolve_compile
from ex_color.config import (
    BASELINE,
    CONTROL,
    PREPARED,
    ConfigError,
    Experiment,
    ExperimentConfig,
    ModelEntry,
    build_model,
    build_regularizers,
    build_route,
    model_weight_scale,
    training_data,
)
from ex_color.device import resolve_device
from ex_color.evaluation import Removal, evaluate_variants, hue_ring, measure_removal
from ex_color.experiment import check_text_engine, checked_steps
from ex_color.runner import SeedJob, SeedRunner
from ex_color.statistics import mean_and_interval
from ex_color.temporal import Dopesheet
from ex_color.training.engine import EngineOptions, init_models, train_ensemble
from ex_color.training.schedule import TrainingSchedule
from ex_color.variants import ErasureEdit, build_variants

if TYPE_CHECKING:
    from ex_color.text_compare import TextCompareResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SeedComparison:
    """One seed's figures: its rows of compare.csv and of hue_error.csv, and each fitted edit's settings."""

    seed: int
    rows: list[dict[str, Any]]
    hue_error: dict[str, list[float]]
    """Method → error along `hue_ring()`, `[240]`."""
    edits: dict[str, dict[str, Any]]
    """Method → its fitted edit, as `ErasureEdit.to_dict` gives it."""
    models: dict[str, nn.Module]
    """Model name → the trained model: 'prepared' first, then the `[[models]]` entries."""
    evaluation_seconds: float = 0.0

    def to_state(self) -> dict[str, Any]:
        """A comparison's seed file (`ex_color.runner.SeedFiles`)."""
        return {
            'models': {name: model.state_dict() for name, model in self.models.items()},
            'rows': self.rows,
            'hue_error': self.hue_error,
            'edits': self.edits,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], config: ExperimentConfig) -> SeedComparison:
        """A saved seed (`to_state`), its models rebuilt from `config` (a file of an older ex-color holds
        'prepared' and 'control' at its top level)."""
        saved = state.get('models') or {name: state[name] for name in (PREPARED, CONTROL) if name in state}
        models = {}
        for name, weights in saved.items():
            models[name] = build_model(config)
            models[name].load_state_dict(weights)
        return cls(state['seed'], state['rows'], state['hue_error'], state['edits'], models)

    def tracked(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A tracker's view of this seed: `<method>_<figure>` for each row and measured figure; no metric rows."""
        return {f'{row["method"]}_{figure}': row[figure] for row in self.rows for figure in ROW_COLUMNS[5:]}, []


@dataclass(frozen=True)
class CompareResult:
    directory: Path
    table: pd.DataFrame
    """compare.csv."""
    summary: pd.DataFrame
    """summary.csv."""
    facts: CompareFacts
    """compare.json."""


def default_compare_dir(experiment: Experiment) -> Path:
    return Path('runs') / experiment.runs_name / 'compare'


def check_comparable(config: ExperimentConfig, source: str) -> None:
    """A ConfigError unless the experiment declares a model to compare with and something to compare."""
    if not config.compared_models():
        raise ConfigError(
            f'{source}: compare needs a model to compare the prepared one with: add a [[models]] table, e.g. '
            "name = 'control' and keep = ['reg-unit', 'reg-separate'] (the regularizers it keeps)"
        )
    if not config.evaluations:
        raise ConfigError(f'{source}: compare needs at least one [[evaluations]] entry to compare')


def train_models(
    config: ExperimentConfig,
    dopesheet: Dopesheet,
    seeds: Sequence[int],
    *,
    steps: int | None = None,
    options: EngineOptions | None = None,
) -> dict[str, list[nn.Module]]:
    """Train the prepared model and each `[[models]]` entry per seed as one ensemble; name → models in seed order.

    Members 0..S−1 are the prepared models, then S members per entry, in file order: each starts
    from its prepared twin's weights and draws the same batches and labels; the regularizers it
    does not keep weigh 0, and it trains with its route.
    """
    regularizers = build_regularizers(config)
    seeds = list(seeds)
    entries = [ModelEntry(name=PREPARED, route=config.prepared_route()), *config.compared_models()]
    weight_scale = torch.tensor([model_weight_scale(config, m) for m in entries for _ in seeds])
    routes = [build_route(m.route) for m in entries for _ in seeds]
    result = train_ensemble(
        init_models(lambda: build_model(config), seeds * len(entries)),
        seeds * len(entries),
        training_data(config),
        regularizers,
        TrainingSchedule.from_dopesheet(dopesheet, regularizers),
        steps=steps,
        options=options,
        weight_scale=weight_scale,
        routes=routes,
    )
    S = len(seeds)
    return {m.name: result.models[i * S : (i + 1) * S] for i, m in enumerate(entries)}


def assess_models(seed: int, models: dict[str, nn.Module], config: ExperimentConfig) -> SeedComparison:
    """Apply every evaluation to the model it names, and measure each variant and every untouched model."""
    started = time.perf_counter()
    evaluations = {e.name: e for e in config.evaluations}
    failures: dict[str, str] = {}
    others = {name: model for name, model in models.items() if name != PREPARED}
    variants = build_variants(models[PREPARED], config, others, failures=failures)
    for why in failures.values():
        log.warning('Seed %d: %s; its figures are left empty for this seed', seed, why)
    evaluated = evaluate_variants(variants)
    removals: dict[str, Removal] = {}
    for name, v in variants.items():
        if v.same_as is not None:  # the same function as an earlier variant (see `Variant.same_as`)
            removals[name] = removals[v.same_as]
        else:
            removals[name] = measure_removal(v.model, v.interventions, v.targets)
    measured = {name: (evaluated[name], removals[name]) for name in variants}
    order = [(BASELINE, PREPARED), *((e.name, PREPARED) for e in config.prepared_evaluations())]
    for other in others:
        order += [(other, other), *((e.name, other) for e in config.model_evaluations(other))]
    rows = []
    for name, model in order:
        section = evaluations.get(name)
        untouched = measured[BASELINE if model == PREPARED else model][0]
        row = {
            'seed': seed,
            'method': name,
            'model': model,
            'kind': 'baseline' if section is None else section.kind,
            'targets': '+'.join(section.targets if section is not None else untouched.targets),
            'baseline_median': untouched.mse_median,
        }
        if name in failures:  # figures left NaN: summary.csv counts this seed as failed for the method
            row |= dict.fromkeys(MEASURED, float('nan'))
            rows.append({column: row[column] for column in ROW_COLUMNS})
            continue
        evaluation, removal = measured[name]
        row |= {
            'target_error': removal.target_error,
            'selectivity_r2': evaluation.selectivity_r2,
            'collateral_max': removal.collateral_max,
            'collateral_median': removal.collateral_median,
            'mse_max': evaluation.mse_max,
            'mse_median': evaluation.mse_median,
        }
        rows.append({column: row[column] for column in ROW_COLUMNS})
    return SeedComparison(
        seed=seed,
        rows=rows,
        hue_error={name: removal.hue_error.tolist() for name, (_, removal) in measured.items()},
        edits={name: v.edit.to_dict() for name, v in variants.items() if v.edit is not None},
        models=dict(models),
        evaluation_seconds=time.perf_counter() - started,
    )


def compare_chunk(
    config: ExperimentConfig,
    dopesheet: Dopesheet,
    seeds: Sequence[int],
    *,
    steps: int | None = None,
    options: EngineOptions | None = None,
) -> list[SeedComparison]:
    """Train the models of `seeds` as one ensemble, then assess each seed's models.

    A pure function of picklable arguments: the unit of work of a comparison.
    """
    trained = train_models(config, dopesheet, seeds, steps=steps, options=options)
    return [
        assess_models(seed, {name: models[i] for name, models in trained.items()}, config)
        for i, seed in enumerate(seeds)
    ]


COMPARE = SeedJob(
    kind='compare',
    train_chunk=compare_chunk,
    keys=('identity', 'rows', 'hue_error', 'edits'),
    members=2,
    label='Compare',
    from_state=SeedComparison.from_state,
)
"""A comparison's unit of work: one ensemble of every model of each seed, each seed's models assessed
(`members` is set from the experiment: one per model)."""


def compare_job(config: ExperimentConfig) -> SeedJob:
    """The comparison's job for `config`: one ensemble member per model and seed."""
    if config.is_text:
        from ex_color.text_compare import TEXT_COMPARE

        return replace(TEXT_COMPARE, members=1 + len(config.compared_models()))
    return replace(COMPARE, members=1 + len(config.compared_models()))


def run_compare(
    experiment: Experiment,
    seeds: Sequence[int],
    *,
    out: str | Path | None = None,
    chunk: int | None = None,
    steps: int | None = None,
    progress: bool | None = None,
    ray: str | None = None,
    ray_cpus: int | None = None,
    loggers: Sequence[str] = (),
    device: str = 'cpu',
    compile: bool | None = None,
) -> CompareResult | TextCompareResult:
    """Compare prepared and control models over `seeds`; write the compare directory (see the module docstring;
    a text experiment's is `ex_color.text_compare`'s, and so is its result).

    Finished seeds found in `out` are skipped, so an interrupted comparison continues where it
    stopped; locally the chunk in progress resumes from its checkpoint. With `ray`, each chunk is
    a Ray task (as for `ex_color.sweep.run_sweep`); the tables are the same as a local run's. With
    `loggers` (see `ex_color.tracking`), each newly compared seed is also tracked as a run of its
    own, grouped by the comparison, holding its rows as `final/<method>_<figure>`.
    """
    check_comparable(experiment.config, str(experiment.path))
    check_text_engine(experiment.config, compile=compile)
    steps = checked_steps(experiment, steps)
    device = resolve_device(device)
    compile = resolve_compile(compile, 'compare')
    directory = Path(out) if out is not None else default_compare_dir(experiment)
    started = time.perf_counter()
    seeds = list(seeds)
    with SeedRunner(
        compare_job(experiment.config),
        experiment,
        directory,
        steps,
        seeds,
        chunk=chunk,
        trainer=chunk_trainer(experiment, steps, directory, ray=ray, ray_cpus=ray_cpus, device=device, compile=compile),
        loggers=loggers,
        device=device,
        compile=compile,
    ) as runner:
        runner.run(progress=progress)
        if experiment.config.is_text:
            from ex_color.text_compare import finish_text_compare

            return finish_text_compare(runner, experiment, seeds, directory, started)
        compared = [SeedComparison.from_state(runner.files.read(seed), experiment.config) for seed in seeds]
        table = pd.DataFrame([row for seed in compared for row in seed.rows], columns=list(ROW_COLUMNS))
        summary = summarise(table)
        failed = table[table['target_error'].isna()]
        facts = comparison_facts(
            experiment,
            seeds,
            summary,
            compared[0].edits,
            failed={str(m): [int(x) for x in g['seed']] for m, g in failed.groupby('method', sort=False)},
            wall_seconds=time.perf_counter() - started,
        )
        write_comparison(directory, table, _hue_table(compared), summary, facts)
    for name, model in facts.models.items():
        if not model.fair:
            log.warning(
                'The %s model reconstructs %.1f× worse than the prepared model (median error %.2g vs %.2g): '
                'its comparison is not fair; keep more regularizers in its [[models]] entry or check its schedule',
                name,
                model.ratio,
                model.baseline_median,
                model.prepared_baseline_median,
            )
    return CompareResult(directory, table, summary, facts)


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """summary.csv from compare.csv: per method (in order of appearance), the mean of each figure over seeds
    with its 95% bootstrap interval (`<figure>_mean`, `_low`, `_high`). `seeds` counts the seeds measured;
    `failed`, those where the method's edit could not be fitted (their figures are NaN and left out)."""
    rows = []
    for method, group in table.groupby('method', sort=False):
        first = group.iloc[0]
        failed = int(group['target_error'].isna().sum())
        row: dict[str, Any] = {
            'method': method,
            'model': first['model'],
            'kind': first['kind'],
            'targets': first['targets'],
            'seeds': len(group) - failed,
            'failed': failed,
        }
        row |= mean_and_interval(group, FIGURES)  # a seed whose edit could not be fitted (NaN) is left out
        rows.append(row)
    return pd.DataFrame(rows)


def comparison_facts(
    experiment: Experiment,
    seeds: Sequence[int],
    summary: pd.DataFrame,
    edits: dict[str, dict[str, Any]],
    *,
    failed: dict[str, list[int]] | None = None,
    wall_seconds: float | None = None,
) -> CompareFacts:
    """compare.json: which methods remove their target, the one with least collateral damage among those with the
    first evaluation's targets (`compared_targets`; methods with other targets are listed in `other_targets`),
    each other model's fairness, and each method's settings."""
    config = experiment.config
    verdict = Verdict.of(summary)
    methods = {}
    for e in config.evaluations:
        methods[e.name] = {
            'kind': e.kind,
            'model': e.model,
            'layer': e.layer,
            'targets': e.targets,
            # How one seed's fit came out (direction, rank) stays in its seed file: it differs between seeds.
            **(ErasureEdit.from_dict(edits[e.name]).settings() if e.name in edits else {}),
        }
    return CompareFacts(
        experiment=experiment.name,
        title=config.experiment.name,
        seeds=list(seeds),
        removal_threshold=REMOVAL_THRESHOLD,
        removes=verdict.removes,
        compared_targets=verdict.compared_targets,
        other_targets=verdict.other_targets,
        least_collateral=verdict.least_collateral,
        models={
            m.name: ModelFacts(
                keep=list(m.keep or []),
                route=m.route.model_dump() if m.route is not None else None,
                baseline_median=verdict.medians[m.name],
                prepared_baseline_median=verdict.prepared_median,
                ratio=verdict.ratios[m.name],
                fair=verdict.fair[m.name],
            )
            for m in config.compared_models()
            if m.name in verdict.medians
        },
        methods=methods,
        failed=failed or {},
        wall_seconds_this_call=wall_seconds,
    )


def _hue_table(compared: Sequence[SeedComparison]) -> pd.DataFrame:
    """hue_error.csv: `seed, method, hue` (degrees), `error`, long format."""
    hues = np.round(np.arange(len(hue_ring())) * 360 / len(hue_ring()), 6)
    frames = [
        pd.DataFrame({'seed': seed.seed, 'method': method, 'hue': hues, 'error': errors})
        for seed in compared
        for method, errors in seed.hue_error.items()
    ]
    return pd.concat(frames, ignore_index=True)


__all__ = [
    'COMPARE',
    'CompareResult',
    'SeedComparison',
    'assess_models',
    'compare_chunk',
    'compare_job',
    'comparison_facts',
    'default_compare_dir',
    'run_compare',
    'summarise',
    'train_models',
]
