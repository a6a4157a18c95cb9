"""The experiment-file schema: Ex 2.9 resolves to the seed's set-up, and bad files fail in one line naming the field."""

from __future__ import annotations

import colorsys
import copy
import logging
import os
import threading
import tomllib
from pathlib import Path

import pytest
import tomli_w
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ex_color.config import (
    AblateEvaluation,
    ConfigError,
    ExperimentConfig,
    SuppressEvaluation,
    build_intervention,
    build_model,
    build_regularizers,
    check_layers,
    layer_widths,
    load_experiment,
    parse_config,
    run_columns,
    training_data,
)
from ex_color.config.schema import DataSection, ExperimentSection, ModelSection
from ex_color.intervention import BoundedFalloff, Suppression
from ex_color.loss import AngularAnchor, AntiAnchor, AxisAlignedSubspace, Separate, Unitarity
from ex_color.model import CNColorMLP

EX29 = Path(__file__).resolve().parents[1] / 'experiments' / 'ex-2.9'


@pytest.fixture(scope='module')
def ex29():
    return load_experiment(EX29)


@pytest.fixture
def raw() -> dict:
    """Ex 2.9's experiment.toml as parsed TOML, for tests to break."""
    return tomllib.loads((EX29 / 'experiment.toml').read_text())


EX29_ENTRIES = {
    'regularizers': ['reg-unit', 'reg-anchor', 'reg-separate', 'reg-planar-d', 'reg-anti-anchor'],
    'evaluations': [
        'ablated',
        'pruned',
        'suppressed',
        'control-leace',
        'control-mean-difference',
        'control-leace-raw',
        'routed-ablated',
        'routed-pruned',
        'routed-leace',
    ],
}


def named(field: str) -> str:
    """An Ex 2.9 field as messages write it: `evaluations.0.dims (evaluation 'ablated')`."""
    section, index, *_ = [*field.split('.'), '']
    if section not in EX29_ENTRIES or field.endswith('.name'):
        return field
    return f"{field} ({section.removesuffix('s')} '{EX29_ENTRIES[section][int(index)]}')"


def config_error(raw: dict) -> str:
    """The ConfigError message for `raw` (parsed and checked against its model); fails if there is none."""
    with pytest.raises(ConfigError) as caught:
        check_layers(parse_config(raw, source='exp.toml'), source='exp.toml')
    message = str(caught.value)
    assert '\n' not in message
    assert message.startswith('exp.toml: ')
    return message


# Ex 2.9 as checked in ----------------------------------------------------------------------


def test_ex29_resolves_to_design_section_4(ex29):
    config = ex29.config
    assert ex29.name == 'ex-2.9'
    assert config.experiment.seed == 0
    assert (config.data.hues, config.data.saturations, config.data.values) == (36, 10, 10)
    assert config.data.batch_size == 64
    labels = config.labels
    assert labels.soft is False
    assert list(labels.definitions) == ['red', 'vibrant', 'desaturated']
    kinds = {name: (d.kind, d.power, d.scale) for name, d in labels.definitions.items()}
    assert kinds == {
        'red': ('primary', 10, 0.5),
        'vibrant': ('vibrancy', 100, 0.5),
        'desaturated': ('desaturation', 10, 0.5),
    }
    assert labels.definitions['red'].color == 'red'
    assert [e.targets for e in config.evaluations] == [['red']] * 9
    # DESIGN §4 schedule: last keyframe at step 3000 → 3,001 steps.
    assert len(ex29.dopesheet) == 3001
    assert 'lr' in ex29.dopesheet.props


def test_ex29_builds_the_seeds_model(ex29):
    model = build_model(ex29.config)
    expected = CNColorMLP(5, n_nonlinear=2)
    assert type(model) is CNColorMLP
    shapes = {name: tuple(p.shape) for name, p in model.state_dict().items()}
    assert shapes == {name: tuple(p.shape) for name, p in expected.state_dict().items()}
    # n_nonlinear=2, k_codec=16: encoder Linear(3,16), GELU, Linear(16,16), GELU, Linear(16,5).
    linears = [m for m in model.encoder if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(3, 16), (16, 16), (16, 5)]


def test_ex29_regularizers_are_the_seeds_five(ex29):
    regularizers = {r.name: r for r in build_regularizers(ex29.config)}
    assert list(regularizers) == ['reg-unit', 'reg-anchor', 'reg-separate', 'reg-planar-d', 'reg-anti-anchor']
    expected = {  # DESIGN §4: class, label affinities, layers
        'reg-unit': (Unitarity, None, ['encoder']),
        'reg-anchor': (AngularAnchor, {'red': 1.0}, ['bottleneck']),
        'reg-separate': (Separate, None, ['bottleneck']),
        'reg-planar-d': (AxisAlignedSubspace, {'desaturated': 1.0}, ['bottleneck']),
        'reg-anti-anchor': (AntiAnchor, None, ['bottleneck']),
    }
    for name, (cls, labels, layers) in expected.items():
        r = regularizers[name]
        assert type(r.compute_loss_term) is cls, name
        assert r.label_affinities == labels, name
        assert r.layer_affinities == layers, name
        assert r.phase == 'train'
    assert regularizers['reg-anchor'].compute_loss_term.point.tolist() == [1, 0, 0, 0, 0]
    assert regularizers['reg-anti-anchor'].compute_loss_term.point.tolist() == [-1, 0, 0, 0, 0]
    assert regularizers['reg-anti-anchor'].compute_loss_term.hemi is True
    separate = regularizers['reg-separate'].compute_loss_term
    assert (separate.power, separate.shift, separate.channels) == (100.0, True, None)
    subspace = regularizers['reg-planar-d'].compute_loss_term
    assert (tuple(subspace.dims), subspace.invert) == ((2, 3, 4), False)


def test_ex29_regularizers_compute_the_design_formulas(ex29):
    """The built terms are the right maths, not just the right classes: checked on one vector by hand."""
    terms = {r.name: r.compute_loss_term for r in build_regularizers(ex29.config)}
    x = torch.tensor([[0.6, 0.8, 0.0, 0.0, 0.0]])  # ‖x‖ = 1, cos(x, e0) = 0.6
    assert terms['reg-unit'](x).item() == pytest.approx(0.0, abs=1e-6)  # (‖x‖ − 1)²
    assert terms['reg-anchor'](x).item() == pytest.approx(0.4, abs=1e-6)  # 1 − 0.6
    assert terms['reg-anti-anchor'](x).item() == pytest.approx(0.0, abs=1e-6)  # max(cos(x, −e0), 0) = max(−0.6, 0)
    assert terms['reg-planar-d'](x).item() == pytest.approx(1.0, abs=1e-6)  # x0² + x1² (dims not in 2,3,4)


