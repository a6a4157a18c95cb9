"""The digits example (examples/digits/digits.py), trained on a 200-step schedule for one seed."""

from __future__ import annotations

import csv
import importlib.util
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip('sklearn', reason="the digits example needs scikit-learn (pip install 'ex-color[digits]')")

pytestmark = [
    # Lightning's advice about dataloader workers and logging intervals is noise for a short run.
    pytest.mark.filterwarnings('ignore::UserWarning:lightning.*'),
]

EXAMPLE = Path(__file__).resolve().parents[2] / 'examples' / 'digits' / 'digits.py'
SHORT_STEPS = 200


def _import_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location('digits_example', EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


digits = _import_example()


@pytest.fixture(autouse=True)
def _restore_globals() -> Iterator[None]:
    """Training and `main` set torch's threads and logger levels; put them back for the rest of the suite."""
    threads = torch.get_num_threads()
    names = ('lightning', 'lightning.pytorch', 'lightning.fabric', 'ex_color')
    levels = {name: logging.getLogger(name).level for name in names}
    torch.set_num_threads(1)  # a tiny model: one thread is fastest and leaves the other core alone
    yield
    torch.set_num_threads(threads)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture(scope='module')
def data():
    return digits.load_data()


@pytest.fixture(scope='module')
def trained(data):
    """(result, model, ablated) for seed 0 on the schedule squeezed to SHORT_STEPS steps."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return digits.run_seed(0, data, digits.load_dopesheet(SHORT_STEPS))
    finally:
        torch.set_num_threads(threads)


def test_split_is_stratified_and_disjoint(data) -> None:
    assert data.x_train.shape[1] == data.x_test.shape[1] == 64
    assert len(data.x_train) + len(data.x_test) == 1797
    counts = torch.bincount(data.y_test, minlength=10)
    assert counts.min() >= 40  # about a quarter of each digit's ~180 images
    assert float(data.x_train.min()) >= 0.0 and float(data.x_train.max()) <= 1.0
    # No held-out image is also a training image.
    distances = torch.cdist(data.x_test, data.x_train)  # [M, N]
    assert float(distances.min(dim=1).values.min()) > 0


def test_scaled_dopesheet_keeps_its_shape() -> None:
    full = digits.load_dopesheet()
    short = digits.load_dopesheet(SHORT_STEPS)
    assert len(short) == SHORT_STEPS
    for prop in full.props:
        # Same start and end values; the midpoint of the squeezed sheet matches the full one's within rounding.
        assert short.value(prop, 0) == full.value(prop, 0)
        assert short.value(prop, SHORT_STEPS - 1) == full.value(prop, len(full) - 1)
        assert short.value(prop, SHORT_STEPS // 2) == pytest.approx(full.value(prop, len(full) // 2), rel=0.05)


def test_too_few_steps_are_refused() -> None:
    assert len(digits.load_dopesheet(digits.MIN_STEPS)) == digits.MIN_STEPS
    with pytest.raises(ValueError, match='at least'):
        digits.load_dopesheet(digits.MIN_STEPS - 1)


def test_threes_are_anchored_to_dim_0_and_others_are_not(trained, data) -> None:
    _, model, _ = trained
    with torch.no_grad():
        dim0 = model.latents(data.x_test)[:, digits.CONCEPT_DIM]  # [M]
    is_three = data.y_test == digits.CONCEPT
    assert float(dim0[is_three].mean()) > 0.8
    assert float(dim0[~is_three].abs().mean()) < 0.1


def test_ablation_zeroes_dim_0_for_every_sample(trained, data) -> None:
    _, _, ablated = trained
    with torch.no_grad():
        latents = ablated.latents(data.x_test)  # [M, k]
    assert torch.count_nonzero(latents[:, digits.CONCEPT_DIM]) == 0
    # Still unit vectors: the other dims carry the whole code.
    torch.testing.assert_close(latents.norm(dim=-1), torch.ones(len(latents)))


def test_ablated_model_is_the_original_with_dim_0_removed(trained, data) -> None:
    """Independent route: the untouched model's encoder, dim 0 zeroed by hand, renormalised, decoded."""
    _, model, ablated = trained
    with torch.no_grad():
        raw = model.encoder(data.x_test).clone()  # [M, k]
        raw[:, digits.CONCEPT_DIM] = 0.0
        expected = model.decoder(F.normalize(raw, dim=-1))
        torch.testing.assert_close(ablated(data.x_test), expected)


def test_three_is_deleted_and_the_other_digits_are_kept(trained) -> None:
    result, _, _ = trained
    assert result.concept_ratio > 2.5
    assert result.others_median_ratio < 1.05
    assert max(result.ratio(d) for d in range(10) if d != digits.CONCEPT) < 1.2
    # The deleted digit is reconstructed no better than the other digits' typical error would suggest.
    assert result.after[digits.CONCEPT] > 3 * sorted(result.before.values())[5]


def test_results_file_has_one_row_per_digit(trained, tmp_path: Path) -> None:
    result, _, _ = trained
    path = tmp_path / 'digits.csv'
    digits.write_results([result], path)
    with path.open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == ('seed', 'method', 'digit', 'mse_before', 'mse_after', 'ratio')
    assert [int(row['digit']) for row in rows] == list(range(10))
    assert {row['method'] for row in rows} == {'anchored'}
    for row in rows:
        assert float(row['ratio']) == pytest.approx(float(row['mse_after']) / float(row['mse_before']))
    assert float(rows[digits.CONCEPT]['ratio']) == pytest.approx(result.concept_ratio)


def test_training_is_deterministic_per_seed(data) -> None:
    sheet = digits.load_dopesheet(digits.MIN_STEPS)
    first = digits.train(3, data, sheet).state_dict()
    second = digits.train(3, data, sheet).state_dict()
    other = digits.train(4, data, sheet).state_dict()
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert not all(torch.equal(first[name], other[name]) for name in first)


def test_main_prints_the_table_and_writes_the_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / 'results.csv'
    argv = ['--seeds', '0-1', '--steps', str(digits.MIN_STEPS), '--out', str(out)]
    assert digits.main(argv) == 0
    printed = capsys.readouterr().out
    assert 'digit 3 ratio' in printed and 'other digits, median ratio' in printed
    assert 'held-out error per digit' in printed
    assert printed.count('routed') >= 5  # a line per seed, a row per seed in the summary, the per-digit table's
    with out.open() as f:
        rows = list(csv.DictReader(f))
    expected = [(s, m, d) for s in (0, 1) for m in ('anchored', 'routed') for d in range(10)]
    assert [(int(r['seed']), r['method'], int(r['digit'])) for r in rows] == expected


def test_the_routed_method_trains_without_the_anchoring_terms_and_with_the_route(data) -> None:
    """Routed: only reg-unit, and the route; the same seed without the route (and the anchored model) differ."""
    sheet = digits.load_dopesheet(digits.MIN_STEPS)
    routed = digits.train(3, data, sheet, method='routed').state_dict()
    anchored = digits.train(3, data, sheet, method='anchored').state_dict()
    original = digits.ROUTE
    try:
        digits.ROUTE = None  # the routed method's terms and schedule, without routing
        unrouted = digits.train(3, data, sheet, method='routed').state_dict()
    finally:
        digits.ROUTE = original
    for other in (anchored, unrouted):
        assert not torch.allclose(routed['encoder.2.weight'], other['encoder.2.weight'])
    with pytest.raises(ValueError, match='method'):
        digits.train(3, data, sheet, method='erased')


@pytest.mark.parametrize('text, seeds', [('0-4', [0, 1, 2, 3, 4]), ('1,3,7-9', [1, 3, 7, 8, 9]), ('5', [5])])
def test_parse_seeds(text: str, seeds: list[int]) -> None:
    assert digits.parse_seeds(text) == seeds


@pytest.mark.parametrize('text', ['4-0', 'a', '1,1', '-3', ''])
def test_parse_seeds_refuses(text: str) -> None:
    with pytest.raises(Exception, match='seeds'):
        digits.parse_seeds(text)


def test_missing_scikit_learn_is_one_line_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, 'sklearn.datasets', None)  # import now raises ImportError
    with pytest.raises(digits.MissingDependencyError, match=r"pip install 'ex-color\[digits\]'"):
        digits.load_data()
    assert digits.main(['--steps', str(digits.MIN_STEPS)]) == 2
    err = capsys.readouterr().err
    assert err.strip().count('\n') == 0 and "pip install 'ex-color[digits]'" in err


