"""The `ex-color` command: its exit code, stdout and stderr.

Bad experiment files must exit 2 with one line naming the file and the field, before anything
is trained or written. Short real runs (`--steps 30`) check the run directory, refusing to
overwrite, `--resume` of a finished run, and that the written config.toml runs again. Every
command runs once, from one fixture, in process through `cli.main` (`run_cli`); a few run the
console script in a subprocess too (meanwhile, on the other core), to show that a user sees
exactly what `main` says. More kinds of bad file are checked in-process in test_config.py.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from ex_color.config import load_experiment
from ex_color.model import CNColorMLP

from .cli import assert_one_line_error, ex_color, run_cli

EX29 = Path(__file__).resolve().parents[1] / 'experiments' / 'ex-2.9'
# Trains and draws reports (one module fixture, tens of seconds): `pytest -m 'not slow'` leaves it out.
pytestmark = pytest.mark.slow
RESULT_KEYS = {'experiment', 'seed', 'engine', 'steps', 'train_seconds', 'evaluations'}
EVALUATIONS = {'baseline', 'ablated', 'pruned', 'suppressed'}
FIGURES = {'mse_max', 'mse_median', 'selectivity_r2', 'named_colors'}
NAMED_COLOURS = {  # DESIGN §3: 12 hues at S = V = 1 and 5 greys
    'red': (1, 0, 0),
    'orange': (1, 0.5, 0),
    'yellow': (1, 1, 0),
    'lime': (0.5, 1, 0),
    'green': (0, 1, 0),
    'teal': (0, 1, 0.5),
    'cyan': (0, 1, 1),
    'azure': (0, 0.5, 1),
    'blue': (0, 0, 1),
    'purple': (0.5, 0, 1),
    'magenta': (1, 0, 1),
    'pink': (1, 0, 0.5),
    'black': (0, 0, 0),
    'dark gray': (0.25, 0.25, 0.25),
    'gray': (0.5, 0.5, 0.5),
    'light gray': (0.75, 0.75, 0.75),
    'white': (1, 1, 1),
}


def replace_once(text: str, old: str, new: str) -> str:
    assert old in text, f'{old!r} is not in the file; the test needs updating'
    return text.replace(old, new, 1)


def line_of(text: str, line: str) -> int:
    """1-based line number of `line` in `text`."""
    return text.splitlines().index(line) + 1


# Bad experiment files ------------------------------------------------------------------------

TOML = (EX29 / 'experiment.toml').read_text()
CSV = (EX29 / 'dopesheet.csv').read_text()


@dataclass(frozen=True)
class BadFile:
    """A copy of Ex 2.9 broken one way, and what the error line must name."""

    toml: str = TOML
    csv: str | None = CSV
    """None: no dopesheet file."""
    file: str = 'experiment.toml'
    """The file the message must name (its full path)."""
    field: str = ''
    """Text the message must contain: the field, or where in the file."""


BAD_FILES = {
    'unknown top-level key': BadFile(toml=TOML + '\n[trainer]\nepochs = 3\n', field='trainer: unknown key'),
    'unknown key in [model]': BadFile(
        toml=replace_once(TOML, 'k_codec = 16', 'k_codec = 16\ndropout = 0.1'), field='model.dropout: unknown key'
    ),
    'wrong type': BadFile(
        toml=replace_once(TOML, 'k_bottleneck = 5', 'k_bottleneck = "five"'), field='model.k_bottleneck: '
    ),
    'unknown regularizer kind': BadFile(
        toml=replace_once(TOML, 'kind = "angular-anchor"', 'kind = "angle-anchor"'),
        field="regularizers.1.kind (regularizer 'reg-anchor'): unknown kind 'angle-anchor'",
    ),
    'layer the model lacks': BadFile(
        toml=replace_once(TOML, 'layers = ["bottleneck"]', 'layers = ["bottlenek"]'),
        field="regularizers.1.layers (regularizer 'reg-anchor'): no layer 'bottlenek'",
    ),
    'duplicate regularizer name': BadFile(
        toml=replace_once(TOML, 'name = "reg-separate"', 'name = "reg-unit"'),
        field="regularizers.2.name: 'reg-unit' is already the name of regularizers.0",
    ),
    'ablate dims out of range': BadFile(
        toml=replace_once(TOML, 'dims = [0]', 'dims = [7]'),
        field="evaluations.0.dims (evaluation 'ablated'): [7] out of range",
    ),
    'malformed TOML': BadFile(toml=replace_once(TOML, '[model]', '[model'), field='not valid TOML: '),
    'missing dopesheet': BadFile(csv=None, field='experiment.dopesheet: '),
    'malformed dopesheet STEP': BadFile(
        csv=replace_once(CSV, '\n1000,', '\n1OOO,'), file='dopesheet.csv', field="malformed STEP '1OOO'"
    ),
    'dopesheet without lr': BadFile(csv=replace_once(CSV, ',lr,', ',rate,'), file='dopesheet.csv', field="'lr'"),
    # Labels, targets and sweep objectives come from the file, so their mistakes are the file's.
    'unknown label kind': BadFile(
        toml=replace_once(TOML, 'kind = "primary"', 'kind = "primal"'), field="labels.red.kind: unknown kind 'primal'"
    ),
    'unknown colour name': BadFile(
        toml=replace_once(
            replace_once(TOML, 'kind = "primary"', 'kind = "similarity"'), 'color = "red"', 'color = "rouge"'
        ),
        field="labels.red.color: Input should be 'red', 'orange'",
    ),
    'primary label of a non-primary colour': BadFile(
        toml=replace_once(TOML, 'color = "red"', 'color = "cyan"'),
        field="labels.red.color: Input should be 'red', 'green' or 'blue' (got 'cyan')",
    ),
    'hsv out of range': BadFile(
        toml=replace_once(
            replace_once(TOML, 'kind = "primary"', 'kind = "similarity"'), 'color = "red"', 'hsv = [0, 1.5, 1]'
        ),
        field='labels.red.hsv: [0.0, 1.5, 1.0] out of range; expected h, s and v each in [0, 1]',
    ),
    'negative label power': BadFile(
        toml=replace_once(TOML, 'power = 10\n', 'power = -1\n'),
        field='labels.red.power: Input should be greater than or equal to 0 (got -1)',
    ),
    'label scale above 1': BadFile(
        toml=replace_once(TOML, 'scale = 0.5', 'scale = 1.5'),
        field='labels.red.scale: Input should be less than or equal to 1 (got 1.5)',
    ),
    'regularizer naming an undeclared label': BadFile(
        toml=replace_once(TOML, 'labels = { red = 1.0 }', 'labels = { redd = 1.0 }'),
        field="regularizers.1.labels.redd (regularizer 'reg-anchor'): label 'redd' is not declared (did you mean red?)",
    ),
    'evaluation naming an undeclared target': BadFile(
        toml=replace_once(TOML, 'target = "red"', 'target = "redd"'),
        field="evaluations.0.target (evaluation 'ablated'): 'redd' is neither a declared label (red, vibrant, "
        'desaturated) nor a named colour',
    ),
    'misspelt named colour as a target': BadFile(
        toml=replace_once(TOML, 'target = "red"', 'target = "magneta"'),
        field='light gray, white) (did you mean magenta?)',
    ),
    'target label without a colour': BadFile(
        toml=replace_once(TOML, 'target = "red"', 'target = "vibrant"'),
        field="evaluations.0.target (evaluation 'ablated'): label 'vibrant' (vibrancy) has no colour",
    ),
    'sweep column no run produces': BadFile(
        toml=replace_once(TOML, '"ablated_red", "ablated_cyan"', '"ablated_red", "ablated_cyaan"'),
        field="sweep.print.2: 'ablated_cyaan' is not a column a run produces (did you mean ablated_cyan",
    ),
}


@dataclass
class Runs:
    """Every command this module checks, run once; see `runs`."""

    workdir: Path
    run: Path
    """Where the first run trains."""
    first: subprocess.CompletedProcess[str]
    """`ex-color run experiments/ex-2.9 --steps 30 --out run`."""
    snapshot: dict[str, bytes]
    """The first run's files, read before any later command touched its directory."""
    bad: dict[str, tuple[Path, subprocess.CompletedProcess[str]]]
    """Bad file name → (its directory DIR, `ex-color run DIR --steps 1 --out DIR/run`)."""
    later: dict[str, subprocess.CompletedProcess[str]]
    """Commands run after the first run finished (empty if it failed)."""
    processes: dict[str, subprocess.CompletedProcess[str]]
    """The same commands as some of `bad` and `later`, by the same names, run by the console script."""


