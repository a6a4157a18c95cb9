"""The seed notebook (Ex 2.9), ported cell by cell and run as written on a 300-step dopesheet.

Changes from the notebook, and nothing else: imports point at `ex_color`; Modal, W&B and the
notebook's logging/progress helpers are gone (the trainer logs to a CSVLogger in tmp_path, with no
progress bars); `await`/`async def` are plain calls and functions; `utils.nb.displayer_mpl` is a
local context manager that saves each figure as a PNG; the dopesheet is Ex 2.9's with every step
divided by 10. The asserts at the end check the figures and the notebook's printed numbers.
"""

from __future__ import annotations

import matplotlib

matplotlib.use('Agg')

import inspect
import logging
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import matplotlib.figure
import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from torch import Tensor
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from ex_color.data.color_cube import ColorCube
from ex_color.data.cube_sampler import vibrancy
from ex_color.data.cyclic import arange_cyclic
from ex_color.inference import InferenceModule
from ex_color.labelling import collate_with_generated_labels
from ex_color.loss import AngularAnchor, AntiAnchor, AxisAlignedSubspace, RegularizerConfig, Separate, Unitarity
from ex_color.model import CNColorMLP
from ex_color.surgery import ablate
from ex_color.temporal.dopesheet import Dopesheet
from ex_color.training import TrainingModule
from ex_color.vis import plot_colors, plot_cube_series, plot_latent_grid_3d

pytestmark = [
    pytest.mark.slow,
    # Lightning on a tiny model: one torch thread (a second can make each step ten times slower).
    pytest.mark.usefixtures('one_thread'),
    # Lightning's advice about dataloader workers and logging intervals is noise for a 301-step run.
    pytest.mark.filterwarnings('ignore::UserWarning:lightning.*'),
]

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'

# Ex 2.9's dopesheet (experiments/ex-2.9/dopesheet.csv) with absolute steps divided by 10:
# 0, +10, +0.5, 1000, +0.9, 3000 → 0, +1, +0.5, 100, +0.9, 300; relative rows kept as written.
DOPESHEET_300 = """STEP,PHASE,ACTION,lr,reg-separate,reg-anchor,reg-planar-v,reg-planar-d,reg-anti-anchor,reg-unit
0,Train,,1e-8,0.01,0.02,0.01,0.001,0.002,0.01
+1,,,0.01,,,,,,
+0.5,,,,0.01,,,,,
100,,,0.1,0.01,0.05,0.01,0.01,0.01,0.1
+0.9,,,,0,0,0,0,0,0
300,,,0.05,0,0,0,0,0,0
"""

# --- Cell: set-up (Modal, W&B and the logging helper removed) ---

nbid = '2.9'  # ID for tagging assets
nbname = 'Ablate red (only), 5D'
experiment_name = f'Ex {nbid}: {nbname}'
project = 'ex-preppy'

# This is the logger for this notebook
log = logging.getLogger(f'notebook.{nbid}')

# --- Cell: regularizers ---

K = 5  # bottleneck dimensionality
RED = (1, 0, 0, 0, 0)
ANTI_RED = tuple(-c for c in RED)
assert len(RED) == len(ANTI_RED) == K

ALL_REGULARIZERS = [
    RegularizerConfig(
        name='reg-unit',
        compute_loss_term=Unitarity(),
        label_affinities=None,
        layer_affinities=['encoder'],
    ),
    RegularizerConfig(
        name='reg-anchor',
        compute_loss_term=AngularAnchor(torch.tensor(RED, dtype=torch.float32)),
        label_affinities={'red': 1.0},
        layer_affinities=['bottleneck'],
    ),
    RegularizerConfig(
        name='reg-separate',
        compute_loss_term=Separate(power=100.0, shift=True),
        label_affinities=None,
        layer_affinities=['bottleneck'],
    ),
    RegularizerConfig(
        name='reg-planar-d',
        compute_loss_term=AxisAlignedSubspace((2, 3, 4)),
        label_affinities={'desaturated': 1.0},
        layer_affinities=['bottleneck'],
    ),
    RegularizerConfig(
        name='reg-anti-anchor',
        compute_loss_term=AntiAnchor(torch.tensor(ANTI_RED, dtype=torch.float32)),
        label_affinities=None,
        layer_affinities=['bottleneck'],
    ),
]

