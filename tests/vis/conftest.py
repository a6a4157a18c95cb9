"""Figures are drawn off-screen, must never be shown, and are closed after each test."""

import matplotlib

matplotlib.use('Agg')

from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from tests.browser import Chromium, chromium, require_chromium


@pytest.fixture(autouse=True)
def forbid_show(monkeypatch: pytest.MonkeyPatch) -> None:
    """A library figure must be returned, never shown."""

    def show(*args, **kwargs):
        raise AssertionError('plt.show() was called')

    monkeypatch.setattr(plt, 'show', show)
    monkeypatch.setattr(Figure, 'show', show)


@pytest.fixture
def close_figures() -> Iterator[list[Figure]]:
    """Collects figures made by a test and closes them afterwards."""
    figures: list[Figure] = []
    yield figures
    for fig in figures:
        plt.close(fig)


def render_png(fig: Figure) -> bytes:
    """Draw the figure to PNG bytes, as a notebook or report would."""
    buffer = BytesIO()
    fig.savefig(buffer, format='png', dpi=40)
    return buffer.getvalue()


def luminance(color) -> float:
    """Rec. 709 relative luminance of a matplotlib colour (0 = black, 1 = white)."""
    r, g, b = to_rgb(color)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


EX29 = Path(__file__).resolve().parents[2] / 'experiments' / 'ex-2.9'
SLOW_FIXTURES = {'browser', 'short_run', 'short_run_report', 'short_sweep'}
"""A test that needs a trained run or a browser is `slow` (`pytest -m 'not slow'` leaves it out)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here) and SLOW_FIXTURES & set(getattr(item, 'fixturenames', ())):
            item.add_marker(pytest.mark.slow)


SHORT_RUN_STEPS = 200


@pytest.fixture(scope='session')
def browser() -> Iterator[Chromium]:
    """One headless Chromium for every browser test (skips without one, unless CI is set)."""
    with chromium(require_chromium()) as browser:
        yield browser


@pytest.fixture(scope='session')
def short_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 200-step Ex 2.9 run directory (seed 0), shared by the report tests."""
    from ex_color.config import load_experiment
    from ex_color.experiment import run_experiment

    out = tmp_path_factory.mktemp('short-run') / 'seed-0'
    run_experiment(load_experiment(EX29), seed=0, out=out, steps=SHORT_RUN_STEPS, progress=False)
    return out


@pytest.fixture(scope='session')
def short_run_report(short_run: Path) -> Path:
    """report.html of `short_run`, written once."""
    from ex_color.vis.report import write_run_report

    return write_run_report(short_run)


@pytest.fixture(scope='session')
def short_sweep(tmp_path_factory: pytest.TempPathFactory):
    """A finished 100-step sweep of seeds 0-2 with its report (and its best run's), written once."""
    from ex_color.config import load_experiment
    from ex_color.sweep import run_sweep
    from ex_color.vis.report import write_sweep_report

    out = tmp_path_factory.mktemp('short-sweep') / 'sweep'
    result = run_sweep(load_experiment(EX29), [0, 1, 2], out=out, steps=100, progress=False)
    assert write_sweep_report(result.directory) == result.directory / 'report.html'
    return result
