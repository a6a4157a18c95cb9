"""The experiment file's schema: one pydantic model per section, validated, nothing built.

An experiment is a TOML file (plus the dopesheet CSV it names). Every section forbids
unknown keys, so a typo is an error, never a silent default. `parse_config` turns the
first problem into one `ConfigError` whose single-line message names the file and the
field. Building objects from a config is `ex_color.config.build`'s job; checking it
against the model it builds is `ex_color.config.load`'s.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from ex_color.columns import VALIDATION_RECON, validation_column
from ex_color.data.corpus import PYTHON_REFERENCE
from ex_color.data.labels import PRIMARY_CHANNELS
from ex_color.data.named_colors import NAMED_COLORS, NAMED_COLORS_HSV
from ex_color.intervention.falloff import DEFAULT_PEAK, DEFAULT_POWER, DEFAULT_THRESHOLD
from ex_color.loss.config import COMPLEMENT, parse_label_key

EXPERIMENT_FILE = 'experiment.toml'
BASELINE = 'baseline'
"""The untouched model's name among the evaluated variants."""
PREPARED = 'prepared'
"""The model trained with every regularizer: what `run`, `sweep` and `search` train."""
CONTROL = 'control'
"""The name `[control]` (the older spelling of one `[[models]]` entry) gives its model."""
NamedColor = Literal[tuple(NAMED_COLORS)]  # type: ignore[valid-type]
PrimaryColor = Literal[tuple(PRIMARY_CHANNELS)]  # type: ignore[valid-type]

SEED_LIMIT = 2**63
"""Seeds lie in [0, 2**63): the generators take 64-bit seeds, and sweeps store them as int64."""
LIGHTNING_SEED_LIMIT = 2**32
"""The Lightning engine seeds numpy, which takes seeds in [0, 2**32)."""
MAX_CUBE_COLORS = 10_000_000
"""At most this many training colours (hues × saturations × values); building them peaks near 1.5 GB."""
FLOAT32_MAX = 3.4028234663852886e38
"""The largest float32: vectors become float32 tensors, so a larger component turns into inf."""


class ConfigError(ValueError):
    """A bad experiment file; the message is one line naming the file and field."""


