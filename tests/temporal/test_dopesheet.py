"""Dopesheet parsing, step resolution and evaluation, against hand values and a naive reference."""

import dataclasses
import io
import math
import os
import threading
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ex_color.temporal import Dopesheet, DopesheetError, Keyframe, PropertySpec, schedule_table

EX_2_9_CSV = """\
STEP,PHASE,ACTION,lr,reg-separate,reg-anchor,reg-planar-v,reg-planar-d,reg-anti-anchor,reg-unit
0,Train,,1e-8,0.01,0.02,0.01,0.001,0.002,0.01
+10,,,0.01,,,,,,
+0.5,,,,0.01,,,,,
1000,,,0.1,0.01,0.05,0.01,0.01,0.01,0.1
+0.9,,,,0,0,0,0,0,0
3000,,,0.05,0,0,0,0,0,0
"""


def minjerk_by_formula(tau: float) -> float:
    return 10 * tau**3 - 15 * tau**4 + 6 * tau**5


def naive_value(keys: list[tuple[int, float]], space: str, timing: str, t: int) -> float:
    """Plain-loop reference for one property at step t; `keys` sorted by step."""
    if t <= keys[0][0]:
        return keys[0][1]
    if t >= keys[-1][0]:
        return keys[-1][1]
    for i in range(len(keys) - 1):
        (t0, v0), (t1, v1) = keys[i], keys[i + 1]
        if t == t0:
            return v0
        if t0 < t < t1:
            if timing == 'step-end':
                return v0
            tau = (t - t0) / (t1 - t0)
            eased = minjerk_by_formula(tau) if timing == 'minjerk' else tau
            if space == 'log':
                a, b = math.log(max(v0, 1e-10)), math.log(max(v1, 1e-10))
                return math.exp(a + (b - a) * eased)
            return v0 + (v1 - v0) * eased
    raise AssertionError('unreachable')


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


# --- Ex 2.9 -------------------------------------------------------------------------------


@pytest.fixture(scope='module')
def ex29() -> Dopesheet:
    return Dopesheet.from_string(EX_2_9_CSV)


def test_ex29_resolves_relative_steps(ex29):
    # +10 → 0 + 10; +0.5 → round(0 + 0.5·(1000 − 0)) = 500 (between the absolute rows 0 and 1000, not 10);
    # +0.9 → round(1000 + 0.9·(3000 − 1000)) = 2800
    assert [k.step for k in ex29.keyframes] == [0, 10, 500, 1000, 2800, 3000]
    assert [k.written_step for k in ex29.keyframes] == ['0', '+10', '+0.5', '1000', '+0.9', '3000']
    assert len(ex29) == 3001


def test_ex29_props_phases(ex29):
    assert ex29.props == [
        'lr',
        'reg-separate',
        'reg-anchor',
        'reg-planar-v',
        'reg-planar-d',
        'reg-anti-anchor',
        'reg-unit',
    ]
    assert ex29.phases == {'Train'}
    assert all(spec.space == 'linear' and spec.timing == 'minjerk' for spec in ex29.properties)
    first, last = ex29[0], ex29[3000]
    assert (first.phase, first.is_phase_start, first.is_phase_end) == ('Train', True, False)
    assert (last.phase, last.is_phase_start, last.is_phase_end) == ('Train', False, True)
    assert ex29[1500].phase == 'Train'
    assert ex29[1500].actions == []


def test_ex29_lr_by_hand(ex29):
    # lr keys: (0, 1e-8), (10, 0.01), (1000, 0.1), (3000, 0.05)
    # t=505: τ = 495/990 = 0.5, minjerk = 0.5 → 0.01 + 0.09·0.5 = 0.055
    assert ex29.value('lr', 505) == pytest.approx(0.055, rel=1e-12)
    # t=5: τ = 0.5 → 1e-8 + (0.01 − 1e-8)·0.5 = 0.005000005
    assert ex29.value('lr', 5) == pytest.approx(0.005000005, rel=1e-12)
    # t=200: τ = 190/990 = 19/99; minjerk(19/99) = 10·6859/970299 − 15·130321/96059601 + 6·2476099/9509900499
    #   ≈ 0.0706896 − 0.0203500 + 0.0015622 = 0.0519018  →  lr ≈ 0.01 + 0.09·0.0519018 ≈ 0.0146712
    eased = 10 * Fraction(19, 99) ** 3 - 15 * Fraction(19, 99) ** 4 + 6 * Fraction(19, 99) ** 5
    assert float(eased) == pytest.approx(0.0519018, abs=1e-7)
    assert ex29.value('lr', 200) == pytest.approx(float(Fraction(1, 100) + Fraction(9, 100) * eased), rel=1e-12)
    assert ex29.value('lr', 200) == pytest.approx(0.0146712, abs=1e-7)
    # t=2000: halfway from (1000, 0.1) to (3000, 0.05) → 0.075
    assert ex29.value('lr', 2000) == pytest.approx(0.075, rel=1e-12)
    assert ex29.value('lr', 0) == 1e-8
    assert ex29.value('lr', 10) == 0.01
    assert ex29.value('lr', 3000) == 0.05


