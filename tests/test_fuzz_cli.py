"""Fuzzing `ex-color run` with near-valid experiment files and dopesheets.

Hypothesis starts from Ex 2.9's files and applies a few edits drawn from a grammar of the
mistakes people make — a value of the wrong type or out of range, a missing or unknown
key, a broken cell, row or line ending — then runs `ex-color run --steps 5 --no-report`
in process (`run_cli`). Whatever the input: no traceback, exit code 0, 1 or 2, and a failure
is one line of ours (after any log lines).

100 examples: about three in four are refused while loading (milliseconds each), the rest
train and evaluate (a fraction of a second each, on one torch thread). `make test` replays the
same 100 every time (the 'repeatable' profile); plain `pytest` draws new ones on each run,
which is how edge cases are found.
"""

from __future__ import annotations

import contextlib
import copy
import tempfile
import tomllib
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from .cli import assert_one_line_after_logs, run_cli

EX29 = Path(__file__).resolve().parents[1] / 'experiments' / 'ex-2.9'
# 100 runs of the command, some of them training: `pytest -m 'not slow'` leaves it out.
pytestmark = pytest.mark.slow
BASE = tomllib.loads((EX29 / 'experiment.toml').read_text())
CSV = (EX29 / 'dopesheet.csv').read_text()

FIELDS = [
    ('experiment', 'seed'),
    ('experiment', 'name'),
    ('experiment', 'dopesheet'),
    ('model', 'k_bottleneck'),
    ('model', 'k_codec'),
    ('model', 'n_nonlinear'),
    ('model', 'kind'),
    ('data', 'hues'),
    ('data', 'saturations'),
    ('data', 'batch_size'),
    ('labels', 'soft'),
    ('labels', 'red', 'power'),
    ('labels', 'red', 'scale'),
    ('labels', 'red', 'color'),
    ('labels', 'red', 'kind'),
    ('labels', 'vibrant', 'power'),
    ('regularizers', 1, 'point'),
    ('regularizers', 1, 'labels'),
    ('regularizers', 1, 'layers'),
    ('regularizers', 2, 'power'),
    ('regularizers', 3, 'dims'),
    ('regularizers', 0, 'kind'),
    ('evaluations', 0, 'dims'),
    ('evaluations', 0, 'target'),
    ('evaluations', 0, 'layer'),
    ('evaluations', 2, 'direction'),
    ('evaluations', 2, 'falloff_power'),
    ('sweep', 'minimise'),
    ('sweep', 'best'),
]
VALUES = st.sampled_from(
    [
        -1,
        0,
        1,
        3,
        2**63,
        10**20,
        1e308,
        -0.5,
        0.5,
        float('inf'),
        float('nan'),
        True,
        False,
        '',
        '5',
        'red',
        'rde',
        'bottleneck',
        'encoder.9',
        'similarity',
        '∂',
        [],
        [0],
        [0, 0, 0, 0, 0],
        [1, 0, 0, 0, 0],
        [7],
        ['red', 'red'],
        ['val_recon'],
        {},
        {'red': -1.0},
        {'red': 1.0},
        {'rde': 1.0},
    ]
)
EDITS = st.sampled_from([0, 0, 1, 1, 2, 3])
"""How many edits a file gets: often none or one, so that many examples still train."""
CELLS = st.sampled_from(['', '-1', '0', '1e308', 'nan', 'inf', '+5000', '-0.5', '٣٠٠٠', '"', 'x', '1,2', '+10'])


def _edit_toml(doc: dict, path: tuple, value: object | None) -> None:
    """Set `path` to `value`, or delete it when value is None; paths that do not exist are added or skipped."""
    node = doc
    for key in path[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return
    if not isinstance(node, dict | list):
        return
    with contextlib.suppress(KeyError, IndexError, TypeError):
        if value is None:
            del node[path[-1]]
        else:
            node[path[-1]] = value


@st.composite
def experiments(draw: st.DrawFn) -> tuple[str, str]:
    """An experiment.toml and a dopesheet.csv, each a few edits away from Ex 2.9's."""
    doc = copy.deepcopy(BASE)
    for _ in range(draw(EDITS)):
        path = draw(st.sampled_from(FIELDS))
        _edit_toml(doc, path, draw(st.one_of(st.none(), VALUES)))
    if draw(st.integers(0, 3)) == 0:
        section = doc.setdefault(draw(st.sampled_from(['model', 'data', 'trainer'])), {})
        if isinstance(section, dict):
            section['typo'] = 1
    try:
        toml = tomli_w.dumps(doc)
    except (TypeError, ValueError):  # a value TOML cannot hold: write it as text instead
        toml = (EX29 / 'experiment.toml').read_text()
    rows = [line.split(',') for line in CSV.splitlines()]
    for _ in range(draw(EDITS)):
        row = draw(st.integers(0, len(rows) - 1))
        column = draw(st.integers(0, len(rows[row]) - 1))
        rows[row][column] = draw(CELLS)
    if draw(st.integers(0, 3)) == 0:
        rows.pop(draw(st.integers(0, len(rows) - 1)))
    newline = draw(st.sampled_from(['\n', '\r\n', '\r']))
    csv = newline.join(','.join(row) for row in rows) + newline
    if draw(st.booleans()):
        toml = '\ufeff' + toml
    if draw(st.integers(0, 9)) == 0:
        toml = toml[: draw(st.integers(0, len(toml)))]
    return toml, csv


# one_thread: tiny models; with two torch threads a busy machine's spin-waits make each run several times slower.
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],  # one_thread holds for all
)
@given(files=experiments())
def test_near_valid_experiments_never_give_a_traceback(one_thread, files):
    toml, csv = files
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / 'experiment.toml').write_text(toml, encoding='utf-8')
        (directory / 'dopesheet.csv').write_text(csv, encoding='utf-8', newline='')
        proc = run_cli('run', directory, '--steps', 5, '--no-report', '--out', directory / 'run')
    code, said = proc.returncode, proc.stderr
    event(f'exit {code}')
    assert 'Traceback' not in said, said
    assert code in (0, 1, 2), (code, said)
    if code != 0:
        assert_one_line_after_logs(said, code, code)
