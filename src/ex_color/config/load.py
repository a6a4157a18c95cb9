"""Load an experiment: read its TOML and dopesheet, validate both, and check them against the model.

`load_experiment` turns any problem — unreadable TOML, a wrong type, an unknown kind, a
layer the model lacks, a vector of the wrong width, a sweep column no run produces, a
missing or malformed dopesheet, a learning rate or weight out of range — into one
`ConfigError` whose single-line message names the file and the field, before anything is
trained. With `strict=True` (the command line's setting) a regularizer that can never
apply — its labels all off, or never drawn for any training colour — is such an error too;
otherwise a switched-off regularizer is a warning.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from ex_color.columns import train_loss_column, validation_column
from ex_color.config.build import (
    build_intervention,
    build_model,
    build_regularizer,
    build_regularizers,
    run_columns,
    sample_input,
    text_corpus,
    token_labels,
    training_data,
)
from ex_color.config.overrides import apply_file_overrides, parse_overrides
from ex_color.config.schema import (
    EXPERIMENT_FILE,
    AnchorConfig,
    AntiAnchorConfig,
    ConfigError,
    EraseEvaluation,
    ExperimentConfig,
    SeparateConfig,
    SubspaceConfig,
    SuppressEvaluation,
    TextDataSection,
    did_you_mean,
    name_the_entry,
    parse_config,
)
from ex_color.config.search import search_problems
from ex_color.indices import check_indices
from ex_color.loss import expected_weight_problems, parse_label_key
from ex_color.model import forward_hooks, get_layer
from ex_color.surgery import ablate, prune
from ex_color.temporal import Dopesheet, DopesheetError
from ex_color.temporal.dopesheet import UnreadableFileError, file_type_problem, read_regular_file
from ex_color.temporal.parsing import set_cells
from ex_color.training.schedule import LR_PROPERTY, check_schedule_values

log = logging.getLogger(__name__)


class Experiment(BaseModel):
    """A validated experiment: its file, config and dopesheet."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    path: Path
    """The experiment.toml file."""
    config: ExperimentConfig
    dopesheet: Dopesheet
    dopesheet_path: Path
    dopesheet_csv: bytes = b''
    """The dopesheet as loaded (after any overrides): what a run records and fingerprints."""
    overrides: tuple[str, ...] = ()
    """The overrides applied (`PATH=VALUE`), in order."""

    @property
    def name(self) -> str:
        """The experiment directory's name, e.g. 'ex-2.9'."""
        return self.path.parent.name

    @property
    def runs_name(self) -> str:
        """The folder under runs/ that its runs, sweeps and comparisons go to by default: `name`, or with overrides
        `name+set-<8 hex digits of their hash>`, so that a changed experiment never meets the unchanged one's runs."""
        if not self.overrides:
            return self.name
        digest = hashlib.sha256('\n'.join(self.overrides).encode()).hexdigest()[:8]
        return f'{self.name}+set-{digest}'


def resolve_experiment_path(path: str | Path) -> Path:
    """An experiment directory (holding experiment.toml) or the .toml file itself."""
    path = Path(path)
    if path.is_dir():
        path = path / EXPERIMENT_FILE
    expected = f'expected a directory holding {EXPERIMENT_FILE} or a .toml'
    try:
        problem = file_type_problem(path.stat().st_mode)  # stat, unlike open, never blocks on a FIFO
    except OSError:
        raise ConfigError(f'{path}: no such experiment file ({expected})') from None
    if problem:
        raise ConfigError(f'{path}: {problem}; {expected}')
    if path.suffix.lower() == '.csv':
        raise ConfigError(
            f'{path}: a CSV file, such as a dopesheet, is not an experiment; {expected} (its experiment.dopesheet '
            'names the dopesheet)'
        )
    return path


def _without_unused_columns(dopesheet: Dopesheet, config: ExperimentConfig, *, source: str) -> Dopesheet:
    """The sheet without the columns `experiment.unused_columns` declares, noted once at info level; a ConfigError
    for a declared column the sheet lacks or that something reads (`lr` or a regularizer's weight)."""
    unused = config.experiment.unused_columns
    if not unused:
        return dopesheet
    read = {r.name: f'the weight of regularizer {r.name!r}' for r in config.regularizers}
    read[LR_PROPERTY] = 'the learning rate'
    for name in unused:
        if name not in dopesheet.props:
            raise ConfigError(
                f'{source}: experiment.unused_columns: {name!r} is not a column of {dopesheet.source}; expected '
                f'some of {dopesheet.props}'
            )
        if name in read:
            raise ConfigError(
                f'{source}: experiment.unused_columns: {name!r} is {read[name]}, so it is used; expected columns '
                'that nothing reads'
            )
    return dopesheet.without(unused)