# --- Cell: data ---


def prep_data() -> tuple[DataLoader, Tensor]:
    """
    Prepare data for training.

    Returns: (train, val)
    """
    hsv_cube = ColorCube.from_hsv(
        h=arange_cyclic(step_size=10 / 360),
        s=np.linspace(0, 1, 10),
        v=np.linspace(0, 1, 10),
    )
    hsv_tensor = torch.tensor(hsv_cube.rgb_grid.reshape(-1, 3), dtype=torch.float32)
    vibrancy_tensor = torch.tensor(vibrancy(hsv_cube).flatten(), dtype=torch.float32)
    hsv_dataset = TensorDataset(hsv_tensor, vibrancy_tensor)

    labeller = partial(
        collate_with_generated_labels,
        soft=False,  # Use binary labels (stochastic) to simulate the labelling of internet text
        red=0.5,
        vibrant=0.5,
        desaturated=0.5,
    )
    # Desaturated and dark colors are over-represented in the cube, so we use a weighted sampler to balance them out
    hsv_loader = DataLoader(
        hsv_dataset,
        batch_size=64,
        num_workers=2,
        sampler=WeightedRandomSampler(
            weights=hsv_cube.bias.flatten().tolist(),
            num_samples=len(hsv_dataset),
            replacement=True,
        ),
        collate_fn=labeller,
    )

    rgb_cube = ColorCube.from_rgb(
        r=np.linspace(0, 1, 8),
        g=np.linspace(0, 1, 8),
        b=np.linspace(0, 1, 8),
    )
    rgb_tensor = torch.tensor(rgb_cube.rgb_grid.reshape(-1, 3), dtype=torch.float32)
    return hsv_loader, rgb_tensor


# --- Cell: training (W&B logger → CSVLogger; the fitted trainer is kept for the asserts) ---

fitted_trainers: list = []


