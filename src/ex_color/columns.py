"""Column names of what a run reports: one place, so the experiment file's checks, the sweep table
and the reports agree on every name.

- a variant's figures: `<variant>_<metric>` for each of `METRICS`, `<variant>_<colour>` for each
  named colour (spaces become '_');
- validation losses: `val_recon` and `val_<regularizer>` (the `reg-` prefix dropped);
- training losses: `train_loss` (the total) and `train_<term>` (`train_recon`, `train_reg-anchor`), as the
  seed's Lightning module logs them, in metrics.csv, sweep.csv and every tracker alike.
"""

from __future__ import annotations

from collections.abc import Iterable

METRICS = ('mse_max', 'mse_median', 'selectivity_r2')
"""The per-variant figures besides the named-colour table."""
VALIDATION_RECON = 'val_recon'


def color_column(variant: str, color: str) -> str:
    """`('ablated', 'dark gray')` → `'ablated_dark_gray'`."""
    return f'{variant}_{color.replace(" ", "_")}'


def evaluation_columns(name: str, colors: Iterable[str]) -> list[str]:
    """A variant's columns in a sweep's table: `<name>_<metric>` and `<name>_<colour>`."""
    return [f'{name}_{metric}' for metric in METRICS] + [color_column(name, c) for c in colors]


TEXT_METRICS = ('target_ratio', 'collateral_ratio', 'target_mass')
"""A text variant's figures besides its per-class cross-entropy and ratios."""


def text_evaluation_columns(name: str, classes: Iterable[str]) -> list[str]:
    """A text variant's columns in a sweep's table: `<name>_<metric>`, `<name>_ce_<class>`, `<name>_ratio_<class>`."""
    return [f'{name}_{m}' for m in TEXT_METRICS] + [f'{name}_{kind}_{c}' for kind in ('ce', 'ratio') for c in classes]


def train_loss_column(term: str) -> str:
    """A training loss as reported: `'loss'` (the total) → `'train_loss'`, `'reg-anchor'` → `'train_reg-anchor'`."""
    return f'train_{term}'


def validation_column(regularizer_name: str) -> str:
    """`'reg-anchor'` → `'val_anchor'`."""
    return 'val_' + regularizer_name.removeprefix('reg-')


__all__ = [
    'METRICS',
    'TEXT_METRICS',
    'VALIDATION_RECON',
    'color_column',
    'evaluation_columns',
    'text_evaluation_columns',
    'train_loss_column',
    'validation_column',
]
