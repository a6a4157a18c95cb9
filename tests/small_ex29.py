"""A small Ex 2.9 (narrower codecs, one GELU each, batches of 32) for the compiled-mode tests.

Compiling a graph takes seconds to half a minute, so the engine, command and Ray tests of the compiled
step all train this one configuration: they share its compiled graphs (inductor's disk cache).
`reg-planar-d` keeps the desaturated colours in dims 1-4 rather than 2-4, so that its penalty reads one
channel: inductor once corrupted the heap compiling that selection (see `_ChannelSelector`), and these
tests would crash if it came back.
"""

from __future__ import annotations

from pathlib import Path

from ex_color.config import Experiment, load_experiment

EX29 = Path(__file__).resolve().parents[1] / 'experiments' / 'ex-2.9'
OVERRIDES = ('model.k_codec=8', 'model.n_nonlinear=1', 'data.batch_size=32', 'regularizers.3.dims=[1, 2, 3, 4]')


def small_ex29() -> Experiment:
    return load_experiment(EX29, overrides=OVERRIDES)


def set_arguments() -> list[str]:
    """The overrides as command-line arguments."""
    return [word for override in OVERRIDES for word in ('--set', override)]
