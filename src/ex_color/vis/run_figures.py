"""Every figure of a run's report, drawn from its saved artifacts (no retraining).

A run directory holds the trained model, the config it was trained under, its dopesheet and
its training metrics. From these we rebuild each evaluated variant of the model (baseline,
surgeries, interventions), run the seed's test sets through it, and draw the seed's figures
for each: predicted colours, error along hue/saturation/value, latents on spheres, plus
error against similarity to each evaluation's target, the dopesheet and the training curves.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from numpy.typing import NDArray

from ex_color.data import ColorCube, rgb_to_hsv
from ex_color.data.target import Target
from ex_color.evaluation import (
    display_cube,
    error_cube,
    latent_cube,
    per_colour_error,
    selectivity_grid,
    squared_correlation,
    target_profile,
)
from ex_color.inference import infer
from ex_color.rundir import Run
from ex_color.variants import build_variants
from ex_color.vis.colors import plot_colors
from ex_color.vis.describe import (
    describe_colors,
    describe_dopesheet,
    describe_error_series,
    describe_latents,
    describe_similarity_scatter,
    describe_training_curves,
)
from ex_color.vis.export import SavedFigure, save_figure
from ex_color.vis.latents import plot_latent_grid_3d
from ex_color.vis.series import plot_cube_series
from ex_color.vis.sweep import plot_error_vs_similarity
from ex_color.vis.training import phase_starts, plot_dopesheet, plot_training_curves

log = logging.getLogger(__name__)

LATENT_LAYER = 'bottleneck'
HIDE_WITHIN = 0.004
"""Latent dots closer than this to a nearer dot are not drawn: half a pixel at the report's 100 dpi."""
SEED_LATENT_DIMS = [(1, 0, 2), (2, 0, 1), (3, 0, 1), (4, 1, 2), (3, 2, 4), (4, 3, 0)]
"""The seed's six views of a 5-D latent space."""
VALUE_LINES = 5
"""Lines in the error figure's hue panel: values sampled evenly from 1 down (as the seed does)."""
HUE_LINES = 6
"""Lines in its saturation and value panels: hues sampled evenly from red."""
SAME_OUTPUTS_ATOL = 1e-6


@dataclass(frozen=True)
class VariantView:
    """What one model variant does to the seed's test sets."""

    name: str
    display: NDArray[np.float32]
    """`[*display_cube.shape, 3]` reconstructions of the display cube (as sliced 'svh')."""
    error: NDArray[np.float32]
    """`[240, 48, 48]` per-colour error over the error cube."""
    latents: NDArray[np.float32]
    """`[8000, D]` activations of the latent layer for the latent cube."""
    latent_outputs: NDArray[np.float32]
    """`[8000, 3]` reconstructions of the latent cube."""
    grid_error: NDArray[np.float32]
    """`[512]` per-colour error over the selectivity grid."""
    targets: list[Target]
    """What the variant removes (for the baseline: what the first evaluation removes)."""

    def same_outputs(self, other: VariantView) -> bool:
        """Whether two variants reconstruct every test colour alike (e.g. ablate and prune of one dim)."""
        pairs = [(self.display, other.display), (self.error, other.error), (self.grid_error, other.grid_error)]
        return all(np.allclose(a, b, rtol=0, atol=SAME_OUTPUTS_ATOL) for a, b in pairs)


def display_cube_svh() -> ColorCube:
    return display_cube().permute('svh')


def variant_views(run: Run, layer: str = LATENT_LAYER) -> dict[str, VariantView]:
    """Each variant's reconstructions, errors and latents: 'baseline' first, then the experiment's evaluations."""
    shown = display_cube_svh()
    display_rgb = torch.tensor(shown.rgb_grid, dtype=torch.float32)
    error_rgb = torch.tensor(error_cube().rgb_grid.reshape(-1, 3), dtype=torch.float32)
    latent_rgb = torch.tensor(latent_cube().rgb_grid.reshape(-1, 3), dtype=torch.float32)
    grid = selectivity_grid()
    views = {}
    for name, variant in build_variants(run.model, run.experiment.config).items():
        model, interventions = variant.model, variant.interventions
        display = infer(model, display_rgb.reshape(-1, 3), interventions).outputs.reshape(display_rgb.shape)
        errors = per_colour_error(infer(model, error_rgb, interventions).outputs, error_rgb)
        latent = infer(model, latent_rgb, interventions, capture_layers=[layer])
        grid_error = per_colour_error(infer(model, grid, interventions).outputs, grid)
        views[name] = VariantView(
            name=name,
            display=display.numpy(),
            error=errors.numpy().reshape(error_cube().shape),
            latents=latent.captured[layer].numpy(),
            latent_outputs=latent.outputs.numpy(),
            grid_error=grid_error.numpy(),
            targets=variant.targets,
        )
    return views