def test_ex29_evaluations_are_ablate_prune_suppress_then_control_erasures_then_routed_edits(ex29):
    ablated, pruned, suppressed, leace, mean_difference, leace_raw, *routed = ex29.config.evaluations
    assert [e.model for e in ex29.config.evaluations] == ['prepared'] * 3 + ['control'] * 3 + ['routed'] * 3
    assert [(e.kind, e.layer) for e in routed] == [
        ('ablate', 'bottleneck'),
        ('prune', 'bottleneck'),
        ('leace', 'bottleneck'),
    ]
    assert [e.dims for e in routed[:2]] == [[0], [0]]
    assert (leace_raw.kind, leace_raw.renormalize) == ('leace', False)
    assert (leace.kind, leace.concept, leace.renormalize) == ('leace', 'red', True)
    assert (mean_difference.kind, mean_difference.concept, mean_difference.layer) == (
        'mean-difference',
        'red',
        'bottleneck',
    )
    assert [(m.name, m.keep) for m in ex29.config.compared_models()] == [
        ('control', ['reg-unit', 'reg-separate']),
        ('routed', ['reg-unit', 'reg-separate']),
    ]
    assert ex29.config.prepared_evaluations() == [ablated, pruned, suppressed]
    assert ablated == AblateEvaluation(name='ablated', kind='ablate', target='red', layer='bottleneck', dims=[0])
    assert pruned == AblateEvaluation(name='pruned', kind='prune', target='red', layer='bottleneck', dims=[0])
    assert isinstance(suppressed, SuppressEvaluation)
    intervention = build_intervention(suppressed)
    assert intervention.layer_affinities == ['bottleneck']
    assert isinstance(intervention.apply, Suppression)
    # BoundedFalloff(a=0, b=1, power=0): a step, g = 1 for a·v > 0, else 0.
    # a = (0.6, 0.8, 0, 0, 0): a·v = 0.6 → a − 1·0.6·v = (0, 0.8, 0, 0, 0).
    # a = (−0.6, 0.8, 0, 0, 0): clamp(a·v) = 0 → g = 0 → unchanged.
    out = intervention.apply(torch.tensor([[0.6, 0.8, 0, 0, 0], [-0.6, 0.8, 0, 0, 0]]))
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.8, 0, 0, 0], [-0.6, 0.8, 0, 0, 0]]))


def test_ex29_training_data_is_3600_colours_weighted_by_cube_bias(ex29):
    data = training_data(ex29.config)
    assert data.colors.shape == (3600, 3)  # 36 hues × 10 saturations × 10 values
    assert data.batch_size == 64
    # Independent route: recover s, v from each RGB colour with colorsys and apply DESIGN §3's bias,
    # w = (1−v)/(n_s·n_h) + (1−s)·v/n_h + s·v with n_h = 36, n_s = 10. (colorsys gives s = 0 for
    # greys and any s for black, where the formula does not depend on s.)
    n_h, n_s = 36, 10
    expected = []
    for r, g, b in data.colors.double().tolist():
        _, s, v = colorsys.rgb_to_hsv(r, g, b)
        expected.append((1 - v) / (n_s * n_h) + (1 - s) * v / n_h + s * v)
    torch.testing.assert_close(data.weights.double(), torch.tensor(expected, dtype=torch.float64), atol=1e-6, rtol=0)
    # The cube holds exactly 36 pure hues at s = v = 1, each with weight 1 (vibrant).
    assert int((data.weights > 1 - 1e-6).sum()) == 36


def test_ex29_label_probabilities_follow_the_labels_section(ex29):
    data = training_data(ex29.config)
    colours = data.colors
    red = int(((colours - torch.tensor([1.0, 0, 0])).abs().sum(dim=1) < 1e-6).nonzero()[0])
    white = int(((colours - 1).abs().sum(dim=1) < 1e-6).nonzero()[0])
    p = data.label_probabilities
    assert set(p) == {'red', 'vibrant', 'desaturated'}
    # Pure red: redness 1 → 1¹⁰·0.5; vibrancy 1 → 1¹⁰⁰·0.5; desaturated (1−1)¹⁰·0.5 = 0.
    assert [p[k][red].item() for k in ('red', 'vibrant', 'desaturated')] == pytest.approx([0.5, 0.5, 0.0])
    # White: redness 1·(1 − ½ − ½) = 0; vibrancy 0 → vibrant 0, desaturated 1¹⁰·0.5.
    assert [p[k][white].item() for k in ('red', 'vibrant', 'desaturated')] == pytest.approx([0.0, 0.0, 0.5])


def test_a_label_scale_of_zero_turns_the_label_off(raw):
    raw['labels']['vibrant']['scale'] = 0
    data = training_data(parse_config(raw))
    assert set(data.label_probabilities) == {'red', 'desaturated'}


def test_layer_widths_follow_the_architecture():
    # CNColorMLP(7, k_codec=12): encoder.0 = Linear(3, 12); encoder ends in Linear(12, 7);
    # decoder ends in Linear(12, 3).
    widths = layer_widths(CNColorMLP(7, k_codec=12), ['encoder.0', 'encoder', 'bottleneck', 'decoder'])
    assert widths == {'encoder.0': 12, 'encoder': 7, 'bottleneck': 7, 'decoder': 3}


# Resolved config round trip ------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    hues=st.integers(1, 400),
    saturations=st.integers(2, 50),
    batch_size=st.integers(1, 4096),
    red=st.floats(0, 1),
    soft=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
    power=st.floats(-1e6, 1e6),
)
def test_dumped_config_parses_back_to_the_same_config(raw, hues, saturations, batch_size, red, soft, seed, power):
    """What a run directory's config.toml holds (model_dump → TOML) must parse back unchanged."""
    raw = copy.deepcopy(raw)
    raw['experiment']['seed'] = seed
    raw['data'].update(hues=hues, saturations=saturations, batch_size=batch_size)
    raw['labels']['soft'] = soft
    raw['labels']['red']['scale'] = red
    if red == 0:  # nothing to fit an erasure with: refused (test_control_and_erasure_mistakes_name_the_field)
        raw['evaluations'] = [e for e in raw['evaluations'] if e['kind'] not in ('leace', 'mean-difference')]
    raw['regularizers'][2]['power'] = power
    config = parse_config(raw)
    dumped = tomllib.loads(tomli_w.dumps(config.model_dump(mode='json', exclude_none=True)))
    assert parse_config(dumped) == config


def test_defaults_fill_omitted_sections(raw):
    minimal = {'experiment': {'name': 'x'}, 'model': {'k_bottleneck': 3}}
    config = parse_config(minimal)
    assert (config.data.hues, config.data.batch_size, config.model.n_nonlinear) == (36, 64, 1)
    assert config.labels.definitions == {} and config.labels.soft is False and config.sweep is None
    assert config.regularizers == [] and config.evaluations == []
    assert config.experiment.dopesheet == 'dopesheet.csv'


