"""Timeline: stepping through a dopesheet agrees with the sheet's frames; the package stays torch-free."""

import ast
import math
import sys
from pathlib import Path

import pytest

import ex_color.temporal
from ex_color.temporal import Dopesheet, Timeline

SHEET_CSV = """\
STEP,PHASE,ACTION,lr:log,w,gate::step
0,warmup,,1e-6,0,0
10,main,save,1e-2,1,
+0.5,,"save, eval",,,1
30,,,1e-3,0.5,
"""
# Resolved steps: 0, 10, round(10 + 0.5·(30 − 10)) = 20, 30 → 31 steps.


@pytest.fixture
def sheet() -> Dopesheet:
    return Dopesheet.from_string(SHEET_CSV)


def test_starts_at_step_zero(sheet):
    timeline = Timeline(sheet)
    assert len(timeline) == len(sheet) == 31
    state = timeline.state
    assert state.step == 0
    assert (state.phase, state.is_phase_start, state.is_phase_end) == ('warmup', True, False)
    assert state.actions == []
    assert state.props == {'lr': 1e-6, 'w': 0.0, 'gate': 0.0}
    assert timeline.remaining == 30


def test_step_advances_and_returns_the_new_state(sheet):
    timeline = Timeline(sheet)
    new = timeline.step()
    assert new.step == 1
    assert timeline.state is new
    assert timeline.remaining == 29
    # lr in log space from 1e-6 (step 0) to 1e-2 (step 10), at τ = 0.1:
    # minjerk(0.1) = 0.01 − 0.0015 + 0.00006 = 0.00856 → 10^(−6 + 4·0.00856) = 10^(−5.96576)
    assert new.props['lr'] == pytest.approx(10 ** (-5.96576), rel=1e-12)


def test_walk_matches_dopesheet_frames_at_every_step(sheet):
    timeline = Timeline(sheet)
    states = [timeline.state] + [timeline.step() for _ in range(len(timeline) - 1)]
    assert [s.step for s in states] == list(range(31))
    for state in states:
        frame = sheet[state.step]
        assert (state.phase, state.is_phase_start, state.is_phase_end) == (
            frame.phase,
            frame.is_phase_start,
            frame.is_phase_end,
        )
        assert state.actions == frame.actions
        assert list(state.props) == list(frame.props)
        for name, value in frame.props.items():
            assert math.isclose(state.props[name], value, rel_tol=1e-12, abs_tol=1e-300), (name, state.step)


def test_phases_actions_and_step_timing_by_hand(sheet):
    states = list(Timeline(sheet))
    assert [t for t, s in enumerate(states) if s.is_phase_start] == [0, 10]
    assert [t for t, s in enumerate(states) if s.is_phase_end] == [9, 30]
    assert {t: s.actions for t, s in enumerate(states) if s.actions} == {10: ['save'], 20: ['save', 'eval']}
    # gate is step-end: 0 until its next key at step 20, then 1
    assert [s.props['gate'] for s in states] == [0.0] * 20 + [1.0] * 11
    # w from (10, 1) to (30, 0.5): halfway at 20 → 0.75
    assert states[20].props['w'] == pytest.approx(0.75, rel=1e-12)


def test_stepping_past_the_end_raises_and_keeps_the_last_state(sheet):
    timeline = Timeline(sheet)
    timeline.seek(30)
    assert timeline.remaining == 0
    last = timeline.state
    with pytest.raises(StopIteration):
        timeline.step()
    assert timeline.state is last
    assert last.step == 30 and last.is_phase_end


def test_iteration_yields_each_remaining_state_once(sheet):
    timeline = Timeline(sheet)
    assert [s.step for s in timeline] == list(range(31))
    assert timeline.state.step == 30
    assert [s.step for s in timeline] == [30]
    timeline.seek(27)
    assert [s.step for s in timeline] == [27, 28, 29, 30]


def test_seek(sheet):
    timeline = Timeline(sheet)
    state = timeline.seek(20)
    assert state.step == 20 and state.actions == ['save', 'eval']
    assert timeline.step().step == 21
    for bad in (-1, 31):
        with pytest.raises(IndexError, match='out of range'):
            timeline.seek(bad)


def test_single_step_sheet():
    timeline = Timeline(Dopesheet.from_string('STEP,lr\n0,0.1\n'))
    assert len(timeline) == 1
    assert timeline.state.props == {'lr': 0.1}
    with pytest.raises(StopIteration):
        timeline.step()


def test_temporal_imports_only_stdlib_numpy_pandas_and_itself():
    """temporal sits below the trainers: it must never import torch (or other ex_color layers)."""
    allowed_roots = {'numpy', 'pandas', 'ex_color', '__future__'}
    package_dir = Path(ex_color.temporal.__file__).parent
    stdlib = set(sys.stdlib_module_names)
    for path in package_dir.glob('*.py'):
        tree = ast.parse(path.read_text(encoding='utf-8'))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                root = module.split('.')[0]
                assert root in stdlib or root in allowed_roots, (path.name, module)
                if root == 'ex_color':
                    assert module.startswith('ex_color.temporal'), (path.name, module)
