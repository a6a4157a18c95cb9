"""The experiment file's schema, validated, and the objects built from it.

An experiment is a TOML file (plus the dopesheet CSV it names). Every section is a
pydantic model that forbids unknown keys, so a typo is an error, never a silent default.
`load_experiment` turns any problem — unreadable TOML, a wrong type, an unknown
regularizer kind, a layer the model lacks, a missing or malformed dopesheet — into one
`ConfigError` whose single-line message names the file and the field.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails, PydanticCustomError
from torch import nn

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
from ex_color.surgery import ablate, prune
from ex_color.temporal import Dopesheet, DopesheetError

if TYPE_CHECKING:  # importing ex_color.training loads Lightning (seconds); a bad file should fail fast
    from ex_color.training.engine import TrainingData

EXPERIMENT_FILE = 'experiment.toml'


class ConfigError(ValueError):
    """A bad experiment file; the message is one line naming the file and field."""


def _field_error(field: str, message: str) -> PydanticCustomError:
    """A validation error whose message names its own field (for checks across fields)."""
    return PydanticCustomError('config_field', message, {'field': field})


class _Section(BaseModel):
    model_config = ConfigDict(extra='forbid', frozen=True, allow_inf_nan=False)

    @model_validator(mode='before')
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        # Before pydantic's own extra='forbid' check, so that the message can list the valid keys.
        if isinstance(data, dict):
            for key in data:
                if key not in cls.model_fields:
                    expected = ', '.join(cls.model_fields)
                    raise PydanticCustomError('unknown_key', f'unknown key; expected one of {expected}', {'key': key})
        return data


class ExperimentSection(_Section):
    name: str
    """Human-readable title, e.g. 'Ex 2.9: Ablate red (only), 5D'."""
    seed: int = 0
    """Default seed (overridden by `--seed`)."""
    dopesheet: str = 'dopesheet.csv'
    """The schedule CSV, relative to the experiment file."""


class ModelSection(_Section):
    kind: Literal['CNColorMLP'] = 'CNColorMLP'
    # Upper bounds far above any colour model, so that a typo (16000) fails here instead of in the allocator.
    k_bottleneck: int = Field(gt=0, le=1024)
    k_codec: int = Field(16, gt=0, le=1024)
    n_nonlinear: int = Field(1, gt=0, le=16)


class DataSection(_Section):
    """Training colours: an HSV cube sampled with replacement, weighted by its bias."""

    hues: int = Field(36, gt=0, le=3600)
    """Number of hues, `arange_cyclic(step_size=1/hues)`."""
    saturations: int = Field(10, gt=1, le=1000)
    values: int = Field(10, gt=1, le=1000)
    batch_size: int = Field(64, gt=0, le=65536)


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
    labels: dict[Literal['red', 'vibrant', 'desaturated'], float] | None = None
    """Label affinities (labels as in [labels]); None → every sample counts equally."""
    validation: bool = False
    """Also report this term on the held-out validation colours, as `val_<name>`."""


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
        for section, entries in (('regularizers', self.regularizers), ('evaluations', self.evaluations)):
            first_index: dict[str, int] = {}
            for i, entry in enumerate(entries):
                if entry.name in first_index:
                    raise _field_error(
                        f'{section}.{i}.name',
                        f'{entry.name!r} is already the name of {section}.{first_index[entry.name]}; '
                        'expected unique names',
                    )
                first_index[entry.name] = i
        for i, e in enumerate(self.evaluations):
            if e.name == 'baseline':
                raise _field_error(
                    f'evaluations.{i}.name', "'baseline' is reserved: the untouched model is always evaluated"
                )
        return self

    # Building objects ------------------------------------------------------------

    def build_model(self) -> CNColorMLP:
        m = self.model
        return CNColorMLP(m.k_bottleneck, k_codec=m.k_codec, n_nonlinear=m.n_nonlinear)

    def build_regularizers(self) -> list[RegularizerConfig]:
        return [_build_regularizer(r) for r in self.regularizers]

    def validation_regularizers(self) -> list[RegularizerConfig]:
        """The regularizers marked `validation = true`."""
        return [_build_regularizer(r) for r in self.regularizers if r.validation]

    def build_variants(self, model: nn.Module) -> dict[str, tuple[nn.Module, list[InterventionConfig]]]:
        """Each model variant to evaluate: name → (model, interventions); 'baseline' (the model itself) first."""
        out: dict[str, tuple[nn.Module, list[InterventionConfig]]] = {'baseline': (model, [])}
        for e in self.evaluations:
            match e:
                case AblateEvaluation(kind='ablate'):
                    out[e.name] = (ablate(model, e.layer, e.dims), [])
                case AblateEvaluation(kind='prune'):
                    out[e.name] = (prune(model, e.layer, e.dims), [])
                case SuppressEvaluation():
                    out[e.name] = (model, [build_intervention(e)])
        return out

    def training_cube(self) -> ColorCube:
        d = self.data
        return ColorCube.from_hsv(
            h=arange_cyclic(step_size=1 / d.hues),
            s=np.linspace(0, 1, d.saturations),
            v=np.linspace(0, 1, d.values),
        )

    def training_data(self) -> TrainingData:
        from ex_color.training.engine import TrainingData

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
    """Validate a parsed TOML document; the first problem becomes a one-line ConfigError.

    The message reads `source: field.path: what is wrong; what was expected`, with the
    path as written in the file (0-based list indices, e.g. `regularizers.1.kind`).
    """
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f'{source}: {_describe(e.errors()[0], raw)}') from None


def _describe(error: ErrorDetails, raw: object) -> str:
    """`field.path: message` for one pydantic error."""
    path = _field_path(error['loc'], raw)
    ctx = error.get('ctx', {})
    message = error['msg']
    match error['type']:
        case 'config_field':
            return f'{ctx["field"]}: {message}'
        case 'unknown_key':  # from _Section._known_keys, which puts the key in ctx
            path.append(ctx['key'])
        case 'extra_forbidden':
            message = 'unknown key'
        case 'union_tag_invalid':
            path.append('kind')
            message = f'unknown kind {ctx["tag"]!r}; expected one of {ctx["expected_tags"]}'
        case 'union_tag_not_found':
            path.append('kind')
            message = 'missing: every entry needs a kind'
        case _ if isinstance(error['input'], str | int | float | bool):
            message = f'{message} (got {error["input"]!r})'
    return f'{".".join(str(part) for part in path) or "(top level)"}: {message}'


def _field_path(loc: tuple[int | str, ...], raw: object) -> list[int | str]:
    """Pydantic's error location as the file's field path: without the union-member steps it inserts."""
    path: list[int | str] = []
    node = raw
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get('kind') == part:
            continue  # pydantic's step into the tagged-union member named by `kind`
        if part == '[key]':
            continue  # pydantic's marker for "the key itself", after the key
        path.append(part)
        try:
            node = node[part]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            node = None
    return path


def check_layers(config: ExperimentConfig, source: str = '<config>') -> None:
    """Check the config against the model it builds, so that a bad file fails at load, not after training.

    Every layer a regularizer or evaluation names must exist; every point, direction and
    dimension index must fit that layer's width; every term, intervention and surgery must
    build. Raises ConfigError naming the file and the field.
    """
    model = config.build_model()
    named = [(f'regularizers.{i}.layers', layer) for i, r in enumerate(config.regularizers) for layer in r.layers]
    named += [(f'evaluations.{i}.layer', e.layer) for i, e in enumerate(config.evaluations)]
    for field, layer in named:
        try:
            get_layer(model, layer)
        except KeyError as e:
            raise ConfigError(f'{source}: {field}: {e}') from None
    widths = layer_widths(model, {layer for _, layer in named})
    for field, problem in _shape_problems(config, model, widths):
        raise ConfigError(f'{source}: {field}: {problem}')


def layer_widths(model: nn.Module, layers: Iterable[str]) -> dict[str, int]:
    """The output width (last dimension) of each named layer, from one forward pass of a black pixel `[1, 3]`."""
    widths: dict[str, int] = {}

    def record(name: str) -> Callable[[nn.Module, object, torch.Tensor], None]:
        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            widths[name] = output.shape[-1]

        return hook

    handles = [get_layer(model, name).register_forward_hook(record(name)) for name in layers]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3))
    finally:
        for handle in handles:
            handle.remove()
    return widths


def _index_problem(indices: Sequence[int], layer: str, width: int) -> str | None:
    out_of_range = [d for d in indices if not 0 <= d < width]
    if out_of_range:
        return f'{out_of_range} out of range for layer {layer!r} of width {width}; expected indices in [0, {width})'
    if len(set(indices)) != len(indices):
        return f'{list(indices)} repeats an index; expected each index at most once'
    return None


def _shape_problems(config: ExperimentConfig, model: nn.Module, widths: dict[str, int]) -> Iterator[tuple[str, str]]:
    """(field, problem) for each vector or index list that does not fit its layer, or term that does not build."""
    for i, r in enumerate(config.regularizers):
        for layer in r.layers:
            width = widths[layer]
            if isinstance(r, AnchorConfig | AntiAnchorConfig) and len(r.point) != width:
                yield f'regularizers.{i}.point', f'has {len(r.point)} values; expected {width} (the width of {layer!r})'
            elif isinstance(r, SubspaceConfig) and (problem := _index_problem(r.dims, layer, width)):
                yield f'regularizers.{i}.dims', problem
            elif isinstance(r, SeparateConfig) and r.channels and (problem := _index_problem(r.channels, layer, width)):
                yield f'regularizers.{i}.channels', problem
        try:
            _build_regularizer(r)
        except ValueError as e:
            yield f'regularizers.{i}', str(e)
    for i, e in enumerate(config.evaluations):
        width = widths[e.layer]
        if isinstance(e, SuppressEvaluation):
            if len(e.direction) != width:
                yield (
                    f'evaluations.{i}.direction',
                    f'has {len(e.direction)} values; expected {width} (the width of {e.layer!r})',
                )
            try:
                build_intervention(e)
            except ValueError as error:
                yield f'evaluations.{i}', str(error)
            continue
        if problem := _index_problem(e.dims, e.layer, width):
            yield f'evaluations.{i}.dims', problem
        try:
            (ablate if e.kind == 'ablate' else prune)(model, e.layer, e.dims)
        except ValueError as error:
            yield f'evaluations.{i}', str(error)
