"""Figures of a text model: cross-entropy ratio per class of the next character, for each edit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from ex_color.vis.theme import new_figure, set_title


def plot_class_ratios(
    ratios: Mapping[str, Mapping[str, float]],
    classes: Sequence[str],
    *,
    title: str = 'Held-out cross-entropy per class of the next character',
    theme: str = 'light',
    errors: Mapping[str, Mapping[str, tuple[float, float]]] | None = None,
    figsize: tuple[float, float] = (10, 4),
) -> Figure:
    """Grouped bars: for each class, each edit's cross-entropy ratio to its untouched model (1 = unchanged).

    Args:
        ratios: edit → class → ratio.
        errors: edit → class → (low, high), drawn as error bars (e.g. a 95% interval over seeds).
    """
    fig, axes, palette = new_figure(theme, 1, 1, figsize)
    ax = axes[0, 0]
    names = list(ratios)
    width = 0.8 / max(len(names), 1)
    x = np.arange(len(classes))
    for i, name in enumerate(names):
        values = np.array([ratios[name][c] for c in classes])
        offsets = x - 0.4 + width * (i + 0.5)
        yerr = None
        if errors is not None and name in errors:
            low = np.array([errors[name][c][0] for c in classes])
            high = np.array([errors[name][c][1] for c in classes])
            yerr = np.vstack([values - low, high - values]).clip(min=0)
        ax.bar(offsets, values, width, label=name, yerr=yerr, ecolor=palette.text, capsize=2)
    ax.axhline(1.0, color=palette.text, linewidth=0.8, linestyle='--')
    ax.set_xticks(x, list(classes))
    ax.set_ylabel('Cross-entropy ratio to untouched')
    ax.grid(True, axis='y', color=palette.guide, linewidth=0.5)
    ax.set_axisbelow(True)
    legend = ax.legend(facecolor=palette.axes, edgecolor=palette.spine, fontsize='small')
    for text in legend.get_texts():
        text.set_color(palette.text)
    set_title(fig, title, palette)
    return fig


def describe_class_ratios(ratios: Mapping[str, Mapping[str, float]], classes: Sequence[str]) -> str:
    """The bars in words, for the alt text."""
    parts = []
    for name, by_class in ratios.items():
        cells = ', '.join(f'{c} {by_class[c]:.3g}×' for c in classes)
        parts.append(f'{name}: {cells}')
    return 'Cross-entropy ratio to the untouched model per class of the next character. ' + '; '.join(parts) + '.'


__all__ = ['describe_class_ratios', 'plot_class_ratios']