def train(
    dopesheet: Dopesheet,
    regularizers: list[RegularizerConfig],
    k_bottleneck: int,
) -> CNColorMLP:
    """Train the model with the given dopesheet and variant."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from ex_color.seed import set_deterministic_mode

    log.info(f'Training with: {[r.name for r in regularizers]}')

    seed = 0
    set_deterministic_mode(seed)

    hsv_loader, _ = prep_data()

    model = CNColorMLP(k_bottleneck, n_nonlinear=2)
    total_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.debug(f'Model initialized with {total_params:,} trainable parameters.')

    training_module = TrainingModule(model, dopesheet, torch.nn.MSELoss(), regularizers)

    logger = CSVLogger('.')  # the working directory: the test's tmp_path

    trainer = L.Trainer(
        max_steps=len(dopesheet),
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        logger=logger,
    )

    print(f'max_steps: {len(dopesheet)}, hsv_loader length: {len(hsv_loader)}')

    # Train the model
    trainer.fit(training_module, hsv_loader)
    fitted_trainers.append(trainer)
    # This is only a small model, so it's OK to return it rather than storing and loading a checkpoint remotely
    return model


# --- Cell: inference utils (progress bar off: the test keeps Lightning quiet) ---


def infer(
    model: CNColorMLP,
    test_data: Tensor,
) -> Tensor:
    """Run inference with the given model."""
    import lightning as L

    inference_module = InferenceModule(model, [])
    trainer = L.Trainer(
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
    )
    reconstructed_colors_batches = trainer.predict(
        inference_module,
        DataLoader(
            TensorDataset(test_data.reshape((-1, 3))),
            batch_size=64,
            collate_fn=lambda batch: torch.stack([row[0] for row in batch], 0),
        ),
    )
    assert reconstructed_colors_batches is not None
    # Flatten the list of batches to a single list of tensors
    reconstructed_colors = [item for batch in reconstructed_colors_batches for item in batch]
    # Reshape to match input
    return torch.cat(reconstructed_colors).reshape(test_data.shape)


def infer_with_latent_capture(
    model: CNColorMLP,
    test_data: Tensor,
    layer_name: str = 'bottleneck',
) -> tuple[Tensor, Tensor]:
    module = InferenceModule(model, [], capture_layers=[layer_name])
    import lightning as L

    trainer = L.Trainer(enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=False)
    batches = trainer.predict(
        module,
        DataLoader(
            TensorDataset(test_data.reshape((-1, 3))),
            batch_size=64,
            collate_fn=lambda batch: torch.stack([row[0] for row in batch], 0),
        ),
    )
    assert batches is not None
    preds = [item for batch in batches for item in batch]
    y = torch.cat(preds).reshape(test_data.shape)
    # Read captured activations as a flat [N, D] tensor
    latents = module.read_captured(layer_name)
    return y, latents


# --- The notebook's display helper, replaced by saving the figure ---

saved_figures: dict[Path, str] = {}
"""PNG path → alt text (with the figure's title filled in), for every figure shown."""


@contextmanager
def displayer_mpl(path: str | Path, alt_text: str) -> Iterator[Callable[[Callable[..., object]], None]]:
    """Stand-in for `utils.nb.displayer_mpl`: `show(make_figure)` saves the figure to `path` as PNG.

    `make_figure` takes no argument, or the theme (called with 'light'). Relative paths resolve
    against the working directory, which the test sets to its tmp_path.
    """

    def show(make_figure: Callable[..., object]) -> None:
        takes_theme = bool(inspect.signature(make_figure).parameters)
        fig = make_figure('light') if takes_theme else make_figure()
        assert isinstance(fig, matplotlib.figure.Figure), f'{path}: expected a Figure, got {type(fig).__name__}'
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            fig.savefig(target, format='png')
            title = fig.get_suptitle() or ''
        finally:
            plt.close(fig)
        saved_figures[target.resolve()] = alt_text.format(title=title)

    yield show


@pytest.fixture
def quiet_lightning() -> Iterator[None]:
    """Lightning's info lines (GPU available, max_steps reached, ...) are not wanted in test output."""
    loggers = [logging.getLogger(name) for name in ('lightning', 'lightning.pytorch', 'lightning.fabric')]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


@pytest.fixture
def reset_determinism() -> Iterator[None]:
    """`set_deterministic_mode` changes global torch state and environment variables; restore them afterwards."""
    names = ('PL_GLOBAL_SEED', 'PL_SEED_WORKERS', 'CUBLAS_WORKSPACE_CONFIG')
    saved_env = {name: os.environ.get(name) for name in names}
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)
    for name, value in saved_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def assert_png_figure(path: Path) -> None:
    """A PNG that decodes to an RGB(A) image of plausible figure size."""
    assert path.is_file(), f'figure not written: {path}'
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f'{path.name}: not a PNG (starts with {data[:8]!r})'
    image = matplotlib.image.imread(path)
    assert image.ndim == 3, f'{path.name}: shape {image.shape}'
    assert image.shape[2] in (3, 4), f'{path.name}: shape {image.shape}'
    assert image.shape[0] >= 100, f'{path.name}: shape {image.shape}'
    assert image.shape[1] >= 100, f'{path.name}: shape {image.shape}'
    # A figure has content: more than one colour on the canvas.
    assert np.ptp(image[..., :3]) > 0.1, f'{path.name}: a flat image'


