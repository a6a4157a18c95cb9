"""Matplotlib figures (light or dark theme), their alt texts, and the HTML reports of runs, sweeps and comparisons.

The plotting functions return a Figure and never show it. `write_report` and friends
(from `ex_color.vis.report`) load a saved run's model, so they are imported on first use.
"""

from typing import TYPE_CHECKING

from ex_color.vis.colors import plot_colors
from ex_color.vis.export import SavedFigure, save_figure
from ex_color.vis.latents import plot_latent_grid_3d
from ex_color.vis.series import plot_cube_series
from ex_color.vis.sweep import plot_error_vs_similarity, plot_pareto, plot_sweep_boxes
from ex_color.vis.theme import DARK, LIGHT, Palette, get_palette
from ex_color.vis.training import plot_dopesheet, plot_training_curves

if TYPE_CHECKING:
    from ex_color.vis.report import ReportError, write_report, write_run_report, write_sweep_report

_REPORT_NAMES = ('ReportError', 'write_report', 'write_run_report', 'write_sweep_report')


def __getattr__(name: str) -> object:
    if name in _REPORT_NAMES:
        from ex_color.vis import report

        return getattr(report, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = [
    'DARK',
    'LIGHT',
    'Palette',
    'ReportError',
    'SavedFigure',
    'get_palette',
    'plot_colors',
    'plot_cube_series',
    'plot_dopesheet',
    'plot_error_vs_similarity',
    'plot_latent_grid_3d',
    'plot_pareto',
    'plot_sweep_boxes',
    'plot_training_curves',
    'save_figure',
    'write_report',
    'write_run_report',
    'write_sweep_report',
]
