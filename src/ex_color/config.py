"""The experiment file's schema, validated, and the objects built from it.

An experiment is a TOML file (plus the dopesheet CSV it names). Every section is a
pydantic model that forbids unknown keys, so a typo is an error, never a silent default.
`load_experiment` turns any problem — unreadable TOML, a wrong type, an unknown
regularizer kind, a layer the model lacks, a missing or malformed dopesheet — into one
`ConfigError` whose single-line message names the file and the field.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ex_color.data import ColorCube, arange_cyclic
from ex_color.data.cube_sampler import cube_training_tensors
from ex_color.data.labels import label_probabilities
from ex_color.intervention import BoundedFalloff, InterventionConfig, Suppression
from ex_color.loss import (
    Anchor,
    AngularAnchor,
    AntiAnchor,
    AxisAlignedSubspace,
    RegularizerConfig,
    Separate,
    Unitarity,
)
from ex_color.model import CNColorMLP, get_layer
from ex_color.temporal import Dopesheet, DopesheetError
from ex_color.training.engine import TrainingData

EXPERIMENT_FILE = 'experiment.toml'


class ConfigError(ValueError):
    """A bad experiment file; the message is one line naming the file and field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra='forbid', frozen=True)


class ExperimentSection(_Section):
    name: str
    """Human-readable title, e.g. 'Ex 2.9: Ablate red (only), 5D'."""
    seed: int = 0
    """Default seed (overridden by `--seed`)."""
    dopesheet: str = 'dopesheet.csv'
    """The schedule CSV, relative to the experiment file."""


class ModelSection(_Section):
    kind: Literal['CNColorMLP'] = 'CNColorMLP'
    k_bottleneck: int = Field(gt=0)
    k_codec: int = Field(16, gt=0)
    n_nonlinear: int = Field(1, gt=0)


class DataSection(_Section):
    """Training colours: an HSV cube sampled with replacement, weighted by its bias."""

    hues: int = Field(36, gt=0)
    """Number of hues, `arange_cyclic(step_size=1/hues)`."""
    saturations: int = Field(10, gt=1)
    values: int = Field(10, gt=1)
    batch_size: int = Field(64, gt=0)


class LabelsSection(_Section):
    """Label scales (probability = falloff × scale); 0 turns a label off."""

    soft: bool = False
    red: float = Field(0.5, ge=0, le=1)
    vibrant: float = Field(0.5, ge=0, le=1)
    desaturated: float = Field(0.5, ge=0, le=1)


class _RegularizerBase(_Section):
    name: str = Field(min_length=1)
    layers: list[str] = Field(min_length=1)
    """Module paths whose outputs the term regularizes, e.g. ['bottleneck']."""
    labels: dict[str, float] | None = None
    """Label affinities; None → every sample counts equally."""


class UnitarityConfig(_RegularizerBase):
    kind: Literal['unitarity']


class AnchorConfig(_RegularizerBase):
    kind: Literal['anchor', 'angular-anchor']
    point: list[float] = Field(min_length=1)


class AntiAnchorConfig(_RegularizerBase):
    kind: Literal['anti-anchor']
    point: list[float] = Field(min_length=1)
    hemi: bool = True


class SeparateConfig(_RegularizerBase):
    kind: Literal['separate']
    power: float = 1.0
    shift: bool = True
    channels: list[int] | None = None


class SubspaceConfig(_RegularizerBase):
    kind: Literal['axis-aligned-subspace']
    dims: list[int] = Field(min_length=1)
    invert: bool = False


RegularizerSection = Annotated[
    UnitarityConfig | AnchorConfig | AntiAnchorConfig | SeparateConfig | SubspaceConfig,
    Field(discriminator='kind'),
]


class _EvaluationBase(_Section):
    name: str = Field(min_length=1)


class AblateEvaluation(_EvaluationBase):
    kind: Literal['ablate', 'prune']
    layer: str
    dims: list[int] = Field(min_length=1)


class SuppressEvaluation(_EvaluationBase):
    kind: Literal['suppress']
    layer: str
    direction: list[float] = Field(min_length=1)
    falloff_a: float = 0.0
    falloff_b: float = 1.0
    falloff_power: float = 1.0


EvaluationSection = Annotated[AblateEvaluation | SuppressEvaluation, Field(discriminator='kind')]