def test_seed_notebook_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quiet_lightning: None, reset_determinism: None
) -> None:
    """The notebook's cells, top to bottom, on a 301-step schedule; then check what it produced."""
    monkeypatch.chdir(tmp_path)
    Path(f'./ex-{nbid}-dopesheet.csv').write_text(DOPESHEET_300)
    fitted_trainers.clear()
    saved_figures.clear()
    printed: dict[str, list[float]] = {'max': [], 'median': []}

    # --- Cell: train ---
    dopesheet = Dopesheet.from_csv(f'./ex-{nbid}-dopesheet.csv')
    model = train(dopesheet, ALL_REGULARIZERS, K)

    # --- Cell: quick sense-check ---
    hsv_cube = ColorCube.from_hsv(
        h=arange_cyclic(step_size=1 / 24),
        s=np.linspace(0, 1, 4),
        v=np.linspace(0, 1, 8),
    ).permute('svh')
    x_hsv = torch.tensor(hsv_cube.rgb_grid, dtype=torch.float32)

    hd_hsv_cube = ColorCube.from_hsv(
        h=arange_cyclic(step_size=1 / 240),
        s=np.linspace(0, 1, 48),
        v=np.linspace(0, 1, 48),
    )
    hd_x_hsv = torch.tensor(hd_hsv_cube.rgb_grid, dtype=torch.float32)

    rgb_cube = ColorCube.from_rgb(
        r=np.linspace(0, 1, 20),
        g=np.linspace(0, 1, 20),
        b=np.linspace(0, 1, 20),
    )
    x_rgb = torch.tensor(rgb_cube.rgb_grid, dtype=torch.float32)

    with displayer_mpl(
        f'large-assets/ex-{nbid}-true-colors.png',
        alt_text="""Plot showing four slices of the HSV cube, titled "{title}". Each slice has constant saturation, but varies in value (brightness) from top to bottom, and in hue from left to right. The first slice shows a grayscale gradient from black to white; the last shows the fully-saturated color spectrum.""",  # noqa: E501
    ) as show:
        show(lambda: plot_colors(hsv_cube, title='True colors', colors=x_hsv.numpy()))

    # --- Cell: predicted colours and error, no intervention ---
    interventions = []  # noqa: F841 (as in the notebook)
    y_hsv = infer(model, x_hsv)
    hd_y_hsv = infer(model, hd_x_hsv)

    with displayer_mpl(
        f'large-assets/ex-{nbid}-pred-colors-no-intervention.png',
        alt_text="""Plot showing four slices of the HSV cube, titled "{title}". Nominally, each slice has constant saturation, but varies in value (brightness) from top to bottom, and in hue from left to right. Each color value is represented as a square patch of that color. The outer portion of the patches shows the color as reconstructed by the model; the inner portion shows the true (input) color. The reconstructed and true colors agree fairly well, but some slight differences are visible; for example, "white" is slightly gray, and many of the fully-saturated colors are less saturated than they should be.""",  # noqa: E501
    ) as show:
        show(
            lambda: plot_colors(
                hsv_cube,
                title='Predicted colors · no intervention',
                colors=y_hsv.numpy(),
                colors_compare=x_hsv.numpy(),
            )
        )

    per_color_loss = F.mse_loss(hd_y_hsv, hd_x_hsv, reduction='none').mean(dim=-1)
    loss_cube = hd_hsv_cube.assign('MSE', per_color_loss.numpy().reshape(hd_hsv_cube.shape))
    max_loss = per_color_loss.max().item()
    median_loss = per_color_loss.median().item()

    with displayer_mpl(
        f'large-assets/ex-{nbid}-loss-colors-no-intervention.png',
        alt_text=f"""Line chart showing loss per color, titled "{{title}}". Y-axis: mean square error, ranging from zero to {max_loss:.2g}. X-axis: hue. The range of loss values is small, but there are two notable peaks at red, yellow, green, and cyan. Between those points the lines are wavy, reminiscent of an audio waveform.""",  # noqa: E501
    ) as show:
        show(
            lambda: plot_cube_series(
                loss_cube.permute('hsv')[:, -1:, :: (loss_cube.shape[2] // -5)],
                loss_cube.permute('svh')[:, -1:, :: -(loss_cube.shape[0] // -3)],
                loss_cube.permute('vsh')[:, -1:, :: -(loss_cube.shape[0] // -3)],
                title='Reconstruction error · no intervention',
                var='MSE',
                figsize=(12, 3),
            )
        )
    print(f'Max loss: {max_loss:.2g}')
    print(f'Median MSE: {median_loss:.2g}')
    printed['max'].append(max_loss)
    printed['median'].append(median_loss)

    # --- Cell: latents, no intervention ---
    y_rgb, h_rgb = infer_with_latent_capture(model, x_rgb, 'bottleneck')

    with displayer_mpl(
        f'large-assets/ex-{nbid}-latents-no-intervention.png',
        alt_text="""Two rows of three spherical plots, titled "{title}". Each plot shows a vibrant collection of colored circles or balls scattered over the surface of a sphere. On the top row, the first plot shows a thick curve — like a tongue seen from the side — touching the top and right side of the sphere and passing through the middle. It is red at the top, purple and blue in the middle, and cyan on the right. The sphere is empty elsewhere. The other plots in the top row show different views of the same space, all with red at the top but a different horizontal axis. They look much more dome-shaped. The second row shows still more views, focused on the other dimensions. These are more spherical and almost look like color wheels, but with the colors out of order.""",  # noqa: E501
    ) as show:
        show(
            lambda theme: plot_latent_grid_3d(
                h_rgb,
                y_rgb,
                x_rgb,
                title='Latents · no intervention',
                dims=[
                    (1, 0, 2),
                    (2, 0, 1),
                    (3, 0, 1),
                    # (4, 0, 1),
                    # (2, 1, 3),
                    # (3, 1, 2),
                    (4, 1, 2),
                    (3, 2, 4),
                    # (4, 2, 3),
                    (4, 3, 0),
                ],
                dot_radius=10,
                theme=theme,
            )
        )

    # --- Cell: ablation ---
    ablated_model = ablate(model, 'bottleneck', [0])

    y_hsv = infer(ablated_model, x_hsv)
    hd_y_hsv = infer(ablated_model, hd_x_hsv)

    with displayer_mpl(
        f'large-assets/ex-{nbid}-pred-colors-ablated.png',
        alt_text="""Plot showing four slices of the HSV cube, titled "{title}". Nominally, each slice has constant saturation, but varies in value (brightness) from top to bottom, and in hue from left to right. Each color value is represented as a square patch of that color. The outer portion of the patches shows the color as reconstructed by the model; the inner portion shows the true (input) color. The reconstructed and true colors agree fairly well up to yellow and purple, but disagree significantly near red. Desaturated colors and grays are almost unchanged.""",  # noqa: E501
    ) as show:
        show(
            lambda: plot_colors(
                hsv_cube,
                title='Predicted colors · ablated',
                colors=y_hsv.numpy(),
                colors_compare=x_hsv.numpy(),
            )
        )

    per_color_loss = F.mse_loss(hd_y_hsv, hd_x_hsv, reduction='none').mean(dim=-1)
    loss_cube = hd_hsv_cube.assign('MSE', per_color_loss.numpy().reshape(hd_hsv_cube.shape))
    max_loss = per_color_loss.max().item()
    median_loss = per_color_loss.median().item()
    with displayer_mpl(
        f'large-assets/ex-{nbid}-loss-colors-ablated.png',
        alt_text=f"""Line chart showing loss per color, titled "{{title}}". Y-axis: mean square error, ranging from zero to {max_loss:.2g}. X-axis: hue. There is very low error at yellow-green, green, cyan, blue, and purple; high error at red, and moderate error at yellow and magenta. Saturation and value show low error at white and black, with error levels gradually increasing toward vibrant red. The curves are fairly smooth, but show a high-frequency dip very close to red. In fact red-orange has higher error than pure red.""",  # noqa: E501
    ) as show:
        show(
            lambda: plot_cube_series(
                loss_cube.permute('hsv')[:, -1:, :: (loss_cube.shape[2] // -5)],
                loss_cube.permute('svh')[:, -1:, :: -(loss_cube.shape[0] // -6)],
                loss_cube.permute('vsh')[:, -1:, :: -(loss_cube.shape[0] // -6)],
                title='Reconstruction error · ablated',
                var='MSE',
                figsize=(12, 3),
            )
        )
    print(f'Max loss: {max_loss:.2g}')
    print(f'Median MSE: {median_loss:.2g}')
    printed['max'].append(max_loss)
    printed['median'].append(median_loss)

    # --- Cell: latents, ablated ---
    y_rgb, h_rgb = infer_with_latent_capture(ablated_model, x_rgb, 'bottleneck')

    with displayer_mpl(
        f'large-assets/ex-{nbid}-latents-ablated.png',
        alt_text="""Two rows of three spherical plots, titled "{title}". Each plot shows a vibrant collection of colored circles or balls scattered over the surface of a sphere. The vertical axis of each plot in the top row is the first dimension of latent space. The plots in the top row all have a line across the equator varying between purple, blue, green, and white. The bottom row shows similar colors, but with more of a ball-like appearance. Each circle has a point in the middle showing the true color of the sample; the bottom row shows that many of the warmer colors have been shifted to purple or black.""",  # noqa: E501
    ) as show:
        show(
            lambda theme: plot_latent_grid_3d(
                h_rgb,
                y_rgb,
                x_rgb,
                title='Latents · ablated',
                dims=[
                    (1, 0, 2),
                    (2, 0, 1),
                    (3, 0, 1),
                    # (4, 0, 1),
                    # (2, 1, 3),
                    # (3, 1, 2),
                    (4, 1, 2),
                    (3, 2, 4),
                    # (4, 2, 3),
                    (4, 3, 0),
                ],
                dot_radius=10,
                theme=theme,
            )
        )

    # --- What the notebook produced ---
    expected_figures = [
        'true-colors',
        'pred-colors-no-intervention',
        'loss-colors-no-intervention',
        'latents-no-intervention',
        'pred-colors-ablated',
        'loss-colors-ablated',
        'latents-ablated',
    ]
    for name in expected_figures:
        assert_png_figure(tmp_path / 'large-assets' / f'ex-{nbid}-{name}.png')
    assert len(saved_figures) == len(expected_figures)
    # The helper filled each alt text's title placeholder from the figure's title.
    alt_texts = list(saved_figures.values())
    assert all('{title}' not in text for text in alt_texts)
    assert '"True colors' in alt_texts[0]

    # 0..300 inclusive: the schedule has 301 steps, and Lightning ran every one of them.
    assert len(dopesheet) == 301
    [trainer] = fitted_trainers
    assert trainer.global_step == 301
    metrics = pd.read_csv(Path(trainer.logger.log_dir) / 'metrics.csv')
    train_loss = metrics['train_loss'].dropna()
    assert len(train_loss) >= 6, 'expected a logged loss every 50 steps'
    assert np.isfinite(train_loss).all()

    # Ablating dim 0 zeroes its producer row, so the unit-normed bottleneck has nothing there.
    assert h_rgb.shape == (20 * 20 * 20, K)
    assert torch.equal(h_rgb[:, 0], torch.zeros(len(h_rgb)))
    # ...while the other dims still carry unit vectors.
    torch.testing.assert_close(h_rgb.norm(dim=-1), torch.ones(len(h_rgb)), atol=1e-5, rtol=0)

    baseline_max, ablated_max = printed['max']
    assert all(math.isfinite(v) for v in printed['max'] + printed['median'])
    assert 0 <= printed['median'][0] <= baseline_max
    assert 0 <= printed['median'][1] <= ablated_max
    assert ablated_max > baseline_max, f'ablation should hurt: max {ablated_max:.3g} vs baseline {baseline_max:.3g}'
