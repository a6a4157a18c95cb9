"""Suite-wide settings: Hypothesis profiles, eager training by default, and the `one_thread` fixture.

`make test` (and so CI) uses the 'repeatable' profile: the same examples on every run, so a
landing never hangs on a newly drawn edge case. Plain `pytest` draws fresh examples each
run, which is how such edge cases are found; set HYPOTHESIS_PROFILE=repeatable to replay.
"""

import os

import pytest
import torch
from hypothesis import settings

settings.register_profile('repeatable', derandomize=True, print_blob=True)
settings.load_profile(os.environ.get('HYPOTHESIS_PROFILE', 'default'))

# Commands train eager here unless a test asks for the compiled step: compiling takes seconds to half a
# minute per graph, and tests/training/test_compiled.py checks the compiled mode's promises on a small model.
os.environ.setdefault('EX_COLOR_COMPILE', '0')


@pytest.fixture
def one_thread():
    """Tiny models train fastest on one thread: with a second, a busy machine's spin-waits make each step up to
    ten times slower (Lightning tests use it; the engine sets its own threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
