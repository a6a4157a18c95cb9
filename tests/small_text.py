"""A small lm-digits (one block of width 32 with 4 heads, context 32, batches of 16) for the text tests.

It keeps lm-digits' corpus, labels, regularizers and evaluations, so the tests run the real text pipeline; the
model is small enough that a few hundred steps take a couple of seconds.
"""

from __future__ import annotations

from pathlib import Path

from ex_color.config import Experiment, load_experiment

LM_DIGITS = Path(__file__).resolve().parents[1] / 'experiments' / 'lm-digits'
OVERRIDES = ('model.layers=1', 'model.width=32', 'data.context=32', 'data.batch_size=16')
STEPS = 300


def small_text() -> Experiment:
    return load_experiment(LM_DIGITS, overrides=OVERRIDES)


def set_arguments() -> list[str]:
    """The overrides as command-line arguments."""
    return [word for override in OVERRIDES for word in ('--set', override)]
