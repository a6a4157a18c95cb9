"""Figures are drawn off-screen, must never be shown, and are closed after each test."""

import matplotlib

matplotlib.use('Agg')

from collections.abc import Iterator
from io import BytesIO

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure


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