def load_experiment(path: str | Path, *, strict: bool = False, overrides: Sequence[str] | str = ()) -> Experiment:
    """Read, validate and cross-check an experiment file and its dopesheet.

    `strict`: also refuse regularizers that can never apply (see `check_regularizers_apply`),
    at the cost of computing the labels' probabilities over the training colours once.
    `overrides`: changes to apply first, `PATH=VALUE` (see `ex_color.config.overrides`).
    """
    changes = parse_overrides(overrides)
    path = resolve_experiment_path(path)
    try:
        # utf-8-sig: a leading byte-order mark (as some editors write) is dropped, as in the dopesheet.
        raw = tomllib.loads(read_regular_file(path).decode('utf-8-sig'))
    except UnreadableFileError as e:
        raise ConfigError(f'{path}: {e}; expected an experiment TOML file') from None
    except UnicodeDecodeError as e:
        raise ConfigError(f'{path}: not UTF-8 text: {e}') from None
    except ValueError as e:  # TOMLDecodeError, or an integer too long for int()
        raise ConfigError(f'{path}: not valid TOML: {" ".join(str(e).split())}') from None
    source = f'{path} with {" ".join(f"--set {t}" for t in changes.texts)}' if changes.texts else str(path)
    config = parse_config(apply_file_overrides(raw, changes.file, str(path)), source=source)
    config = _with_corpus_path(config, path)
    _check_text_split(config, source)
    _check_text_concepts(config, source)
    dopesheet_path = path.parent / config.experiment.dopesheet
    try:
        data = read_regular_file(dopesheet_path)
    except UnreadableFileError as e:
        raise ConfigError(
            f'{path}: experiment.dopesheet: {str(dopesheet_path)!r} {e}; expected a CSV file (relative to the '
            'experiment file)'
        ) from None
    unused = [c.text for c in changes.cells if c.column in config.experiment.unused_columns]
    if unused:
        raise ConfigError(
            f'--set {unused[0]}: that column is declared unused (experiment.unused_columns), so nothing reads it'
        )
    written = data  # the sheet as its file has it: what a [search] table refers to
    try:
        if changes.cells:
            cells = [(c.column, c.step, c.value) for c in changes.cells]
            text = data.decode('utf-8-sig')
            try:
                data = set_cells(text, cells, str(dopesheet_path)).encode()
            except DopesheetError as e:
                raise DopesheetError(f'--set {", ".join(c.text for c in changes.cells)}: {e}') from None
        dopesheet = Dopesheet.from_csv(io.BytesIO(data), source=str(dopesheet_path))
    except UnicodeDecodeError as e:
        raise ConfigError(f'{dopesheet_path}: not UTF-8 text: {e}') from None
    except DopesheetError as e:
        raise ConfigError(str(e)) from None
    if strict:  # before check_layers, which would only warn about switched-off labels
        _check_switched_off(config, source=source)
    _check_layers_once(config, source)
    if strict:  # after check_layers: building the terms needs a config that builds
        check_regularizers_apply(config, source=source)
    if LR_PROPERTY not in dopesheet.props:
        raise ConfigError(f"{dopesheet_path}: column '{LR_PROPERTY}' is missing; it sets the learning rate")
    try:
        check_schedule_values(dopesheet, [r.name for r in config.regularizers])
    except DopesheetError as e:
        cells = ', '.join(c.text for c in changes.cells)
        raise ConfigError(f'--set {cells}: {e}' if cells else str(e)) from None
    if config.search is not None:  # against the files' sheet: a trial's overrides may move the keyframes it names
        as_written = (
            dopesheet if written is data else Dopesheet.from_csv(io.BytesIO(written), source=str(dopesheet_path))
        )
        for field, problem in search_problems(config, as_written):
            raise ConfigError(f'{source}: {field}: {problem}')
    dopesheet = _without_unused_columns(dopesheet, config, source=source)
    return Experiment(
        path=path,
        config=config,
        dopesheet=dopesheet,
        dopesheet_path=dopesheet_path,
        dopesheet_csv=data,
        overrides=tuple(changes.texts),
    )