# Bad files: one line naming the field ----------------------------------------------------------


def test_unknown_top_level_key_lists_the_sections(raw):
    raw['trainer'] = {'epochs': 3}
    message = config_error(raw)
    assert message.startswith('exp.toml: trainer: unknown key; expected one of ')
    assert 'experiment, model, data, labels, regularizers, evaluations' in message


@pytest.mark.parametrize('section', ['experiment', 'model', 'data'])
@given(key=st.text(alphabet='abcdefghijklmnopqrstuvwxyz_', min_size=1, max_size=12))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_unknown_key_in_a_section_is_named(raw, section, key):
    raw = copy.deepcopy(raw)
    colour_sections = {'experiment': ExperimentSection, 'model': ModelSection, 'data': DataSection}
    assume(key not in colour_sections[section].model_fields)  # a typo, not a real key
    raw[section][key] = 1
    assert config_error(raw).startswith(f'exp.toml: {section}.{key}: unknown key; expected one of ')


@given(key=st.text(alphabet='abcdefghijklmnopqrstuvwxyz_', min_size=1, max_size=12))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_value_in_labels_that_is_not_a_table_is_named(raw, key):
    raw = copy.deepcopy(raw)
    assume(key != 'soft')
    raw['labels'][key] = 1
    assert config_error(raw).startswith(f'exp.toml: labels.{key}: not a label table; expected ')


def test_unknown_key_in_a_regularizer_is_named_without_pydantics_union_step(raw):
    raw['regularizers'][1]['hemi'] = True  # anti-anchor has `hemi`, angular-anchor does not
    message = config_error(raw)
    assert message.startswith("exp.toml: regularizers.1.hemi (regularizer 'reg-anchor'): unknown key; expected one of ")
    assert 'angular-anchor' not in message.split(': ')[1]


def test_wrong_type_names_field_and_value(raw):
    raw['model']['k_bottleneck'] = 'five'
    message = config_error(raw)
    assert message.startswith('exp.toml: model.k_bottleneck: ')
    assert "'five'" in message


def test_wrong_type_inside_a_regularizer_point(raw):
    raw['regularizers'][1]['point'][2] = 'x'
    assert config_error(raw).startswith("exp.toml: regularizers.1.point.2 (regularizer 'reg-anchor'): ")


def test_non_finite_numbers_are_rejected(raw):
    raw['regularizers'][4]['point'][0] = float('-inf')
    assert config_error(raw).startswith("exp.toml: regularizers.4.point.0 (regularizer 'reg-anti-anchor'): ")


def test_unknown_regularizer_kind_lists_the_kinds(raw):
    raw['regularizers'][3]['kind'] = 'planarity'
    message = config_error(raw)
    assert message.startswith(
        "exp.toml: regularizers.3.kind (regularizer 'reg-planar-d'): unknown kind 'planarity'; expected one of "
    )
    assert "'axis-aligned-subspace'" in message


def test_missing_regularizer_kind(raw):
    del raw['evaluations'][0]['kind']
    assert config_error(raw).startswith("exp.toml: evaluations.0.kind (evaluation 'ablated'): missing")


def test_unknown_label_in_affinities_is_named(raw):
    raw['regularizers'][1]['labels'] = {'rde': 1.0}  # a typo would otherwise switch the term off for good
    message = config_error(raw)
    assert message.startswith(
        "exp.toml: regularizers.1.labels.rde (regularizer 'reg-anchor'): label 'rde' is not declared"
    )
    assert '(red, vibrant, desaturated)' in message


@pytest.mark.parametrize(('key', 'value'), [('k_codec', 2**40), ('k_bottleneck', 16000), ('n_nonlinear', 10**6)])
def test_absurd_model_sizes_fail_before_allocating(raw, key, value):
    raw['model'][key] = value
    assert config_error(raw).startswith(f'exp.toml: model.{key}: ')


def test_label_scale_out_of_range(raw):
    raw['labels']['red']['scale'] = 1.5
    assert config_error(raw).startswith('exp.toml: labels.red.scale: Input should be less than or equal to 1')


# Labels, targets and [sweep]: what reaches the report must say what it measured -------------


def _similarity(**key) -> dict:
    return {'kind': 'similarity', 'power': 10, 'scale': 0.5, **key}


@pytest.mark.parametrize(
    ('edit', 'says'),
    [
        # A label named like a colour must be that colour, or reports would name the wrong concept.
        (
            lambda r: r['labels'].update(red={'kind': 'primary', 'color': 'green'}),
            'labels.red: named like the colour red',
        ),
        (lambda r: r['labels'].update(red=_similarity(hsv=[0.5, 1, 1])), 'labels.red: named like the colour red'),
        (lambda r: r['labels'].update(cyan=_similarity(hsv=[0.5, 0.5, 1])), 'labels.cyan: named like the colour cyan'),
        (lambda r: r['labels'].update(red=_similarity(hsv=[0, 1])), 'labels.red.hsv: List should have at least 3'),
        (lambda r: r['labels'].update(red=_similarity()), 'labels.red: give exactly one of color'),
        (
            lambda r: r['regularizers'][1].update(labels={}),
            "regularizers.1.labels (regularizer 'reg-anchor'): Dictionary should have at least 1",
        ),
        (
            lambda r: r['evaluations'][0].update(target=['red', 'red']),
            "evaluations.0.target (evaluation 'ablated'): ['red', 'red'] repeats",
        ),
        (
            lambda r: r['evaluations'][0].update(target=3),
            "evaluations.0.target (evaluation 'ablated'): Input should be a valid string",
        ),
        (lambda r: r['sweep'].update(minimise=['val_recon', 'val_recon']), 'sweep.minimise: '),
        (lambda r: r['sweep'].update(maximise=['seed']), "sweep.maximise: 'seed' is a label"),
        (lambda r: r['sweep'].update(best='pruned_mse_max'), "sweep.best: 'pruned_mse_max' is neither"),
    ],
)
def test_label_target_and_sweep_mistakes_name_the_field(raw, edit, says):
    edit(raw)
    message = config_error(raw)
    assert message.startswith(f'exp.toml: {says}'), message


def test_a_label_named_like_its_own_colour_and_a_new_name_are_fine(raw):
    raw['labels']['cyan'] = _similarity(color='cyan')
    raw['labels']['sea'] = _similarity(hsv=[0.45, 0.8, 0.9])
    raw['evaluations'][0]['target'] = ['cyan', 'sea']
    check_layers(parse_config(raw))  # no error


def test_a_sweep_table_with_only_best_uses_the_default_objectives(raw):
    raw['sweep'] = {'best': 'val_recon'}
    assert parse_config(raw).sweep_objectives() == (
        ['val_recon'],
        ['ablated_selectivity_r2'],
        'val_recon',
        ['ablated_selectivity_r2', 'val_recon'],
    )


