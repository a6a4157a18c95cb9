"""Runs never mix, overwrite or lose data, and every failure is one clear line.

Each case runs the command in process (`run_cli`: `cli.main` with its own stdout, stderr and
log handler, short schedules) against its own copy of a finished run, sweep or experiment,
and checks three things: the exit code (2 bad input or artifact, 1 failure during work, 130
interrupted), one line of ours on stderr without a traceback, and that every file that
existed before is byte-identical after. What only a live process shows (a second writer,
Ctrl-C) runs the console script in a subprocess.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ex_color import cli

from .cli import assert_one_line_after_logs, run_cli

EX29 = Path(__file__).resolve().parents[1] / 'experiments' / 'ex-2.9'
# Trains a run and a sweep to break, and interrupts live processes: `pytest -m 'not slow'` leaves it out.
pytestmark = pytest.mark.slow
STEPS = 20


def files_of(*roots: Path) -> dict[Path, bytes]:
    """Every file under `roots` (or the root itself, if a file): path → contents."""
    found = {}
    for root in roots:
        if root.is_file():
            found[root] = root.read_bytes()
        elif root.is_dir():
            found |= {p: p.read_bytes() for p in root.rglob('*') if p.is_file()}
    return found


@dataclass
class Case:
    """One hostile command: `setup(case_dir, base)` prepares files and returns (args, paths that must not change)."""

    setup: Callable[[Path, Path], tuple[list[object], list[Path]]]
    code: int
    says: str


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def _experiment(case: Path, edit: Callable[[Path], None] = lambda _: None) -> Path:
    experiment = _copy(EX29, case / 'experiment')
    edit(experiment)
    return experiment


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f'{old!r} not in {path}'
    path.write_text(text.replace(old, new, 1))


def _resume_with(*extra: object, edit: Callable[[Path], None] = lambda _: None):
    def setup(case: Path, base: Path):
        run = _copy(base / 'run', case / 'run')
        experiment = _experiment(case, edit)
        return ['run', experiment, '--steps', STEPS, '--out', run, '--resume', '--no-report', *extra], [run, experiment]

    return setup


def _run_into(make_out: Callable[[Path, Path], Path | str]):
    def setup(case: Path, base: Path):
        out = make_out(case, base)
        protected = [out] if isinstance(out, Path) else []
        return ['run', EX29, '--steps', STEPS, '--out', out, '--no-report'], protected

    return setup


def _damaged_run(name: str, damage: Callable[[Path], None], *, finished: bool = True, command: str = 'run'):
    def setup(case: Path, base: Path):
        run = _copy(base / 'run', case / 'run')
        if not finished:
            (run / 'results.json').unlink()
        damage(run / name)
        if command == 'report':
            return ['report', run], [run]
        return ['run', EX29, '--steps', STEPS, '--out', run, '--resume', '--no-report'], [run]

    return setup


def _replace_with_directory(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.mkdir()


def _write(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _damaged_sweep(damage: Callable[[Path], None]):
    def setup(case: Path, base: Path):
        sweep = _copy(base / 'sweep', case / 'sweep')
        damage(sweep)
        return ['sweep', EX29, '--seeds', '0-1', '--steps', STEPS, '--out', sweep, '--no-report'], [sweep]

    return setup


def _results_edit(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    import json

    def damage(path: Path) -> None:
        results = json.loads(path.read_text())
        edit(results)
        path.write_text(json.dumps(results))

    return damage


def _bytes_in(case: Path, name: str, data: bytes) -> Path:
    path = case / name
    path.write_bytes(data)
    return path


def _bad_file(name: str, old: str, new: str, file: str = 'experiment.toml', *extra: object):
    """Ex 2.9 with one edit to one of its files, run for a few steps."""

    def setup(case: Path, base: Path):
        experiment = _experiment(case, lambda e: _edit(e / file, old, new))
        return ['run', experiment, '--steps', STEPS, '--out', case / 'run', '--no-report', *extra], [experiment]

    return setup


def _dopesheet_is(make: Callable[[Path], object]):
    """Ex 2.9 whose `dopesheet` names something that is not a CSV file."""

    def setup(case: Path, base: Path):
        experiment = _experiment(case)
        target = make(case)
        _edit(experiment / 'experiment.toml', 'dopesheet = "dopesheet.csv"', f'dopesheet = "{target}"')
        return ['run', experiment, '--steps', STEPS, '--out', case / 'run', '--no-report'], [
            experiment / 'experiment.toml'
        ]

    return setup


def _fifo(case: Path) -> Path:
    path = case / 'pipe.csv'
    os.mkfifo(path)
    return path


CASES: dict[str, Case] = {
    # 1. Silent wrong results: a resumed run must be the run it continues.
    'resume with other --steps': Case(
        lambda c, b: (['run', EX29, '--steps', 30, '--out', _copy(b / 'run', c / 'run'), '--resume'], [c / 'run']),
        2,
        f'holds a run with steps {STEPS}, not 30; nothing was changed',
    ),
    'resume after editing the dopesheet': Case(
        _resume_with(edit=lambda e: _edit(e / 'dopesheet.csv', '\n3000,,,0.05,', '\n3000,,,0.04,')),
        2,
        'holds a run with another dopesheet',
    ),
    'resume after changing k_codec': Case(
        _resume_with(edit=lambda e: _edit(e / 'experiment.toml', 'k_codec = 16', 'k_codec = 12')),
        2,
        'of another experiment config (model.k_codec differs)',
    ),
    'resume with another seed': Case(_resume_with('--seed', 1), 2, 'holds a run with seed 0, not 1'),
    # 2. Other people's files: --out must be new, empty or ours.
    'out at an experiment directory': Case(
        _run_into(lambda c, b: _experiment(c)), 2, 'is not empty and is not an ex-color run directory'
    ),
    'out at a project folder': Case(
        _run_into(lambda c, b: _bytes_in(c, 'notes.txt', b'mine').parent), 2, 'is not empty and is not an ex-color'
    ),
    'out empty': Case(_run_into(lambda c, b: ''), 2, '--out is empty'),
    'out at a sweep directory': Case(
        _run_into(lambda c, b: _copy(b / 'sweep', c / 'sweep')), 2, 'holds a sweep, not a run'
    ),
    'out is a file': Case(_run_into(lambda c, b: _bytes_in(c, 'file', b'x')), 2, 'is a file, not a directory'),
    'out under a file': Case(
        _run_into(lambda c, b: _bytes_in(c, 'file', b'x') / 'run'), 2, 'file is a file; choose another --out'
    ),
    'out unwritable': Case(_run_into(lambda c, b: Path('/proc/ex-color-run')), 2, 'cannot write there'),
    'out too long': Case(_run_into(lambda c, b: str(c / ('r' * 300))), 2, 'path too long'),
    # 3. Values that used to crash in training.
    'seed -1': Case(lambda c, b: (['run', EX29, '--seed', -1, '--out', c / 'run'], []), 2, '--seed: seed -1 out of'),
    'seed of 20 digits': Case(
        lambda c, b: (['run', EX29, '--seed', 10**20, '--out', c / 'run'], []),
        2,
        'expected a whole number in [0, 2**63)',
    ),
    'a hundred million seeds': Case(
        lambda c, b: (['sweep', EX29, '--seeds', '0-100000000', '--out', c / 'sweep'], []), 2, 'more than 100,000'
    ),
    'seed -5 in the file': Case(_bad_file('seed', 'seed = 0', 'seed = -5'), 2, 'experiment.seed: -5 is out of range'),
    'seed of 20 digits in the file': Case(
        _bad_file('seed', 'seed = 0', 'seed = 12345678901234567890'), 2, 'experiment.seed: '
    ),
    'negative learning rate': Case(
        _bad_file('lr', '\n1000,,,0.1,', '\n1000,,,-0.1,', 'dopesheet.csv'), 2, "column 'lr': the learning rate, -0.1"
    ),
    'weight of 1e308': Case(
        _bad_file('w', '1000,,,0.1,0.01,0.05', '1000,,,0.1,0.01,1e308', 'dopesheet.csv'), 2, 'is above the limit'
    ),
    'a billion-step schedule with --steps 20': Case(
        _bad_file('len', '\n3000,', '\n999999999,', 'dopesheet.csv'), 2, 'expected at most 10,000,000 steps'
    ),
    'a huge training cube': Case(
        _bad_file('cube', 'saturations = 10\nvalues = 10', 'saturations = 1000\nvalues = 1000'), 2, 'training colours'
    ),
    'batch_size = true': Case(_bad_file('bool', 'batch_size = 64', 'batch_size = true'), 2, 'data.batch_size: '),
    'batch_size = "64"': Case(_bad_file('str', 'batch_size = 64', 'batch_size = "64"'), 2, 'data.batch_size: '),
    'anchor point of zeros': Case(
        _bad_file('zeros', 'point = [1, 0, 0, 0, 0]', 'point = [0, 0, 0, 0, 0]'),
        2,
        "regularizers.1.point (regularizer 'reg-anchor'): ",
    ),
    'affinity -1': Case(
        _bad_file('aff', 'labels = { red = 1.0 }', 'labels = { red = -1.0 }'),
        2,
        "regularizers.1.labels.red (regularizer 'reg-anchor'): ",
    ),
    # 5. Messages that say what is wrong.
    'dopesheet is a directory': Case(_dopesheet_is(lambda c: '.'), 2, 'is a directory'),
    'dopesheet is a FIFO': Case(_dopesheet_is(_fifo), 2, 'is not a regular file (it is a FIFO)'),
    'dopesheet is /dev/zero': Case(_dopesheet_is(lambda c: '/dev/zero'), 2, 'is not a regular file'),
    'unbalanced quote': Case(
        _bad_file('quote', '\n1000,,,0.1,', '\n1000,"Train,,0.1,', 'dopesheet.csv'), 2, 'unbalanced quote'
    ),
    'relative step past the next row': Case(
        _bad_file('rel', '\n+10,', '\n+5000,', 'dopesheet.csv'), 2, "relative step '+5000' resolves"
    ),
    'Arabic-Indic digits': Case(_bad_file('ar', '\n3000,', '\n٣٠٠٠,', 'dopesheet.csv'), 2, 'other than ASCII'),
    # 4. Damaged artifacts: one line naming the file, nothing touched.
    'garbage checkpoint': Case(
        _damaged_run('checkpoint.pt', _write(b'garbage'), finished=False),
        2,
        'checkpoint.pt: not a file torch.save wrote (7 bytes that do not start as its archives do)',
    ),
    'truncated checkpoint': Case(
        _damaged_run(
            'checkpoint.pt', lambda p: p.write_bytes((p.parent / 'model.pt').read_bytes()[:300]), finished=False
        ),
        2,
        'checkpoint.pt: truncated: its 300 bytes end before the end of the archive torch.save wrote',
    ),
    'checkpoint is a directory': Case(
        _damaged_run('checkpoint.pt', _replace_with_directory, finished=False),
        2,
        'checkpoint.pt: a directory, not a file',
    ),
    'garbage results.json on resume': Case(_damaged_run('results.json', _write(b'{"br')), 2, 'not valid JSON'),
    'results.json is a directory': Case(
        _damaged_run('results.json', _replace_with_directory), 2, 'results.json: cannot be read'
    ),
    'truncated seed file': Case(
        _damaged_sweep(lambda s: _truncate(s / 'seeds' / 'seed-1.pt')), 2, 'seed-1.pt: truncated: its'
    ),
    'garbage chunk checkpoint': Case(
        _damaged_sweep(lambda s: ((s / 'seeds' / 'seed-1.pt').unlink(), (s / 'chunk.pt').write_bytes(b'junk'))),
        2,
        'chunk.pt: not a file torch.save wrote',
    ),
    'damaged sweep manifest': Case(
        _damaged_sweep(lambda s: (s / 'manifest.json').write_text('{')), 2, 'manifest.json: damaged'
    ),
    'report: results.json without a key': Case(
        _damaged_run('results.json', _results_edit(lambda r: r.pop('seed')), command='report'),
        2,
        'not the results of a run',
    ),
    'report: results.json of the wrong type': Case(
        _damaged_run('results.json', _results_edit(lambda r: r.update(evaluations=5)), command='report'),
        2,
        'not the results of a run',
    ),
    'report: results.json not UTF-8': Case(
        _damaged_run('results.json', _write(b'\xff\xfe{}'), command='report'), 2, 'not valid JSON'
    ),
    'report: metrics.csv with other columns': Case(
        _damaged_run('metrics.csv', _write(b'a,b\n1,2\n'), command='report'), 2, 'metrics.csv: expected columns'
    ),
    'report: empty model.pt': Case(
        _damaged_run('model.pt', _write(b''), command='report'), 2, 'model.pt: cannot load the model'
    ),
    'report: a manifest of a newer ex-color': Case(
        _damaged_run('manifest.json', _results_edit(lambda m: m.update(format=2)), command='report'),
        2,
        'written by a newer ex-color (manifest format 2; this one reads format 1); upgrade ex-color',
    ),
    'report: a sweep whose config.toml was edited': Case(
        lambda c, b: (
            ['report', _copy(b / 'sweep', c / 'sweep')],
            [_edit(c / 'sweep' / 'config.toml', 'k_codec = 16', 'k_codec = 12') or c / 'sweep'],
        ),
        2,
        'holds a sweep of another experiment config (model.k_codec differs)',
    ),
    'report: config.toml edited after the run': Case(
        _damaged_run('config.toml', lambda p: _edit(p, 'k_codec = 16', 'k_codec = 12'), command='report'),
        2,
        'changed after it was written',
    ),
}


@pytest.fixture(scope='module')
def base(tmp_path_factory) -> Path:
    """A finished 20-step run and a 2-seed sweep, which the cases copy and break."""
    root = tmp_path_factory.mktemp('base')
    run = run_cli('run', EX29, '--steps', STEPS, '--out', root / 'run', '--no-report', cwd=root)
    sweep = run_cli('sweep', EX29, '--seeds', '0-1', '--steps', STEPS, '--out', root / 'sweep', '--no-report', cwd=root)
    for proc in (run, sweep):
        assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture(scope='module')
def outcomes(base, tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess[str], dict, dict]]:
    """Every case run once, in process: name → (outcome, files before, files after)."""
    root = tmp_path_factory.mktemp('cases')
    found = {}
    for index, (name, case) in enumerate(CASES.items()):
        directory = root / f'case-{index}'
        directory.mkdir()
        args, protected = case.setup(directory, base)
        before = files_of(*protected)
        found[name] = run_cli(*args, cwd=directory), before, files_of(*protected)
    return found


@pytest.mark.parametrize('name', list(CASES))
def test_each_case_is_one_line_with_its_exit_code_and_changes_nothing(outcomes, name):
    proc, before, after = outcomes[name]
    line = assert_one_line_after_logs(proc.stderr, CASES[name].code, proc.returncode)
    assert CASES[name].says in line, line
    assert after == before, 'files that existed before the command changed'


# Concurrency and signals: these watch a live process -----------------------------------------------


CTRL_C_ABLE = (
    'import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); '
    "runpy.run_module('ex_color', run_name='__main__')"
)
"""`python -m ex_color` with Python's own Ctrl-C handler, also when this suite runs as a background job (which
starts with SIGINT ignored, and Python then leaves it ignored in its children)."""


def _start(args: list[object], cwd: Path) -> subprocess.Popen[str]:
    command = [sys.executable, '-c', CTRL_C_ABLE, *(str(a) for a in args)]
    return subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_log(proc: subprocess.Popen[str], text: str, timeout: float = 120) -> list[str]:
    """Read stderr until a line containing `text` (the process is then busy with that work)."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    proc.kill()
    raise AssertionError(f'{text!r} never appeared: {"".join(lines)}')


