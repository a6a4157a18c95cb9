"""Delete one digit from an autoencoder of handwritten digits (scikit-learn's 8×8 digits).

The second domain for ex-color, after colours: an autoencoder with a unit-norm bottleneck
learns to reconstruct 8×8 digit images `[B, 64]`. While it trains, ex-color's regularizers
pin every 3 to latent dimension 0 and keep the other digits off it, under the schedule in
`dopesheet.csv`. Ablating dimension 0 (`ex_color.ablate`) should then wreck the 3s and leave
the other nine digits as they were. This script measures exactly that, per seed: each digit's
reconstruction error on a held-out split before and after the ablation.

The *routed* method is the training-time peer (gradient routing, Cloud et al., 2024): no
anchoring terms, but a 3 reaches the encoder only through dim 0 and every other digit only
through the other dims; the same ablation is then measured the same way.

    python examples/digits/digits.py --seeds 0-4 --out digits.csv

Needs scikit-learn (`pip install 'ex-color[digits]'`); the data ships with it, so nothing is
downloaded.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from ex_color import (
    AngularAnchor,
    AxisAlignedSubspace,
    Dopesheet,
    L2Norm,
    RegularizerConfig,
    Route,
    TrainingModule,
    Unitarity,
    ablate,
    set_deterministic_mode,
)

log = logging.getLogger(__name__)

DOPESHEET = Path(__file__).with_name('dopesheet.csv')
CONCEPT = 3
"""The digit to delete."""
CONCEPT_DIM = 0
"""The latent dimension it is pinned to, and the one `ablate` zeroes."""
BOTTLENECK = 'bottleneck'
N_PIXELS = 64
RESULT_COLUMNS = ('seed', 'method', 'digit', 'mse_before', 'mse_after', 'ratio')
METHODS = ('anchored', 'routed')
"""How dim 0 learns the 3s: anchoring regularizers, or gradient routing (see `routed_training`)."""
ROUTE = Route(BOTTLENECK, (CONCEPT_DIM,), {'three': 1.0})
"""A 3's gradient reaches the encoder only through dim 0, every other digit's only through the others."""
CONCEPT_TERMS = ('reg-anchor', 'reg-away')
"""The anchoring terms, which the routed method leaves out (and its schedule with them)."""
MIN_STEPS = 100
"""Fewer steps would squeeze the dopesheet's warm-up (1 % of the first stretch) onto step 0."""
MAX_SEEDS = 1000
"""The most seeds one run takes (each trains a model for seconds to minutes)."""
INSTALL_HINT = "scikit-learn is needed for the digits example: pip install 'ex-color[digits]'"


class MissingDependencyError(ImportError):
    """An optional dependency of this example is not installed; the message says how to get it."""


class DigitsAutoencoder(nn.Module):
    """64 pixels → `hidden` → k-D unit vector → `hidden` → 64 pixels in [0, 1].

    Sequential by construction (`encoder`, `bottleneck`, `decoder`), so `ablate(model,
    'bottleneck', [d])` zeroes row d of `encoder`'s last Linear and column d of `decoder.0`.
    """

    def __init__(self, k_bottleneck: int = 16, hidden: int = 64) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(N_PIXELS, hidden), nn.GELU(), nn.Linear(hidden, k_bottleneck))
        self.bottleneck = L2Norm()
        self.decoder = nn.Sequential(
            nn.Linear(k_bottleneck, hidden), nn.GELU(), nn.Linear(hidden, N_PIXELS), nn.Sigmoid()
        )

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruct images: `[B, 64] → [B, 64]`."""
        return self.decoder(self.bottleneck(self.encoder(x)))

    def latents(self, x: Tensor) -> Tensor:
        """Bottleneck activations (unit vectors): `[B, 64] → [B, k]`."""
        return self.bottleneck(self.encoder(x))


@dataclass(frozen=True)
class DigitsData:
    """A fixed stratified split of the 1,797 digits; pixels scaled to [0, 1]."""

    x_train: Tensor
    """`[N, 64]` float32."""
    y_train: Tensor
    """`[N]` int64, the digit."""
    x_test: Tensor
    """`[M, 64]` float32, held out: never trained on."""
    y_test: Tensor
    """`[M]` int64."""


def load_data(test_fraction: float = 0.25) -> DigitsData:
    """scikit-learn's bundled digits, split 75/25 within each digit (the same split for every seed)."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as e:
        raise MissingDependencyError(INSTALL_HINT) from e
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)  # [1797, 64]; pixels are 0..16
    y = torch.tensor(digits.target, dtype=torch.long)  # [1797]
    # The split has its own fixed seed: seeds change the training, not what is measured.
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=0)
    return DigitsData(x_train, y_train, x_test, y_test)


