"""Saving a figure twice, in the light and the dark theme, as PNGs with an alt text."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from matplotlib.figure import Figure

from ex_color.files import write_atomic
from ex_color.vis.theme import PALETTES

DPI = 100


@dataclass(frozen=True)
class SavedFigure:
    """One figure of a report: where its PNGs are and what it shows."""

    name: str
    """File stem, e.g. 'colors-ablated'."""
    title: str
    alt: str
    """What the figure shows, in words."""
    light: str
    """Path of the light PNG, relative to the report's directory (POSIX separators)."""
    dark: str
    """Path of the dark PNG (`<name>.dark.png`)."""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def figure_png(fig: Figure, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=dpi, facecolor=fig.get_facecolor())
    return buffer.getvalue()


def save_figure(
    make_figure: Callable[[str], Figure],
    directory: Path,
    name: str,
    alt: str | Callable[[str], str],
    *,
    relative_to: Path | None = None,
    dpi: int = DPI,
) -> SavedFigure:
    """Draw `make_figure(theme)` for each theme and write `<name>.png` and `<name>.dark.png` atomically.

    Args:
        make_figure: builds the figure for 'light' or 'dark'.
        directory: where the PNGs go.
        alt: the alt text, or a function of the figure's title that returns it.
        relative_to: the directory the returned paths are relative to (default: `directory`'s parent).
    """
    base = directory.parent if relative_to is None else relative_to
    paths = {}
    title = ''
    for theme in PALETTES:
        fig = make_figure(theme)
        title = title or (fig.get_suptitle() or '')
        path = directory / (f'{name}.png' if theme == 'light' else f'{name}.{theme}.png')
        write_atomic(path, figure_png(fig, dpi))
        paths[theme] = path.relative_to(base).as_posix()
    alt_text = alt(title) if callable(alt) else alt
    return SavedFigure(name=name, title=title, alt=alt_text, light=paths['light'], dark=paths['dark'])
