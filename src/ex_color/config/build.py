"""The objects an experiment config describes: model, labels, regularizers, training data, targets.

Each function takes a validated `ExperimentConfig` (see `ex_color.config.schema`) and builds
one kind of object from it, so the schema stays a description and the trainers never see TOML.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ex_color.config.schema import (
    BASELINE,
    CONTROL,
    AblateEvaluation,
    AnchorConfig,
    AntiAnchorConfig,
    EraseEvaluation,
    EvaluationSection,
    ExperimentConfig,
    LabelDefinition,
    PrimaryLabel,
    RegularizerSection,
    SeparateConfig,
    SimilarityLabel,
    SubspaceConfig,
    SuppressEvaluation,
    UnitarityConfig,
)
from ex_color.data import ColorCube, arange_cyclic
from ex_color.data.cube_sampler import cube_training_tensors
from ex_color.data.labels import ConceptLabel
from ex_color.data.named_colors import NAMED_COLORS, NAMED_COLORS_HSV
from ex_color.erasure import Erasure, ErasureError, fit_erasure
from ex_color.evaluation import Evaluation, Target, evaluate_versions, evaluation_columns, validation_column
from ex_color.inference import infer
from ex_color.inference.versions import Version
from ex_color.intervention import BoundedFalloff, InterventionConfig, Suppression
from ex_color.loss import (
    RECON_TERM,
    Anchor,
    AngularAnchor,
    AntiAnchor,
    AxisAlignedSubspace,
    RegularizerConfig,
    Separate,
    Unitarity,
)
from ex_color.model import CNColorMLP
from ex_color.surgery import ablate, prune, prune_equals_ablate

if TYPE_CHECKING:  # importing ex_color.training loads Lightning (seconds); a bad file should fail fast
    from ex_color.training.data import TrainingData


def build_model(config: ExperimentConfig) -> CNColorMLP:
    m = config.model
    return CNColorMLP(m.k_bottleneck, k_codec=m.k_codec, n_nonlinear=m.n_nonlinear)


def build_label(definition: LabelDefinition) -> ConceptLabel:
    match definition:
        case PrimaryLabel():
            return ConceptLabel.primary(definition.color, power=definition.power, scale=definition.scale)
        case SimilarityLabel():
            target = definition.color if definition.color is not None else definition.hsv
            return ConceptLabel.similarity(target, power=definition.power, scale=definition.scale)  # type: ignore[arg-type]
    return ConceptLabel(definition.kind, power=definition.power, scale=definition.scale)


def build_labels(config: ExperimentConfig) -> dict[str, ConceptLabel]:
    """Label name → definition, in file order."""
    return {name: build_label(d) for name, d in config.labels.definitions.items()}


def build_regularizer(r: RegularizerSection) -> RegularizerConfig:
    match r:
        case UnitarityConfig():
            term = Unitarity()
        case AnchorConfig(kind='anchor'):
            term = Anchor(_vector(r.point))
        case AnchorConfig():
            term = AngularAnchor(_vector(r.point))
        case AntiAnchorConfig():
            term = AntiAnchor(_vector(r.point), hemi=r.hemi)
        case SeparateConfig():
            term = Separate(channels=r.channels, power=r.power, shift=r.shift)
        case SubspaceConfig():
            term = AxisAlignedSubspace(tuple(r.dims), invert=r.invert)
    return RegularizerConfig(
        name=r.name, compute_loss_term=term, label_affinities=r.labels, layer_affinities=list(r.layers)
    )


def build_regularizers(config: ExperimentConfig) -> list[RegularizerConfig]:
    return [build_regularizer(r) for r in config.regularizers]


def validation_regularizers(config: ExperimentConfig) -> list[RegularizerConfig]:
    """The regularizers marked `validation = true`."""
    return [build_regularizer(r) for r in config.regularizers if r.validation]


def build_intervention(e: SuppressEvaluation) -> InterventionConfig:
    """The activation intervention a 'suppress' evaluation describes."""
    falloff = BoundedFalloff(e.falloff_a, e.falloff_b, power=e.falloff_power)
    return InterventionConfig(apply=Suppression(_vector(e.direction), falloff), layer_affinities=[e.layer])


def build_targets(config: ExperimentConfig, evaluation: EvaluationSection) -> list[Target]:
    """The colours an evaluation's `target` names: a declared label's colour, else a named colour."""
    labels = build_labels(config)
    targets = []
    for name in evaluation.targets:
        hsv = labels[name].hsv if name in labels else NAMED_COLORS_HSV[name]
        targets.append(Target(name, hsv))  # type: ignore[arg-type]
    return targets


def baseline_targets(config: ExperimentConfig) -> list[Target]:
    """What an untouched model's selectivity is measured against: the first evaluation's targets."""
    return build_targets(config, config.evaluations[0]) if config.evaluations else []


@dataclass(frozen=True)
class Variant:
    """One evaluated version of a trained model: a surgery's copy, or the model with interventions."""

    name: str
    model: nn.Module
    interventions: list[InterventionConfig] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    """What the edit removes (selectivity is measured against it)."""
    edit: dict[str, Any] = field(default_factory=dict)
    """How a fitted edit came out (an erasure's settings and fit), reported with its figures."""
    same_as: str | None = None
    """Another variant that computes the same function by construction (a prune of an ablated
    bottleneck): evaluating it again would only repeat that variant's figures."""