def files_of(directory: Path) -> dict[str, bytes]:
    """Every file under `directory`: relative POSIX path → contents."""
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob('*')) if p.is_file()}


IN_A_PROCESS = ('malformed TOML', 'nonexistent path', 'help')
"""Commands that also run as a user runs them (`python -m ex_color` in a subprocess)."""


@pytest.fixture(scope='module')
def runs(tmp_path_factory) -> Runs:
    """Run every command of this module in process, one after another.

    The few subprocesses (the installed console script, and `python -m ex_color` for the
    commands in IN_A_PROCESS) start first and run on the other core meanwhile.
    """
    workdir = tmp_path_factory.mktemp('cli')
    run = workdir / 'run'
    script = Path(sys.executable).with_name('ex-color')
    bad_args = {}
    for i, (name, case) in enumerate(BAD_FILES.items()):
        directory = workdir / f'bad-{i}'
        directory.mkdir()
        (directory / 'experiment.toml').write_text(case.toml)
        if case.csv is not None:
            (directory / 'dopesheet.csv').write_text(case.csv)
        bad_args[name] = directory, directory, ('run', directory, '--steps', 1, '--out', directory / 'run')
    missing = workdir / 'no-such-experiment'
    bad_args['nonexistent path'] = missing, workdir, ('run', missing, '--out', 'nowhere')
    with ThreadPoolExecutor(max_workers=2) as pool:
        processes = {
            name: pool.submit(ex_color, *bad_args[name][2], cwd=bad_args[name][1])
            for name in IN_A_PROCESS
            if name in bad_args
        }
        processes['help'] = pool.submit(ex_color, '--help', cwd=workdir)
        processes['console script'] = (
            pool.submit(
                subprocess.run, [str(script), '--help'], capture_output=True, text=True, cwd=workdir, timeout=60
            )
            if script.exists()
            else pool.submit(subprocess.CompletedProcess, [str(script)], 127, '', f'{script} is not installed')
        )

        first = run_cli('run', EX29, '--steps', 30, '--out', run, cwd=workdir)
        snapshot = files_of(run) if first.returncode == 0 else {}
        independent = {
            'steps 0': run_cli('run', EX29, '--steps', 0, '--out', 'zero', cwd=workdir),
            'steps 99999': run_cli('run', EX29, '--steps', 99999, '--out', 'many', cwd=workdir),
            'help': run_cli('--help', cwd=workdir),
            'report of nothing': run_cli('report', 'no-such-run', cwd=workdir),
            'sweep': run_cli(
                'sweep', EX29, '--seeds', '0-1', '--steps', 30, '--out', 'sweep', '--no-report', cwd=workdir
            ),
            'report of a non-run': run_cli('report', '.', cwd=workdir),
            'run --help': run_cli('run', '--help', cwd=workdir),
        }
        bad = {name: (directory, run_cli(*args, cwd=cwd)) for name, (directory, cwd, args) in bad_args.items()}
        later = {}
        if snapshot:
            later = {
                'again': run_cli('run', EX29, '--steps', 30, '--out', run, cwd=workdir),
                # Shows the finished run again and changes nothing (redrawing its report: tests/vis/test_report.py).
                'resume': run_cli('run', EX29, '--steps', 30, '--out', run, '--resume', '--no-report', cwd=workdir),
                # 30 steps, like the first run, so that the numbers must come out the same (deterministic mode).
                'from config.toml': run_cli(
                    'run', run / 'config.toml', '--steps', 30, '--out', 'other', '--no-report', cwd=workdir
                ),
            }
        return Runs(
            workdir=workdir,
            run=run,
            first=first,
            snapshot=snapshot,
            bad=bad,
            later=later | independent,
            processes={name: future.result() for name, future in processes.items()},
        )


