"""The objects an experiment config describes: model, labels, regularizers, training data, targets, interventions.

Each function takes a validated `ExperimentConfig` (see `ex_color.config.schema`) and builds
one kind of object from it, so the schema stays a description and the trainers never see TOML.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from ex_color.columns import evaluation_columns, text_evaluation_columns, train_loss_column, validation_column
from ex_color.config.schema import (
    BASELINE,
    AnchorConfig,
    AntiAnchorConfig,
    EvaluationSection,
    ExperimentConfig,
    LabelDefinition,
    ModelEntry,
    PrimaryLabel,
    RegularizerSection,
    RouteSection,
    SeparateConfig,
    SimilarityLabel,
    SubspaceConfig,
    SuppressEvaluation,
    TextDataSection,
    TokenLabelSection,
    UnitarityConfig,
)
from ex_color.data import ColorCube, arange_cyclic
from ex_color.data.corpus import ALL, CHAR_CLASSES, Corpus, load_corpus
from ex_color.data.cube_sampler import cube_training_tensors
from ex_color.data.labels import ConceptLabel
from ex_color.data.named_colors import NAMED_COLORS, NAMED_COLORS_HSV
from ex_color.data.target import Target
from ex_color.data.token_labels import TokenLabel
from ex_color.intervention import BoundedFalloff, InterventionConfig, Suppression
from ex_color.loss import (
    RECON_TERM,
    TOTAL_LOSS,
    Anchor,
    AngularAnchor,
    AntiAnchor,
    AxisAlignedSubspace,
    RegularizerConfig,
    Separate,
    Unitarity,
)
from ex_color.model import CharTransformer, CNColorMLP

if TYPE_CHECKING:  # importing ex_color.training loads Lightning (seconds); a bad file should fail fast
    from ex_color.training.data import TrainingData
    from ex_color.training.routing import Route
    from ex_color.training.text import TextData


def build_model(config: ExperimentConfig) -> CNColorMLP | CharTransformer:
    m = config.model
    if m.kind == 'char-transformer':
        data = text_section(config)
        vocab = len(text_corpus(config).vocab)
        return CharTransformer(vocab, data.context, m.layers, m.width, m.heads, m.k_bottleneck, m.logit_scale)
    return CNColorMLP(m.k_bottleneck, k_codec=m.k_codec, n_nonlinear=m.n_nonlinear)


def text_section(config: ExperimentConfig) -> TextDataSection:
    """The `[data]` table of a text experiment; a ValueError for a colour one."""
    if not isinstance(config.data, TextDataSection):
        raise ValueError('not a text experiment: [data] has no kind = "text"')
    return config.data


def text_corpus(config: ExperimentConfig) -> Corpus:
    """A text experiment's corpus, split as `[data]` says (read once per process)."""
    data = text_section(config)
    return load_corpus(data.corpus_source if data.path is None else None, data.path, data.held_out)


def token_labels(config: ExperimentConfig) -> dict[str, TokenLabel]:
    """A text experiment's labels, by name."""
    return {
        name: TokenLabel(label.chars, label.position, power=label.power, scale=label.scale)
        for name, label in config.labels.definitions.items()
        if isinstance(label, TokenLabelSection)
    }


def text_data(config: ExperimentConfig) -> TextData:
    """What a text model trains on: the corpus's training windows and the labels per position."""
    from ex_color.training.text import TextData

    data = text_section(config)
    return TextData(text_corpus(config), data.context, data.batch_size, token_labels(config), config.labels.soft)


def sample_input(config: ExperimentConfig) -> torch.Tensor | None:
    """A small fixed input that surgery traces the model with: token ids `[2, 8]` for text; None for colours (the
    surgery's own generated sample)."""
    if not config.is_text:
        return None
    vocab = len(text_corpus(config).vocab)
    return torch.arange(16).remainder(vocab).view(2, 8)


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
    return {
        name: build_label(d) for name, d in config.labels.definitions.items() if not isinstance(d, TokenLabelSection)
    }


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
    """The colours an evaluation's `target` names: a declared label's colour, else a named colour (none for text,
    whose targets are labels: `evaluation.targets`)."""
    if config.is_text:
        return []
    labels = build_labels(config)
    targets = []
    for name in evaluation.targets:
        hsv = labels[name].hsv if name in labels else NAMED_COLORS_HSV[name]
        targets.append(Target(name, hsv))  # type: ignore[arg-type]
    return targets


def baseline_targets(config: ExperimentConfig) -> list[Target]:
    """What an untouched model's selectivity is measured against: the first evaluation's targets."""
    return build_targets(config, config.evaluations[0]) if config.evaluations else []


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


def model_weight_scale(config: ExperimentConfig, model: ModelEntry) -> list[float]:
    """Per regularizer (in file order), 1 if `model` keeps it, else 0 (the prepared model keeps them all)."""
    if model.keep is None:
        return [1.0] * len(config.regularizers)
    return [1.0 if r.name in model.keep else 0.0 for r in config.regularizers]


def build_route(section: RouteSection | None) -> Route | None:
    """The engine's route for a `route = {...}` table (None for none)."""
    from ex_color.training.routing import Route

    if section is None:
        return None
    return Route(section.layer, tuple(section.dims), dict(section.labels), others=section.others)


def run_columns(config: ExperimentConfig) -> list[str]:
    """Every column of a sweep's per-seed table (sweep.csv) that a run of `config` produces."""
    terms = [TOTAL_LOSS, RECON_TERM, *(r.name for r in config.regularizers)]
    columns = ['seed', *(train_loss_column(t) for t in terms)]
    columns += ['val_recon', *(validation_column(r.name) for r in config.regularizers if r.validation)]
    for name in (BASELINE, *(e.name for e in config.prepared_evaluations())):
        if config.is_text:
            columns += text_evaluation_columns(name, [*CHAR_CLASSES, ALL])
        else:
            columns += evaluation_columns(name, NAMED_COLORS)
    return columns


def sweep_objectives(config: ExperimentConfig) -> tuple[list[str], list[str], str, list[str]]:
    """(minimise, maximise, best, print) for ranking a sweep's seeds (see `ExperimentConfig.sweep_objectives`)."""
    return config.sweep_objectives()


def _vector(values: Sequence[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


__all__ = [
    'baseline_targets',
    'build_intervention',
    'build_label',
    'build_labels',
    'build_model',
    'build_regularizer',
    'build_regularizers',
    'build_route',
    'build_targets',
    'model_weight_scale',
    'run_columns',
    'sample_input',
    'sweep_objectives',
    'text_corpus',
    'text_data',
    'text_section',
    'token_labels',
    'training_cube',
    'training_data',
    'validation_regularizers',
]