def test_without_evaluations_a_sweep_ranks_by_reconstruction(raw):
    raw['evaluations'] = []
    del raw['sweep']
    assert parse_config(raw).sweep_objectives() == (['val_recon'], [], 'val_recon', ['val_recon'])


def test_a_sweep_column_that_is_always_nan_is_refused(raw, caplog):
    """A term whose labels are all off never applies: its columns would be NaN for every seed."""
    raw['labels']['red']['scale'] = 0
    raw['evaluations'] = raw['evaluations'][:3]  # erasures fitted with an off label are refused before this check
    message = config_error(raw)  # the shipped [sweep] minimises val_anchor, the anchor's validation loss
    assert message.startswith(
        "exp.toml: sweep.minimise.1: 'val_anchor' is NaN in every run: the labels of regularizers.1"
    )
    assert 'regularizers.1 (reg-anchor): its labels are all off' in caplog.text
    del raw['sweep']
    check_layers(parse_config(raw))  # without it, the experiment is fine (the term is simply off)


@pytest.mark.parametrize(
    ('section', 'index', 'field', 'first'),
    [('regularizers', 3, 'name', 0), ('evaluations', 2, 'name', 1)],
)
def test_duplicate_names_name_both_entries(raw, section, index, field, first):
    raw[section][index]['name'] = raw[section][first]['name']
    message = config_error(raw)
    assert message.startswith(f'exp.toml: {section}.{index}.name: ')
    assert f'{section}.{first}' in message


def test_a_validated_regularizer_may_not_report_as_the_reconstructions_validation_loss(raw):
    """`reg-recon` would report as val_recon and overwrite the reconstruction's figure in every table."""
    raw['regularizers'][1]['name'] = 'reg-recon'
    raw['regularizers'][1]['validation'] = True
    del raw['sweep']
    assert config_error(raw).startswith("exp.toml: regularizers.1.name: 'reg-recon' would report as val_recon")


def _erasure(**keys) -> dict:
    return {'name': 'erased', 'kind': 'leace', 'target': 'red', 'layer': 'bottleneck', **keys}


@pytest.mark.parametrize(
    ('edit', 'says'),
    [
        (lambda r: r['models'][0].update(keep=['reg-unti']), "models.0.keep.0: 'reg-unti' is not a regularizer"),
        (lambda r: r['models'][0].update(keep=['reg-unit', 'reg-anchor']), "models.0.keep.1: 'reg-anchor' has label"),
        (
            lambda r: r['models'][1].update(keep=['reg-anti-anchor']),
            "models.1.keep.0: 'reg-anti-anchor' is an anti-anchor",
        ),
        (lambda r: r['models'][0].update(keep=['reg-unit', 'reg-unit']), 'models.0.keep: '),
        (lambda r: r['models'][0].pop('keep'), 'models.0.keep: is missing'),
        (lambda r: r['models'][1].update(name='control'), "models.1.name: 'control' is declared twice"),
        (lambda r: r['models'].append({'name': 'prepared', 'keep': []}), 'models.2.keep: the prepared model keeps'),
        (
            lambda r: r['models'][1]['route'].update(labels={'redd': 1.0}),
            "models.1.route.labels.redd: label 'redd' is not declared (did you mean red?)",
        ),
        (lambda r: r['models'][1]['route'].update(dims=[0, 0]), 'models.1.route.dims: [0, 0]: expected distinct'),
        (
            lambda r: r['models'].pop(0),
            "evaluations.3.model (evaluation 'control-leace'): 'control' is not a model",
        ),
        (
            lambda r: r['evaluations'][3].update(model='trained'),
            "evaluations.3.model (evaluation 'control-leace'): 'trained' is not a model",
        ),
        (
            lambda r: r['evaluations'].append(_erasure(target='orange')),
            "evaluations.9.label (evaluation 'erased'): is missing",
        ),
        (
            lambda r: r['evaluations'].append(_erasure(label='redd')),
            "evaluations.9.label (evaluation 'erased'): label 'redd' is not declared",
        ),
        (
            lambda r: r['labels']['red'].update(scale=0),
            "evaluations.3.label (evaluation 'control-leace'): label 'red' is off",
        ),
        (
            lambda r: r['evaluations'].append(_erasure(renormalize=1)),
            "evaluations.9.renormalize (evaluation 'erased'): Input should be",
        ),
        (
            lambda r: r['evaluations'].append(_erasure(name='control')),
            "evaluations.9.name: 'control' is reserved",
        ),
        (
            lambda r: r['evaluations'].append(_erasure(name='routed')),
            "evaluations.9.name: 'routed' is reserved",
        ),
    ],
)
def test_control_and_erasure_mistakes_name_the_field(raw, edit, says):
    edit(raw)
    message = config_error(raw)
    assert message.startswith(f'exp.toml: {says}'), message


def test_a_control_table_is_the_older_spelling_of_a_models_entry(raw):
    """Files written before [[models]] keep working: [control] keep = [...] declares the model 'control'."""
    models = raw.pop('models')
    raw['control'] = {'keep': ['reg-unit', 'reg-separate']}
    raw['evaluations'] = [e for e in raw['evaluations'] if e.get('model') != 'routed']
    config = parse_config(raw)
    assert [(m.name, m.keep, m.route) for m in config.compared_models()] == [
        ('control', ['reg-unit', 'reg-separate'], None)
    ]
    assert [e.name for e in config.model_evaluations('control')] == EX29_ENTRIES['evaluations'][3:6]
    raw['models'] = models[:1]
    assert config_error(raw).startswith('exp.toml: control: and a [[models]] entry both declare the control')


@pytest.mark.parametrize(
    ('edit', 'says'),
    [
        (lambda route: route.update(layer='bottlenek'), "models.1.route.layer: no layer 'bottlenek'"),
        (lambda route: route.update(dims=[5]), 'models.1.route.dims: '),
    ],
)
def test_a_route_that_does_not_fit_the_model_fails_at_load(raw, edit, says):
    edit(raw['models'][1]['route'])
    message = config_error(raw)
    assert message.startswith(f'exp.toml: {says}'), message


def test_renormalising_an_erasure_of_a_layer_that_is_not_unit_norm_fails_at_load(raw):
    raw['evaluations'].append(_erasure(layer='encoder'))
    message = config_error(raw)
    assert message.startswith(
        "exp.toml: evaluations.9.renormalize (evaluation 'erased'): is true but 'encoder' does not output unit vectors"
    )
    raw['evaluations'][-1]['renormalize'] = False
    check_layers(parse_config(raw))


def test_an_erasure_of_a_named_colour_fits_the_label_it_names(raw):
    raw['evaluations'].append(_erasure(target='orange', label='red'))
    assert parse_config(raw).evaluations[-1].concept == 'red'