@pytest.fixture(scope='module')
def bad_runs(runs) -> dict[str, tuple[Path, subprocess.CompletedProcess[str]]]:
    return runs.bad


@pytest.fixture(scope='module')
def workdir(runs) -> Path:
    return runs.workdir


@pytest.fixture(scope='module')
def finished_run(runs) -> tuple[Path, subprocess.CompletedProcess[str]]:
    return runs.run, runs.first


@pytest.fixture(scope='module')
def snapshot(runs) -> dict[str, bytes]:
    assert runs.first.returncode == 0, runs.first.stderr
    return runs.snapshot


@pytest.fixture(scope='module')
def later(runs, snapshot) -> dict[str, subprocess.CompletedProcess[str]]:
    return runs.later


@pytest.mark.parametrize('case', list(BAD_FILES))
def test_bad_experiment_file_exits_2_with_one_line_naming_file_and_field(bad_runs, case):
    directory, proc = bad_runs[case]
    bad = BAD_FILES[case]
    line = assert_one_line_error(proc)
    assert str(directory / bad.file) in line
    assert bad.field in line
    # Caught at load: nothing trained, the run directory never created.
    assert not (directory / 'run').exists()
    assert proc.stdout == ''


def test_malformed_toml_names_the_line(bad_runs):
    _, proc = bad_runs['malformed TOML']
    assert f'line {line_of(TOML, "[model]")}' in proc.stderr