def concept_labels(digits: Tensor) -> dict[str, Tensor]:
    """The regularizers' label: `'three'`, 1 for a 3 and 0 otherwise, `[B]` (`'~three'` reads its complement)."""
    three = (digits == CONCEPT).float()
    return {'three': three}


def collate(batch: Sequence[tuple[Tensor, Tensor]]) -> tuple[Tensor, dict[str, Tensor]]:
    """`(image [64], digit [])` pairs → `(images [B, 64], labels {name: [B]})`, the batches TrainingModule takes."""
    images = torch.stack([image for image, _ in batch])
    digits = torch.stack([digit for _, digit in batch])
    return images, concept_labels(digits)


def regularizers(k_bottleneck: int) -> list[RegularizerConfig]:
    """The terms the dopesheet weighs: 3s pinned to dim 0, every other digit kept out of it.

    As in Ex 2.9: the anchor pulls the concept's samples toward the axis; a subspace term keeps
    the rest of the data off it (there the desaturated colours; here the other nine digits, whose
    dim 0 is pushed to 0); Unitarity keeps the encoder's raw output near unit length, so that
    zeroing one small coordinate barely moves the other digits. Ex 2.9's Separate is left out:
    here it fought the anchor and made the 3s' reconstruction worse (see README.md).
    """
    axis = torch.zeros(k_bottleneck)
    axis[CONCEPT_DIM] = 1.0
    return [
        RegularizerConfig('reg-unit', Unitarity(), None, ['encoder']),
        RegularizerConfig('reg-anchor', AngularAnchor(axis), {'three': 1.0}, [BOTTLENECK]),
        RegularizerConfig('reg-away', AxisAlignedSubspace([CONCEPT_DIM], invert=True), {'~three': 1.0}, [BOTTLENECK]),
    ]


def load_dopesheet(steps: int | None = None, path: Path = DOPESHEET) -> Dopesheet:
    """The schedule in `path`, stretched or squeezed to `steps` steps when given.

    Every absolute STEP is scaled by `(steps − 1) / last absolute step` (rounded); relative
    rows are fractions of the gaps between them, so the whole schedule keeps its shape.
    """
    text = path.read_text()
    if steps is None:
        return Dopesheet.from_string(text, source=str(path))
    if steps < MIN_STEPS:
        raise ValueError(f'steps must be at least {MIN_STEPS}, got {steps}')
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    column = header.index('STEP')
    last = max(int(row[column]) for row in body if row[column].isdigit())
    for row in body:
        if row[column].isdigit():
            row[column] = str(round(int(row[column]) * (steps - 1) / last))
    out = io.StringIO()
    csv.writer(out, lineterminator='\n').writerows([header, *body])
    return Dopesheet.from_string(out.getvalue(), source=f'{path} scaled to {steps} steps')


def train(
    seed: int,
    data: DigitsData,
    dopesheet: Dopesheet,
    *,
    method: str = 'anchored',
    k_bottleneck: int = 16,
    hidden: int = 64,
    batch_size: int = 128,
) -> DigitsAutoencoder:
    """Train one autoencoder on `data.x_train` for `len(dopesheet)` steps; the same seed gives the same model.

    `method`: 'anchored' (every regularizer) or 'routed' (only `reg-unit`, with `ROUTE`): the same
    initial weights, batches and learning rate either way.
    """
    if method not in METHODS:
        raise ValueError(f'method must be one of {METHODS}, got {method!r}')
    set_deterministic_mode(seed)
    model = DigitsAutoencoder(k_bottleneck, hidden)
    loader = DataLoader(
        TensorDataset(data.x_train, data.y_train),
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,  # the last, partial batch would hold only a few 3s (or none) for the anchor
        collate_fn=collate,
        generator=torch.Generator().manual_seed(seed),
    )
    terms = regularizers(k_bottleneck)
    if method == 'routed':
        terms = [r for r in terms if r.name not in CONCEPT_TERMS]
        dopesheet = dopesheet.without([c for c in CONCEPT_TERMS if c in dopesheet.props])
    module = TrainingModule(model, dopesheet, nn.MSELoss(), terms, route=ROUTE if method == 'routed' else None)
    trainer = L.Trainer(
        max_steps=len(dopesheet),
        accelerator='cpu',
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
    )
    trainer.fit(module, loader)
    return model.eval()