def test_control_evaluations_are_not_run_columns(ex29):
    columns = run_columns(ex29.config)
    assert 'ablated_selectivity_r2' in columns
    assert not any(c.startswith(('control-leace', 'control-mean-difference', 'control_')) for c in columns)


def test_baseline_is_reserved(raw):
    raw['evaluations'][1]['name'] = 'baseline'
    assert config_error(raw).startswith('exp.toml: evaluations.1.name: ')


@pytest.mark.parametrize(
    ('edit', 'field'),
    [
        (lambda r: r['regularizers'][1].update(layers=['bottlenek']), 'regularizers.1.layers'),
        (lambda r: r['evaluations'][2].update(layer='decoder.9'), 'evaluations.2.layer'),
        (lambda r: r['evaluations'][0].update(dims=[7]), 'evaluations.0.dims'),
        (lambda r: r['evaluations'][1].update(dims=[-1]), 'evaluations.1.dims'),
        (lambda r: r['evaluations'][0].update(dims=[1, 1]), 'evaluations.0.dims'),
        (lambda r: r['evaluations'][1].update(dims=[0, 1, 2, 3, 4]), 'evaluations.1'),  # prune would leave nothing
        (lambda r: r['evaluations'][2].update(direction=[1, 0, 0]), 'evaluations.2.direction'),
        (lambda r: r['evaluations'][2].update(falloff_a=1.0), 'evaluations.2'),  # divides by 1 − a
        (lambda r: r['regularizers'][1].update(point=[1, 0, 0, 0, 0, 0]), 'regularizers.1.point'),
        (lambda r: r['regularizers'][3].update(dims=[2, 3, 5]), 'regularizers.3.dims'),
        (lambda r: r['regularizers'][2].update(channels=[0, 5]), 'regularizers.2.channels'),
        (lambda r: r['regularizers'][4].update(layers=['bottleneck', 'encoder.0']), 'regularizers.4.point'),
        (lambda r: r['model'].update(k_bottleneck=4), 'regularizers.1.point'),  # Ex 2.9's 5-D points on a 4-D model
    ],
)
def test_config_that_does_not_fit_the_model_fails_at_load(raw, edit, field):
    edit(raw)
    assert config_error(raw).startswith(f'exp.toml: {named(field)}: ')


def test_in_range_dims_on_a_wider_model_pass(raw):
    raw['model']['k_bottleneck'] = 8
    for r in raw['regularizers']:
        if 'point' in r:
            r['point'] = r['point'] + [0, 0, 0]
    raw['evaluations'][0]['dims'] = [7]
    raw['evaluations'][2]['direction'] = [1, 0, 0, 0, 0, 0, 0, 0]
    check_layers(parse_config(raw))  # no error