def _with_corpus_path(config: ExperimentConfig, path: Path) -> ExperimentConfig:
    """A text experiment's corpus `path` made absolute (it is relative to the experiment file) and checked readable."""
    data = config.data
    if not isinstance(data, TextDataSection) or data.path is None:
        return config
    corpus = (path.parent / data.path).resolve()
    try:
        text = read_regular_file(corpus).decode('utf-8')
    except UnreadableFileError as e:
        raise ConfigError(
            f'{path}: data.path: {data.path!r} {e}; expected a UTF-8 text file (relative to the experiment file)'
        ) from None
    except UnicodeDecodeError as e:
        raise ConfigError(f'{path}: data.path: {data.path!r} is not UTF-8 text: {e}') from None
    shortest = math.ceil(4 * (data.context + 1) / data.held_out)
    if len(text) < shortest:
        raise ConfigError(
            f'{path}: data.path: {data.path!r} has {len(text):,} characters; expected at least {shortest:,}, so '
            f'that the held-out part (data.held_out = {data.held_out}) holds 4 windows of {data.context + 1} '
            '(data.context + 1)'
        )
    return config.model_copy(update={'data': data.model_copy(update={'path': str(corpus)})})


def _check_text_split(config: ExperimentConfig, source: str) -> None:
    """A text corpus's training part and held-out part each hold at least one window of `context + 1` characters."""
    if not isinstance(config.data, TextDataSection):
        return
    data, corpus = config.data, text_corpus(config)
    window = data.context + 1
    for part, size in (('training', len(corpus.train)), ('held-out', len(corpus.held_out))):
        if size <= window:
            raise ConfigError(
                f'{source}: data.held_out: {data.held_out} leaves the {part} part of {corpus.name} {size:,} '
                f'characters; expected more than one window of {window:,} (data.context + 1) in each part'
            )


def _check_text_concepts(config: ExperimentConfig, source: str) -> None:
    """Each evaluation's concept marks some training position (else nothing anchors or erases it) and some held-out
    position (else its figures are empty)."""
    if not isinstance(config.data, TextDataSection):
        return
    corpus, labels = text_corpus(config), token_labels(config)
    for part, tokens in (('training', corpus.train), ('held-out', corpus.held_out)):
        x, y = tokens[:-1], tokens[1:]
        for i, e in enumerate(config.evaluations):
            for target in e.targets:
                label = labels[target]
                if not label.indicator(x, y, corpus.members(label.chars)).any():
                    raise ConfigError(
                        f'{source}: {_named(config, f"evaluations.{i}.target")}: label {target!r} marks no position '
                        f'of the {part} part of {corpus.name} (no {label.chars!r} as the {label.position} '
                        'character); expected a concept both parts have (data.held_out moves the split)'
                    )


def _named(config: ExperimentConfig, field: str) -> str:
    """`field`, saying which regularizer or evaluation it belongs to (see `name_the_entry`)."""
    names = {'regularizers': [r.name for r in config.regularizers], 'evaluations': [e.name for e in config.evaluations]}
    return name_the_entry(field, names)


_PASSED_LAYER_CHECKS: dict[str, None] = {}
"""Configs (as JSON) that passed `check_layers` in this process, most recent last; at most 64."""


def _check_layers_once(config: ExperimentConfig, source: str) -> None:
    """`check_layers`, skipped for a config that already passed it here. Its trial surgeries take a tenth of a
    second, and a schedule search loads the same config, with another dopesheet, for every trial."""
    key = config.model_dump_json()
    if key in _PASSED_LAYER_CHECKS:
        return
    check_layers(config, source=source)
    _PASSED_LAYER_CHECKS[key] = None
    while len(_PASSED_LAYER_CHECKS) > 64:
        del _PASSED_LAYER_CHECKS[next(iter(_PASSED_LAYER_CHECKS))]


def check_layers(config: ExperimentConfig, source: str = '<config>') -> None:
    """Check the config against the model it builds, so that a bad file fails at load, not after training.

    Every layer a regularizer or evaluation names must exist; every point, direction and
    dimension index must fit that layer's width; every term, intervention and surgery must
    build; every [sweep] column must be one a run produces. Raises ConfigError naming the
    file and the field.
    """
    model = build_model(config)
    named = [(f'regularizers.{i}.layers', layer) for i, r in enumerate(config.regularizers) for layer in r.layers]
    named += [(f'evaluations.{i}.layer', e.layer) for i, e in enumerate(config.evaluations)]
    named += [(f'models.{i}.route.layer', m.route.layer) for i, m in enumerate(config.models or []) if m.route]
    for field, layer in named:
        try:
            get_layer(model, layer)
        except KeyError as e:
            raise ConfigError(f'{source}: {_named(config, field)}: {e}') from None
    widths = layer_widths(model, {layer for _, layer in named}, sample_input(config))
    if config.is_text:
        for field, problem in _per_position_problems(config, model, named):
            raise ConfigError(f'{source}: {_named(config, field)}: {problem}')
    for field, problem in (*_shape_problems(config, model, widths), *_sweep_problems(config)):
        raise ConfigError(f'{source}: {_named(config, field)}: {problem}')


