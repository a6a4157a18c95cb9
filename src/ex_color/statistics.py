"""Statistics over seeds: the bootstrap interval of a figure, and the Pareto front of a table of runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

BOOTSTRAP_RESAMPLES = 10_000


def bootstrap_interval(
    values: np.ndarray,
    statistic: Callable[..., np.ndarray] = np.mean,
    *,
    level: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The percentile bootstrap interval of `statistic` over seeds: `values` `[n, ...]` (one row per seed) →
    (low, high), each `[...]` (floats for 1-D values).

    Seeds are resampled with replacement, the same resamples for every column, from a fixed
    `seed`, so the interval is the same every time it is computed. NaN for no seeds.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.shape[0] == 0:
        nan = np.full(values.shape[1:], np.nan)
        return nan, nan
    picks = np.random.default_rng(seed).integers(0, values.shape[0], size=(resamples, values.shape[0]))
    estimates = statistic(values[picks], axis=1)  # [resamples, ...]
    tail = (1 - level) / 2
    low, high = np.quantile(estimates, [tail, 1 - tail], axis=0)
    return low, high


def mean_and_interval(group: pd.DataFrame, figures: Sequence[str]) -> dict[str, float]:
    """`<figure>_mean`, `_low` and `_high` of each figure over the rows of `group` (NaN rows left out): the mean and
    its 95% bootstrap interval (`bootstrap_interval`), as a comparison's summary.csv gives them."""
    row: dict[str, float] = {}
    for figure in figures:
        values = group[figure].dropna().to_numpy(np.float64)
        low, high = bootstrap_interval(values)
        mean = float(values.mean()) if values.size else float('nan')
        row |= {f'{figure}_mean': mean, f'{figure}_low': float(low), f'{figure}_high': float(high)}
    return row


def pareto_front(table: pd.DataFrame, minimise: Sequence[str], maximise: Sequence[str]) -> pd.Series:
    """Which rows no other row dominates (at least as good on every column, better on one).

    A NaN counts as the worst value of its column, so a row cannot reach the front by a missing figure.
    """
    scores = np.concatenate([table[list(minimise)].to_numpy(float), -table[list(maximise)].to_numpy(float)], axis=1)
    scores = np.where(np.isnan(scores), np.inf, scores)
    no_worse = (scores[:, None, :] <= scores[None, :, :]).all(-1)  # [i, j]: i is no worse than j everywhere
    better = (scores[:, None, :] < scores[None, :, :]).any(-1)
    dominated = (no_worse & better).any(axis=0)
    return pd.Series(~dominated, index=table.index)


__all__ = ['BOOTSTRAP_RESAMPLES', 'bootstrap_interval', 'pareto_front']
