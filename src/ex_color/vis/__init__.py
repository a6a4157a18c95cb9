"""Matplotlib figures of colour cubes, per-colour error and latent space (light or dark theme)."""

from ex_color.vis.colors import plot_colors
from ex_color.vis.latents import plot_latent_grid_3d
from ex_color.vis.series import plot_cube_series
from ex_color.vis.theme import DARK, LIGHT, Palette, get_palette

__all__ = [
    'DARK',
    'LIGHT',
    'Palette',
    'get_palette',
    'plot_colors',
    'plot_cube_series',
    'plot_latent_grid_3d',
]
