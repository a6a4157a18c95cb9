"""Per-seed figures of a sweep, for each ablation: the target's error, the worst collateral colour, selectivity
(for a text experiment: the concept's cross-entropy ratio, the worst other class's, and the probability on the
concept).

    python experiments/summarise.py experiments/delete-cyan runs/delete-cyan/sweep

Only the prepared model's evaluations are listed: a sweep trains no control.

Collateral colours are the named colours whose similarity to every target is below 0.2.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from ex_color.columns import color_column
from ex_color.config import build_targets, load_experiment
from ex_color.data import NAMED_COLORS_HSV
from ex_color.data.color import hsv_to_rgb
from ex_color.data.target import target_similarity

COLLATERAL_BELOW = 0.2


def main(experiment_path: str, sweep_dir: str) -> None:
    experiment = load_experiment(experiment_path)
    table = pd.read_csv(f'{sweep_dir}/sweep.csv')
    if experiment.config.is_text:
        summarise_text(experiment, table)
        return
    names = list(NAMED_COLORS_HSV)
    rgb = hsv_to_rgb(np.array(list(NAMED_COLORS_HSV.values())))
    for evaluation in experiment.config.prepared_evaluations():  # a sweep trains no control model
        targets = build_targets(experiment.config, evaluation)
        similarity = target_similarity(rgb, targets)
        far = [name for name, s in zip(names, similarity, strict=True) if s < COLLATERAL_BELOW]
        print(f'{evaluation.name} ({evaluation.kind}, aimed at {" + ".join(t.name for t in targets)})')
        for _, row in table.iterrows():
            # A target that is a label's colour rather than a named colour has no column of its own in sweep.csv.
            hit = ', '.join(
                f'{t.name} {row[color_column(evaluation.name, t.name)]:.3f}'
                for t in targets
                if color_column(evaluation.name, t.name) in row
            )
            hit = hit or 'not a named colour (see the report)'
            worst = max(far, key=lambda c: row[color_column(evaluation.name, c)])
            print(
                f'  seed {int(row.seed)}: target error {hit}; worst collateral {worst} '
                f'{row[color_column(evaluation.name, worst)]:.2g}; baseline median {row.baseline_mse_median:.2g}; '
                f'selectivity r² {row[evaluation.name + "_selectivity_r2"]:.3f}'
            )


def summarise_text(experiment, table: pd.DataFrame) -> None:
    for evaluation in experiment.config.prepared_evaluations():
        name = evaluation.name
        print(f'{name} ({evaluation.kind}, aimed at {" + ".join(evaluation.targets)})')
        for _, row in table.iterrows():
            print(
                f'  seed {int(row.seed)}: concept cross-entropy ×{row[name + "_target_ratio"]:.3f}; worst other class '
                f'×{row[name + "_collateral_ratio"]:.3f}; p(concept) {row["baseline_target_mass"]:.3g} → '
                f'{row[name + "_target_mass"]:.3g}; all text ×{row[name + "_ratio_all"]:.3f}'
            )


if __name__ == '__main__':
    main(*sys.argv[1:3])