LEAF_VALUES = st.one_of(
    st.integers(-3, 12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.booleans(),
    st.lists(st.integers(-3, 12), max_size=6),
    st.dictionaries(st.text(max_size=5), st.integers(-3, 3), max_size=2),
)


def _leaf_paths(node: object, path: tuple = ()) -> list[tuple]:
    if isinstance(node, dict):
        return [path] + [p for k, v in node.items() for p in _leaf_paths(v, (*path, k))]
    if isinstance(node, list):
        return [path] + [p for i, v in enumerate(node) for p in _leaf_paths(v, (*path, i))]
    return [path]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_edit_gives_a_config_or_one_line_config_error(raw, data):
    """Fuzz: replace one node of Ex 2.9 by a random value; the result loads or fails with one ConfigError line."""
    raw = copy.deepcopy(raw)
    path = data.draw(st.sampled_from([p for p in _leaf_paths(raw) if p]))
    parent = raw
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = data.draw(LEAF_VALUES)
    try:
        check_layers(parse_config(raw, source='exp.toml'), source='exp.toml')
    except ConfigError as e:
        message = str(e)
        assert '\n' not in message
        assert message.startswith('exp.toml: ')
        field = message.split(': ')[1]
        assert field.split('.')[0] in ExperimentConfig.model_fields | {'(top level)': None}, message


# Files on disk ---------------------------------------------------------------------------------


def copy_ex29(tmp_path: Path) -> Path:
    target = tmp_path / 'exp'
    target.mkdir()
    for name in ('experiment.toml', 'dopesheet.csv'):
        (target / name).write_bytes((EX29 / name).read_bytes())
    return target


def test_load_accepts_the_directory_or_the_toml(tmp_path):
    target = copy_ex29(tmp_path)
    from_dir, from_file = load_experiment(target), load_experiment(target / 'experiment.toml')
    assert from_dir.config == from_file.config
    assert from_dir.path == from_file.path == target / 'experiment.toml'
    assert from_dir.dopesheet_path == target / 'dopesheet.csv'


def test_dopesheet_is_found_relative_to_the_experiment_file(tmp_path):
    target = copy_ex29(tmp_path)
    (target / 'schedules').mkdir()
    (target / 'dopesheet.csv').rename(target / 'schedules' / 'short.csv')
    text = (
        (target / 'experiment.toml')
        .read_text()
        .replace('dopesheet = "dopesheet.csv"', 'dopesheet = "schedules/short.csv"')
    )
    (target / 'experiment.toml').write_text(text)
    assert len(load_experiment(target).dopesheet) == 3001


@pytest.mark.parametrize(
    ('break_it', 'file', 'says'),
    [
        (lambda d: (d / 'dopesheet.csv').unlink(), 'experiment.toml', 'experiment.dopesheet: '),
        (lambda d: (d / 'experiment.toml').write_text('[model\n'), 'experiment.toml', 'not valid TOML'),
        (lambda d: (d / 'experiment.toml').write_bytes(b'\xff\xfe[model]'), 'experiment.toml', 'not UTF-8'),
        (
            lambda d: (d / 'dopesheet.csv').write_text(
                (EX29 / 'dopesheet.csv').read_text().replace('\n+10,', '\nten,')
            ),
            'dopesheet.csv',
            'STEP',
        ),
        (
            lambda d: (d / 'dopesheet.csv').write_text((EX29 / 'dopesheet.csv').read_text().replace(',lr,', ',LR,')),
            'dopesheet.csv',
            "'lr'",
        ),
    ],
)
def test_file_problems_name_the_file(tmp_path, break_it, file, says):
    target = copy_ex29(tmp_path)
    break_it(target)
    with pytest.raises(ConfigError) as caught:
        load_experiment(target)
    message = str(caught.value)
    assert '\n' not in message
    assert message.startswith(str(target / file))
    assert says in message


def test_missing_experiment_path(tmp_path):
    with pytest.raises(ConfigError, match='no such experiment file'):
        load_experiment(tmp_path / 'nope')
    with pytest.raises(ConfigError, match='no such experiment file'):
        load_experiment(tmp_path)  # a directory without experiment.toml


def test_bounded_falloff_from_config_matches_the_class(ex29):
    """`build_intervention` passes a, b and power through in the right order."""
    e = ex29.config.evaluations[2].model_copy(update={'falloff_a': 0.2, 'falloff_b': 0.7, 'falloff_power': 2.0})
    falloff = build_intervention(e).apply
    x = torch.tensor([[0.6, 0.8, 0, 0, 0]])
    # g = 0.7·((0.6 − 0.2)/(1 − 0.2))² = 0.7·0.25 = 0.175 → x0 = 0.6 − 0.175·0.6 = 0.495.
    reference = Suppression(torch.tensor([1.0, 0, 0, 0, 0]), BoundedFalloff(0.2, 0.7, power=2.0))
    torch.testing.assert_close(falloff(x), reference(x))
    assert falloff(x)[0, 0].item() == pytest.approx(0.495, abs=1e-6)


# Values that would only fail in training: refused at load, with one line ----------------------


INTEGER, NUMBER = 'Input should be a valid integer', 'Input should be a valid number'


@pytest.mark.parametrize(
    ('edit', 'says'),
    [
        # `batch_size = true` used to train with batch 1, and quoted numbers were read as numbers.
        (lambda r: r['data'].update(batch_size=True), f'data.batch_size: {INTEGER} (got true, a boolean)'),
        (lambda r: r['model'].update(k_bottleneck='5'), f"model.k_bottleneck: {INTEGER} (got '5', a string)"),
        (lambda r: r['model'].update(k_bottleneck=5.0), f'model.k_bottleneck: {INTEGER} (got 5.0, a float)'),
        (lambda r: r['labels']['red'].update(power='10'), f"labels.red.power: {NUMBER} (got '10', a string)"),
        (lambda r: r['labels']['red'].update(scale=True), f'labels.red.scale: {NUMBER} (got true, a boolean)'),
        (lambda r: r['labels'].update(sea=_similarity(hsv=['0', 1, 1])), f"labels.sea.hsv.0: {NUMBER} (got '0', a"),
        (
            lambda r: r['regularizers'][1].update(labels={'red': '1.0'}),
            f"regularizers.1.labels.red (regularizer 'reg-anchor'): {NUMBER} (got '1",
        ),
        (
            lambda r: r['regularizers'][1].update(validation=1),
            "regularizers.1.validation (regularizer 'reg-anchor'): Input should be a valid",
        ),
        (
            lambda r: r['evaluations'][2].update(falloff_power=True),
            f"evaluations.2.falloff_power (evaluation 'suppressed'): {NUMBER} (got true",
        ),
        (lambda r: r['sweep'].update(best=1), 'sweep.best: Input should be a valid string (got 1, an integer)'),
    ],
)
def test_numbers_and_bools_must_be_written_as_such(raw, edit, says):
    edit(raw)
    assert config_error(raw).startswith(f'exp.toml: {says}')


def test_an_int_may_stand_for_a_float(raw):
    raw['labels']['red'].update(power=10, scale=1)
    raw['labels']['sea'] = _similarity(hsv=[0, 1, 1])
    raw['regularizers'][1]['labels'] = {'red': 1}
    raw['evaluations'][2]['falloff_b'] = 1
    config = parse_config(raw)
    assert config.labels.definitions['red'].power == 10.0
    assert config.labels.definitions['sea'].hsv == [0.0, 1.0, 1.0]


@pytest.mark.parametrize('seed', [-5, -1, 2**63, 10**19])
def test_a_seed_outside_63_bits_is_refused(raw, seed):
    raw['experiment']['seed'] = seed
    assert config_error(raw) == (
        f'exp.toml: experiment.seed: {seed} is out of range; expected a whole number in [0, 2**63) '
        '(0 to 9223372036854775807)'
    )


@pytest.mark.parametrize('seed', [0, 2**63 - 1])
def test_seeds_at_the_ends_of_the_range_are_fine(raw, seed):
    raw['experiment']['seed'] = seed
    assert parse_config(raw).experiment.seed == seed


def test_a_negative_affinity_is_refused(raw):
    raw['regularizers'][3]['labels'] = {'desaturated': 1.0, 'red': -1}
    assert config_error(raw) == (
        "exp.toml: regularizers.3.labels.red (regularizer 'reg-planar-d'): affinity -1.0 is negative; "
        'expected a number >= 0 '
        "(a sample's weight is clamp(Σ label × affinity, 0, 1))"
    )


def test_affinities_of_zero_and_above_one_are_fine(raw):
    raw['regularizers'][1]['labels'] = {'red': 2.5, 'vibrant': 0}  # weights are clamped to [0, 1]
    check_layers(parse_config(raw))  # no error


@pytest.mark.parametrize(
    ('edit', 'field'),
    [
        (lambda r: r['regularizers'][1].update(point=[0, 0, 0, 0, 0]), 'regularizers.1.point'),  # angular-anchor
        (lambda r: r['regularizers'][4].update(point=[0.0, -0.0, 0, 0, 0]), 'regularizers.4.point'),  # anti-anchor
        (lambda r: r['evaluations'][2].update(direction=[0, 0, 0, 0, 0]), 'evaluations.2.direction'),
    ],
)
def test_a_direction_of_zeros_is_refused(raw, edit, field):
    edit(raw)
    message = config_error(raw)
    assert message.startswith(f'exp.toml: {named(field)}: [')
    assert message.endswith('is all zeros, so it has no direction; expected at least one non-zero component')


def test_a_euclidean_anchor_at_the_origin_is_fine(raw):
    raw['regularizers'][1].update(kind='anchor', point=[0, 0, 0, 0, 0])  # ‖x − 0‖²: a position, not a direction
    check_layers(parse_config(raw))  # no error


def test_a_component_float32_cannot_hold_is_refused(raw):
    raw['evaluations'][2]['direction'] = [1e39, 0, 0, 0, 0]  # finite in TOML, inf as the float32 tensor
    assert config_error(raw) == (
        "exp.toml: evaluations.2.direction (evaluation 'suppressed'): component 0 (1e+39) overflows float32; "
        'expected components of magnitude <= 3.403e+38'
    )


def test_a_training_cube_over_the_limit_is_refused(raw):
    raw['data'].update(hues=3600, saturations=1000, values=1000)  # each within its own range
    assert config_error(raw) == (
        'exp.toml: data: data.hues × data.saturations × data.values = 3600 × 1000 × 1000 = 3,600,000,000 '
        'training colours; expected at most 10,000,000'
    )
    raw['data'].update(hues=1000, saturations=100, values=100)  # exactly the limit
    assert parse_config(raw).data.hues == 1000


def test_a_byte_order_mark_before_the_toml_is_accepted(tmp_path):
    target = copy_ex29(tmp_path)
    toml = target / 'experiment.toml'
    toml.write_bytes(b'\xef\xbb\xbf' + toml.read_bytes())  # as Windows editors save UTF-8
    assert load_experiment(target).config == load_experiment(EX29).config


def test_a_toml_integer_too_long_for_python_is_a_config_error(tmp_path):
    target = copy_ex29(tmp_path)
    (target / 'experiment.toml').write_text('seed = ' + '9' * 5000 + '\n')  # int() refuses > 4300 digits
    with pytest.raises(ConfigError) as caught:
        load_experiment(target)
    message = str(caught.value)
    assert '\n' not in message
    assert message.startswith(f'{target / "experiment.toml"}: not valid TOML: ')


def _load_without_blocking(target: Path, fifo: Path | None = None) -> str:
    """The ConfigError message of `load_experiment(target)`, failing (not hanging) if it blocks on `fifo`."""
    outcome: list[BaseException | None] = []

    def load() -> None:
        try:
            load_experiment(target)
            outcome.append(None)
        except BaseException as e:  # handed to the test thread
            outcome.append(e)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(timeout=20)
    if thread.is_alive():  # blocked opening the FIFO: open its other end to let the thread go, then fail
        if fifo is not None:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f'load_experiment blocked on {fifo}')
    assert outcome and isinstance(outcome[0], ConfigError), outcome
    message = str(outcome[0])
    assert '\n' not in message
    return message