def test_malformed_dopesheet_names_the_row(bad_runs):
    _, proc = bad_runs['malformed dopesheet STEP']
    assert f'line {line_of(CSV, next(row for row in CSV.splitlines() if row.startswith("1000,")))}' in proc.stderr


def test_nonexistent_experiment_path(bad_runs):
    missing, proc = bad_runs['nonexistent path']
    line = assert_one_line_error(proc)
    assert str(missing) in line
    assert 'no such experiment file' in line
    assert not (missing.parent / 'nowhere').exists()


def test_a_dopesheet_given_as_the_experiment_says_what_to_give(tmp_path):
    line = assert_one_line_error(run_cli('run', EX29 / 'dopesheet.csv', '--out', tmp_path / 'run'))
    assert str(EX29 / 'dopesheet.csv') in line
    assert 'not an experiment' in line
    assert 'experiment.toml' in line
    assert 'TOML' not in line.replace('experiment.toml', '')  # not a TOML syntax error
    assert not (tmp_path / 'run').exists()


def test_a_seed_range_for_run_points_to_sweep(tmp_path):
    line = assert_one_line_error(run_cli('run', EX29, '--seed', '0-9', '--out', tmp_path / 'run'))
    assert "--seed: expected one whole number, got '0-9'" in line
    assert 'ex-color sweep EXPERIMENT --seeds 0-9' in line
    assert not (tmp_path / 'run').exists()
    line = assert_one_line_error(run_cli('run', EX29, '--seed', 'abc', '--out', tmp_path / 'run'))
    assert line.endswith("--seed: expected one whole number, got 'abc'")  # no hint towards an invalid --seeds


# Real runs -------------------------------------------------------------------------------------


def test_run_writes_the_run_directory(finished_run, snapshot):
    run, proc = finished_run
    assert proc.returncode == 0, proc.stderr
    assert 'Traceback' not in proc.stderr
    assert {'config.toml', 'dopesheet.csv', 'metrics.csv', 'model.pt', 'results.json'} <= set(snapshot)
    assert 'checkpoint.pt' not in snapshot  # removed once finished
    assert not [name for name in snapshot if Path(name).name.startswith('.')]  # no temporary files left behind
    assert snapshot['dopesheet.csv'] == (EX29 / 'dopesheet.csv').read_bytes()
    assert f'Results: {run}' in proc.stdout
    assert 'baseline' in proc.stdout and 'ablated' in proc.stdout
    results = json.loads(snapshot['results.json'])['evaluations']
    ablated, untouched = results['ablated']['named_colors']['red'], results['baseline']['named_colors']['red']
    verb = 'removes' if ablated >= 0.1 and ablated >= 10 * untouched else 'does not remove'  # the rule, by hand
    assert f'ablated {verb} red (error {ablated:.2g}, {ablated / untouched:.2g}× unedited)' in proc.stdout
    # The report, with its figures in both themes, and its path printed last.
    assert proc.stdout.splitlines()[-1] == f'Report: {run / "report.html"}'
    assert 'report.html' in snapshot
    figures = json.loads(snapshot['figures/index.json'])['figures']
    assert {'colors-ablated', 'error-ablated', 'latents-baseline', 'dopesheet'} <= {f['name'] for f in figures}
    assert all(f['light'] in snapshot and f['dark'] in snapshot for f in figures)


def test_no_report_skips_the_report(workdir, later):
    proc = later['from config.toml']
    assert proc.returncode == 0, proc.stderr
    assert 'Report:' not in proc.stdout
    assert not (workdir / 'other' / 'report.html').exists()
    assert not (workdir / 'other' / 'figures').exists()