def test_a_second_writer_is_refused_while_the_first_runs(tmp_path):
    first = _start(['run', EX29, '--steps', 3001, '--out', tmp_path / 'run', '--no-report'], tmp_path)
    try:
        _wait_for_log(first, 'Training')
        before = files_of(tmp_path / 'run')
        second = run_cli('run', EX29, '--steps', 3001, '--out', tmp_path / 'run', '--no-report', cwd=tmp_path)
        line = assert_one_line_after_logs(second.stderr, 2, second.returncode)
        assert 'is being written by another ex-color process' in line
        assert files_of(tmp_path / 'run').keys() >= before.keys()  # the first run's files are still there
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    assert first.returncode == 130


def test_two_quick_interrupts_end_in_one_line(tmp_path):
    proc = _start(['run', EX29, '--out', tmp_path / 'run', '--no-report'], tmp_path)
    head = _wait_for_log(proc, 'Training')
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    line = assert_one_line_after_logs(''.join(head) + rest, 130, proc.returncode)
    assert 'interrupted' in line or 'checkpoint saved' in line


def test_an_interrupted_lightning_run_exits_130_saying_so(tmp_path):
    proc = _start(['run', EX29, '--engine', 'lightning', '--out', tmp_path / 'run', '--no-report'], tmp_path)
    head = _wait_for_log(proc, 'Training')
    time.sleep(4)  # into Lightning's loop
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    line = assert_one_line_after_logs(''.join(head) + rest, 130, proc.returncode)
    assert 'training stopped at step' in line and 'no checkpoint' in line
    assert not (tmp_path / 'run' / 'results.json').exists()