def _dopesheet_at(target: Path, where: str) -> None:
    toml = target / 'experiment.toml'
    toml.write_text(toml.read_text().replace('dopesheet = "dopesheet.csv"', f'dopesheet = "{where}"'))


def test_a_dopesheet_that_is_a_directory_says_so(tmp_path):
    target = copy_ex29(tmp_path)
    _dopesheet_at(target, '.')
    assert _load_without_blocking(target) == (
        f"{target / 'experiment.toml'}: experiment.dopesheet: '{target}' is a directory; "
        'expected a CSV file (relative to the experiment file)'
    )


@pytest.mark.skipif(not hasattr(os, 'mkfifo'), reason='needs FIFOs')
def test_a_dopesheet_that_is_a_fifo_says_so_without_waiting_for_a_writer(tmp_path):
    target = copy_ex29(tmp_path)
    fifo = target / 'dopesheet.csv'
    fifo.unlink()
    os.mkfifo(fifo)
    assert _load_without_blocking(target, fifo) == (
        f"{target / 'experiment.toml'}: experiment.dopesheet: '{fifo}' is not a regular file (it is a FIFO); "
        'expected a CSV file (relative to the experiment file)'
    )


@pytest.mark.skipif(not Path('/dev/zero').exists(), reason='needs /dev/zero')
def test_a_dopesheet_that_is_a_device_is_not_read(tmp_path):
    target = copy_ex29(tmp_path)
    _dopesheet_at(target, '/dev/zero')  # read whole, it would never end
    assert _load_without_blocking(target) == (
        f"{target / 'experiment.toml'}: experiment.dopesheet: '/dev/zero' is not a regular file "
        '(it is a character device); expected a CSV file (relative to the experiment file)'
    )


@pytest.mark.skipif(not hasattr(os, 'mkfifo'), reason='needs FIFOs')
def test_an_experiment_file_that_is_a_fifo_says_so(tmp_path):
    target = copy_ex29(tmp_path)
    fifo = target / 'experiment.toml'
    fifo.unlink()
    os.mkfifo(fifo)
    assert _load_without_blocking(target, fifo) == (
        f'{fifo}: is not a regular file (it is a FIFO); expected a directory holding experiment.toml or a .toml'
    )


@pytest.mark.parametrize(
    ('old', 'new', 'says'),
    [
        ('\n1000,,,0.1,', '\n1000,,,-0.1,', "row 4 (line 5), column 'lr': the learning rate, -0.1, is negative"),
        (
            '\n1000,,,0.1,0.01,0.05,',
            '\n1000,,,0.1,0.01,1e308,',  # finite, but weight × term overflows
            "row 4 (line 5), column 'reg-anchor': the weight of regularizer 'reg-anchor', 1e+308, is above the limit",
        ),
        (
            '\n3000,,,0.05,0,0,0,0,0,0',
            '\n3000,,,0.05,0,0,0,0,-0.5,0',
            "row 6 (line 7), column 'reg-anti-anchor': the weight of regularizer 'reg-anti-anchor', -0.5, is negative",
        ),
    ],
)
def test_learning_rates_and_weights_out_of_range_name_row_and_column(tmp_path, old, new, says):
    target = copy_ex29(tmp_path)
    sheet = target / 'dopesheet.csv'
    text = sheet.read_text()
    assert text.count(old) == 1
    sheet.write_text(text.replace(old, new))
    with pytest.raises(ConfigError) as caught:
        load_experiment(target)
    assert str(caught.value) == f'{sheet}, {says}: expected a number from 0 to 1,000,000'


def test_an_ignored_dopesheet_column_is_not_range_checked(tmp_path):
    target = copy_ex29(tmp_path)
    sheet = target / 'dopesheet.csv'
    sheet.write_text(sheet.read_text().replace('\n1000,,,0.1,0.01,0.05,0.01,', '\n1000,,,0.1,0.01,0.05,-7,'))
    assert len(load_experiment(target).dopesheet) == 3001  # reg-planar-v matches no regularizer


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_ex29_runs_without_a_warning_about_the_column_it_declares_unused(tmp_path, caplog):
    """The seed's sheet keys reg-planar-v, which nothing reads: unused_columns notes it once at info level."""
    from ex_color.cli import main

    with caplog.at_level(logging.INFO):
        assert main(['run', str(EX29), '--steps', '3', '--out', str(tmp_path / 'run'), '--no-report']) == 0
    assert not any('reg-planar-v' in message for message in _warnings(caplog))
    notes = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and 'reg-planar-v' in r.getMessage()]
    assert notes == ["Dopesheet column 'reg-planar-v' is declared unused and left out"]


def test_the_unused_column_note_does_not_come_before_a_bad_input_error(tmp_path, capsys):
    """The note is made when training starts: a refusal of the same experiment is still one line."""
    from ex_color.cli import main

    assert main(['run', str(EX29), '--seed', '-1', '--out', str(tmp_path / 'run'), '--no-report']) == 2
    err = capsys.readouterr().err.strip()
    assert 'reg-planar-v' not in err and len(err.splitlines()) == 1, err


def test_a_declared_unused_column_is_left_out_of_the_schedule(caplog):
    from ex_color.training.schedule import TrainingSchedule

    experiment = load_experiment(EX29)
    assert experiment.config.experiment.unused_columns == ['reg-planar-v']
    assert 'reg-planar-v' not in experiment.dopesheet.props
    assert len(experiment.dopesheet) == 3001 and experiment.dopesheet.phases == {'Train'}
    with caplog.at_level(logging.INFO):
        TrainingSchedule.from_dopesheet(experiment.dopesheet, build_regularizers(experiment.config))
    assert _warnings(caplog) == []


