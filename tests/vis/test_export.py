"""save_figure: one PNG per theme, written atomically, with paths relative to the report."""

from __future__ import annotations

import matplotlib.image
import pytest

from ex_color.vis.export import save_figure
from ex_color.vis.theme import DARK, LIGHT, new_figure, set_title


def make_figure(theme: str, calls: list[str]):
    calls.append(theme)
    fig, axes, palette = new_figure(theme, 1, 1, (2, 1.5))
    axes[0, 0].plot([0, 1], [0, 1])
    set_title(fig, 'A title', palette)
    return fig


def test_save_figure_writes_light_and_dark_pngs(tmp_path):
    calls: list[str] = []
    saved = save_figure(lambda theme: make_figure(theme, calls), tmp_path / 'figures', 'line', 'Alt: {}')

    assert calls == ['light', 'dark']
    assert (saved.name, saved.title, saved.alt) == ('line', 'A title', 'Alt: {}')
    assert (saved.light, saved.dark) == ('figures/line.png', 'figures/line.dark.png')
    light = matplotlib.image.imread(tmp_path / saved.light)
    dark = matplotlib.image.imread(tmp_path / saved.dark)
    assert light.shape == dark.shape == (150, 200, 4)  # 2 × 1.5 inches at 100 dpi
    assert tuple(light[0, 0, :3]) == pytest.approx(matplotlib.colors.to_rgb(LIGHT.figure), abs=1 / 255)
    assert tuple(dark[0, 0, :3]) == pytest.approx(matplotlib.colors.to_rgb(DARK.figure), abs=1 / 255)
    assert sorted(p.name for p in (tmp_path / 'figures').iterdir()) == ['line.dark.png', 'line.png']  # no temp files


def test_alt_text_can_be_a_function_of_the_title(tmp_path):
    saved = save_figure(lambda theme: make_figure(theme, []), tmp_path, 'x', lambda title: f'Chart "{title}"',
                        relative_to=tmp_path)  # fmt: skip
    assert saved.alt == 'Chart "A title"'
    assert saved.light == 'x.png'