class ExperimentConfig(_Section):
    """The whole experiment file."""

    experiment: ExperimentSection
    model: ModelSection
    data: DataSection = DataSection()
    labels: LabelsSection = LabelsSection()
    regularizers: list[RegularizerSection] = Field(default_factory=list)
    evaluations: list[EvaluationSection] = Field(default_factory=list)

    @model_validator(mode='after')
    def _names_unique(self) -> ExperimentConfig:
        for kind, names in (
            ('regularizers', [r.name for r in self.regularizers]),
            ('evaluations', [e.name for e in self.evaluations]),
        ):
            seen = set()
            for name in names:
                if name in seen:
                    raise ValueError(f'{kind}: name {name!r} is used twice')
                seen.add(name)
        if any(e.name == 'baseline' for e in self.evaluations):
            raise ValueError("evaluations: 'baseline' is always evaluated; do not list it")
        return self

    # Building objects ------------------------------------------------------------

    def build_model(self) -> CNColorMLP:
        m = self.model
        return CNColorMLP(m.k_bottleneck, k_codec=m.k_codec, n_nonlinear=m.n_nonlinear)

    def build_regularizers(self) -> list[RegularizerConfig]:
        return [_build_regularizer(r) for r in self.regularizers]

    def training_cube(self) -> ColorCube:
        d = self.data
        return ColorCube.from_hsv(
            h=arange_cyclic(step_size=1 / d.hues),
            s=np.linspace(0, 1, d.saturations),
            v=np.linspace(0, 1, d.values),
        )

    def training_data(self) -> TrainingData:
        samples = cube_training_tensors(self.training_cube())
        lab = self.labels
        probabilities = label_probabilities(
            samples.colors, samples.vibrancies, red=lab.red, vibrant=lab.vibrant, desaturated=lab.desaturated
        )
        return TrainingData(
            colours=samples.colors,
            weights=samples.weights,
            label_probabilities=probabilities,
            batch_size=self.data.batch_size,
        )


def _point(values: Sequence[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def _build_regularizer(r: RegularizerSection) -> RegularizerConfig:
    match r:
        case UnitarityConfig():
            term = Unitarity()
        case AnchorConfig(kind='anchor'):
            term = Anchor(_point(r.point))
        case AnchorConfig():
            term = AngularAnchor(_point(r.point))
        case AntiAnchorConfig():
            term = AntiAnchor(_point(r.point), hemi=r.hemi)
        case SeparateConfig():
            term = Separate(channels=r.channels, power=r.power, shift=r.shift)
        case SubspaceConfig():
            term = AxisAlignedSubspace(tuple(r.dims), invert=r.invert)
    return RegularizerConfig(
        name=r.name, compute_loss_term=term, label_affinities=r.labels, layer_affinities=list(r.layers)
    )


def build_intervention(e: SuppressEvaluation) -> InterventionConfig:
    """The activation intervention a 'suppress' evaluation describes."""
    falloff = BoundedFalloff(e.falloff_a, e.falloff_b, power=e.falloff_power)
    return InterventionConfig(apply=Suppression(_point(e.direction), falloff), layer_affinities=[e.layer])


class Experiment(BaseModel):
    """A validated experiment: its file, config and dopesheet."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    path: Path
    """The experiment.toml file."""
    config: ExperimentConfig
    dopesheet: Dopesheet
    dopesheet_path: Path

    @property
    def name(self) -> str:
        """The experiment directory's name, e.g. 'ex-2.9' (used for run directories)."""
        return self.path.parent.name


def resolve_experiment_path(path: str | Path) -> Path:
    """An experiment directory (holding experiment.toml) or the .toml file itself."""
    path = Path(path)
    if path.is_dir():
        path = path / EXPERIMENT_FILE
    if not path.is_file():
        raise ConfigError(
            f'{path}: no such experiment file (expected a directory holding {EXPERIMENT_FILE} or a .toml)'
        )
    return path


def load_experiment(path: str | Path) -> Experiment:
    """Read, validate and cross-check an experiment file and its dopesheet."""
    path = resolve_experiment_path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding='utf-8'))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f'{path}: not valid TOML: {e}') from None
    except UnicodeDecodeError as e:
        raise ConfigError(f'{path}: not UTF-8 text: {e}') from None
    config = parse_config(raw, source=str(path))
    dopesheet_path = path.parent / config.experiment.dopesheet
    if not dopesheet_path.is_file():
        raise ConfigError(f'{path}: experiment.dopesheet: file {str(dopesheet_path)!r} does not exist')
    try:
        dopesheet = Dopesheet.from_csv(dopesheet_path)
    except DopesheetError as e:
        raise ConfigError(str(e)) from None
    check_layers(config, source=str(path))
    if 'lr' not in dopesheet.props:
        raise ConfigError(f"{dopesheet_path}: column 'lr' is missing; it sets the learning rate")
    return Experiment(path=path, config=config, dopesheet=dopesheet, dopesheet_path=dopesheet_path)


def parse_config(raw: dict, source: str = '<config>') -> ExperimentConfig:
    """Validate a parsed TOML document; the first problem becomes a one-line ConfigError."""
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        error = e.errors()[0]
        where = '.'.join(str(part) for part in error['loc']) or '(top level)'
        message = error['msg']
        if error['type'] == 'extra_forbidden':
            message = 'unknown key'
        elif error['type'] == 'union_tag_invalid':
            message = f'unknown kind {error["input"].get("kind")!r}' if isinstance(error['input'], dict) else message
        raise ConfigError(f'{source}: {where}: {message}') from None


def check_layers(config: ExperimentConfig, source: str = '<config>') -> None:
    """Every layer a regularizer or evaluation names must exist in the model."""
    model = config.build_model()
    named = [(f'regularizers[{i}].layers', layer) for i, r in enumerate(config.regularizers) for layer in r.layers]
    named += [(f'evaluations[{i}].layer', e.layer) for i, e in enumerate(config.evaluations)]
    for field, layer in named:
        try:
            get_layer(model, layer)
        except KeyError as e:
            raise ConfigError(f'{source}: {field}: {e}') from None