def test_ex29_regularizer_weights_by_hand(ex29):
    # reg-anchor keys: (0, 0.02), (1000, 0.05), (2800, 0), (3000, 0)
    # t=250: τ = 0.25, minjerk = 0.103515625 → 0.02 + 0.03·0.103515625 = 0.02310546875
    assert ex29.value('reg-anchor', 250) == pytest.approx(0.02310546875, rel=1e-12)
    assert ex29.value('reg-anchor', 500) == pytest.approx(0.035, rel=1e-12)
    # t=1900: halfway from (1000, 0.05) to (2800, 0) → 0.025
    assert ex29.value('reg-anchor', 1900) == pytest.approx(0.025, rel=1e-12)
    assert all(ex29.value('reg-anchor', t) == 0.0 for t in range(2800, 3001))
    # reg-separate is 0.01 at 0, 500 and 1000: flat until 1000, then falls to 0 at 2800
    assert all(ex29.value('reg-separate', t) == 0.01 for t in range(0, 1001))
    assert ex29.value('reg-separate', 1900) == pytest.approx(0.005, rel=1e-12)


def test_ex29_table_matches_frames(ex29):
    names, values = schedule_table(ex29)
    assert names == ex29.props
    assert values.shape == (3001, 7)
    assert values.dtype == np.float64
    alone = Dopesheet.from_string(EX_2_9_CSV)  # no table: each step is computed by itself
    for t in (0, 1, 5, 10, 200, 505, 999, 1000, 2799, 2800, 2999, 3000):
        # one computation (Track.values_at) fills the table and gives a step alone, so bit for bit
        assert list(alone[t].props.values()) == values[t].tolist() == list(ex29[t].props.values())


# --- log space, step-end timing, phases and actions, at every step --------------------------

PHASED_CSV = """\
STEP,PHASE,ACTION,x:log,y,z::step-end
0,warmup,,1,0,5
10,,,100,,
+5,main,"checkpoint, log",,2,
20,,,,,7
-2,cooldown,,,,
24,,stop,0.5,-1,
"""
# Resolved steps: 0, 10, 10 + 5 = 15, 20, 24 − 2 = 22, 24 → 25 steps.
PHASED_KEYS = {
    'x': ('log', 'minjerk', [(0, 1.0), (10, 100.0), (24, 0.5)]),
    'y': ('linear', 'minjerk', [(0, 0.0), (15, 2.0), (24, -1.0)]),
    'z': ('linear', 'step-end', [(0, 5.0), (20, 7.0)]),
}
PHASES_BY_HAND = [('warmup', 0, 14), ('main', 15, 21), ('cooldown', 22, 24)]


@pytest.fixture(scope='module')
def phased() -> Dopesheet:
    return Dopesheet.from_string(PHASED_CSV)


def test_phased_sheet_structure(phased):
    assert [k.step for k in phased.keyframes] == [0, 10, 15, 20, 22, 24]
    assert len(phased) == 25
    assert phased.props == ['x', 'y', 'z']
    assert [(s.space, s.timing) for s in phased.properties] == [
        ('log', 'minjerk'),
        ('linear', 'minjerk'),
        ('linear', 'step-end'),
    ]
    assert phased.phases == {'warmup', 'main', 'cooldown'}


def test_phased_sheet_hand_values(phased):
    # log-space minjerk from 1 to 100 at τ = 0.5: exp(½·log 100) = 10, the geometric midpoint
    assert phased.value('x', 5) == pytest.approx(10.0, rel=1e-12)
    # from (10, 100) to (24, 0.5) at τ = 7/14: √(100·0.5) = √50
    assert phased.value('x', 17) == pytest.approx(math.sqrt(50), rel=1e-12)
    # linear-space y from (0, 0) to (15, 2) at t=6: τ = 0.4,
    # minjerk(0.4) = 0.64 − 0.384 + 0.06144 = 0.31744 → 2·0.31744 = 0.63488
    assert phased.value('y', 6) == pytest.approx(0.63488, rel=1e-12)
    # z holds 5 until its next key at 20, then jumps to 7 and stays
    assert [phased.value('z', t) for t in (0, 10, 19, 20, 21, 24)] == [5.0, 5.0, 5.0, 7.0, 7.0, 7.0]