@torch.no_grad()
def per_digit_mse(model: nn.Module, x: Tensor, y: Tensor) -> dict[int, float]:
    """Mean over each digit's images of the per-image error (mean over 64 pixels of the squared error)."""
    model.eval()
    errors = (model(x) - x).square().mean(dim=-1)  # [M]
    return {digit: float(errors[y == digit].mean()) for digit in range(10)}


@dataclass(frozen=True)
class SeedResult:
    """Per-digit held-out error of one seed's model before and after ablating `CONCEPT_DIM`."""

    seed: int
    before: dict[int, float]
    after: dict[int, float]
    train_seconds: float
    method: str = 'anchored'

    def ratio(self, digit: int) -> float:
        """Error after / before for `digit` (inf if it was reconstructed perfectly before)."""
        before = self.before[digit]
        return self.after[digit] / before if before > 0 else math.inf

    @property
    def concept_ratio(self) -> float:
        """The deleted digit's error ratio: should be large."""
        return self.ratio(CONCEPT)

    @property
    def others_median_ratio(self) -> float:
        """Median error ratio over the nine other digits: should be close to 1."""
        return statistics.median(self.ratio(d) for d in range(10) if d != CONCEPT)

    def rows(self) -> list[dict[str, float | int]]:
        """One row per digit, with the keys in `RESULT_COLUMNS`."""
        return [
            {
                'seed': self.seed,
                'method': self.method,
                'digit': d,
                'mse_before': self.before[d],
                'mse_after': self.after[d],
                'ratio': self.ratio(d),
            }
            for d in range(10)
        ]


def run_seed(
    seed: int, data: DigitsData, dopesheet: Dopesheet, method: str = 'anchored'
) -> tuple[SeedResult, DigitsAutoencoder, DigitsAutoencoder]:
    """Train with `method`, ablate `CONCEPT_DIM` of the bottleneck, and measure: (result, model, ablated copy)."""
    start = time.perf_counter()
    model = train(seed, data, dopesheet, method=method)
    seconds = time.perf_counter() - start
    log.info('seed %d (%s): trained %d steps in %.1f s', seed, method, len(dopesheet), seconds)
    ablated = ablate(model, BOTTLENECK, [CONCEPT_DIM])
    result = SeedResult(
        seed,
        before=per_digit_mse(model, data.x_test, data.y_test),
        after=per_digit_mse(ablated, data.x_test, data.y_test),
        train_seconds=seconds,
        method=method,
    )
    return result, model, ablated


def write_results(results: Sequence[SeedResult], path: Path) -> None:
    """Write every seed's per-digit rows as CSV with the columns `RESULT_COLUMNS`."""
    with path.open('w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=RESULT_COLUMNS, lineterminator='\n')
        writer.writeheader()
        for result in results:
            writer.writerows(result.rows())


def parse_seeds(text: str) -> list[int]:
    """'0-4' → [0, 1, 2, 3, 4]; '1,3,7-9' → [1, 3, 7, 8, 9]; at most `MAX_SEEDS` seeds."""
    ranges: list[range] = []
    for part in text.split(','):
        lo, sep, hi = part.strip().partition('-')
        if not (lo.isdigit() and (not sep or hi.isdigit())) or (sep and int(hi) < int(lo)):
            raise argparse.ArgumentTypeError(f"cannot read seeds {text!r}; expected e.g. '0-4' or '1,3,7-9'")
        ranges.append(range(int(lo), int(hi if sep else lo) + 1))
    count = sum(len(r) for r in ranges)  # before expanding: '0-1000000000' would not fit in memory
    if count > MAX_SEEDS:
        raise argparse.ArgumentTypeError(f'seeds {text!r} are {count:,} seeds; expected at most {MAX_SEEDS:,}')
    seeds = [seed for r in ranges for seed in r]
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f'seeds {text!r} list a seed twice')
    return seeds