def _field_error(field: str, message: str) -> PydanticCustomError:
    """A validation error whose message names its own field (for checks across fields)."""
    return PydanticCustomError('config_field', message, {'field': field})


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean X?)` for the choices closest to a misspelt `word`; empty when none is close."""
    close = difflib.get_close_matches(word, list(dict.fromkeys(choices)), n=3)
    return f' (did you mean {", ".join(close)}?)' if close else ''


_ENTRY_FIELD = re.compile(r'^(regularizers|evaluations)\.(\d+)(?=\.|$)')


def name_the_entry(field: str, names: Mapping[str, Sequence[object]]) -> str:
    """`evaluations.0.target` as `evaluations.0.target (evaluation 'ablated')`: a field of an entry of
    [[regularizers]] or [[evaluations]] also says the entry's name, from `names` (section → each entry's name)."""
    match = _ENTRY_FIELD.match(field)
    if match is None or field.endswith('.name'):  # a problem with the name itself quotes it already
        return field
    section, index = match.group(1), int(match.group(2))
    entries = names.get(section, ())
    name = entries[index] if index < len(entries) else None
    if not isinstance(name, str) or not name:
        return field
    return f'{field} ({section.removesuffix("s")} {name!r})'


def entry_names(raw: object) -> dict[str, list[object]]:
    """Each [[regularizers]] and [[evaluations]] entry's name as the (parsed, unvalidated) file gives it."""
    if not isinstance(raw, dict):
        return {}
    sections = {s: raw.get(s) for s in ('regularizers', 'evaluations')}
    return {
        s: [e.get('name') if isinstance(e, dict) else None for e in entries]
        for s, entries in sections.items()
        if isinstance(entries, list)
    }


def check_seed(seed: int, what: str, limit: int = SEED_LIMIT) -> int:
    """`seed` if it is an int in [0, limit); a ConfigError naming `what` otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < limit:
        bound = f'2**{limit.bit_length() - 1}' if limit & (limit - 1) == 0 else str(limit)
        raise ConfigError(f'{what}: seed {seed!r} out of range; expected a whole number in [0, {bound})')
    return seed


def _value_error(message: str) -> PydanticCustomError:
    """An error about the value being validated, whose message already quotes it (nothing is appended)."""
    return PydanticCustomError('config_value', message)


class _Section(BaseModel):
    # strict: a number must be a TOML number (an int may stand for a float), a bool a TOML
    # bool; no '5' for 5 and no `true` for 1, which would otherwise train with batch size 1.
    model_config = ConfigDict(extra='forbid', frozen=True, allow_inf_nan=False, strict=True)

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
    """Human-readable title, printed and shown in the report."""
    seed: int = 0
    """The seed used when `--seed` is not given; 0 ≤ seed < 2⁶³."""
    dopesheet: str = 'dopesheet.csv'
    """The schedule CSV, relative to the experiment file."""
    unused_columns: list[str] = Field(default_factory=list)
    """Dopesheet columns kept in the sheet on purpose though nothing reads them: each is noted once at info level
    and left out of the schedule. Each must be a column of the dopesheet, not `lr` and no regularizer's name.
    Any other column that matches no regularizer is warned about, unless it is zero at every step."""

    @field_validator('unused_columns')
    @classmethod
    def _distinct_columns(cls, columns: list[str]) -> list[str]:
        if len(set(columns)) != len(columns):
            raise _value_error(f'{columns} repeats a column; expected each column once')
        return columns

    @field_validator('seed')
    @classmethod
    def _seed_in_range(cls, seed: int) -> int:
        if not 0 <= seed < SEED_LIMIT:
            raise _value_error(f'{seed} is out of range; expected a whole number in [0, 2**63) (0 to {SEED_LIMIT - 1})')
        return seed


class ModelSection(_Section):
    kind: Literal['CNColorMLP'] = 'CNColorMLP'
    """The model class."""
    # Upper bounds far above any colour model, so that a typo (16000) fails here instead of in the allocator.
    k_bottleneck: int = Field(gt=0, le=1024)
    """Width of the unit-norm latent."""
    k_codec: int = Field(16, gt=0, le=1024)
    """Hidden width of encoder and decoder."""
    n_nonlinear: int = Field(1, gt=0, le=16)
    """GELU layers in each of encoder and decoder."""


class CharTransformerSection(_Section):
    """A decoder-only character transformer (`ex_color.model.CharTransformer`) for `[data] kind = "text"`: the
    blocks, the final LayerNorm, then `encoder` (one Linear) → `bottleneck` (unit norm) → `unembed` (one Linear)."""

    kind: Literal['char-transformer']
    layers: int = Field(3, gt=0, le=64)
    """Transformer blocks."""
    width: int = Field(96, gt=0, le=4096)
    """The residual stream's width; a multiple of `heads`."""
    heads: int = Field(4, gt=0, le=64)
    """Attention heads per block."""
    k_bottleneck: int = Field(16, gt=0, le=1024)
    """Width of the unit-norm latent the unembedding reads."""
    logit_scale: float = Field(8.0, gt=0, le=1000)
    """A fixed factor on the unembedding's output. Logits of a unit vector are bounded by the Linear's weights,
    which Adam grows slowly; a factor lets them reach confident predictions early (8: about 0.38 nats better
    held-out cross-entropy after 1000 steps of lm-digits' control)."""

    @model_validator(mode='after')
    def _heads_divide_width(self) -> CharTransformerSection:
        if self.width % self.heads:
            raise _field_error_here('width', f'{self.width} is not a multiple of heads ({self.heads})')
        return self


def _kind_of(default: str) -> Any:
    """A discriminator for a section whose `kind` may be left out (then `default`)."""

    def kind(value: Any) -> str:
        found = value.get('kind', default) if isinstance(value, dict) else getattr(value, 'kind', None) or default
        return found if isinstance(found, str) else repr(found)

    return Discriminator(kind)


DEFAULT_KINDS = {'CNColorMLP': 'CNColorMLP', 'colors': 'colors'}
"""The kinds a section may leave out (`[model]` and `[data]` default to the colour domain's)."""

ModelKind = Annotated[
    Annotated[ModelSection, Tag('CNColorMLP')] | Annotated[CharTransformerSection, Tag('char-transformer')],
    _kind_of('CNColorMLP'),
]


class DataSection(_Section):
    """Training colours: an HSV cube sampled with replacement, weighted by its bias."""

    kind: Literal['colors'] | None = None
    """`"colors"` (the default when left out), or `"text"` for a text experiment (see [text data](#data-text))."""
    hues: int = Field(36, gt=0, le=3600)
    """Number of hues, `arange_cyclic(step_size=1/hues)`."""
    saturations: int = Field(10, gt=1, le=1000)
    """`linspace(0, 1, saturations)`."""
    values: int = Field(10, gt=1, le=1000)
    """`linspace(0, 1, values)`."""
    batch_size: int = Field(64, gt=0, le=65536)
    """Samples per training step."""

    @model_validator(mode='after')
    def _cube_fits(self) -> DataSection:
        colors = self.hues * self.saturations * self.values
        if colors > MAX_CUBE_COLORS:
            raise _value_error(
                f'data.hues × data.saturations × data.values = {self.hues} × {self.saturations} × {self.values} '
                f'= {colors:,} training colours; expected at most {MAX_CUBE_COLORS:,}'
            )
        return self


class TextDataSection(_Section):
    """A text corpus in character tokens: training windows from its first part, evaluation on its held-out end."""

    kind: Literal['text']
    source: Literal['python-reference'] | None = None
    """A corpus that ships with Python: `"python-reference"`, CPython's `pydoc_data.topics` (about 465 KB). The
    default when `path` is not given."""
    path: str | None = None
    """A UTF-8 text file instead, relative to the experiment file."""
    context: int = Field(64, gt=1, le=4096)
    """Characters per training window (the model's context)."""
    held_out: float = Field(0.1, gt=0, lt=1)
    """The fraction at the corpus's end held out for evaluation (never trained on)."""
    batch_size: int = Field(32, gt=0, le=65536)
    """Windows per training step; each position is one sample for the regularizers."""

    @model_validator(mode='after')
    def _one_corpus(self) -> TextDataSection:
        if self.source is not None and self.path is not None:
            raise PydanticCustomError('one_corpus', 'give source or path, not both')
        return self

    @property
    def corpus_source(self) -> str | None:
        """The built-in corpus named, or the default one when no path is given."""
        return self.source if self.source is not None or self.path is not None else PYTHON_REFERENCE


DataKind = Annotated[
    Annotated[DataSection, Tag('colors')] | Annotated[TextDataSection, Tag('text')],
    _kind_of('colors'),
]


# Labels --------------------------------------------------------------------------------------


class _LabelBase(_Section):
    power: float = Field(1.0, ge=0)
    """The formula is raised to this power; higher values make the label fall off faster away from its concept."""
    scale: float = Field(1.0, ge=0, le=1)
    """Probability = `scale × formula^power`; `0` turns the label off."""


class PrimaryLabel(_LabelBase):
    """`c·(1 − o₁/2 − o₂/2)` for the colour's channel c and the other two, o₁ and o₂ (the seed's redness)."""

    kind: Literal['primary']
    color: PrimaryColor


class VibrancyLabel(_LabelBase):
    """`s·v` of the colour's HSV."""

    kind: Literal['vibrancy']


class DesaturationLabel(_LabelBase):
    """`1 − s·v`."""

    kind: Literal['desaturation']


class SimilarityLabel(_LabelBase):
    """`hsv_similarity(colour, target)` to a named colour or an HSV triple (h in turns)."""

    kind: Literal['similarity']
    color: NamedColor | None = None
    hsv: list[float] | None = Field(None, min_length=3, max_length=3)
    """[h, s, v], each in [0, 1]; h in turns (0 red, 1/3 green, 2/3 blue)."""

    @model_validator(mode='after')
    def _one_target(self) -> SimilarityLabel:
        if (self.color is None) == (self.hsv is None):
            raise PydanticCustomError('one_target', 'give exactly one of color (a named colour) or hsv = [h, s, v]')
        if self.hsv is not None and not all(0 <= x <= 1 for x in self.hsv):
            raise _field_error_here('hsv', f'{list(self.hsv)} out of range; expected h, s and v each in [0, 1]')
        return self


class TokenLabelSection(_LabelBase):
    """For text: `next-token`, "the next character is one of `chars`", or `current-token`, "this position's
    character is one of `chars`" (`ex_color.data.token_labels`), per position."""

    kind: Literal['next-token', 'current-token']
    chars: str = Field(min_length=1)
    """The characters of the concept, e.g. `"0123456789"`."""

    @property
    def position(self) -> Literal['next', 'current']:
        return 'next' if self.kind == 'next-token' else 'current'


TOKEN_LABEL_KINDS = ('next-token', 'current-token')


def _field_error_here(key: str, message: str) -> PydanticCustomError:
    """An error about one key of the section being validated (its path is completed by `_describe`)."""
    return PydanticCustomError('section_key', message, {'key': key})


LabelDefinition = Annotated[
    PrimaryLabel | VibrancyLabel | DesaturationLabel | SimilarityLabel | TokenLabelSection, Field(discriminator='kind')
]


class LabelsSection(_Section):
    """`soft` and one table per label: `[labels.<name>]` with its kind, power and scale."""

    model_config = ConfigDict(extra='allow', frozen=True, allow_inf_nan=False, strict=True)
    __pydantic_extra__: dict[str, LabelDefinition] = Field(init=False)  # type: ignore[assignment]

    soft: StrictBool = False
    """`true`: a sample's label value is its probability. `false`: a fresh Bernoulli draw per sample per batch
    (noisy labels, as in the seed)."""

    @model_validator(mode='before')
    @classmethod
    def _known_keys(cls, data: Any) -> Any:  # every key but soft names a label, whose value is a table
        if isinstance(data, dict):
            for key, value in data.items():
                if key != 'soft' and not isinstance(value, dict):
                    raise PydanticCustomError(
                        'unknown_key',
                        'not a label table; expected soft = true|false or [labels.<name>] tables with a kind '
                        "('primary', 'vibrancy', 'desaturation', 'similarity', 'next-token' or 'current-token'), power "
                        'and scale',
                        {'key': key},
                    )
        return data

    @property
    def definitions(self) -> dict[str, LabelDefinition]:
        """Label name → definition, in file order."""
        return dict(self.__pydantic_extra__ or {})


# Regularizers -----------------------------------------------------------------------------------


class _RegularizerBase(_Section):
    name: str = Field(min_length=1)
    """Unique among regularizers; also the name of its dopesheet column and, as `train_<name>`, of its loss in
    `metrics.csv`, `sweep.csv` and the trackers. Must not be `recon`, `loss` or `lr`."""
    layers: list[str] = Field(min_length=1)
    """Module paths whose outputs the term regularizes, e.g. `["bottleneck"]`; with several layers the per-layer
    terms add up."""
    labels: dict[str, float] | None = Field(None, min_length=1)
    """Label affinities, e.g. `{ red = 1.0 }`. Each name must be a declared label, or `~name` for its complement
    ("not name": weight `1 − label`; quoted in TOML, `{ "~red" = 1.0 }`), and each affinity ≥ 0 (a sample's weight
    is `clamp(Σ label × affinity, 0, 1)`, so values above 1 are allowed). Without `labels`, every sample counts
    equally."""
    validation: bool = False
    """Also report the term on the held-out validation colours, as `val_<name>` with a leading `reg-` dropped
    (`reg-anchor` → `val_anchor`)."""

    @field_validator('labels')
    @classmethod
    def _affinities_not_negative(cls, labels: dict[str, float] | None) -> dict[str, float] | None:
        for name, affinity in (labels or {}).items():
            if affinity < 0:
                raise PydanticCustomError(
                    'section_key',
                    f"affinity {affinity} is negative; expected a number >= 0 (a sample's weight is "
                    'clamp(Σ label × affinity, 0, 1))',
                    {'key': name},
                )
        return labels


def _vector_problem(vector: list[float], *, needs_direction: bool) -> str | None:
    """Why a point or direction cannot be used, or None: a component float32 cannot hold, or all zeros."""
    for i, x in enumerate(vector):
        if abs(x) > FLOAT32_MAX:
            return f'component {i} ({x:g}) overflows float32; expected components of magnitude <= {FLOAT32_MAX:.4g}'
    if needs_direction and not any(vector):
        return f'{list(vector)} is all zeros, so it has no direction; expected at least one non-zero component'
    return None


class UnitarityConfig(_RegularizerBase):
    kind: Literal['unitarity']


class AnchorConfig(_RegularizerBase):
    kind: Literal['anchor', 'angular-anchor']
    point: list[float] = Field(min_length=1)
    """For `anchor`, a position (zero is the origin); for `angular-anchor`, a direction (not all zeros)."""

    @model_validator(mode='after')
    def _usable_point(self) -> AnchorConfig:
        _check_point(self.point, needs_direction=self.kind == 'angular-anchor')
        return self


class AntiAnchorConfig(_RegularizerBase):
    kind: Literal['anti-anchor']
    point: list[float] = Field(min_length=1)
    """A direction: not all zeros."""
    hemi: bool = True

    @model_validator(mode='after')
    def _usable_point(self) -> AntiAnchorConfig:
        _check_point(self.point, needs_direction=True)
        return self


def _check_point(point: list[float], *, needs_direction: bool) -> None:
    if problem := _vector_problem(point, needs_direction=needs_direction):
        raise _field_error_here('point', problem)


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


# Evaluations ------------------------------------------------------------------------------------


class _EvaluationBase(_Section):
    name: str = Field(min_length=1)
    """Unique among evaluations, not `baseline` or `control`; it prefixes the variant's `sweep.csv` columns."""
    target: str | list[str]
    """The concept the edit removes, which is what selectivity is measured against. Each entry is a declared
    `primary` or `similarity` label (its colour is used) or one of the 17 named colours. A declared label takes
    precedence over a named colour of the same name (and must then be that colour). A list gives several distinct
    targets: each colour is compared with its nearest one."""
    layer: str
    """The module path the edit acts on, e.g. `"bottleneck"`."""
    model: str = PREPARED
    """The model the edit applies to: `"prepared"` (trained with every regularizer) or the name of a
    [`[[models]]`](#models) entry (such as `"control"`). `run` and `sweep` apply only the prepared model's
    evaluations; `ex-color compare` applies all of them."""

    @property
    def targets(self) -> list[str]:
        return [self.target] if isinstance(self.target, str) else list(self.target)


class AblateEvaluation(_EvaluationBase):
    kind: Literal['ablate', 'prune']
    dims: list[int] = Field(min_length=1)


class SuppressEvaluation(_EvaluationBase):
    kind: Literal['suppress']
    direction: list[float] = Field(min_length=1)
    falloff_a: float = DEFAULT_THRESHOLD
    falloff_b: float = DEFAULT_PEAK
    falloff_power: float = DEFAULT_POWER

    @model_validator(mode='after')
    def _usable_direction(self) -> SuppressEvaluation:
        if problem := _vector_problem(self.direction, needs_direction=True):
            raise _field_error_here('direction', problem)
        return self


class EraseEvaluation(_EvaluationBase):
    """Post-hoc erasure at `layer`, fitted after training (see `ex_color.erasure`)."""

    kind: Literal['leace', 'mean-difference']
    label: str | None = None
    """The declared label whose probabilities the erasure is fitted with; default: the target, when that is
    one declared label."""
    renormalize: StrictBool = True
    """Project erased activations back onto the unit sphere before the layers after `layer` (for a unit-norm layer)."""

    @property
    def concept(self) -> str:
        """The label the erasure is fitted with."""
        return self.label if self.label is not None else self.targets[0]


EvaluationSection = Annotated[AblateEvaluation | SuppressEvaluation | EraseEvaluation, Field(discriminator='kind')]


class RouteSection(_Section):
    """Gradient routing at one layer (`ex_color.training.routing`): the value is unchanged, but a sample
    carrying the labels reaches the layers before it only through `dims`, and (with `others`) every other
    sample only through the remaining dims."""

    layer: str
    """The module path whose output is routed, e.g. `"bottleneck"` (after the unit norm) or `"encoder"` (before)."""
    dims: list[int] = Field(min_length=1)
    """The dims the labelled samples' gradient flows through; each once, within the layer's width."""
    labels: dict[str, float] = Field(min_length=1)
    """Label affinities, as a regularizer's (`{ red = 1.0 }`; `~name` for a complement): a sample's weight
    `p = clamp(Σ affinity · label, 0, 1)` weighs its gradient `p` on `dims` and `1 − p` on the others."""
    others: StrictBool = True
    """Route every other sample around `dims`, as the paper's MNIST autoencoder does; false leaves their gradient
    unmasked (only the labelled samples are routed)."""

    @model_validator(mode='after')
    def _distinct_dims(self) -> RouteSection:
        if len(set(self.dims)) != len(self.dims) or min(self.dims) < 0:
            raise _field_error_here('dims', f'{self.dims}: expected distinct dims >= 0')
        return self


class ModelEntry(_Section):
    """A model `ex-color compare` trains beside the prepared one, in the same ensemble: same architecture, seed,
    initial weights, batches and labels, with only the regularizers it keeps, and an optional route."""

    name: str = Field(min_length=1)
    """How evaluations (`model = "..."`) and the comparison's tables name it. `"prepared"` names the prepared
    model itself, which may then take a `route` (it keeps every regularizer, so no `keep`)."""
    keep: list[str] | None = None
    """Names of declared regularizers it keeps (required, possibly empty, except for `"prepared"`). None may have
    label affinities or be an anti-anchor: those shape the concept, which only the prepared model may have."""
    route: RouteSection | None = None
    """Gradient routing during training (see [route](#route)): how a model learns the concept's place without
    anchoring."""


class ControlSection(_Section):
    """The control model `ex-color compare` trains beside each prepared one: same architecture, data,
    schedule and seed, with only the regularizers named here (none that is label-selective or an anti-anchor)."""

    keep: list[str] = Field(default_factory=list)
    """Names of declared regularizers the control keeps. None may have label affinities or be an anti-anchor:
    those shape the concept, which is what the control must not have."""


class SweepSection(_Section):
    """How a sweep ranks its seeds: sweep.csv columns to minimise and maximise, the tie-breaker, the printout.

    Without this table a sweep minimises `val_recon` and maximises the first evaluation's
    `<name>_selectivity_r2`.
    """

    minimise: list[str] = Field(default_factory=list)
    """Columns where lower is better (default: see below)."""
    maximise: list[str] = Field(default_factory=list)
    """Columns where higher is better (default: see below)."""
    best: str | None = None
    """Of the Pareto seeds, the best one has the best value of this column, which must be listed in `minimise` or
    `maximise`. Default: the first `maximise` column, or else the first `minimise` column."""
    print: list[str] = Field(default_factory=list)
    """Columns `ex-color sweep` prints for the best seed; the sweep report's seeds table shows them too. Default:
    the `maximise` columns, then the `minimise` ones."""

    @model_validator(mode='after')
    def _objectives(self) -> SweepSection:
        _check_objectives(self.minimise, self.maximise)
        if len(set(self.print)) != len(self.print):
            raise _field_error_here('print', f'{self.print} repeats a column; expected each column once')
        return self


def _check_objectives(minimise: list[str], maximise: list[str]) -> None:
    """Objective columns: each once, in one list only, and none the `seed` label."""
    for key, columns in (('minimise', minimise), ('maximise', maximise)):
        if len(set(columns)) != len(columns):
            raise _field_error_here(key, f'{columns} repeats a column; expected each column once')
        if 'seed' in columns:
            raise _field_error_here(key, "'seed' is a label, not a figure; expected columns of figures")
    both = set(minimise) & set(maximise)
    if both:
        raise _field_error_here('maximise', f'{sorted(both)} also minimised; expected each column once')


class _SearchParameter(_Section):
    low: float
    """The smallest value tried."""
    high: float
    """The largest value tried; must be above `low`."""
    log: StrictBool = False
    """Sample on a log scale (both bounds must then be above 0)."""
    name: str | None = None
    """What trials.csv calls it (default: from what it changes, e.g. `reg-anchor@1000`)."""

    @model_validator(mode='after')
    def _bounds(self) -> _SearchParameter:
        if self.low >= self.high:
            raise _field_error_here('high', f'{self.high:g} is not above low ({self.low:g}); expected low < high')
        if self.log and self.low <= 0:
            raise _field_error_here('low', f'{self.low:g} with log = true; expected bounds above 0 on a log scale')
        return self

    @property
    def target(self) -> str:
        """What the parameter changes, e.g. `cell reg-anchor@1000` (two parameters may not change one thing)."""
        raise NotImplementedError

    @property
    def heading(self) -> str:
        """Its column in trials.csv: `name`, or what it changes."""
        return self.name or self.target.split(' ', 1)[1]


class CellParameter(_SearchParameter):
    """One cell of the dopesheet: a column's value at one keyframe row."""

    kind: Literal['cell']
    column: str = Field(min_length=1)
    """The dopesheet column (`lr` or a regularizer's weight)."""
    step: str = Field(min_length=1)
    """The keyframe row, by its STEP as written (`+10`) or as resolved (`1000`)."""

    @property
    def target(self) -> str:
        return f'cell {self.column}@{self.step}'


class ColumnScaleParameter(_SearchParameter):
    """A whole column multiplied by one factor: every keyed value of it."""

    kind: Literal['column-scale']
    column: str = Field(min_length=1)
    """The dopesheet column (`lr` or a regularizer's weight)."""

    @property
    def target(self) -> str:
        return f'scale {self.column}*'


class KeyframeStepParameter(_SearchParameter):
    """When a keyframe happens: its STEP, between its neighbours' (the last keyframe, which sets the length, stays)."""

    kind: Literal['keyframe-step']
    step: str = Field(min_length=1)
    """The keyframe row, by its STEP as written or as resolved; it must be written as an absolute step."""

    @property
    def target(self) -> str:
        return f'step step@{self.step}'


class LabelPowerParameter(_SearchParameter):
    """A label's `power`: how sharply its probability falls off."""

    kind: Literal['label-power']
    label: str = Field(min_length=1)
    """The declared label."""

    @property
    def target(self) -> str:
        return f'power {self.label}.power'


SearchParameter = Annotated[
    CellParameter | ColumnScaleParameter | KeyframeStepParameter | LabelPowerParameter, Field(discriminator='kind')
]


class Bound(NamedTuple):
    """One [search] constraint: `column op value`."""

    column: str
    op: Literal['>=', '<=']
    value: float

    def excess(self, figure: float) -> float:
        """How far `figure` breaks the bound (<= 0: it holds; NaN breaks it by infinity), as Optuna's constraints
        expect."""
        if math.isnan(figure):
            return math.inf
        return self.value - figure if self.op == '>=' else figure - self.value

    def __str__(self) -> str:
        return f'{self.column} {self.op} {self.value:g}'


def parse_bound(text: str) -> Bound:
    """'ablated_red >= 0.1' → Bound; a ValueError in words for anything else."""
    match = re.fullmatch(r'\s*(\S+)\s*(>=|<=)\s*(\S+)\s*', text)
    number = match.group(3) if match else ''
    value = float(number) if re.fullmatch(r'[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?', number) else None
    if match is None or value is None:
        raise ValueError(f'cannot read {text!r}; expected COLUMN >= NUMBER or COLUMN <= NUMBER')
    return Bound(match.group(1), match.group(2), value)  # type: ignore[arg-type]


class SearchSection(_Section):
    """What `ex-color search` varies and optimises: dopesheet cells, column scales, keyframe steps and label powers,
    against run figures (sweep.csv columns), each trial's figures the mean over `seeds_per_trial` seeds."""

    parameters: list[SearchParameter] = Field(min_length=1)
    """What varies, one `[[search.parameters]]` table each, with a `kind`: `cell`, `column-scale`, `keyframe-step`
    or `label-power`."""
    minimise: list[str] = Field(default_factory=list)
    """sweep.csv columns where lower is better."""
    maximise: list[str] = Field(default_factory=list)
    """sweep.csv columns where higher is better. At least one objective in all."""
    seeds_per_trial: int = Field(2, ge=1, le=60)
    """Each trial trains on seeds 0 … N−1 and is judged on its mean, so that a lucky seed is not rewarded."""
    validate_seeds: list[int] = Field(default_factory=lambda: list(range(100, 110)), min_length=1)
    """Fresh seeds, never searched on, on which the finalists are retrained and the winner chosen."""
    constraints: list[str] = Field(default_factory=list)
    """Bounds a trial must meet to count, each `COLUMN >= NUMBER` or `COLUMN <= NUMBER` on its mean over seeds, e.g.
    `"ablated_red >= 0.1"`. The sampler steers away from trials that break one; finalists and the winner are
    chosen among those that meet every bound (on their own seeds, then on the fresh ones)."""
    best: str | None = None
    """Of the finalists on the Pareto front of their fresh-seed means, the winner has the best mean of this column,
    which must be an objective. Default: the first `maximise` column, or else the first `minimise` column."""
    finalists: int = Field(5, ge=1, le=60)
    """How many trials are retrained on `validate_seeds`: the Pareto trials (the best on `best` first), then, when
    the front is smaller (as with one objective), the next best on `best`."""
    seed: int = Field(0, ge=0, lt=2**32)
    """The sampler's seed: the same seed and trials give the same search."""

    @property
    def best_column(self) -> str:
        return self.best or (self.maximise or self.minimise)[0]

    def bounds(self) -> list[Bound]:
        """`constraints` read as (column, '>=' or '<=', number)."""
        return [parse_bound(text) for text in self.constraints]

    @model_validator(mode='after')
    def _objectives_and_seeds(self) -> SearchSection:
        if not (self.minimise or self.maximise):
            raise _field_error_here('maximise', 'no objective; expected a column in minimise or maximise')
        _check_objectives(self.minimise, self.maximise)
        if self.best is not None and self.best not in (*self.minimise, *self.maximise):
            raise _field_error_here(
                'best', f'{self.best!r} is not an objective; expected one of {", ".join(self.minimise + self.maximise)}'
            )
        seen: dict[tuple[str, str], int] = {}
        for i, text in enumerate(self.constraints):
            try:
                bound = parse_bound(text)
            except ValueError as error:
                raise _field_error_here(f'constraints.{i}', str(error)) from None
            if (bound.column, bound.op) in seen:
                raise _field_error_here(
                    f'constraints.{i}',
                    f'bounds {bound.column} {bound.op} as constraints.{seen[bound.column, bound.op]} does; expected '
                    'each bound once',
                )
            seen[bound.column, bound.op] = i
        searched = set(range(self.seeds_per_trial))
        fresh = [seed for seed in self.validate_seeds if seed in searched]
        if fresh:
            raise _field_error_here(
                'validate_seeds',
                f'{fresh} are searched on (seeds 0–{self.seeds_per_trial - 1}); expected fresh seeds',
            )
        if len(set(self.validate_seeds)) != len(self.validate_seeds) or min(self.validate_seeds) < 0:
            raise _field_error_here('validate_seeds', 'expected distinct seeds >= 0')
        first: dict[str, int] = {}
        for i, parameter in enumerate(self.parameters):
            for key in (parameter.target, f'name {parameter.heading}'):
                if key in first:
                    raise _field_error_here(
                        f'parameters.{i}',
                        f'changes {key.split(" ", 1)[1]!r} as parameters.{first[key]} does; '
                        'expected each parameter once',
                    )
                first[key] = i
        return self


TRACKERS = ('csv', 'tensorboard', 'mlflow', 'wandb')
"""The experiment trackers a run can log to (Lightning's logger classes)."""
Tracker = Literal[TRACKERS]  # type: ignore[valid-type]


class TrackingSection(_Section):
    """Where runs are tracked besides their own directory; `--logger` on the command line replaces `loggers`.

    Tracking never changes a result, so this table is not part of a run directory's fingerprint.
    """

    loggers: list[Tracker] = Field(default_factory=list)
    """The trackers to log to, each at most once."""
    mlflow_uri: str | None = None
    """The MLflow tracking URI. Default: `$MLFLOW_TRACKING_URI`, else a SQLite store, `sqlite:///runs/mlflow.db`."""
    wandb_project: str = 'ex-color'
    """The W&B project."""
    wandb_mode: Literal['offline', 'online', 'disabled'] | None = None
    """Default: `$WANDB_MODE`, else `"offline"` (the run is written under its directory; `wandb sync` uploads
    it)."""

    @field_validator('loggers')
    @classmethod
    def _distinct(cls, loggers: list[str]) -> list[str]:
        if len(set(loggers)) != len(loggers):
            raise _value_error(f'{loggers} repeats a logger; expected each once')
        return loggers