def test_ctrl_c_while_drawing_the_report_exits_130(base, tmp_path):
    run = _copy(base / 'run', tmp_path / 'run')
    proc = _start(['report', run], tmp_path)
    head = _wait_for_log(proc, 'Drawing the figures')
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    line = assert_one_line_after_logs(''.join(head) + rest, 130, proc.returncode)
    assert 'interrupted' in line


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    """ENOSPC while writing the results: exit 1, one line with the file; what was written stays whole."""
    from ex_color import files

    real = files.os.fdopen

    def fdopen(fd, mode='r', *args, **kwargs):
        handle = real(fd, mode, *args, **kwargs)
        if 'w' in mode and files_written['n'] >= 3:  # the manifest, config and dopesheet go through
            handle.close()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        files_written['n'] += 1
        return handle

    files_written = {'n': 0}
    monkeypatch.setattr(files.os, 'fdopen', fdopen)
    code = cli.main(['run', str(EX29), '--steps', '5', '--out', str(tmp_path / 'run'), '--no-report'])
    err = capsys.readouterr().err
    line = assert_one_line_after_logs(err, 1, code)
    assert line.startswith('ex-color: error: No space left on device: ') and str(tmp_path / 'run') in line
    leftovers = [p.name for p in (tmp_path / 'run').iterdir() if p.name.startswith('.') and p.name != '.lock']
    assert not leftovers  # no half-written temporary files


