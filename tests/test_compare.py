"""Prepared vs control and routed: models train in one ensemble as they would alone, every method is measured,
an interrupted comparison continues without retraining, and the summary's intervals are right."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import ex_color.compare as compare_module
from ex_color.compare import FIGURES, ROW_COLUMNS, run_compare, summarise, train_models
from ex_color.config import ConfigError, load_experiment, parse_config
from ex_color.evaluation import evaluate, measure_removal, target_similarity
from ex_color.experiment import train_seeds
from ex_color.statistics import bootstrap_interval
from ex_color.training.engine import EngineOptions, TrainingInterrupted
from ex_color.workdir import DirectoryError

from .cli import assert_one_line_error, run_cli

EXPERIMENT = Path(__file__).resolve().parents[1] / 'experiments' / 'ex-2.9'
STEPS = 80
METHODS = [
    'baseline',
    'ablated',
    'pruned',
    'suppressed',
    'control',
    'control-leace',
    'control-mean-difference',
    'control-leace-raw',
    'routed',
    'routed-ablated',
    'routed-pruned',
    'routed-leace',
]


@pytest.fixture(scope='module')
def experiment():
    return load_experiment(EXPERIMENT)


@pytest.fixture(scope='module')
def compared(experiment, tmp_path_factory):
    out = tmp_path_factory.mktemp('compare') / 'compare'
    return run_compare(experiment, [0, 1], out=out, chunk=2, steps=STEPS, progress=False)


def _parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in model.state_dict().items()}


def _alone(config, entry):
    """The config of one [[models]] entry trained as the prepared model: its regularizers only, and its route."""
    raw = config.model_dump(mode='json', exclude_none=True)
    raw['regularizers'] = [r.model_dump(exclude_none=True) for r in config.regularizers if r.name in entry.keep]
    raw['evaluations'] = []
    raw.pop('sweep', None)
    raw.pop('search', None)
    raw['models'] = [{'name': 'prepared', **({'route': entry.route.model_dump()} if entry.route else {})}]
    return parse_config(raw)


def test_every_model_trains_in_the_ensemble_as_it_would_alone(experiment):
    config = experiment.config
    trained = train_models(config, experiment.dopesheet, [3], steps=STEPS, options=EngineOptions(progress=False))
    assert list(trained) == ['prepared', 'control', 'routed']
    alone = {'prepared': train_seeds(config, experiment.dopesheet, [3], steps=STEPS).models[0]}
    for entry in config.compared_models():
        alone[entry.name] = train_seeds(_alone(config, entry), experiment.dopesheet, [3], steps=STEPS).models[0]
    for name, lone in alone.items():
        for key, value in _parameters(lone).items():
            assert torch.equal(_parameters(trained[name][0])[key], value), (name, key)
    weights = {name: _parameters(models[0])['encoder.0.weight'] for name, models in trained.items()}
    assert not torch.allclose(weights['prepared'], weights['control'])
    assert not torch.allclose(weights['routed'], weights['control'])  # routing changed what it learnt


def test_compare_writes_a_row_per_seed_and_method(compared):
    directory = compared.directory
    table = pd.read_csv(directory / 'compare.csv')
    assert list(table.columns) == list(ROW_COLUMNS)
    assert list(table['method']) == METHODS * 2
    assert list(table['seed']) == [0] * 12 + [1] * 12
    models = dict(zip(table['method'], table['model'], strict=False))
    assert [models[m] for m in METHODS] == ['prepared'] * 4 + ['control'] * 4 + ['routed'] * 4
    # Every method of a model shares that model's untouched median error.
    for _key, group in table.groupby(['seed', 'model']):
        untouched = group[group['kind'] == 'baseline']['mse_median'].item()
        assert (group['baseline_median'] == untouched).all()
    hue = pd.read_csv(directory / 'hue_error.csv')
    assert len(hue) == 2 * 12 * 240 and hue['hue'].max() == pytest.approx(358.5)
    summary = pd.read_csv(directory / 'summary.csv')
    assert list(summary['method']) == METHODS
    facts = json.loads((directory / 'compare.json').read_text())
    assert facts['seeds'] == [0, 1] and facts['models']['control']['keep'] == ['reg-unit', 'reg-separate']
    assert facts['models']['routed']['route'] == {
        'layer': 'bottleneck',
        'dims': [0],
        'labels': {'red': 1.0},
        'others': True,
    }
    leace = facts['methods']['control-leace']
    assert (leace['kind'], leace['label'], leace['renormalize']) == ('leace', 'red', True)
    assert 'rank' not in leace and 'direction' not in facts['methods']['control-mean-difference']  # per seed
    assert facts['failed'] == {}
    state = torch.load(directory / 'seeds' / 'seed-1.pt', weights_only=False)
    assert (
        state['edits']['control-leace']['rank'] == 1
        and len(state['edits']['control-mean-difference']['direction']) == 5
    )


def test_rows_are_the_figures_of_the_saved_models(experiment, compared):
    """Reload seed 1's saved control, refit its erasure and measure it again: the row's figures, exactly."""
    from ex_color.config import build_model
    from ex_color.variants import build_variants

    state = torch.load(compared.directory / 'seeds' / 'seed-1.pt', weights_only=False)
    prepared, control = build_model(experiment.config), build_model(experiment.config)
    prepared.load_state_dict(state['models']['prepared'])
    control.load_state_dict(state['models']['control'])
    row = compared.table.set_index(['seed', 'method']).loc[(1, 'control-leace')]
    variant = build_variants(prepared, experiment.config, {'control': control})['control-leace']
    evaluation = evaluate(variant.model, variant.interventions, variant.targets)
    removal = measure_removal(variant.model, variant.interventions, variant.targets)
    assert row['selectivity_r2'] == evaluation.selectivity_r2
    assert row['target_error'] == removal.target_error
    assert row['collateral_max'] == removal.collateral_max


def test_collateral_is_over_grid_colours_far_from_the_target(experiment):
    from ex_color.config import build_model, build_targets
    from ex_color.evaluation import per_colour_error, selectivity_grid, selectivity_grid_rgb

    torch.manual_seed(0)
    model = build_model(experiment.config).eval()  # eval: outputs clamped to valid colours, as evaluation runs it
    targets = build_targets(experiment.config, experiment.config.evaluations[0])
    removal = measure_removal(model, [], targets)
    grid = selectivity_grid()
    with torch.no_grad():
        error = per_colour_error(model(grid), grid).numpy()
    far = target_similarity(selectivity_grid_rgb(), targets) < 0.2
    assert 0 < far.sum() < len(far)
    assert removal.collateral_max == pytest.approx(float(error[far].max()), rel=1e-6)
    assert removal.collateral_median == pytest.approx(float(np.median(error[far])), rel=1e-6)
    with torch.no_grad():
        red_error = per_colour_error(model(torch.tensor([[1.0, 0.0, 0.0]])), torch.tensor([[1.0, 0.0, 0.0]]))
    assert removal.target_error == pytest.approx(float(red_error), rel=1e-6)


def test_interrupted_compare_continues_without_retraining(experiment, compared, tmp_path: Path, monkeypatch):
    real_chunk = compare_module.compare_chunk
    calls: list[list[int]] = []

    def interrupt_second_chunk(config, dopesheet, seeds, **kwargs):
        calls.append(list(seeds))
        if len(calls) == 2:
            raise TrainingInterrupted('interrupted by the test')
        return real_chunk(config, dopesheet, seeds, **kwargs)

    monkeypatch.setattr(compare_module, 'COMPARE', replace(compare_module.COMPARE, train_chunk=interrupt_second_chunk))
    out = tmp_path / 'compare'
    with pytest.raises(TrainingInterrupted):
        run_compare(experiment, [0, 1], out=out, chunk=1, steps=STEPS, progress=False)
    assert calls == [[0], [1]]
    assert (out / 'seeds' / 'seed-0.pt').exists() and not (out / 'seeds' / 'seed-1.pt').exists()

    calls.clear()
    again = run_compare(experiment, [0, 1], out=out, chunk=1, steps=STEPS, progress=False)
    assert calls == [[1]]  # seed 0 was not retrained
    pd.testing.assert_frame_equal(again.table, compared.table)
    pd.testing.assert_frame_equal(again.summary, compared.summary)


def test_a_kill_between_the_tables_and_compare_json_is_refused_until_the_command_runs_again(
    experiment, compared, tmp_path: Path, monkeypatch
):
    """Four files cannot be replaced at once: the manifest records their SHA-256 after the last, and a report of
    files from two comparisons (here: seed 0's tables beside seeds 0–1's compare.json) is refused in one line."""
    from ex_color.comparedir import CompareFacts
    from ex_color.rundir import RunArtifactsError
    from ex_color.vis.compare_report import load_comparison

    out = tmp_path / 'compare'
    shutil.copytree(compared.directory, out)
    assert load_comparison(out).facts.seeds == [0, 1]

    def killed(self, directory):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(CompareFacts, 'write', killed)
        with pytest.raises(KeyboardInterrupt):
            run_compare(experiment, [0], out=out, steps=STEPS, progress=False)
    assert json.loads((out / 'compare.json').read_text())['seeds'] == [0, 1]  # the old facts beside new tables
    with pytest.raises(RunArtifactsError, match=r'compare\.csv: not the file that was written with this directory'):
        load_comparison(out)
    line = assert_one_line_error(run_cli('report', out))
    assert 'run the same ex-color compare again' in line

    run_compare(experiment, [0], out=out, steps=STEPS, progress=False)
    assert load_comparison(out).facts.seeds == [0]


def test_compare_refuses_another_experiments_directory(experiment, compared):
    with pytest.raises(DirectoryError):
        run_compare(experiment, [0, 1], out=compared.directory, chunk=2, steps=STEPS + 1, progress=False)


def test_compare_needs_a_model_to_compare_with(experiment, tmp_path: Path):
    raw = experiment.config.model_dump(mode='json', exclude_none=True)
    raw.pop('models')
    raw['evaluations'] = [e for e in raw['evaluations'] if e['model'] == 'prepared']
    (tmp_path / 'experiment.toml').write_text(_toml(raw))
    (tmp_path / 'dopesheet.csv').write_bytes(experiment.dopesheet_path.read_bytes())
    with pytest.raises(ConfigError, match=r'compare needs a model .* add a \[\[models\]\] table'):
        run_compare(load_experiment(tmp_path), [0], out=tmp_path / 'out', steps=5, progress=False)
    proc = run_cli('compare', tmp_path, '--seeds', '0', '--steps', '5', '--out', tmp_path / 'o', cwd=tmp_path)
    assert '[[models]]' in assert_one_line_error(proc)


def _toml(raw: dict) -> str:
    import tomli_w

    return tomli_w.dumps(raw)


def test_bootstrap_interval_by_hand():
    assert bootstrap_interval(np.array([0.3, 0.3, 0.3])) == (pytest.approx(0.3), pytest.approx(0.3))
    # Means of resamples of {0, 1} (n = 2) are 0, ½ or 1 with chances ¼, ½, ¼: the 95% interval is [0, 1].
    assert bootstrap_interval(np.array([0.0, 1.0])) == (0.0, 1.0)
    # Large n: the interval is close to mean ± 1.96·sd/√n.
    values = np.random.default_rng(1).normal(size=400)
    low, high = bootstrap_interval(values)
    half = 1.96 * values.std() / np.sqrt(len(values))
    assert low == pytest.approx(values.mean() - half, abs=0.02) and high == pytest.approx(
        values.mean() + half, abs=0.02
    )


def test_summary_means_and_intervals_per_method():
    table = pd.DataFrame(
        [
            {
                'seed': s,
                'method': m,
                'model': 'prepared',
                'kind': 'ablate',
                'targets': 'red',
                **dict.fromkeys(FIGURES, v),
            }
            for s, (a, b) in enumerate([(1.0, 5.0), (3.0, 5.0)])
            for m, v in (('a', a), ('b', b))
        ]
    )
    summary = summarise(table).set_index('method')
    assert summary.loc['a', 'target_error_mean'] == 2.0 and summary.loc['a', 'seeds'] == 2
    assert (summary.loc['a', 'target_error_low'], summary.loc['a', 'target_error_high']) == (1.0, 3.0)
    assert summary.loc['b', 'collateral_max_low'] == summary.loc['b', 'collateral_max_high'] == 5.0


def test_a_seed_file_of_other_work_is_refused_before_training(experiment, compared, tmp_path: Path, monkeypatch):
    import shutil

    from ex_color.rundir import RunArtifactsError

    out = tmp_path / 'compare'
    shutil.copytree(compared.directory, out)
    trained: list[list[int]] = []
    monkeypatch.setattr(
        compare_module,
        'COMPARE',
        replace(compare_module.COMPARE, train_chunk=lambda config, dopesheet, seeds, **kw: trained.append(seeds)),
    )
    shutil.copy(out / 'seeds' / 'seed-0.pt', out / 'seeds' / 'seed-1.pt')  # seed 0's results, filed as seed 1
    with pytest.raises(RunArtifactsError, match=r'seed-1.pt: holds the results of seed 0; remove it'):
        run_compare(experiment, [0, 1, 2], out=out, chunk=2, steps=STEPS, progress=False)
    torch.save({'a': 1}, out / 'seeds' / 'seed-1.pt')
    with pytest.raises(RunArtifactsError, match=r'seed-1.pt: not a seed file of ex-color compare'):
        run_compare(experiment, [0, 1, 2], out=out, chunk=2, steps=STEPS, progress=False)
    state = torch.load(out / 'seeds' / 'seed-0.pt', weights_only=False)
    state['identity'] = {**state['identity'], 'steps': STEPS + 5}  # a seed from a --steps 85 comparison
    torch.save(state, out / 'seeds' / 'seed-0.pt')
    with pytest.raises(RunArtifactsError, match=r'seed-0.pt: holds the results of another experiment'):
        run_compare(experiment, [0], out=out, chunk=2, steps=STEPS, progress=False)
    assert trained == []


def test_an_erasure_that_cannot_be_fitted_leaves_that_seeds_figures_empty(experiment, monkeypatch):
    from ex_color.config import build_model

    real = compare_module.build_variants

    def collapse_the_control_leace(prepared, config, others, *, failures):
        variants = real(prepared, config, others, failures=failures)
        failures['control-leace'] = 'evaluation control-leace: the activations are the same for every sample'
        variants.pop('control-leace')
        return variants

    monkeypatch.setattr(compare_module, 'build_variants', collapse_the_control_leace)
    torch.manual_seed(0)
    models = {name: build_model(experiment.config) for name in ('prepared', 'control', 'routed')}
    comparison = compare_module.assess_models(4, models, experiment.config)
    rows = {row['method']: row for row in comparison.rows}
    assert list(rows) == METHODS
    assert np.isnan(rows['control-leace']['target_error']) and not np.isnan(
        rows['control-mean-difference']['target_error']
    )
    table = pd.DataFrame(comparison.rows + [dict(r, seed=5) for r in rows.values() if r['method'] != 'control-leace'])
    summary = summarise(table.sort_values('seed', kind='stable')).set_index('method')
    assert (summary.loc['control-leace', 'seeds'], summary.loc['control-leace', 'failed']) == (0, 1)
    assert (summary.loc['ablated', 'seeds'], summary.loc['ablated', 'failed']) == (2, 0)


def test_a_method_removes_its_target_only_well_above_the_untouched_models_error(experiment):
    from ex_color.compare import comparison_facts

    def summary(untouched: float, edited: float) -> pd.DataFrame:
        rows = [('baseline', 'prepared', 'baseline', untouched), ('ablated', 'prepared', 'ablate', edited)]
        rows += [('control', 'control', 'baseline', 1e-5), ('control-leace', 'control', 'leace', 0.3)]
        return pd.DataFrame(
            [
                {
                    'method': m,
                    'model': model,
                    'kind': kind,
                    'targets': 'red',
                    'target_error_mean': e,
                    'collateral_max_mean': 0.01,
                    'collateral_median_mean': 0.001,
                    'baseline_median_mean': 1e-5,
                }
                for m, model, kind, e in rows
            ]
        )

    trained = comparison_facts(experiment, [0], summary(untouched=1e-4, edited=0.3), {})
    assert trained.removes == ['ablated', 'control-leace']
    barely_trained = comparison_facts(experiment, [0], summary(untouched=0.35, edited=0.4), {})
    assert barely_trained.removes == ['control-leace']  # 0.4 is not 10x the untouched 0.35


def test_only_methods_with_the_baselines_targets_are_ranked(experiment):
    """Collateral is measured away from each method's own targets: a method removing cyan is not ranked with red's."""
    from ex_color.compare import comparison_facts

    rows = [
        ('baseline', 'prepared', 'baseline', 'red', 1e-4, 0.01),
        ('ablated', 'prepared', 'ablate', 'red', 0.3, 0.02),
        ('control-leace', 'control', 'leace', 'red', 0.3, 0.03),
        ('cyan-ablated', 'prepared', 'ablate', 'cyan', 0.3, 0.001),  # the least collateral, of another target
        ('control', 'control', 'baseline', 'red', 1e-4, 0.01),
    ]
    summary = pd.DataFrame(
        [
            {
                'method': m,
                'model': model,
                'kind': kind,
                'targets': targets,
                'target_error_mean': error,
                'collateral_max_mean': collateral,
                'collateral_median_mean': collateral / 10,
                'baseline_median_mean': 1e-5,
            }
            for m, model, kind, targets, error, collateral in rows
        ]
    )
    facts = comparison_facts(experiment, [0], summary, {})
    assert facts.removes == ['ablated', 'control-leace', 'cyan-ablated']
    assert facts.compared_targets == 'red'
    assert facts.other_targets == ['cyan-ablated']
    assert facts.least_collateral == 'ablated'


def _linear_r2(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Weighted least-squares r² of y on x (with an intercept): how much of y a linear read-out recovers."""
    from sklearn.linear_model import LinearRegression

    fit = LinearRegression().fit(x, y, sample_weight=w)
    return float(fit.score(x, y, sample_weight=w))