def test_phased_sheet_every_step_against_naive(phased):
    for t in range(len(phased)):
        frame = phased[t]
        assert frame.step == t
        assert list(frame.props) == ['x', 'y', 'z']
        for name, (space, timing, keys) in PHASED_KEYS.items():
            expected = naive_value(keys, space, timing, t)
            assert close(frame.props[name], expected), (name, t, frame.props[name], expected)
            assert close(phased.value(name, t), expected)


def test_phased_sheet_phases_and_actions_at_every_step(phased):
    for t in range(len(phased)):
        frame = phased[t]
        (name, start, end) = next(p for p in PHASES_BY_HAND if p[1] <= t <= p[2])
        assert frame.phase == name, t
        assert frame.is_phase_start == (t == start), t
        assert frame.is_phase_end == (t == end), t
        expected_actions = {15: ['checkpoint', 'log'], 24: ['stop']}.get(t, [])
        assert frame.actions == expected_actions, t


def test_frame_is_frozen(phased):
    with pytest.raises(dataclasses.FrozenInstanceError):
        phased[0].step = 3  # type: ignore[misc]


def test_steps_before_first_phase_have_no_phase():
    sheet = Dopesheet.from_string('STEP,PHASE,lr\n0,,1\n5,Train,2\n9,,3\n')
    assert [sheet[t].phase for t in range(10)] == [None] * 5 + ['Train'] * 5
    assert not any(sheet[t].is_phase_start or sheet[t].is_phase_end for t in range(5))
    assert sheet[5].is_phase_start and sheet[9].is_phase_end
    assert sheet.phases == {'Train'}


def test_repeated_phase_name_starts_a_new_phase():
    sheet = Dopesheet.from_string('STEP,PHASE,lr\n0,A,1\n3,A,2\n5,,3\n')
    assert [sheet[t].is_phase_start for t in range(6)] == [True, False, False, True, False, False]
    assert [sheet[t].is_phase_end for t in range(6)] == [False, False, True, False, False, True]


def test_without_phase_and_action_columns():
    sheet = Dopesheet.from_string('STEP,lr\n0,1\n4,2\n')
    assert sheet.phases == set()
    assert all(sheet[t].phase is None and sheet[t].actions == [] for t in range(len(sheet)))


def test_actions_are_stripped_and_empties_dropped():
    sheet = Dopesheet.from_string('STEP,ACTION,lr\n0," a, ,b ,",1\n2,,2\n')
    assert sheet[0].actions == ['a', 'b']
    assert sheet[1].actions == []


def test_whitespace_and_blank_lines_are_ignored():
    sheet = Dopesheet.from_string('\n STEP , lr : log : linear ,y\n\n 0 , 1 , 3 \n ,, \n 10 , 100 \n')
    assert sheet.props == ['lr', 'y']
    assert (sheet.properties[0].space, sheet.properties[0].timing) == ('log', 'linear')
    assert [k.step for k in sheet.keyframes] == [0, 10]
    # the row '10, 100' is shorter than the header: y is blank there, so y holds 3
    assert sheet.value('y', 10) == 3.0
    # header on line 2, first row line 4, second data row on line 6 (blank lines counted)
    assert [(k.row, k.line) for k in sheet.keyframes] == [(2, 4), (4, 6)]


def test_step_alias_and_explicit_defaults():
    sheet = Dopesheet.from_string('STEP,a::step,b:linear:minjerk\n0,1,1\n4,2,2\n')
    assert [s.timing for s in sheet.properties] == ['step-end', 'minjerk']
    assert [sheet.value('a', t) for t in range(5)] == [1.0, 1.0, 1.0, 1.0, 2.0]


def test_rows_are_sorted_by_resolved_step():
    sheet = Dopesheet.from_string('STEP,lr\n100,3\n0,1\n+10,2\n')
    # +10 counts from the absolute row above it in the file (0), not from the largest step
    assert [(k.step, k.values['lr']) for k in sheet.keyframes] == [(0, 1.0), (10, 2.0), (100, 3.0)]


def test_fraction_rounding_and_negative_relative_steps():
    sheet = Dopesheet.from_string('STEP,lr\n0,1\n+0.5,2\n-0.25,3\n-5,4\n100,5\n')
    # +0.5 → 0 + 0.5·100 = 50; -0.25 → 100 − 0.25·100 = 75; -5 → 100 − 5 = 95
    assert [k.step for k in sheet.keyframes] == [0, 50, 75, 95, 100]
    # exact halves round to even (Python's round): 0.5·11 = 5.5 → 6, 0.5·13 = 6.5 → 6
    assert Dopesheet.from_string('STEP,lr\n0,1\n+0.5,2\n11,3\n').steps == [0, 6, 11]
    assert Dopesheet.from_string('STEP,lr\n0,1\n+0.5,2\n13,3\n').steps == [0, 6, 13]