def _per_position_problems(
    config: ExperimentConfig, model: nn.Module, named: list[tuple[str, str]]
) -> Iterator[tuple[str, str]]:
    """(field, problem) for a text layer a regularizer or edit reads whose output is not one vector per position
    (`[batch, positions, features]`): its samples would not line up with the labels."""
    sample = sample_input(config)
    assert sample is not None
    shapes: dict[str, tuple[int, ...]] = {}
    layers = {layer for _, layer in named}
    with torch.no_grad(), forward_hooks(model, layers, lambda name, out: shapes.setdefault(name, tuple(out.shape))):
        model(sample)
    for field, layer in named:
        shape = shapes[layer]
        if len(shape) != 3 or shape[:2] != tuple(sample.shape):
            yield (
                field,
                f'layer {layer!r} outputs {list(shape)} for a batch of {sample.shape[0]} windows of '
                f'{sample.shape[1]} positions; expected one vector per position, [batch, positions, features] '
                "(e.g. 'bottleneck')",
            )


def layer_widths(model: nn.Module, layers: Iterable[str], sample: torch.Tensor | None = None) -> dict[str, int]:
    """The output width (last dimension) of each named layer, from one forward pass of `sample` (default: a black
    pixel `[1, 3]`)."""
    widths: dict[str, int] = {}
    with torch.no_grad(), forward_hooks(model, layers, lambda name, output: widths.setdefault(name, output.shape[-1])):
        model(torch.zeros(1, 3) if sample is None else sample)
    return widths


def _width_problem(field: str, vector: list[float], layer: str, width: int) -> Iterator[tuple[str, str]]:
    if len(vector) != width:
        yield field, f'has {len(vector)} values; expected {width} (the width of {layer!r})'


def _index_problem(field: str, indices: list[int], layer: str, width: int) -> Iterator[tuple[str, str]]:
    try:
        check_indices(indices, '', width, layer)
    except ValueError as e:
        yield field, str(e)


def _shape_problems(config: ExperimentConfig, model: nn.Module, widths: dict[str, int]) -> Iterator[tuple[str, str]]:
    """(field, problem) for each vector or index list that does not fit its layer, or term that does not build."""
    for i, r in enumerate(config.regularizers):
        for layer in r.layers:
            width = widths[layer]
            if isinstance(r, AnchorConfig | AntiAnchorConfig):
                yield from _width_problem(f'regularizers.{i}.point', r.point, layer, width)
            elif isinstance(r, SubspaceConfig):
                yield from _index_problem(f'regularizers.{i}.dims', r.dims, layer, width)
            elif isinstance(r, SeparateConfig) and r.channels:
                yield from _index_problem(f'regularizers.{i}.channels', r.channels, layer, width)
        try:
            build_regularizer(r)
        except ValueError as e:
            yield f'regularizers.{i}', str(e)
    for i, m in enumerate(config.models or []):
        if m.route is not None:
            yield from _index_problem(f'models.{i}.route.dims', m.route.dims, m.route.layer, widths[m.route.layer])
    for i, e in enumerate(config.evaluations):
        width = widths[e.layer]
        if isinstance(e, SuppressEvaluation):
            yield from _width_problem(f'evaluations.{i}.direction', e.direction, e.layer, width)
            try:
                build_intervention(e)
            except ValueError as error:
                yield f'evaluations.{i}', str(error)
            continue
        if isinstance(e, EraseEvaluation):
            if e.renormalize:
                yield from _unit_norm_problem(f'evaluations.{i}.renormalize', model, e.layer, sample_input(config))
            continue  # otherwise fitted after training: nothing to check against the layer's width
        yield from _index_problem(f'evaluations.{i}.dims', e.dims, e.layer, width)
        try:
            (ablate if e.kind == 'ablate' else prune)(model, e.layer, e.dims, sample=sample_input(config))
        except ValueError as error:
            yield f'evaluations.{i}', str(error)