def test_sweep_prints_its_results(workdir, later):
    """(The sweep's report and its link to the best run's: tests/vis/test_report.py.)"""
    proc = later['sweep']
    assert proc.returncode == 0, proc.stderr
    sweep = workdir / 'sweep'
    lines = proc.stdout.splitlines()
    assert lines[0].startswith('Ex 2.9: Ablate red (only), 5D · 2 seeds · 30 steps')
    assert 'best seed' in proc.stdout
    assert 'Report:' not in proc.stdout and not (sweep / 'report.html').exists()
    assert (sweep / 'sweep.csv').is_file() and (sweep / 'best' / 'results.json').is_file()


@pytest.mark.parametrize(
    ('case', 'says'), [('report of nothing', 'no such directory'), ('report of a non-run', 'neither')]
)
def test_report_of_a_directory_without_a_run_exits_2(runs, case, says):
    line = assert_one_line_error(runs.later[case])
    assert says in line


def test_results_json_has_every_figure(snapshot):
    results = json.loads(snapshot['results.json'])
    assert set(results) >= RESULT_KEYS
    assert (results['experiment'], results['seed'], results['engine'], results['steps']) == ('ex-2.9', 0, 'fast', 30)
    assert results['train_seconds'] > 0
    assert set(results['evaluations']) == EVALUATIONS
    for name, figures in results['evaluations'].items():
        assert set(figures) >= FIGURES, name
        assert set(figures['named_colors']) == set(NAMED_COLOURS), name
        assert 0 <= figures['mse_median'] <= figures['mse_max'] < 1, name
        assert 0 <= figures['selectivity_r2'] <= 1, name
        assert all(math.isfinite(e) and e >= 0 for e in figures['named_colors'].values()), name


def test_pruning_matches_ablating(snapshot):
    """Through an L2Norm bottleneck a zeroed dimension and a removed one are the same model (DESIGN §3)."""
    evaluations = json.loads(snapshot['results.json'])['evaluations']
    ablated, pruned = evaluations['ablated'], evaluations['pruned']
    for key in ('mse_max', 'mse_median', 'selectivity_r2'):
        assert pruned[key] == pytest.approx(ablated[key], rel=1e-4, abs=1e-7), key
    for colour, error in ablated['named_colors'].items():
        assert pruned['named_colors'][colour] == pytest.approx(error, rel=1e-4, abs=1e-7), colour


def named_colour_errors(model: torch.nn.Module, hook: Callable | None = None) -> dict[str, float]:
    """Per-colour error, mean over RGB of (y − x)², of the named colours; `hook` may rewrite the bottleneck output."""
    colours = torch.tensor(list(NAMED_COLOURS.values()), dtype=torch.float32)
    handle = model.bottleneck.register_forward_hook(hook) if hook else None
    try:
        with torch.no_grad():
            outputs = model.eval()(colours)
    finally:
        if handle:
            handle.remove()
    errors = ((outputs - colours) ** 2).mean(dim=-1)
    return dict(zip(NAMED_COLOURS, errors.tolist(), strict=True))


def test_model_pt_is_the_evaluated_model(finished_run, snapshot):
    """Recompute the named-colour figures from model.pt by hand: baseline, ablated (weights zeroed), suppressed."""
    run, _ = finished_run
    model = CNColorMLP(5, n_nonlinear=2)
    model.load_state_dict(torch.load(run / 'model.pt', weights_only=True))
    evaluations = json.loads(snapshot['results.json'])['evaluations']

    baseline = named_colour_errors(model)
    assert baseline == pytest.approx(evaluations['baseline']['named_colors'], rel=1e-4, abs=1e-8)

    # Suppression of e0 with a step falloff: every activation's positive component along e0 is removed.
    def suppress(_module, _inputs, a):
        return a - a[..., :1].clamp(min=0) * torch.eye(5)[0]

    suppressed = named_colour_errors(model, suppress)
    assert suppressed == pytest.approx(evaluations['suppressed']['named_colors'], rel=1e-4, abs=1e-8)

    # Ablation of bottleneck dim 0: encoder's last Linear loses output row 0, decoder's first Linear input column 0.
    with torch.no_grad():
        model.encoder[-1].weight[0] = 0
        model.encoder[-1].bias[0] = 0
        model.decoder[0].weight[:, 0] = 0
    ablated = named_colour_errors(model)
    assert ablated == pytest.approx(evaluations['ablated']['named_colors'], rel=1e-4, abs=1e-8)