def test_single_row_sheet():
    sheet = Dopesheet.from_string('STEP,lr\n4,0.5\n')
    assert len(sheet) == 5
    assert [sheet.value('lr', t) for t in range(5)] == [0.5] * 5


def test_out_of_range_and_unknown_property(phased):
    for t in (len(phased), -1, 10_000):
        with pytest.raises(IndexError, match='out of range'):
            phased[t]
        with pytest.raises(IndexError):
            phased.value('x', t)
    with pytest.raises(KeyError, match='nope'):
        phased.value('nope', 0)


def test_table_is_cached_and_read_only(phased):
    first = phased.table()
    second = schedule_table(phased)
    assert first.values is second.values
    assert first.names == second.names == ['x', 'y', 'z']
    with pytest.raises(ValueError):
        first.values[0, 0] = 1.0
    np.testing.assert_array_equal(first.column('y'), first.values[:, 1])


def test_to_frame(phased):
    frame = phased.to_frame()
    assert frame.index.name == 'STEP'
    assert list(frame.index) == list(range(25))
    assert list(frame.columns) == ['x', 'y', 'z']
    assert frame.loc[5, 'x'] == pytest.approx(10.0, rel=1e-12)
    np.testing.assert_array_equal(frame.to_numpy(), phased.table().values)


def test_iteration_gives_every_frame(phased):
    frames = list(phased)
    assert [f.step for f in frames] == list(range(25))
    assert frames[15].actions == ['checkpoint', 'log']


# --- from_csv -----------------------------------------------------------------------------


def test_from_csv_path_and_str(tmp_path):
    path = tmp_path / 'dopesheet.csv'
    path.write_text(EX_2_9_CSV, encoding='utf-8')
    for source in (path, str(path)):
        sheet = Dopesheet.from_csv(source)
        assert len(sheet) == 3001
        assert sheet.steps == [0, 10, 500, 1000, 2800, 3000]


def test_from_csv_file_objects(tmp_path):
    sheet = Dopesheet.from_csv(io.StringIO(PHASED_CSV))
    assert len(sheet) == 25
    path = tmp_path / 'sheet.csv'
    path.write_text('\ufeff' + PHASED_CSV, encoding='utf-8')  # a byte-order mark, as spreadsheets write
    with open(path, encoding='utf-8') as file:
        assert Dopesheet.from_csv(file).props == ['x', 'y', 'z']


def test_from_csv_binary_file_object():
    sheet = Dopesheet.from_csv(io.BytesIO(b'\xef\xbb\xbfSTEP,lr\n0,1\n+3,2\n'))  # UTF-8 with a byte-order mark
    assert sheet.props == ['lr'] and sheet.steps == [0, 3]


def test_from_csv_rejects_non_utf8(tmp_path):
    path = tmp_path / 'latin1.csv'
    path.write_bytes('STEP,lr\n0,1\n# café\n'.encode('latin-1'))
    with pytest.raises(DopesheetError, match='not UTF-8') as caught:
        Dopesheet.from_csv(path)
    assert str(caught.value).startswith(str(path)) and '\n' not in str(caught.value)


def test_building_in_code():
    sheet = Dopesheet(
        [PropertySpec('a', space='log', timing='linear')],
        [Keyframe(4, {'a': 16.0}), Keyframe(0, {'a': 1.0}, phase='P', actions=('go',))],
    )
    assert sheet.steps == [0, 4]
    # log-linear from 1 to 16 over 4 steps doubles each step: 1, 2, 4, 8, 16
    assert [sheet.value('a', t) for t in range(5)] == pytest.approx([1.0, 2.0, 4.0, 8.0, 16.0], rel=1e-12)
    assert sheet[0].actions == ['go'] and sheet[4].phase == 'P' and sheet[4].is_phase_end
    with pytest.raises(DopesheetError, match='same step'):
        Dopesheet([PropertySpec('a')], [Keyframe(2, {'a': 1.0}), Keyframe(2, {'a': 2.0})])
    with pytest.raises(DopesheetError, match='>= 0'):
        Dopesheet([PropertySpec('a')], [Keyframe(-3, {'a': 1.0})])
    with pytest.raises(DopesheetError, match='unknown properties'):
        Dopesheet([PropertySpec('a')], [Keyframe(0, {'a': 1.0, 'b': 2.0})])
    with pytest.raises(DopesheetError, match='no keyframes'):
        Dopesheet([PropertySpec('a')], [])


