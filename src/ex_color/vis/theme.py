"""Shared look of the figures: light and dark palettes, figure set-up, and axis names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

Theme = Literal['light', 'dark']


@dataclass(frozen=True)
class Palette:
    """Colours of the non-data parts of a figure."""

    figure: str
    """Figure background."""
    axes: str
    """Axes (panel) background."""
    text: str
    """Titles, labels and tick labels."""
    spine: str
    """Spines and ticks."""
    guide: str
    """Faint guide lines drawn under the data (grid lines, reference circles)."""


LIGHT = Palette(figure='#ffffff', axes='#ffffff', text='#222222', spine='#666666', guide='#cccccc')
DARK = Palette(figure='#1a1a1a', axes='#1a1a1a', text='#e8e8e8', spine='#a0a0a0', guide='#4a4a4a')

PALETTES: dict[str, Palette] = {'light': LIGHT, 'dark': DARK}

AXIS_NAMES: dict[str, str] = {
    'h': 'Hue',
    's': 'Saturation',
    'v': 'Value',
    'r': 'Red',
    'g': 'Green',
    'b': 'Blue',
}


def get_palette(theme: str) -> Palette:
    """The palette for `theme` ('light' or 'dark')."""
    try:
        return PALETTES[theme]
    except (KeyError, TypeError):
        raise ValueError(f"theme must be 'light' or 'dark', got {theme!r}") from None


def axis_name(letter: str) -> str:
    """Human name of a colour-space axis letter, e.g. 'h' → 'Hue'; unknown letters are upper-cased."""
    return AXIS_NAMES.get(letter.lower(), letter.upper())


def new_figure(
    theme: str,
    nrows: int,
    ncols: int,
    figsize: tuple[float, float],
    **subplot_kw,
) -> tuple[Figure, np.ndarray, Palette]:
    """
    A themed figure with a grid of panels.

    The figure is created without pyplot, so it is never shown or kept alive by a global
    figure manager; notebooks display it when it is returned.

    Returns: (figure, axes `[nrows, ncols]`, palette).
    """
    palette = get_palette(theme)
    fig = Figure(figsize=figsize, facecolor=palette.figure, layout='constrained')
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    for ax in axes.flat:
        style_axes(ax, palette)
    return fig, axes, palette


def style_axes(ax: Axes, palette: Palette) -> None:
    """Colour an axes' background, spines, ticks and labels from `palette`."""
    ax.set_facecolor(palette.axes)
    for spine in ax.spines.values():
        spine.set_color(palette.spine)
    ax.tick_params(colors=palette.spine, labelcolor=palette.text)
    ax.xaxis.label.set_color(palette.text)
    ax.yaxis.label.set_color(palette.text)
    ax.title.set_color(palette.text)


def set_title(fig: Figure, title: str, palette: Palette) -> None:
    """Set the figure-level title in the palette's text colour."""
    fig.suptitle(title, color=palette.text)