def latent_dims(n_dims: int, limit: int = 6) -> list[tuple[int, int, int]]:
    """Views of an n-D latent space: the seed's six for 5-D; otherwise (b, a, c) for pairs a < b."""
    if n_dims == 5:
        return list(SEED_LATENT_DIMS)
    if n_dims < 3:
        return []
    views = []
    for a, b in combinations(range(n_dims), 2):
        c = next(d for d in range(n_dims) if d not in (a, b))
        views.append((b, a, c))
    return views[:limit]


def error_series_cubes(error: NDArray) -> list[ColorCube]:
    """The seed's three error panels: against hue, saturation and value, sampled to a few lines each."""
    cube = error_cube().assign('MSE', error)
    n_hues, _, n_values = cube.shape
    return [
        cube.permute('hsv')[:, -1:, :: (n_values // -VALUE_LINES)],
        cube.permute('svh')[:, -1:, :: -(n_hues // -HUE_LINES)],
        cube.permute('vsh')[:, -1:, :: -(n_hues // -HUE_LINES)],
    ]


def variant_label(name: str, targets: list[Target] | None = None) -> str:
    """How the seed titles a variant: the baseline is 'no intervention'; an edit says what it removes."""
    if name == 'baseline':
        return 'no intervention'
    return f'{name} ({target_names(targets)} removed)' if targets else name


def target_names(targets: list[Target]) -> str:
    """'red', or 'red + blue'."""
    return ' + '.join(t.name for t in targets)


@dataclass(frozen=True)
class FigureJob:
    """One figure to draw in both themes."""

    name: str
    section: str
    """'headline' figures lead the report; the rest are grouped by section (a variant's name, 'training')."""
    make: Callable[[str], Figure]
    alt: Callable[[str], str]
    """The alt text, given the figure's title."""
    cost: float = 1.0
    """Rough drawing time relative to a simple chart; the costliest are started first."""


def run_figure_jobs(run: Run, views: dict[str, VariantView]) -> Iterator[FigureJob]:
    """Every figure of a run's report, in report order."""
    shown = display_cube_svh()
    true_display = shown.rgb_grid
    yield FigureJob(
        'true-colors',
        'baseline',
        partial(_plot_colors, shown, 'True colors', true_display, None),
        partial(describe_colors, true=true_display),
    )
    grid_rgb = selectivity_grid().numpy()
    error_hsv = rgb_to_hsv(error_cube().rgb_grid.reshape(-1, 3))
    latent_true = latent_cube().rgb_grid.reshape(-1, 3)
    drawn: list[VariantView] = []
    for name, view in views.items():
        twin = next((other for other in drawn if view.same_outputs(other)), None)
        if twin is not None:
            log.info('%s reconstructs every test colour as %s does; its figures are not repeated', name, twin.name)
            continue
        drawn.append(view)
        label = variant_label(name, view.targets)
        yield FigureJob(
            f'colors-{name}',
            name,
            partial(_plot_colors, shown, f'Predicted colors · {label}', view.display, true_display),
            partial(describe_colors, true=true_display, pred=view.display),
        )
        yield FigureJob(
            f'error-{name}',
            name,
            partial(_plot_error, view.error, f'Reconstruction error · {label}'),
            partial(describe_error_series, hsv=error_hsv, error=view.error),
        )
        dims = latent_dims(view.latents.shape[1])
        if dims:
            yield FigureJob(
                f'latents-{name}',
                name,
                partial(_plot_latents, view, latent_true, f'Latents · {label}', dims),
                partial(describe_latents, latents=view.latents, true=latent_true, dims=dims),
                cost=3.0,  # 16,000 dots a panel
            )
        similarity = target_profile(view.targets)
        r2 = squared_correlation(view.grid_error, similarity)
        if name != 'baseline' and view.targets:
            yield FigureJob(
                f'selectivity-{name}',
                name,
                partial(
                    _plot_scatter,
                    similarity,
                    view.grid_error,
                    grid_rgb,
                    r2,
                    f'Error against similarity to {target_names(view.targets)} · {name}',
                    target_names(view.targets),
                ),
                partial(
                    describe_similarity_scatter,
                    similarity=similarity,
                    error=view.grid_error,
                    colors=grid_rgb,
                    r2=r2,
                    target=target_names(view.targets),
                ),
            )
    dopesheet = run.experiment.dopesheet
    table = dopesheet.to_frame()
    phases: dict[str, int] = {}
    for step, name in phase_starts(dopesheet):
        phases.setdefault(name, step)
    yield FigureJob(
        'dopesheet',
        'training',
        partial(_plot_dopesheet, dopesheet),
        partial(describe_dopesheet, table=table, phases=phases),
    )
    metrics = run.metrics.drop(columns=['seed'], errors='ignore')
    yield FigureJob(
        'training-curves',
        'training',
        partial(_plot_training, metrics),
        partial(describe_training_curves, metrics=metrics),
    )


def draw_figures(
    jobs: list[FigureJob],
    directory: Path,
    relative_to: Path,
    workers: int | None = None,
    stop_if_asked: Callable[[], None] = lambda: None,
) -> list[tuple[str, SavedFigure]]:
    """Draw and save each job in both themes; (section, saved figure) in job order.

    Matplotlib holds the GIL while it renders, so figures are drawn in `workers` processes
    (default: one per available core, at most 4); 1 draws them here, one after another.
    `stop_if_asked` is called between figures (and while waiting for workers): whatever it raises
    stops the drawing, and the figures not yet started are dropped.
    """
    workers = default_workers() if workers is None else workers
    draw = partial(_draw_job, directory=directory, relative_to=relative_to)
    if workers <= 1 or len(jobs) <= 1:
        drawn = []
        for job in jobs:
            stop_if_asked()
            drawn.append(draw(job))
        return drawn
    # Forked workers start at once with everything imported; elsewhere the platform's default start.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context('fork' if 'fork' in methods else None)
    order = sorted(range(len(jobs)), key=lambda i: -jobs[i].cost)
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)), mp_context=context, initializer=_leave_interrupts_to_the_parent
    )
    try:
        with _signals_held():  # workers start with them blocked, so none can land before they ignore them
            futures = {i: pool.submit(draw, jobs[i]) for i in order}
        pending = set(futures.values())
        while pending:
            done, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_EXCEPTION)
            for future in done:
                future.result()  # a failed figure raises here
            stop_if_asked()
        return [futures[i].result() for i in range(len(jobs))]
    except BaseException:  # Ctrl-C or a failed figure: drop the figures not yet started
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)


POLL_SECONDS = 0.2
"""How often the parent looks for a stop request while workers draw."""

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Block SIGINT and SIGTERM in this thread meanwhile (where the platform can); they arrive afterwards."""
    if not hasattr(signal, 'pthread_sigmask'):
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _leave_interrupts_to_the_parent() -> None:
    """Workers ignore Ctrl-C and SIGTERM (they started with both blocked): the parent stops the pool and reports
    the interrupt once."""
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_IGN)
    if hasattr(signal, 'pthread_sigmask'):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _draw_job(job: FigureJob, directory: Path, relative_to: Path) -> tuple[str, SavedFigure]:
    return job.section, save_figure(job.make, directory, job.name, job.alt, relative_to=relative_to)


def default_workers() -> int:
    """Cores this process may use, at most 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


# Figure builders with the theme last, so `partial` can bind everything else.


def _plot_colors(cube: ColorCube, title: str, colors: NDArray, compare: NDArray | None, theme: str) -> Figure:
    return plot_colors(cube, title=title, colors=colors, colors_compare=compare, theme=theme)


def _plot_error(error: NDArray, title: str, theme: str) -> Figure:
    return plot_cube_series(*error_series_cubes(error), title=title, var='MSE', figsize=(12, 3), theme=theme)


def _plot_latents(view: VariantView, true: NDArray, title: str, dims: list, theme: str) -> Figure:
    return plot_latent_grid_3d(
        view.latents,
        view.latent_outputs,
        true,
        title=title,
        dims=dims,
        dot_radius=10,
        theme=theme,
        hide_within=HIDE_WITHIN,
    )


def _plot_scatter(
    similarity: NDArray, error: NDArray, colors: NDArray, r2: float, title: str, target: str, theme: str
) -> Figure:
    return plot_error_vs_similarity(similarity, error, colors, r2=r2, title=title, target=target, theme=theme)


def _plot_dopesheet(dopesheet: Any, theme: str) -> Figure:
    return plot_dopesheet(dopesheet, title='Dopesheet', theme=theme)


def _plot_training(metrics: pd.DataFrame, theme: str) -> Figure:
    return plot_training_curves(metrics, title='Training losses', theme=theme)