def test_an_undeclared_non_zero_column_that_matches_nothing_still_warns(tmp_path, caplog):
    from ex_color.training.schedule import TrainingSchedule

    target = copy_ex29(tmp_path)
    toml = target / 'experiment.toml'
    toml.write_text(toml.read_text().replace('unused_columns = ["reg-planar-v"]', ''))
    experiment = load_experiment(target)
    with caplog.at_level(logging.INFO):
        TrainingSchedule.from_dopesheet(experiment.dopesheet, build_regularizers(experiment.config))
    assert _warnings(caplog) == ["Dopesheet column 'reg-planar-v' matches no regularizer and is ignored"]


@pytest.mark.parametrize(
    ('columns', 'says'),
    [
        ('["reg-planar-x"]', "'reg-planar-x' is not a column of"),
        ('["lr"]', "'lr' is the learning rate, so it is used; expected columns that nothing reads"),
        ('["reg-unit"]', "'reg-unit' is the weight of regularizer 'reg-unit', so it is used"),
        ('["reg-planar-v", "reg-planar-v"]', 'repeats a column; expected each column once'),
    ],
)
def test_unused_columns_must_be_columns_nothing_reads(tmp_path, columns, says):
    target = copy_ex29(tmp_path)
    toml = target / 'experiment.toml'
    toml.write_text(toml.read_text().replace('unused_columns = ["reg-planar-v"]', f'unused_columns = {columns}'))
    with pytest.raises(ConfigError, match=r'experiment\.unused_columns: ') as caught:
        load_experiment(target)
    assert says in str(caught.value)
    assert '\n' not in str(caught.value)


# --- complement labels and regularizers that can never apply ---


def test_a_complement_label_names_a_declared_label(raw):
    raw['regularizers'][4]['labels'] = {'~red': 1.0}  # the anti-anchor for every sample that is not red
    config = parse_config(raw)
    anti = build_regularizers(config)[4]
    assert anti.label_affinities == {'~red': 1.0}
    red = torch.tensor([1.0, 0.0, 0.25])
    from ex_color.loss import label_weights

    assert torch.equal(label_weights(anti.label_affinities, {'red': red}), torch.tensor([0.0, 1.0, 0.75]))


@pytest.mark.parametrize(
    ('labels', 'says'),
    [
        (
            {'~redd': 1.0},
            "regularizers.1.labels.~redd (regularizer 'reg-anchor'): the complement of label 'redd', which is not "
            'declared',
        ),
        (
            {'~~red': 1.0},
            "regularizers.1.labels.~~red (regularizer 'reg-anchor'): label key '~~red' is a complement of a complement",
        ),
        ({'~': 1.0}, "regularizers.1.labels.~ (regularizer 'reg-anchor'): label key '~' names no label"),
    ],
)
def test_a_malformed_complement_names_the_field(raw, labels, says):
    raw['regularizers'][1]['labels'] = labels
    assert config_error(raw).startswith(f'exp.toml: {says}')


def test_a_label_name_may_not_start_with_the_complement_mark(raw):
    raw['labels']['~red'] = raw['labels'].pop('red')
    raw['evaluations'] = raw['evaluations'][:0]
    del raw['sweep']
    assert config_error(raw).startswith("exp.toml: labels.~red: a label name may not start with '~'")


def _write(tmp_path: Path, raw: dict) -> Path:
    target = copy_ex29(tmp_path)
    (target / 'experiment.toml').write_text(tomli_w.dumps(raw))
    return target


def _without_red_evaluations(raw: dict) -> None:
    """Keep only the anchor-free parts that an off red label would otherwise trip (sweep columns, erasures)."""
    raw['evaluations'] = raw['evaluations'][:3]
    del raw['sweep']


@pytest.mark.parametrize(
    ('edit', 'says'),
    [
        (
            lambda r: r['labels']['red'].update(scale=0),
            "regularizers.1.labels: regularizer 'reg-anchor' never applies: its labels ['red'] are all off (scale 0)",
        ),
        (
            lambda r: r['regularizers'][1].update(labels={'~red': 1.0}) or r['labels']['red'].update(scale=0),
            "regularizers.1.labels: regularizer 'reg-anchor' never applies: its labels ['red'] are all off",
        ),
        (
            lambda r: r['regularizers'][1].update(labels={'red': 0.0}),
            "regularizers.1.labels: regularizer 'reg-anchor' never applies: with affinities {'red': 0.0}",
        ),
        (  # a probability of 1 for every colour: its complement is never drawn
            lambda r: (
                r['labels']['desaturated'].update(power=0, scale=1)
                or r['regularizers'][3].update(labels={'~desaturated': 1.0})
            ),
            "regularizers.3.labels: regularizer 'reg-planar-d' never applies: with affinities {'~desaturated': 1.0}",
        ),
    ],
)
def test_strict_loading_refuses_a_regularizer_that_never_applies(tmp_path, raw, edit, says):
    _without_red_evaluations(raw)
    edit(raw)
    target = _write(tmp_path, raw)
    load_experiment(target)  # not strict: it loads (a switched-off label is a warning)
    with pytest.raises(ConfigError) as caught:
        load_experiment(target, strict=True)
    message = str(caught.value)
    assert message.startswith(f'{target / "experiment.toml"}: {says}'), message
    assert '\n' not in message


def test_strict_loading_accepts_ex29_and_a_complement(tmp_path, raw):
    load_experiment(EX29, strict=True)
    raw['regularizers'][4]['labels'] = {'~red': 1.0}
    load_experiment(_write(tmp_path, raw), strict=True)


def test_the_command_line_refuses_a_regularizer_that_never_applies(tmp_path, raw, capsys):
    from ex_color import cli

    _without_red_evaluations(raw)
    raw['labels']['red']['scale'] = 0
    target = _write(tmp_path, raw)
    code = cli.main(['run', str(target), '--steps', '2', '--out', str(tmp_path / 'run'), '--no-report'])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith(f'ex-color: error: {target / "experiment.toml"}: regularizers.1.labels: ')
    assert "'reg-anchor' never applies" in err[-1]
    assert not (tmp_path / 'run').exists()  # refused before anything was trained or written


def test_strict_loading_still_names_a_term_that_does_not_build(tmp_path, raw):
    """The strict check builds the regularizers, so it runs after the checks that name a term that cannot be built."""
    raw['regularizers'][2]['power'] = 0.0
    with pytest.raises(
        ConfigError,
        match=r"experiment.toml: regularizers.2 \(regularizer 'reg-separate'\): Separate: power must be > 0",
    ):
        load_experiment(_write(tmp_path, raw), strict=True)