class ExperimentConfig(_Section):
    """The whole experiment file."""

    experiment: ExperimentSection
    """Title, default seed, dopesheet path, dopesheet columns left unused on purpose."""
    model: ModelKind
    """The model: the colour autoencoder's sizes, or a `char-transformer`'s."""
    data: DataKind = DataSection()
    """The training cube and batch size, or (`kind = "text"`) the corpus, context and held-out split."""
    labels: LabelsSection = LabelsSection()
    """`soft`, and one `[labels.<name>]` table per label."""
    regularizers: list[RegularizerSection] = Field(default_factory=list)
    """One table per loss term (none by default)."""
    evaluations: list[EvaluationSection] = Field(default_factory=list)
    """One table per edit to evaluate (none by default)."""
    sweep: SweepSection | None = None
    """How a sweep ranks its seeds."""
    models: list[ModelEntry] | None = None
    """The models `ex-color compare` trains beside the prepared one (a control, a routed model, ...)."""
    control: ControlSection | None = None
    """The older spelling of `[[models]] name = "control"`: the control `ex-color compare` trains beside each
    prepared model."""
    search: SearchSection | None = None
    """What `ex-color search` varies and optimises."""
    tracking: TrackingSection = TrackingSection()
    """Where runs are tracked besides their own directory."""

    @model_validator(mode='after')
    def _cross_references(self) -> ExperimentConfig:
        self._check_domain()
        self._check_labels()  # first: label names are what the other sections refer to
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
        validated: dict[str, int] = {}
        for i, r in enumerate(self.regularizers):
            if not r.validation:
                continue
            column = validation_column(r.name)
            if column == VALIDATION_RECON:
                raise _field_error(
                    f'regularizers.{i}.name',
                    f"{r.name!r} would report as {column}, the reconstruction's validation loss; expected another name",
                )
            if column in validated:
                raise _field_error(
                    f'regularizers.{i}.name',
                    f'{r.name!r} would report as {column}, like regularizers.{validated[column]}; '
                    'expected names that differ after the reg- prefix',
                )
            validated[column] = i
        labels = self.labels.definitions
        declared = ', '.join(labels) or 'none'
        for i, r in enumerate(self.regularizers):
            for key in r.labels or {}:
                field = f'regularizers.{i}.labels.{key}'
                try:
                    name, complement = parse_label_key(key)
                except ValueError as e:
                    raise _field_error(field, str(e)) from None
                if name not in labels:
                    what = f'the complement of label {name!r}, which' if complement else f'label {name!r}'
                    raise _field_error(
                        field,
                        f'{what} is not declared{did_you_mean(name, labels)}; expected one of the [labels] tables '
                        f'({declared}), or {COMPLEMENT}<label> for its complement',
                    )
        self._check_models()
        models = [PREPARED, *(m.name for m in self.compared_models())]
        for i, e in enumerate(self.evaluations):
            if e.name == BASELINE or e.name in models:
                raise _field_error(
                    f'evaluations.{i}.name', f"'{e.name}' is reserved: the name of an untouched model's figures"
                )
            if e.model not in models:
                raise _field_error(
                    f'evaluations.{i}.model',
                    f'{e.model!r} is not a model{did_you_mean(e.model, models)}; expected {PREPARED!r} or a '
                    "[[models]] entry's name",
                )
            if not e.targets:
                raise _field_error(f'evaluations.{i}.target', 'is empty; expected a label or named colour')
            if len(set(e.targets)) != len(e.targets):
                raise _field_error(f'evaluations.{i}.target', f'{e.targets} repeats a target; expected each once')
            for target in e.targets:
                if self.is_text:
                    if target not in labels:
                        raise _field_error(
                            f'evaluations.{i}.target',
                            f'{target!r} is not a declared label{did_you_mean(target, labels)}; expected a '
                            f'next-token or current-token label ({declared})',
                        )
                elif target in labels:
                    if labels[target].kind not in ('primary', 'similarity'):
                        raise _field_error(
                            f'evaluations.{i}.target',
                            f'label {target!r} ({labels[target].kind}) has no colour; '
                            'expected a primary or similarity label, or a named colour',
                        )
                elif target not in NAMED_COLORS:
                    raise _field_error(
                        f'evaluations.{i}.target',
                        f'{target!r} is neither a declared label ({declared}) nor a named colour '
                        f'({", ".join(NAMED_COLORS)}){did_you_mean(target, [*labels, *NAMED_COLORS])}',
                    )
        self._check_erasures()
        for i, parameter in enumerate(self.search.parameters if self.search else []):
            if isinstance(parameter, LabelPowerParameter) and parameter.label not in labels:
                raise _field_error(
                    f'search.parameters.{i}.label',
                    f'{parameter.label!r} is not a declared label{did_you_mean(parameter.label, labels)}; expected one '
                    f'of {declared}',
                )
        minimise, maximise, best, _ = self.sweep_objectives()
        if best not in (*minimise, *maximise):
            raise _field_error('sweep.best', f'{best!r} is neither minimised nor maximised; expected one of them')
        return self

    @property
    def is_text(self) -> bool:
        """Whether this is a text experiment (`[data] kind = "text"`) rather than a colour one."""
        return isinstance(self.data, TextDataSection)

    def _check_domain(self) -> None:
        """Model, data and labels belong to one domain: colours, or text."""
        text_model = isinstance(self.model, CharTransformerSection)
        if text_model != self.is_text:
            expected = 'kind = "text"' if text_model else 'a colour cube (no kind)'
            raise _field_error(
                'data.kind', f'model kind {self.model.kind!r} trains on {expected}; expected the two to match'
            )
        for i, r in enumerate(self.regularizers):
            if self.is_text and r.validation:
                raise _field_error(
                    f'regularizers.{i}.validation',
                    'is measured on held-out colours; a text experiment reports val_recon only: remove it',
                )
        for name, label in self.labels.definitions.items():
            if (label.kind in TOKEN_LABEL_KINDS) != self.is_text:
                domain = 'text' if self.is_text else 'colour'
                raise _field_error(
                    f'labels.{name}.kind',
                    f'{label.kind!r} is not a label of a {domain} experiment; expected '
                    + (
                        "'next-token' or 'current-token'"
                        if self.is_text
                        else "'primary', 'vibrancy', 'desaturation' or 'similarity'"
                    ),
                )

    def _check_erasures(self) -> None:
        """An erasure is fitted with a declared label that is on."""
        labels = self.labels.definitions
        for i, e in enumerate(self.evaluations):
            if not isinstance(e, EraseEvaluation):
                continue
            field = f'evaluations.{i}.label'
            if e.label is None and (len(e.targets) != 1 or e.targets[0] not in labels):
                raise _field_error(
                    field,
                    f'is missing and the target {e.target!r} is not one declared label; expected the [labels] '
                    'table whose probabilities the erasure is fitted with',
                )
            if e.concept not in labels:
                declared = ', '.join(labels) or 'none'
                raise _field_error(
                    field,
                    f'label {e.concept!r} is not declared{did_you_mean(e.concept, labels)}; expected one of {declared}',
                )
            if labels[e.concept].scale == 0:
                raise _field_error(field, f'label {e.concept!r} is off (scale 0), so there is nothing to fit with')

    def _check_models(self) -> None:
        """Models have distinct names; each keeps declared, concept-free regularizers and routes declared labels."""
        if self.control is not None and any(m.name == CONTROL for m in self.models or []):
            raise _field_error('control', 'and a [[models]] entry both declare the control; keep the [[models]] one')
        entries = [(f'models.{i}', m) for i, m in enumerate(self.models or [])]
        if self.control is not None:
            entries.append(('control', ModelEntry(name=CONTROL, keep=self.control.keep)))
        regularizers = {r.name: r for r in self.regularizers}
        declared = ', '.join(regularizers) or 'none'
        seen: set[str] = set()
        for field, model in entries:
            if model.name in seen or model.name == BASELINE:
                why = 'is reserved' if model.name == BASELINE else 'is declared twice'
                raise _field_error(f'{field}.name', f'{model.name!r} {why}; expected a name of its own')
            seen.add(model.name)
            if model.name == PREPARED:
                if model.keep is not None:
                    raise _field_error(f'{field}.keep', 'the prepared model keeps every regularizer; remove keep')
            elif model.keep is None:
                raise _field_error(
                    f'{field}.keep', "is missing; expected the regularizers this model keeps (e.g. ['reg-unit'])"
                )
            keep = model.keep or []
            if len(set(keep)) != len(keep):
                raise _field_error(f'{field}.keep', f'{keep} repeats a regularizer; expected each once')
            for i, name in enumerate(keep):
                r = regularizers.get(name)
                if r is None:
                    raise _field_error(
                        f'{field}.keep.{i}',
                        f'{name!r} is not a regularizer{did_you_mean(name, regularizers)}; expected one of {declared}',
                    )
                if r.labels is not None or isinstance(r, AntiAnchorConfig):
                    why = 'has label affinities' if r.labels is not None else 'is an anti-anchor'
                    raise _field_error(
                        f'{field}.keep.{i}',
                        f'{name!r} {why}, so it shapes a concept; only the prepared model may have such terms',
                    )
            labels = self.labels.definitions
            for key in model.route.labels if model.route is not None else ():
                try:
                    label, _ = parse_label_key(key)
                except ValueError as e:
                    raise _field_error(f'{field}.route.labels.{key}', str(e)) from None
                if label not in labels:
                    raise _field_error(
                        f'{field}.route.labels.{key}',
                        f'label {label!r} is not declared{did_you_mean(label, labels)}; expected one of '
                        f'{", ".join(labels) or "none"}',
                    )

    def compared_models(self) -> list[ModelEntry]:
        """The models `compare` trains beside the prepared one, in file order (a `[control]` table last)."""
        models = [m for m in self.models or [] if m.name != PREPARED]
        if self.control is not None:
            models.append(ModelEntry(name=CONTROL, keep=self.control.keep))
        return models

    def prepared_route(self) -> RouteSection | None:
        """The prepared model's route (a `[[models]]` entry named `"prepared"`), if any."""
        return next((m.route for m in self.models or [] if m.name == PREPARED), None)

    def model_evaluations(self, model: str) -> list[EvaluationSection]:
        """The evaluations of one model, in file order."""
        return [e for e in self.evaluations if e.model == model]

    def prepared_evaluations(self) -> list[EvaluationSection]:
        """The evaluations of the prepared model (all that `run` and `sweep` apply)."""
        return self.model_evaluations(PREPARED)

    def _check_labels(self) -> None:
        """Label names are non-empty, and a label named like a named colour has that colour."""
        for name, label in self.labels.definitions.items():
            if not name.strip():
                raise _field_error(f'labels.{name!r}', 'an empty label name; expected a name such as red')
            if name.startswith(COMPLEMENT):
                raise _field_error(
                    f'labels.{name}',
                    f'a label name may not start with {COMPLEMENT!r}; regularizers write {COMPLEMENT}<label> for '
                    "a label's complement",
                )
            hsv = _label_hsv(label)
            if name in NAMED_COLORS_HSV and hsv is not None and tuple(hsv) != NAMED_COLORS_HSV[name]:
                raise _field_error(
                    f'labels.{name}',
                    f'named like the colour {name} but its colour is hsv {list(hsv)}; expected a name that says '
                    'which concept it is (reports name the label as what was removed)',
                )

    def sweep_objectives(self) -> tuple[list[str], list[str], str, list[str]]:
        """(minimise, maximise, best, print) for ranking a sweep's seeds: the [sweep] table or its defaults.

        Defaults: minimise `val_recon`; maximise the first prepared evaluation's `<name>_selectivity_r2`
        (for text, its `<name>_target_ratio`; nothing without evaluations);
        best: the first maximised column, else the first
        minimised one; print: the objectives.
        """
        section = self.sweep or SweepSection()
        given = bool(section.minimise or section.maximise)
        prepared = self.prepared_evaluations()
        figure = 'target_ratio' if self.is_text else 'selectivity_r2'
        first = [f'{prepared[0].name}_{figure}'] if prepared else []
        minimise = list(section.minimise) if given else ['val_recon']
        maximise = list(section.maximise) if given else first
        best = section.best or (maximise or minimise)[0]
        return minimise, maximise, best, list(section.print) or [*maximise, *minimise]