def test_from_csv_errors_name_the_file(tmp_path):
    path = tmp_path / 'broken.csv'
    path.write_text('STEP,lr\n0,1\nabc,2\n', encoding='utf-8')
    with pytest.raises(DopesheetError) as caught:
        Dopesheet.from_csv(path)
    assert str(caught.value).startswith(f'{path}, row 2 (line 3), column STEP:')
    with pytest.raises(DopesheetError, match=r'^<stream>, row 2'):
        Dopesheet.from_csv(io.StringIO('STEP,lr\n0,1\nabc,2\n'))
    with pytest.raises(DopesheetError, match=r'^mine, row 2'):
        Dopesheet.from_csv(io.StringIO('STEP,lr\n0,1\nabc,2\n'), source='mine')


# --- malformed dopesheets -------------------------------------------------------------------

MALFORMED = [
    # (id, csv, fragments the message must contain)
    ('missing STEP', 'step,lr\n0,1\n', ['no STEP column', "'step'"]),
    ('blank STEP', 'STEP,lr\n0,1\n ,2\n', ['row 2 (line 3)', 'column STEP', 'empty STEP']),
    ('word STEP', 'STEP,lr\n0,1\nabc,2\n', ['row 2', 'column STEP', "'abc'"]),
    ('bare sign', 'STEP,lr\n0,1\n+,2\n', ['row 2', 'column STEP', "'+'"]),
    ('absolute non-integer', 'STEP,lr\n0,1\n1.5,2\n', ['row 2', 'column STEP', "'1.5'", 'whole']),
    ('fraction >= 1', 'STEP,lr\n0,1\n+1.5,2\n10,3\n', ['row 2', 'column STEP', "'+1.5'", 'between 0 and 1']),
    ('fraction zero', 'STEP,lr\n0,1\n+0.0,2\n10,3\n', ['row 2', 'column STEP', "'+0.0'"]),
    ('+N with nothing above', 'STEP,lr\n+10,1\n20,2\n', ['row 1 (line 2)', 'column STEP', "'+10'", 'above']),
    ('-N with nothing below', 'STEP,lr\n0,1\n-5,2\n', ['row 2', 'column STEP', "'-5'", 'below']),
    ('+F with nothing below', 'STEP,lr\n0,1\n+0.5,2\n', ['row 2', 'column STEP', "'+0.5'", 'below']),
    ('-F with nothing above', 'STEP,lr\n-0.5,2\n10,1\n', ['row 1', 'column STEP', "'-0.5'", 'above']),
    ('negative step', 'STEP,lr\n-20,1\n10,2\n', ['row 1', 'column STEP', "'-20'", '-10', '>= 0']),
    ('duplicate step', 'STEP,lr\n500,1\n0,2\n+500,3\n', ['row 3 (line 4)', 'row 1 (line 2)', 'step 500']),
    ('non-numeric value', 'STEP,lr,x\n0,1,2\n5,fast,3\n', ['row 2 (line 3)', "column 'lr'", "'fast'"]),
    ('nan value', 'STEP,lr\n0,nan\n', ['row 1', "column 'lr'", 'finite']),
    ('unknown space', 'STEP,x:cubic\n0,1\n', ['line 1', "column 2 ('x:cubic')", "'cubic'", 'linear, log']),
    ('unknown timing', 'STEP,x:linear:bounce\n0,1\n', ["column 2 ('x:linear:bounce')", "'bounce'", 'minjerk']),
    ('too many header parts', 'STEP,x:a:b:c\n0,1\n', ["column 2 ('x:a:b:c')", '4 parts']),
    ('empty header name', 'STEP,lr,:log\n0,1,2\n', ["column 3 (':log')", 'no property name']),
    ('blank header', 'STEP,,lr\n0,1,2\n', ["column 2 ('')", 'no property name']),
    ('duplicate property', 'STEP,x,y,x:log\n0,1,2,3\n', ["column 4 ('x:log')", "duplicate property 'x'", 'column 2']),
    ('duplicate STEP column', 'STEP,lr,STEP\n0,1,2\n', ['column 3', 'duplicate STEP']),
    ('reserved with suffix', 'STEP,PHASE:log\n0,1\n', ["column 2 ('PHASE:log')", 'reserved']),
    ('empty text', '', ['empty dopesheet']),
    ('only blank lines', '\n \n,,\n', ['empty dopesheet']),
    ('header only', 'STEP,lr\n', ['line 1', 'no rows']),
    ('column never keyed', 'STEP,lr,x\n0,1,\n5,2,\n', ["column 'x'", 'no values']),
    ('too many cells', 'STEP,lr\n0,1,2\n', ['row 1', '3 cells']),
    # An unclosed quote used to swallow the rows below it, and then read as "no values in this column".
    ('unbalanced quote', 'STEP,lr,x\n0,1,2\n5,"3,4\n9,5,6\n', ['line 3: unbalanced quote', 'line 3 is never closed']),
    ('quoted cell over lines', 'STEP,lr\n0,"1\n\n"\n5,2\n', ['line 2: a quoted cell runs from line 2 to line 4']),
    ('bad quoting', 'STEP,lr\n0,"1"x\n', ['line 2: not valid CSV']),
    ('+N past the next row', 'STEP,lr\n0,1\n+5000,2\n3000,3\n', ['row 2 (line 3)', "'+5000'", 'past the next']),
    ('-N before the previous row', 'STEP,lr\n1000,1\n-3000,2\n3000,3\n', ['row 2', "'-3000'", 'before the previous']),
    ('Arabic-Indic STEP', 'STEP,lr\n0,1\n\u0663\u0660\u0660\u0660,2\n', ['row 2', 'column STEP', 'other than ASCII']),
    ('fullwidth relative STEP', 'STEP,lr\n0,1\n+\uff15,2\n', ['row 2', 'column STEP', 'other than ASCII']),
    ('Arabic-Indic value', 'STEP,lr\n0,\u0661\n', ['row 1', "column 'lr'", 'other than ASCII']),
    ('step past the limit', 'STEP,lr\n0,1\n10000000,2\n', ['row 2', '10,000,001 steps long', 'at most 10,000,000']),
    ('offset past the limit', 'STEP,lr\n0,1\n+10000000,2\n', ['row 2', 'offset of 10,000,000', 'at most 10,000,000']),
    ('resolves past the limit', 'STEP,lr\n9999990,1\n+10,2\n', ['row 2', '10,000,001 steps long', 'at most']),
    ('5000-digit step', 'STEP,lr\n0,1\n' + '9' * 5000 + ',2\n', ['row 2', '5,000 digits', 'at most 10,000,000']),
    ('5000-digit fraction', 'STEP,lr\n0,1\n+0.' + '5' * 5000 + ',2\n9,3\n', ['row 2', '5,000 digits after the point']),
]