def _unit_norm_problem(
    field: str, model: nn.Module, layer: str, sample: torch.Tensor | None = None
) -> Iterator[tuple[str, str]]:
    """Renormalising an erased activation only makes sense on a layer that outputs unit vectors: a layer whose
    outputs are not unit vectors in the untrained model (checked on the RGB cube's corners, or `sample`) will not be
    after."""
    outputs: list[torch.Tensor] = []
    corners = torch.tensor([[r, g, b] for r in (0.0, 1.0) for g in (0.0, 1.0) for b in (0.0, 1.0)])
    with torch.no_grad(), forward_hooks(model, [layer], lambda name, output: outputs.append(output)):
        model(corners if sample is None else sample)
    norms = torch.linalg.vector_norm(outputs[0].reshape(-1, outputs[0].shape[-1]), dim=-1)
    if ((norms - 1).abs() > 1e-3).any():
        yield (
            field,
            f'is true but {layer!r} does not output unit vectors (norms {norms.min():.3g}–{norms.max():.3g}); '
            'expected false, or a unit-norm layer such as the bottleneck',
        )


def switched_off(config: ExperimentConfig) -> dict[str, int]:
    """Regularizers whose labels are all off (scale 0), so that their term never applies: name → index.

    A complement `~name` of an off label is off too: an off label is never in a batch, and a term
    whose labels are all absent is skipped.
    """
    scales = {name: d.scale for name, d in config.labels.definitions.items()}
    return {
        r.name: i
        for i, r in enumerate(config.regularizers)
        if r.labels is not None and not any(scales[parse_label_key(key)[0]] for key in r.labels)
    }


def check_regularizers_apply(config: ExperimentConfig, source: str = '<config>') -> None:
    """Every label-weighted regularizer can weigh some training sample above 0; else a ConfigError.

    Two mistakes make a term silently never apply: its labels are all off (scale 0), or no
    training colour can carry them (a probability of 0 everywhere, e.g. a power so high it
    underflows, or all affinities 0). The second is checked on the labels' probabilities over
    the training colours, once, before training; the training loop is untouched. (Regularizers
    from the experiment file always train in phase 'train', so their phase cannot be wrong.) Call it on a
    config that `check_layers` accepts: it builds the regularizers.
    """
    _check_switched_off(config, source)
    if config.is_text:
        vocab = set(text_corpus(config).vocab)
        for name, label in token_labels(config).items():
            if not vocab & set(label.chars):
                raise ConfigError(
                    f'{source}: labels.{name}.chars: none of {label.chars!r} occurs in the corpus; expected '
                    'characters the text has'
                )
        return
    labelled = [r for r in build_regularizers(config) if r.label_affinities is not None]
    if not labelled:
        return
    data = training_data(config)
    problems = expected_weight_problems(labelled, data.label_probabilities, data.weights)
    for i, r in enumerate(config.regularizers):
        if r.name in problems:
            raise ConfigError(
                f'{source}: regularizers.{i}.labels: {problems[r.name]}; expected labels some training colour can carry'
            )


def _check_switched_off(config: ExperimentConfig, source: str) -> None:
    for name, i in switched_off(config).items():
        labels = sorted({parse_label_key(key)[0] for key in config.regularizers[i].labels or {}})
        raise ConfigError(
            f'{source}: regularizers.{i}.labels: regularizer {name!r} never applies: its labels {labels} are all off '
            '(scale 0); expected a label with scale > 0, or no such regularizer'
        )


def _sweep_problems(config: ExperimentConfig) -> Iterator[tuple[str, str]]:
    """(field, problem) for each [sweep] column that no run of this experiment produces, or that is always NaN."""
    off = switched_off(config)
    for name, i in off.items():
        log.warning('%s: its labels are all off (scale 0); the term never applies', f'regularizers.{i} ({name})')
    if config.sweep is None:
        return
    produced = run_columns(config)
    never = {train_loss_column(name): i for name, i in off.items()}
    never |= {validation_column(name): i for name, i in off.items()}
    for key in ('minimise', 'maximise', 'print'):
        for i, column in enumerate(getattr(config.sweep, key)):
            if column in never:
                yield (
                    f'sweep.{key}.{i}',
                    f'{column!r} is NaN in every run: the labels of regularizers.{never[column]} are all off '
                    '(scale 0); expected a column with figures',
                )
            elif column not in produced:
                yield (
                    f'sweep.{key}.{i}',
                    f'{column!r} is not a column a run produces{did_you_mean(column, produced)}; expected e.g. '
                    + (
                        'val_recon or <evaluation>_target_ratio, <evaluation>_collateral_ratio, '
                        '<evaluation>_ratio_<class>'
                        if config.is_text
                        else 'val_recon or <evaluation>_selectivity_r2, <evaluation>_mse_max, <evaluation>_<colour>'
                    ),
                )