def test_leace_leaves_no_linear_trace_and_renormalising_lets_some_back(experiment, compared):
    """What the decoder reads after LEACE on a trained control: nothing linear about red without
    renormalisation; with it (a nonlinear step) a linear read-out recovers more than before erasure."""
    from ex_color.config import build_labels, build_model, training_cube
    from ex_color.data.cube_sampler import cube_training_tensors
    from ex_color.inference import infer
    from ex_color.variants import build_variants

    state = torch.load(compared.directory / 'seeds' / 'seed-0.pt', weights_only=False)
    prepared, control = build_model(experiment.config), build_model(experiment.config)
    prepared.load_state_dict(state['models']['prepared'])
    control.load_state_dict(state['models']['control'])
    samples = cube_training_tensors(training_cube(experiment.config))
    red = build_labels(experiment.config)['red'].probabilities(samples.colors).numpy()
    weights = samples.weights.numpy()
    variants = build_variants(prepared, experiment.config, {'control': control})

    def read(variant: str) -> np.ndarray:
        v = variants[variant]
        return infer(v.model, samples.colors, v.interventions, capture_layers=['bottleneck']).captured['bottleneck']

    before = _linear_r2(read('control').numpy(), red, weights)
    raw = _linear_r2(read('control-leace-raw').numpy(), red, weights)
    renormalised = _linear_r2(read('control-leace').numpy(), red, weights)
    assert before > 0.01  # there was something to erase
    assert raw < 1e-6  # LEACE's guarantee, for exactly what the decoder reads
    assert renormalised > raw + 0.01  # renormalising lets a linear trace back (documented in compare.md)
