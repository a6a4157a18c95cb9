"""Ex 2.9 copied with another [search] table in place of its own, for the search tests."""

from __future__ import annotations

import shutil
import tomllib
from collections.abc import Sequence
from pathlib import Path

import tomli_w

EX29 = Path(__file__).resolve().parents[1] / 'experiments' / 'ex-2.9'
QUICK_SEARCH = """
[search]
maximise = ["ablated_selectivity_r2"]
minimise = ["baseline_mse_median"]
constraints = ["ablated_red >= 0.02"]
seeds_per_trial = 1
validate_seeds = [5]
finalists = 2

[[search.parameters]]
kind = "cell"
column = "reg-anchor"
step = "1000"
low = 0.001
high = 1.0
log = true

[[search.parameters]]
kind = "column-scale"
column = "reg-separate"
low = 0.1
high = 10.0
log = true
"""
"""A [search] table for Ex 2.9 that runs in seconds: one seed per trial, one fresh seed, two finalists."""


def ex29_searching(directory: Path, search: str, evaluations: Sequence[str] | None = None) -> Path:
    """Copy Ex 2.9 to `directory` with `search` (TOML text holding a [search] table) instead of its own table.

    `evaluations`: keep only these of its evaluations (a search assesses every trial with each; fewer is quicker).
    """
    shutil.copytree(EX29, directory)
    path = directory / 'experiment.toml'
    text = path.read_text()
    if evaluations is None:
        path.write_text(text[: text.index('\n[search]')] + '\n' + search)
        return directory
    data = tomllib.loads(text)
    del data['search']
    data['evaluations'] = [e for e in data['evaluations'] if e['name'] in evaluations]
    path.write_text(tomli_w.dumps(data) + '\n' + search)
    return directory