def _label_hsv(label: LabelDefinition) -> tuple[float, ...] | None:
    """The colour a label stands for, if its kind has one."""
    if isinstance(label, PrimaryLabel):
        return NAMED_COLORS_HSV[label.color]
    if isinstance(label, SimilarityLabel):
        return NAMED_COLORS_HSV[label.color] if label.color is not None else tuple(label.hsv or ())
    return None


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
    names = entry_names(raw)
    match error['type']:
        case 'config_field':
            return f'{name_the_entry(ctx["field"], names)}: {message}'
        case 'config_value':  # the message already quotes the value
            pass
        case 'unknown_key' | 'section_key':  # checks of one section that put the key in ctx
            path.append(ctx['key'])
        case 'extra_forbidden':
            message = 'unknown key'
        case 'union_tag_invalid':
            path.append('kind')
            message = f'unknown kind {ctx["tag"]!r}; expected one of {ctx["expected_tags"]}'
        case 'union_tag_not_found':
            path.append('kind')
            message = 'missing: every entry needs a kind'
        case 'int_type' | 'float_type' | 'bool_type' | 'string_type' if type(error['input']) in _TOML_TYPES:
            # Strict types: say what the file gave, so that a quoted number ('5') reads as the string it is.
            given = error['input']
            written = str(given).lower() if isinstance(given, bool) else repr(given)  # as TOML spells it
            message = f'{message} (got {written}, {_TOML_TYPES[type(given)]})'
        case _ if isinstance(error['input'], str | int | float | bool):
            message = f'{message} (got {error["input"]!r})'
    return f'{name_the_entry(".".join(str(part) for part in path), names) or "(top level)"}: {message}'


_TOML_TYPES = {bool: 'a boolean', str: 'a string', int: 'an integer', float: 'a float'}


def _field_path(loc: tuple[int | str, ...], raw: object) -> list[int | str]:
    """Pydantic's error location as the file's field path: without the union-member steps it inserts."""
    path: list[int | str] = []
    node = raw
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get('kind', DEFAULT_KINDS.get(part)) == part:
            continue  # pydantic's step into the tagged-union member named by `kind` (or by its default)
        if isinstance(part, str) and node is not None and not isinstance(node, dict | list):
            continue  # pydantic's step into a member of a plain union (e.g. `str` of `str | list[str]`)
        if part == '[key]':
            continue  # pydantic's marker for "the key itself", after the key
        path.append(part)
        try:
            node = node[part]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            node = None
    return path