@pytest.mark.parametrize(
    'dress', [lambda e: e / 'experiment.toml', lambda e: e / 'dopesheet.csv'], ids=['BOM in the TOML', 'CR lines']
)
def test_byte_order_marks_and_cr_line_endings_train_as_the_plain_files(base, tmp_path, dress):
    experiment = _experiment(tmp_path)
    path = dress(experiment)
    text = path.read_text()
    if path.suffix == '.toml':
        path.write_text('\ufeff' + text, encoding='utf-8')
    else:
        path.write_bytes(text.replace('\n', '\r').encode())
    proc = run_cli('run', experiment, '--steps', STEPS, '--out', tmp_path / 'run', '--no-report', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    import json

    figures = [json.loads((d / 'results.json').read_text())['evaluations'] for d in (tmp_path / 'run', base / 'run')]
    assert figures[0] == figures[1]


# Ctrl-C at every phase of a sweep and a comparison: exit 130, one line, no traceback -------------------------


def _raising_sigint_first(real: Callable, calls: list[int]) -> Callable:
    """`real`, except that its first call raises SIGINT in this process before doing the work."""

    def interrupting(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            signal.raise_signal(signal.SIGINT)
        return real(*args, **kwargs)

    return interrupting


def _interrupt_training(monkeypatch, command: str, calls: list[int]) -> None:
    """SIGINT inside the engine's loop, after its first progress report."""
    from dataclasses import replace

    from ex_color import compare, sweep

    module, name = (sweep, 'SWEEP') if command == 'sweep' else (compare, 'COMPARE')
    job = getattr(module, name)
    real = job.train_chunk

    def train_chunk(config, dopesheet, seeds, *, steps, options):
        options = replace(options, on_progress=_raising_sigint_first(options.on_progress, calls))
        return real(config, dopesheet, seeds, steps=steps, options=options)

    monkeypatch.setattr(module, name, replace(job, train_chunk=train_chunk))


def _interrupt_evaluation(monkeypatch, command: str, calls: list[int]) -> None:
    """SIGINT while the last (only) chunk's trained seeds are assessed."""
    from ex_color import compare, experiment

    if command == 'sweep':
        monkeypatch.setattr(experiment, 'assess', _raising_sigint_first(experiment.assess, calls))
    else:
        monkeypatch.setattr(compare, 'assess_models', _raising_sigint_first(compare.assess_models, calls))


def _interrupt_report(monkeypatch, command: str, calls: list[int]) -> None:
    """SIGINT while the report draws: a sweep's best run in worker processes, a comparison's first figure here."""
    from ex_color.vis import compare_report, run_figures

    if command == 'sweep':
        monkeypatch.setattr(run_figures, 'wait', _raising_sigint_first(run_figures.wait, calls))
    else:
        monkeypatch.setattr(
            compare_report, 'plot_method_boxes', _raising_sigint_first(compare_report.plot_method_boxes, calls)
        )


PHASES = {'training': _interrupt_training, 'evaluation': _interrupt_evaluation, 'report': _interrupt_report}


@pytest.mark.parametrize('phase', list(PHASES))
@pytest.mark.parametrize('command', ['sweep', 'compare'])
def test_ctrl_c_at_every_phase_exits_130_in_one_line(tmp_path, monkeypatch, command, phase):
    calls: list[int] = []
    PHASES[phase](monkeypatch, command, calls)
    out = tmp_path / command
    proc = run_cli(command, EX29, '--seeds', '0-1', '--steps', STEPS, '--out', out, cwd=tmp_path)
    assert calls, f'the {phase} phase never ran'
    line = assert_one_line_after_logs(proc.stderr, 130, proc.returncode)
    assert not (out / 'report.html').exists()
    if phase != 'report':
        assert line.count('finished seeds are kept') == 1, line
        return
    assert 'interrupted while drawing the report' in line and f'ex-color report {out}' in line, line
    if command == 'compare':  # the results are whole, so `ex-color report` can draw it without training
        from ex_color.vis.compare_report import load_comparison

        assert load_comparison(out).facts.seeds == [0, 1]


@pytest.mark.parametrize(('signum', 'delay'), [(signal.SIGTERM, 0.3), (signal.SIGTERM, 0.9), (signal.SIGINT, 0.3)])
def test_a_signal_while_the_command_still_imports_is_one_line_and_130(tmp_path, signum, delay):
    """SIGTERM's default action kills silently, and a Ctrl-C inside an import would print a traceback: the console
    entry makes both one line and exit code 130 from the start."""
    proc = _start(['sweep', EX29, '--seeds', '0-1', '--steps', STEPS, '--out', tmp_path / 'sweep'], tmp_path)
    time.sleep(delay)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    line = assert_one_line_after_logs(stderr, 130, proc.returncode)
    assert 'interrupted' in line, line