@pytest.mark.parametrize(('text', 'fragments'), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_sheets_raise_one_line_errors(text, fragments):
    with pytest.raises(DopesheetError) as caught:
        Dopesheet.from_string(text, source='sheet.csv')
    message = str(caught.value)
    assert '\n' not in message
    assert message.startswith('sheet.csv')
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_dopesheet_error_is_a_value_error():
    assert issubclass(DopesheetError, ValueError)
    assert '\n' not in str(DopesheetError('a\nb'))


# --- property-based: STEP resolution ----------------------------------------------------------


def round_half_even(numerator: int, denominator: int) -> int:
    """round(numerator / denominator) with ties to even, in integers."""
    quotient, remainder = divmod(numerator, denominator)
    if 2 * remainder > denominator or (2 * remainder == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


plus_whole = st.integers(0, 60).map(lambda n: f'+{n}')
minus_whole = st.integers(0, 60).map(lambda n: f'-{n}')
fraction = st.tuples(st.sampled_from('+-'), st.integers(1, 99)).map(lambda p: f'{p[0]}0.{p[1]:02d}')
relative_cell = st.one_of(plus_whole, minus_whole, fraction)


@st.composite
def step_columns(draw) -> list[str]:
    """A STEP column: increasing absolute steps with runs of relative steps around them.

    Half the time rows before the first absolute row are `-N` and rows after the last `+N` (the
    only forms that can resolve there); otherwise any form, to exercise the errors.
    """
    absolutes = sorted(draw(st.sets(st.integers(0, 1000), min_size=1, max_size=4)))
    resolvable_ends = draw(st.booleans())
    leading = minus_whole if resolvable_ends else relative_cell
    trailing = plus_whole if resolvable_ends else relative_cell
    cells: list[str] = draw(st.lists(leading, max_size=2))
    for i, absolute in enumerate(absolutes):
        if i > 0:
            cells += draw(st.lists(relative_cell, max_size=3))
        cells.append(str(absolute))
    cells += draw(st.lists(trailing, max_size=2))
    return cells


def expected_step(cells: list[str], i: int) -> int | None:
    """Resolve cells[i] by scanning for the nearest absolute rows; None if it cannot resolve.

    A whole offset that lands beyond the absolute row on its far side (`+N` past the next,
    `-N` before the previous) cannot resolve either: it would reorder or lengthen the sheet.
    """
    above = next((int(c) for c in reversed(cells[:i]) if c[0].isdigit()), None)
    below = next((int(c) for c in cells[i + 1 :] if c[0].isdigit()), None)
    cell = cells[i]
    if cell[0].isdigit():
        return int(cell)
    sign, body = cell[0], cell[1:]
    if '.' in body:
        if above is None or below is None:
            return None
        hundredths = int(body.split('.')[1])  # F = hundredths / 100
        gap = below - above
        numerator = above * 100 + hundredths * gap if sign == '+' else below * 100 - hundredths * gap
        return round_half_even(numerator, 100)
    if sign == '+':
        step = None if above is None else above + int(body)
        return None if step is None or (below is not None and step > below) else step
    step = None if below is None else below - int(body)
    return None if step is None or (above is not None and step < above) else step


@settings(max_examples=100, deadline=None)
@given(step_columns())
def test_step_resolution_follows_the_rules(cells):
    text = 'STEP,i\n' + ''.join(f'{cell},{row}\n' for row, cell in enumerate(cells, start=1))
    expected = [expected_step(cells, i) for i in range(len(cells))]
    unresolvable = any(s is None or s < 0 for s in expected)
    duplicated = not unresolvable and len(set(expected)) < len(expected)
    if unresolvable or duplicated:
        with pytest.raises(DopesheetError) as caught:
            Dopesheet.from_string(text)
        message = str(caught.value)
        assert '\n' not in message and 'column STEP' in message
        bad_row = next(i for i, s in enumerate(expected, start=1) if s is None or s < 0) if unresolvable else None
        if bad_row is not None:
            assert f'row {bad_row} ' in message
        return
    sheet = Dopesheet.from_string(text)
    steps = [k.step for k in sheet.keyframes]
    assert steps == sorted(steps)
    assert sorted(steps) == sorted(expected)
    # column i holds the row number, so each keyframe says which row it came from
    for keyframe in sheet.keyframes:
        row = int(keyframe.values['i'])
        assert keyframe.row == row
        assert keyframe.written_step == cells[row - 1]
        assert keyframe.step == expected[row - 1]
    assert len(sheet) == max(expected) + 1


# --- property-based: vectorised table == per-step evaluation (bit for bit) ≈ naive reference ---------------


@st.composite
def random_sheets(draw) -> tuple[str, dict[str, tuple[str, str, list[tuple[int, float]]]]]:
    """CSV text of a small random sheet, and each property's (space, timing, keys) written independently."""
    steps = sorted(draw(st.sets(st.integers(0, 40), min_size=1, max_size=6)))
    n_props = draw(st.integers(1, 3))
    specs = [
        (f'p{j}', draw(st.sampled_from(['linear', 'log'])), draw(st.sampled_from(['minjerk', 'linear', 'step-end'])))
        for j in range(n_props)
    ]
    columns: dict[str, list[float | None]] = {}
    for name, space, _ in specs:
        value = (
            st.floats(-5, 5, allow_nan=False)
            if space == 'linear'
            else st.one_of(st.just(0.0), st.floats(1e-3, 1e3, allow_nan=False))
        )
        cells = draw(st.lists(st.one_of(st.none(), value), min_size=len(steps), max_size=len(steps)))
        assume(any(c is not None for c in cells))
        columns[name] = cells
    header = 'STEP,' + ','.join(f'{name}:{space}:{timing}' for name, space, timing in specs)
    lines = [
        f'{step},' + ','.join('' if columns[n][r] is None else repr(columns[n][r]) for n, _, _ in specs)
        for r, step in enumerate(steps)
    ]
    keys = {
        name: (space, timing, [(s, v) for s, v in zip(steps, columns[name], strict=True) if v is not None])
        for name, space, timing in specs
    }
    return header + '\n' + '\n'.join(lines) + '\n', keys


@settings(max_examples=60, deadline=None)
@given(random_sheets())
def test_table_equals_per_step_evaluation_and_naive_reference(sheet_and_keys):
    text, keys = sheet_and_keys
    sheet = Dopesheet.from_string(text)
    alone = Dopesheet.from_string(text)  # its steps are computed one at a time, without a table
    names, values = schedule_table(sheet)
    assert names == list(keys)
    assert values.shape == (len(sheet), len(keys))
    for t in range(len(sheet)):
        props = alone[t].props
        assert list(props.values()) == values[t].tolist()  # one computation, so bit for bit
        for j, (name, (space, timing, prop_keys)) in enumerate(keys.items()):
            assert alone.value(name, t) == sheet.value(name, t) == values[t, j]
            assert close(props[name], naive_value(prop_keys, space, timing, t)), (name, t)


# --- line endings, limits and what a path is ----------------------------------------------------


@pytest.mark.parametrize('ending', ['\r', '\r\n'])
def test_cr_and_crlf_line_endings_read_like_lf(ending):
    sheet = Dopesheet.from_string(EX_2_9_CSV.replace('\n', ending))
    reference = Dopesheet.from_string(EX_2_9_CSV)
    assert sheet.steps == reference.steps == [0, 10, 500, 1000, 2800, 3000]
    assert [(k.row, k.line) for k in sheet.keyframes] == [(k.row, k.line) for k in reference.keyframes]
    assert np.array_equal(sheet.table().values, reference.table().values)


def test_cr_line_endings_count_lines_in_errors():
    with pytest.raises(DopesheetError, match=r"^sheet\.csv, row 2 \(line 3\), column STEP: malformed STEP 'x'"):
        Dopesheet.from_string('STEP,lr\r0,1\rx,2\r', source='sheet.csv')


def test_relative_steps_may_reach_up_to_their_neighbours():
    sheet = Dopesheet.from_string('STEP,lr\n0,1\n+2999,2\n-2999,3\n3000,4\n+5000,5\n')
    assert sheet.steps == [0, 1, 2999, 3000, 8000]  # +5000 after the last absolute row lengthens the sheet


def test_the_longest_sheet_is_allowed_and_its_table_is_not_built_up_front():
    sheet = Dopesheet.from_string('STEP,lr\n0,1\n9999999,2\n')
    assert len(sheet) == 10_000_000
    assert sheet.value('lr', 9_999_999) == 2.0


def test_a_keyframe_built_in_code_past_the_limit_is_refused():
    with pytest.raises(DopesheetError) as caught:
        Dopesheet([PropertySpec('lr')], [Keyframe(0, {'lr': 1.0}), Keyframe(10**9, {'lr': 2.0})])
    assert str(caught.value) == (
        '<memory>, column STEP: step 1,000,000,000 makes the sheet 1,000,000,001 steps long: '
        'expected at most 10,000,000 steps'
    )


def test_a_table_over_the_memory_limit_is_refused_before_it_is_allocated():
    header = 'STEP,' + ','.join(f'p{j}' for j in range(20))
    text = f'{header}\n0,{",".join(["1"] * 20)}\n9999999,{",".join(["2"] * 20)}\n'
    with pytest.raises(DopesheetError) as caught:
        Dopesheet.from_string(text, source='sheet.csv')
    assert str(caught.value) == (
        'sheet.csv, row 2 (line 3), column STEP: the schedule table would take 10,000,000 steps × 20 properties '
        '× 8 bytes = 1,526 MiB: expected at most 1,024 MiB (fewer steps or property columns)'
    )


def test_from_csv_says_what_a_path_is_instead_of_a_file(tmp_path):
    with pytest.raises(DopesheetError) as caught:
        Dopesheet.from_csv(tmp_path)
    assert str(caught.value) == f'{tmp_path}: is a directory: expected a dopesheet CSV file'
    with pytest.raises(DopesheetError) as caught:
        Dopesheet.from_csv(tmp_path / 'nope.csv')
    assert str(caught.value) == f'{tmp_path / "nope.csv"}: does not exist: expected a dopesheet CSV file'


@pytest.mark.skipif(not hasattr(os, 'mkfifo'), reason='needs FIFOs')
def test_from_csv_refuses_a_fifo_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / 'sheet.csv'
    os.mkfifo(fifo)
    caught: list[BaseException] = []

    def read() -> None:
        try:
            Dopesheet.from_csv(fifo)
        except BaseException as e:  # handed to the test thread
            caught.append(e)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(timeout=20)
    if thread.is_alive():  # blocked: open the other end to let it go, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail('from_csv blocked on a FIFO')
    assert len(caught) == 1 and isinstance(caught[0], DopesheetError)
    assert str(caught[0]) == f'{fifo}: is not a regular file (it is a FIFO): expected a dopesheet CSV file'


@pytest.mark.skipif(not os.path.exists('/dev/zero'), reason='needs /dev/zero')
def test_from_csv_does_not_read_a_device():
    with pytest.raises(DopesheetError) as caught:
        Dopesheet.from_csv('/dev/zero')
    assert str(caught.value) == (
        '/dev/zero: is not a regular file (it is a character device): expected a dopesheet CSV file'
    )


def test_without_drops_columns_and_keeps_rows_phases_and_the_other_values(phased):
    fewer = phased.without(['x'])
    assert fewer.props == ['y', 'z']
    assert len(fewer) == len(phased) and fewer.steps == phased.steps
    assert [(f.phase, f.actions) for f in fewer] == [(f.phase, f.actions) for f in phased]
    assert np.array_equal(fewer.table().values, phased.table().values[:, 1:])  # the same computation per column
    with pytest.raises(KeyError, match="'w'"):
        phased.without(['w'])