def test_too_many_seeds_are_refused_without_expanding_them() -> None:
    assert len(digits.parse_seeds(f'0-{digits.MAX_SEEDS - 1}')) == digits.MAX_SEEDS
    with pytest.raises(Exception, match=r"^seeds '0-1000000000' are 1,000,000,001 seeds; expected at most 1,000$"):
        digits.parse_seeds('0-1000000000')


@pytest.mark.parametrize(
    ('argv', 'says'),
    [
        (
            ['--out', '/nonexistent/dir/d.csv'],
            r"argument --out: '/nonexistent/dir/d\.csv': folder '/nonexistent/dir' does not exist",
        ),
        (['--out', '{tmp}'], r"argument --out: '.*' is a directory; expected a file path"),
        (['--seeds', '0-1000000000'], r'are 1,000,000,001 seeds; expected at most 1,000'),
        (['--steps', 'x'], r"argument --steps: expected a whole number, got 'x'"),
        (['--steps', '5'], r'argument --steps: expected at least 100, got 5'),
        (['--threads', '0'], r'argument --threads: expected at least 1, got 0'),
        (['--threads', 'two'], r"argument --threads: expected a whole number, got 'two'"),
    ],
)
def test_bad_arguments_are_one_line_before_training(
    argv: list[str], says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError('trained despite a bad argument')

    monkeypatch.setattr(digits, 'run_seed', no_training)
    monkeypatch.setattr(digits, 'load_data', no_training)
    with pytest.raises(SystemExit) as caught:
        digits.main([a.replace('{tmp}', str(tmp_path)) for a in argv])
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if 'error:' in line]  # argparse: the usage, then the one-line error
    assert err[0].startswith('usage:') and errors == [err[-1]]
    assert re.search(says, err[-1]), err[-1]
    assert '_steps' not in err[-1] and '_threads' not in err[-1]
