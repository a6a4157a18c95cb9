"""The versions of a trained model that an experiment evaluates: its variants.

A variant is what one `[[evaluations]]` entry does to a model: surgery returns a new model
(`ablate`, `prune`); suppression and post-hoc erasure leave the model and add an intervention
(an erasure is first fitted to the model's own activations). The untouched model is the
variant `baseline` (and, in a comparison, each other model's, under that model's name).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from ex_color.config import (
    BASELINE,
    AblateEvaluation,
    EraseEvaluation,
    EvaluationSection,
    ExperimentConfig,
    SuppressEvaluation,
    baseline_targets,
    build_intervention,
    build_labels,
    build_targets,
    sample_input,
    text_data,
    training_cube,
)
from ex_color.data.corpus import windows
from ex_color.data.cube_sampler import cube_training_tensors
from ex_color.data.target import Target
from ex_color.erasure import Erasure, ErasureError, fit_erasure
from ex_color.inference import infer
from ex_color.intervention import InterventionConfig
from ex_color.model import forward_hooks
from ex_color.surgery import ablate, prune, prune_equals_ablate

log = logging.getLogger(__name__)

ERASURE_FIT = (
    "the layer's activations over the training colours, weighted by how often training draws each, "
    "with the label's probabilities as the concept"
)


@dataclass(frozen=True)
class ErasureEdit:
    """How a fitted erasure came out, reported with its figures (results.json, a comparison's seed files)."""

    kind: str
    """'leace' or 'mean-difference'."""
    renormalize: bool
    label: str
    """The label the erasure was fitted to remove."""
    layer: str
    fit: str = ERASURE_FIT
    """What it was fitted on, in words."""
    direction: list[float] | None = None
    """The unit direction a mean-difference erasure projects out (differs between seeds)."""
    rank: int | None = None
    """The rank of a LEACE edit (differs between seeds)."""

    @classmethod
    def of(cls, erasure: Erasure, evaluation: EraseEvaluation) -> ErasureEdit:
        described = erasure.describe()
        return cls(
            kind=described['kind'],
            renormalize=described['renormalize'],
            label=evaluation.concept,
            layer=evaluation.layer,
            direction=described.get('direction'),
            rank=described.get('rank'),
        )

    def to_dict(self) -> dict[str, Any]:
        """As results.json writes it: kind, renormalize, the fit's outcome (direction or rank), label, layer, fit."""
        outcome = {k: v for k, v in (('direction', self.direction), ('rank', self.rank)) if v is not None}
        return {'kind': self.kind, 'renormalize': self.renormalize, **outcome} | {
            'label': self.label,
            'layer': self.layer,
            'fit': self.fit,
        }

    def settings(self) -> dict[str, Any]:
        """What every seed shares (the fit's outcome left out): a comparison's settings of the method."""
        return {k: v for k, v in self.to_dict().items() if k not in ('direction', 'rank')}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ErasureEdit:
        return cls(**data)


@dataclass(frozen=True)
class Variant:
    """One evaluated version of a trained model: a surgery's copy, or the model with interventions."""

    name: str
    model: nn.Module
    interventions: list[InterventionConfig] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    """What the edit removes (selectivity is measured against it)."""
    edit: ErasureEdit | None = None
    """How a fitted edit came out, reported with its figures."""
    same_as: str | None = None
    """Another variant that computes the same function by construction (a prune of an ablated
    bottleneck): evaluating it again would only repeat that variant's figures."""


def build_variant(model: nn.Module, evaluation: EvaluationSection, config: ExperimentConfig) -> Variant:
    """What one evaluation does to `model`: surgery returns a new model; suppression and erasure add an intervention."""
    e = evaluation
    targets = build_targets(config, e)
    match e:
        case AblateEvaluation(kind='ablate'):
            return Variant(e.name, ablate(model, e.layer, e.dims, sample=sample_input(config)), [], targets)
        case AblateEvaluation(kind='prune'):
            return Variant(e.name, prune(model, e.layer, e.dims, sample=sample_input(config)), [], targets)
        case SuppressEvaluation():
            return Variant(e.name, model, [build_intervention(e)], targets)
        case EraseEvaluation():
            erasure = fit_erasure_of(model, e, config)
            intervention = InterventionConfig(apply=erasure, layer_affinities=[e.layer])
            return Variant(e.name, model, [intervention], targets, ErasureEdit.of(erasure, e))
    raise AssertionError(e)


ERASURE_FIT_WINDOWS = 256
"""A text erasure is fitted on this many training windows (spread evenly over the training text), every position."""


def fit_erasure_of(model: nn.Module, evaluation: EraseEvaluation, config: ExperimentConfig) -> Erasure:
    """Fit an erasure evaluation to `model`: its layer's activations over the training colours (each weighted as
    training samples it) against the label's probabilities, the expected value of the label training draws.
    For text: over every position of `ERASURE_FIT_WINDOWS` training windows, against the label per position."""
    if config.is_text:
        return _fit_text_erasure(model, evaluation, config)
    samples = cube_training_tensors(training_cube(config))
    label = build_labels(config)[evaluation.concept]
    activations = infer(model, samples.colors, capture_layers=[evaluation.layer]).captured[evaluation.layer]
    return fit_erasure(
        evaluation.kind,
        activations.double(),
        label.probabilities(samples.colors, samples.vibrancies).double(),
        samples.weights,
        renormalize=evaluation.renormalize,
        name=f'evaluation {evaluation.name!r} at layer {evaluation.layer!r}',
    )


def _fit_text_erasure(model: nn.Module, evaluation: EraseEvaluation, config: ExperimentConfig) -> Erasure:
    data = text_data(config)
    train, T = data.corpus.train, data.context
    starts = torch.linspace(0, len(train) - T - 1, ERASURE_FIT_WINDOWS).long()
    window = windows(train, starts, T + 1)
    x, y = window[:, :-1], window[:, 1:]
    captured: list[torch.Tensor] = []
    with torch.no_grad(), forward_hooks(model, [evaluation.layer], lambda _, out: captured.append(out)):
        model.eval()(x)
    activations = captured[0].flatten(0, -2)  # [W·T, D]
    label = data.labels[evaluation.concept]
    probabilities = label.probabilities(x, y, data.members(label.chars)).flatten()
    return fit_erasure(
        evaluation.kind,
        activations.double(),
        probabilities.double(),
        torch.ones(len(probabilities), dtype=torch.float64),
        renormalize=evaluation.renormalize,
        name=f'evaluation {evaluation.name!r} at layer {evaluation.layer!r}',
    )


def build_variants(
    model: nn.Module,
    config: ExperimentConfig,
    others: Mapping[str, nn.Module] | None = None,
    *,
    failures: dict[str, str] | None = None,
) -> dict[str, Variant]:
    """The baseline (the model itself, measured against the first evaluation's targets) and each evaluation.

    Without `others`, the evaluations of other models are left out (only `ex-color compare` trains
    them); with them (name → model, as `[[models]]` names them), each model's own untouched variant
    (under its name) and its evaluations are added. With a
    `failures` dict, an erasure that cannot be fitted to this model is recorded there (name →
    why) and left out, instead of raising `ErasureError`.
    """
    variants = {BASELINE: Variant(BASELINE, model, [], baseline_targets(config))}
    edits = [(model, e) for e in config.prepared_evaluations()]
    for name, other in (others or {}).items():
        variants[name] = Variant(name, other, [], baseline_targets(config))
        edits += [(other, e) for e in config.model_evaluations(name)]
    for edited, e in edits:
        try:
            variants[e.name] = _with_twin(build_variant(edited, e, config), e, config, edited)
        except ErasureError as error:
            if failures is None:
                raise
            failures[e.name] = str(error)
    return variants


def _with_twin(variant: Variant, evaluation: EvaluationSection, config: ExperimentConfig, model: nn.Module) -> Variant:
    """A prune variant marked `same_as` the earlier ablation of the same layer and dims, when the two are
    the same function by construction (`surgery.prune_equals_ablate`)."""
    if not (isinstance(evaluation, AblateEvaluation) and evaluation.kind == 'prune'):
        return variant
    for other in (o for o in config.evaluations if o.model == evaluation.model):
        if other is evaluation:
            break
        if (
            isinstance(other, AblateEvaluation)
            and other.kind == 'ablate'
            and (other.layer, sorted(other.dims), other.targets)
            == (evaluation.layer, sorted(evaluation.dims), evaluation.targets)
            and prune_equals_ablate(model, evaluation.layer)
        ):
            return replace(variant, same_as=other.name)
    return variant


__all__ = ['ERASURE_FIT', 'ErasureEdit', 'Variant', 'build_variant', 'build_variants', 'fit_erasure_of']