def _whole_number(text: str, least: int) -> int:
    """`text` as an int ≥ `least`, or a one-line error (argparse prefixes the option)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a whole number, got {text!r}') from None
    if value < least:
        raise argparse.ArgumentTypeError(f'expected at least {least}, got {value}')
    return value


def _steps(text: str) -> int:
    return _whole_number(text, MIN_STEPS)


def _threads(text: str) -> int:
    return _whole_number(text, 1)


def _methods(text: str) -> list[str]:
    """'anchored,routed' → ['anchored', 'routed']; each one of `METHODS`, once."""
    methods = [part.strip() for part in text.split(',')]
    if not methods or any(m not in METHODS for m in methods) or len(set(methods)) != len(methods):
        raise argparse.ArgumentTypeError(f'cannot read methods {text!r}; expected some of {", ".join(METHODS)}')
    return methods


def _out_path(text: str) -> Path:
    """A CSV file path whose folder exists and is writable, checked before training (not after it)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f'{text!r} is a directory; expected a file path, e.g. {text}/digits.csv')
    folder = path.parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f'{text!r}: folder {str(folder)!r} does not exist; create it first')
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise argparse.ArgumentTypeError(f'{text!r} is not writable; expected a file path you can write')
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description='Delete digit 3 from a digits autoencoder by ablating one latent dim.')
    parser.add_argument('--seeds', type=parse_seeds, default=[0], help="seeds to train, e.g. '0-4' (default: 0)")
    parser.add_argument(
        '--steps', type=_steps, help=f'training steps; {DOPESHEET.name} is scaled to fit (default: its length)'
    )
    parser.add_argument('--out', type=_out_path, help='write per-seed, per-digit results to this CSV file')
    parser.add_argument(
        '--threads', type=_threads, default=1, help='torch CPU threads, at least 1 (default: 1; the model is tiny)'
    )
    parser.add_argument(
        '--methods',
        type=_methods,
        default=list(METHODS),
        help="how dim 0 learns the 3s, comma-separated: 'anchored', 'routed' (default: both)",
    )
    args = parser.parse_args(argv)

    import warnings

    from rich.console import Console
    from rich.table import Table

    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    for name in ('lightning', 'lightning.pytorch', 'lightning.fabric', 'ex_color'):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings('ignore', message=r'.*isinstance\(treespec, LeafSpec\).*')  # Lightning's, not ours
    torch.set_num_threads(min(args.threads, os.cpu_count() or 1))
    console = Console()

    try:
        data = load_data()
    except MissingDependencyError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    dopesheet = load_dopesheet(args.steps)

    results = []
    for seed in args.seeds:
        for method in args.methods:
            result, _, _ = run_seed(seed, data, dopesheet, method)
            results.append(result)
            console.print(
                f'seed {seed}, {method}: digit {CONCEPT} error ×{result.concept_ratio:.2f}, '
                f'other digits (median) ×{result.others_median_ratio:.3f}  ({result.train_seconds:.1f} s)'
            )

    first_seed = results[0].seed
    firsts = [r for r in results if r.seed == first_seed]
    table = Table(title=f'Seed {first_seed}: held-out error per digit, before and after ablating dim {CONCEPT_DIM}')
    table.add_column('digit', justify='right')
    for r in firsts:
        for column in ('before', 'after', 'ratio'):
            table.add_column(f'{r.method} {column}', justify='right')
    for d in range(10):
        cells = [c for r in firsts for c in (f'{r.before[d]:.4f}', f'{r.after[d]:.4f}', f'{r.ratio(d):.2f}')]
        table.add_row(str(d), *cells, style='bold red' if d == CONCEPT else None)
    console.print(table)

    summary = Table(title=f'{len(dopesheet)} steps per seed')
    for column in ('seed', 'method', f'digit {CONCEPT} ratio', 'other digits, median ratio', 'train s'):
        summary.add_column(column, justify='right')
    for r in results:
        summary.add_row(
            str(r.seed), r.method, f'{r.concept_ratio:.2f}', f'{r.others_median_ratio:.3f}', f'{r.train_seconds:.1f}'
        )
    console.print(summary)

    if args.out is not None:
        write_results(results, args.out)
        console.print(f'Results: {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