def test_metrics_cover_the_steps_trained(snapshot, tmp_path):
    (tmp_path / 'metrics.csv').write_bytes(snapshot['metrics.csv'])
    import pandas as pd

    metrics = pd.read_csv(tmp_path / 'metrics.csv')
    assert {'step', 'lr'} <= set(metrics.columns)
    assert len(metrics) > 0
    assert metrics['step'].between(0, 29).all()


def test_written_config_is_the_resolved_experiment(finished_run):
    run, _ = finished_run
    resolved = load_experiment(run / 'config.toml')
    original = load_experiment(EX29)
    assert resolved.config == original.config
    assert len(resolved.dopesheet) == len(original.dopesheet) == 3001


def test_running_again_refuses_and_loses_nothing(finished_run, snapshot, later):
    run, _ = finished_run
    line = assert_one_line_error(later['again'])
    assert str(run) in line
    assert 'finished run; --resume shows it again' in line
    assert files_of(run) == snapshot


def test_resume_returns_the_finished_results(finished_run, snapshot, later):
    run, _ = finished_run
    proc = later['resume']
    assert proc.returncode == 0, proc.stderr
    assert f'Results: {run}' in proc.stdout
    assert files_of(run) == snapshot


def test_config_toml_in_the_run_directory_runs_again_to_the_same_numbers(workdir, snapshot, later):
    proc = later['from config.toml']
    assert proc.returncode == 0, proc.stderr
    other = workdir / 'other'
    again = json.loads((other / 'results.json').read_text())
    first = json.loads(snapshot['results.json'])
    assert (again['seed'], again['steps'], again['engine']) == (0, 30, 'fast')
    assert again['evaluations'] == first['evaluations']  # same config, same seed → same numbers
    assert (other / 'config.toml').read_bytes() == snapshot['config.toml']  # the resolved config is a fixed point


@pytest.mark.parametrize(('case', 'says'), [('steps 0', '--steps'), ('steps 99999', '3001')])
def test_steps_out_of_range_exit_2_before_writing(runs, case, says):
    line = assert_one_line_error(runs.later[case])
    assert says in line
    assert not (runs.workdir / ('zero' if case == 'steps 0' else 'many')).exists()


@pytest.mark.parametrize('case', ['help', 'run --help', 'console script'])
def test_help(runs, case):
    proc = runs.processes[case] if case == 'console script' else runs.later[case]
    assert proc.returncode == 0, proc.stderr
    assert 'usage: ex-color' in proc.stdout
    assert ('--steps' in proc.stdout) if case == 'run --help' else ('run' in proc.stdout)


@pytest.mark.parametrize('case', IN_A_PROCESS)
def test_the_command_in_a_process_says_what_main_says(runs, case):
    """`python -m ex_color` exits with main's code and prints main's words (one line of ours on a failure)."""
    proc = runs.processes[case]
    in_process = runs.later[case] if case in runs.later else runs.bad[case][1]
    if in_process.returncode:
        assert_one_line_error(proc, in_process.returncode)
    # Words, not line breaks: argparse wraps --help to the terminal's width, which may differ.
    said, main_said = ([' '.join(p.stdout.split()), ' '.join(p.stderr.split())] for p in (proc, in_process))
    assert proc.returncode == in_process.returncode
    assert said == main_said


def test_removes_is_said_only_where_the_rule_holds():
    from ex_color.cli import removal_words
    from ex_color.evaluation import Evaluation

    def evaluation(red: float, targets: list[str]) -> Evaluation:
        return Evaluation(0.0, 0.0, 0.0, {'red': red, 'green': 0.001}, targets)

    baseline = evaluation(0.018, [])
    assert removal_words('ablated', evaluation(0.0015, ['red']), baseline) == (
        'ablated does not remove red (error 0.0015, 0.083× unedited)'  # a 200-step model: below the untouched error
    )
    assert removal_words('ablated', evaluation(0.09, ['red']), baseline).startswith('ablated does not remove red')
    assert (
        removal_words('ablated', evaluation(0.27, ['red']), baseline)
        == 'ablated removes red (error 0.27, 15× unedited)'
    )
    assert removal_words('ablated', evaluation(0.27, ['magenta-ish']), baseline) == 'ablated aims at magenta-ish'
    assert removal_words('baseline', baseline, baseline) == ''