def build_variant(model: nn.Module, evaluation: EvaluationSection, config: ExperimentConfig) -> Variant:
    """What one evaluation does to `model`: surgery returns a new model; suppression and erasure add an intervention."""
    e = evaluation
    targets = build_targets(config, e)
    match e:
        case AblateEvaluation(kind='ablate'):
            return Variant(e.name, ablate(model, e.layer, e.dims), [], targets)
        case AblateEvaluation(kind='prune'):
            return Variant(e.name, prune(model, e.layer, e.dims), [], targets)
        case SuppressEvaluation():
            return Variant(e.name, model, [build_intervention(e)], targets)
        case EraseEvaluation():
            erasure = fit_erasure_of(model, e, config)
            edit = {**erasure.describe(), 'label': e.concept, 'layer': e.layer, 'fit': ERASURE_FIT}
            intervention = InterventionConfig(apply=erasure, layer_affinities=[e.layer])
            return Variant(e.name, model, [intervention], targets, edit)
    raise AssertionError(e)


ERASURE_FIT = (
    "the layer's activations over the training colours, weighted by how often training draws each, "
    "with the label's probabilities as the concept"
)


def fit_erasure_of(model: nn.Module, evaluation: EraseEvaluation, config: ExperimentConfig) -> Erasure:
    """Fit an erasure evaluation to `model`: its layer's activations over the training colours (each weighted as
    training samples it) against the label's probabilities, the expected value of the label training draws."""
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


def build_variants(
    model: nn.Module,
    config: ExperimentConfig,
    control: nn.Module | None = None,
    *,
    failures: dict[str, str] | None = None,
) -> dict[str, Variant]:
    """The baseline (the model itself, measured against the first evaluation's targets) and each evaluation.

    Without a `control` model, the control's evaluations are left out (only `ex-color compare` trains
    one); with it, the control's own baseline ('control') and its evaluations are added. With a
    `failures` dict, an erasure that cannot be fitted to this model is recorded there (name →
    why) and left out, instead of raising `ErasureError`.
    """
    variants = {BASELINE: Variant(BASELINE, model, [], baseline_targets(config))}
    edits = [(model, e) for e in config.prepared_evaluations()]
    if control is not None:
        variants[CONTROL] = Variant(CONTROL, control, [], baseline_targets(config))
        edits += [(control, e) for e in config.control_evaluations()]
    for edited, e in edits:
        try:
            variants[e.name] = _with_twin(build_variant(edited, e, config), e, config, edited)
        except ErasureError as error:
            if failures is None:
                raise
            failures[e.name] = str(error)
    return variants


def evaluate_variants(variants: Mapping[str, Variant]) -> dict[str, Evaluation]:
    """Each variant's figures (with its `edit`), in the variants' order.

    A `same_as` variant gets its twin's figures without a pass of its own; the others are measured
    together (`evaluate_versions`), so the layers they share run once per colour.
    """
    measured = {name: v for name, v in variants.items() if v.same_as is None}
    figures = evaluate_versions(
        [Version(v.model, v.interventions) for v in measured.values()],
        [v.targets for v in measured.values()],
    )
    evaluations = {name: replace(f, edit=v.edit) for (name, v), f in zip(measured.items(), figures, strict=True)}
    return {name: evaluations[v.same_as if v.same_as is not None else name] for name, v in variants.items()}


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


def training_cube(config: ExperimentConfig) -> ColorCube:
    d = config.data
    return ColorCube.from_hsv(
        h=arange_cyclic(step_size=1 / d.hues),
        s=np.linspace(0, 1, d.saturations),
        v=np.linspace(0, 1, d.values),
    )


def training_data(config: ExperimentConfig) -> TrainingData:
    from ex_color.training.data import TrainingData

    samples = cube_training_tensors(training_cube(config))
    return TrainingData(
        colors=samples.colors,
        vibrancies=samples.vibrancies,
        weights=samples.weights,
        labels=build_labels(config),
        soft=config.labels.soft,
        batch_size=config.data.batch_size,
    )


def control_weight_scale(config: ExperimentConfig) -> list[float]:
    """Per regularizer (in file order), 1 if the control model keeps it, else 0."""
    keep = set(config.control.keep) if config.control is not None else set()
    return [1.0 if r.name in keep else 0.0 for r in config.regularizers]


def run_columns(config: ExperimentConfig) -> list[str]:
    """Every column of a sweep's per-seed table (sweep.csv) that a run of `config` produces."""
    columns = ['seed', 'train_loss', f'train_loss_{RECON_TERM}', *(f'train_loss_{r.name}' for r in config.regularizers)]
    columns += ['val_recon', *(validation_column(r.name) for r in config.regularizers if r.validation)]
    for name in (BASELINE, *(e.name for e in config.prepared_evaluations())):
        columns += evaluation_columns(name, NAMED_COLORS)
    return columns


def sweep_objectives(config: ExperimentConfig) -> tuple[list[str], list[str], str, list[str]]:
    """(minimise, maximise, best, print) for ranking a sweep's seeds (see `ExperimentConfig.sweep_objectives`)."""
    return config.sweep_objectives()


def _vector(values: Sequence[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


__all__ = [
    'Variant',
    'baseline_targets',
    'build_intervention',
    'build_label',
    'build_labels',
    'build_model',
    'build_regularizer',
    'build_regularizers',
    'build_targets',
    'build_variant',
    'build_variants',
    'control_weight_scale',
    'fit_erasure_of',
    'run_columns',
    'sweep_objectives',
    'training_cube',
    'training_data',
    'validation_regularizers',
]
