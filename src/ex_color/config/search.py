"""The [search] table against the experiment it searches: what each parameter names must exist, and a trial's
values become overrides (`--set`), so that a trial is an experiment like any other.

- `search_problems`: the checks that need the dopesheet and the model's columns (the schema checks the rest);
- `trial_overrides`: a trial's parameter values as `PATH=VALUE` overrides of the experiment.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from ex_color.config.build import run_columns
from ex_color.config.schema import (
    CellParameter,
    ColumnScaleParameter,
    ExperimentConfig,
    KeyframeStepParameter,
    LabelPowerParameter,
    SearchSection,
    did_you_mean,
)
from ex_color.temporal import Dopesheet
from ex_color.temporal.keyframes import Keyframe
from ex_color.training.schedule import LR_PROPERTY


def _keyframe(dopesheet: Dopesheet, step: str) -> int | None:
    """The index of the keyframe whose STEP is `step` as written or as resolved."""
    return next((i for i, k in enumerate(dopesheet.keyframes) if step in (k.written_step, str(k.step))), None)


def search_problems(config: ExperimentConfig, dopesheet: Dopesheet) -> Iterator[tuple[str, str]]:
    """`(field, problem)` for each [search] parameter or objective the experiment cannot honour."""
    search = config.search
    if search is None:
        return
    searchable = [LR_PROPERTY, *(r.name for r in config.regularizers)]
    keyframes = dopesheet.keyframes
    written = ', '.join(k.written_step or str(k.step) for k in keyframes)
    for i, p in enumerate(search.parameters):
        field = f'search.parameters.{i}'
        if isinstance(p, CellParameter | ColumnScaleParameter) and p.column not in searchable:
            yield (
                f'{field}.column',
                f'{p.column!r} is not a column the training reads{did_you_mean(p.column, searchable)}; expected one '
                f'of {", ".join(searchable)}',
            )
        if isinstance(p, CellParameter | KeyframeStepParameter):
            index = _keyframe(dopesheet, p.step)
            if index is None:
                yield f'{field}.step', f'no keyframe with STEP {p.step!r}; expected one of {written}'
            elif isinstance(p, KeyframeStepParameter):
                yield from _step_problems(field, p, keyframes, index)
    produced = run_columns(config)
    named = [(key, i, column) for key in ('minimise', 'maximise') for i, column in enumerate(getattr(search, key))]
    named += [('constraints', i, bound.column) for i, bound in enumerate(search.bounds())]
    for key, i, column in named:
        if column not in produced:
            yield (
                f'search.{key}.{i}',
                f'{column!r} is not a column a run produces{did_you_mean(column, produced)}; expected e.g. '
                'val_recon or <evaluation>_selectivity_r2',
            )


def _step_problems(
    field: str, p: KeyframeStepParameter, keyframes: Sequence[Keyframe], index: int
) -> Iterator[tuple[str, str]]:
    keyframe = keyframes[index]
    if index == len(keyframes) - 1 or index == 0:
        yield f'{field}.step', f'keyframe {p.step!r} is the first or last, which fix the schedule; expected one between'
        return
    if (keyframe.written_step or '').startswith('+'):
        yield f'{field}.step', f'keyframe {p.step!r} is written relative to the one before; expected an absolute STEP'
        return
    if p.low != int(p.low) or p.high != int(p.high):
        yield f'{field}.low', f'[{p.low:g}, {p.high:g}] are not whole steps; expected whole numbers'
        return
    before, after = keyframes[index - 1].step, keyframes[index + 1].step
    if not (before < p.low and p.high < after):
        yield (
            f'{field}.low',
            f'[{p.low:g}, {p.high:g}] reaches a neighbouring keyframe; expected steps strictly between {before} and '
            f'{after}',
        )


def trial_overrides(search: SearchSection, dopesheet: Dopesheet, values: Mapping[str, float]) -> list[str]:
    """One trial's parameter values (by `heading`) as `--set` overrides of the experiment; a KeyError for a missing
    parameter. A keyframe step is rounded to a whole step; a column scale multiplies each keyed value of it."""
    overrides = []
    for p in search.parameters:
        value = float(values[p.heading])  # a NumPy or Optuna number would print as np.float64(…)
        match p:
            case CellParameter():
                overrides.append(f'dopesheet.{p.column}@{p.step}={value!r}')
            case ColumnScaleParameter():
                for k in dopesheet.keyframes:
                    if p.column in k.values:
                        overrides.append(f'dopesheet.{p.column}@{k.step}={k.values[p.column] * value!r}')
            case KeyframeStepParameter():
                overrides.append(f'dopesheet.STEP@{p.step}={round(value)}')
            case LabelPowerParameter():
                overrides.append(f'labels.{p.label}.power={value!r}')
    return overrides


__all__ = ['search_problems', 'trial_overrides']
