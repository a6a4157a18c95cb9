"""The `ex-color` command: parse arguments, call `ex_color.experiment`, print results.

Every failure ends in one line on stderr and an exit code (`_failure`): 2 for bad input or a
damaged or foreign artifact (an experiment file, a flag, an --out that is not ours, a
truncated checkpoint), 1 for a failure during work (a diverging loss, a full disk), 130 when
interrupted (after saving a checkpoint where the engine keeps one). Only a bug shows a
traceback, with a note asking to report it.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ex_color import __version__

if TYPE_CHECKING:
    from ex_color.config import Experiment
    from ex_color.rundir import RunResults

log = logging.getLogger('ex_color')

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
HEADLINE_COLOURS = ('red', 'orange', 'yellow', 'green', 'cyan', 'blue', 'black', 'white')
"""Named colours every run's table shows, after the evaluations' targets."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors: one line, exit 2
        self.exit(EXIT_USAGE, f'{self.prog}: error: {message}\n')


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a whole number >= 1, got {text!r}') from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'expected a whole number >= 1, got {value}')
    return value


def _one_seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        many = re.fullmatch(r'\d+(-\d+)?(,\d+(-\d+)?)*', text.strip()) is not None
        hint = f'; for many seeds: ex-color sweep EXPERIMENT --seeds {text.strip()}' if many else ''
        raise argparse.ArgumentTypeError(f'expected one whole number, got {text!r}{hint}') from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog='ex-color', description='Concept-anchored representation engineering experiments.')
    parser.add_argument('--version', action='version', version=f'ex-color {__version__}')
    parser.add_argument('-v', '--verbose', action='store_true', help='log debug messages')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND', parser_class=_Parser)

    run = commands.add_parser('run', help='train one seed of an experiment, operate on it and evaluate it')
    run.add_argument('experiment', metavar='EXPERIMENT', help='a directory holding experiment.toml, or a .toml file')
    run.add_argument('--seed', type=_one_seed, help="seed (default: the experiment file's)")
    run.add_argument('--out', help='run directory (default: runs/<experiment>/seed-<N>/)')
    run.add_argument('--engine', choices=['fast', 'lightning'], default='fast', help='trainer (default: fast)')
    run.add_argument('--steps', type=_positive_int, help='train only the first N steps of the dopesheet')
    run.add_argument('--resume', action='store_true', help='continue an interrupted run in the run directory')
    sweep = commands.add_parser('sweep', help='train and evaluate many seeds as ensembles; pick the best run')
    sweep.add_argument('experiment', metavar='EXPERIMENT', help='a directory holding experiment.toml, or a .toml file')
    sweep.add_argument('--seeds', required=True, help="seeds, e.g. '0-59' or '1,3,7-9'")
    sweep.add_argument('--out', help='sweep directory (default: runs/<experiment>/sweep/)')
    sweep.add_argument('--chunk', type=_positive_int, help='seeds trained together per ensemble (default: up to 60)')
    sweep.add_argument('--steps', type=_positive_int, help='train only the first N steps of the dopesheet')
    compare = commands.add_parser(
        'compare', help='train prepared and control models per seed; compare anchoring with post-hoc erasure'
    )
    compare.add_argument(
        'experiment', metavar='EXPERIMENT', help='a directory holding experiment.toml, or a .toml file'
    )
    compare.add_argument('--seeds', required=True, help="seeds, e.g. '0-19' or '1,3,7-9'")
    compare.add_argument('--out', help='compare directory (default: runs/<experiment>/compare/)')
    compare.add_argument('--chunk', type=_positive_int, help='seeds trained together per ensemble (default: up to 30)')
    compare.add_argument('--steps', type=_positive_int, help='train only the first N steps of the dopesheet')
    search = commands.add_parser(
        'search', help="search the experiment's [search] parameters; judge the finalists on fresh seeds"
    )
    search.add_argument('experiment', metavar='EXPERIMENT', help='a directory holding experiment.toml, or a .toml file')
    search.add_argument(
        '--trials', type=_positive_int, required=True, help='finish this many trials in all (a rerun continues)'
    )
    search.add_argument(
        '--batch', type=_positive_int, help='trials asked and trained together (default: 60 models / seeds_per_trial)'
    )
    search.add_argument(
        '--sampler',
        choices=['tpe', 'nsga2', 'random'],
        default='tpe',
        help='Optuna sampler (default: tpe, multivariate with the constant liar)',
    )
    search.add_argument('--out', help='search directory (default: runs/<experiment>/search/)')
    search.add_argument('--steps', type=_positive_int, help='train only the first N steps of every schedule')
    for command in (sweep, compare, search):
        command.add_argument(
            '--ray',
            nargs='?',
            const='local',
            metavar='ADDRESS',
            help="train each chunk as a Ray task: on the cluster at ADDRESS ('auto': the one started on this "
            'machine), else on RAY_ADDRESS or a new local cluster (needs ex-color[ray])',
        )
        command.add_argument(
            '--ray-cpus', type=_positive_int, metavar='N', help='CPUs and torch threads per Ray task (default: 1)'
        )
    for command in (run, sweep, compare, search):
        command.add_argument(
            '--set',
            action='append',
            metavar='PATH=VALUE',
            help="change the experiment for this call (repeatable): 'labels.red.power=5' (a value of "
            "experiment.toml, written as in TOML) or 'dopesheet.reg-anchor@1000=0.08' (a dopesheet cell by "
            'column and STEP); recorded in the run directory',
        )
        command.add_argument(
            '--no-report', dest='report', action='store_false', help='skip the figures and report.html'
        )
        command.add_argument(
            '--device',
            default='cpu',
            metavar='DEVICE',
            help='where to train: cpu (default), cuda (or cuda:N), or auto (cuda when PyTorch sees a GPU); '
            "figures on a GPU differ from the CPU's in the last digits",
        )
        command.add_argument(
            '--compile',
            action=argparse.BooleanOptionalAction,
            default=None,
            help='train with the compiled step (torch.compile: 1.3-2.5x as fast per step, 6-50 s to compile, '
            'figures differ in the last digits; recorded with the run). Default: search compiles, run, sweep and '
            'compare do not (EX_COLOR_COMPILE=1/0 changes that)',
        )
        command.add_argument(
            '--logger',
            action='append',
            metavar='NAME',
            help="also track in csv, tensorboard, mlflow or wandb (repeatable; default: the file's [tracking])",
        )
    report = commands.add_parser(
        'report', help="redraw a run's, a sweep's or a comparison's figures and report.html (no training)"
    )
    report.add_argument('directory', metavar='DIRECTORY', help='a run, sweep or compare directory')
    return parser


def entry() -> None:
    """The console script (and `python -m ex_color`): `main`, then exit with its code.

    A process on its way out ignores further Ctrl-C, so that a second press cannot turn
    exit code 130 into a kill by SIGINT.
    """
    try:
        code = main(exiting=True)
    except KeyboardInterrupt:  # pressed between the work's end and the exit: the work has said nothing
        print('ex-color: interrupted', file=sys.stderr)
        code = EXIT_INTERRUPTED
    for late in (signal.SIGINT, signal.SIGTERM):  # the exit code is decided: a late signal must not kill the exit
        signal.signal(late, signal.SIG_IGN)
    sys.exit(code)


def main(argv: Sequence[str] | None = None, *, exiting: bool = False) -> int:
    """Run the command in `argv`; the exit code. `exiting`: the process ends after this (see `entry`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, 'out', None) == '':
        parser.error('--out is empty; expected a directory path')
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format='%(levelname).1s %(name)s: %(message)s',
    )
    if not args.verbose:  # torch's own INFO lines (e.g. cache statistics at exit) are not ours to show
        logging.getLogger('torch').setLevel(logging.WARNING)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        _dispatch(args)
    except (Exception, KeyboardInterrupt) as error:  # the one error path: a line and an exit code
        if exiting:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        code, message = _failure(error, args)
        if code is None:
            traceback.print_exc()
        print(f'ex-color: {message}', file=sys.stderr)
        return code or EXIT_FAILED
    return 0


def _dispatch(args: argparse.Namespace) -> None:
    if args.command == 'report':
        from ex_color.vis.report import write_report

        print(f'Report: {write_report(args.directory)}')
        return
    # Heavy imports only once we know there is work to do; Lightning (via experiment) only for a valid file.
    from ex_color.config import load_experiment

    if getattr(args, 'engine', None) == 'lightning' and not args.verbose:
        _quiet_lightning()
    # strict: a regularizer that can never apply (its labels off or never drawn) is an error, not a warning
    experiment = load_experiment(args.experiment, strict=True, overrides=args.set or ())
    if args.command == 'run':
        _run(args, experiment)
    elif args.command == 'compare':
        _compare(args, experiment)
    elif args.command == 'search':
        _search(args, experiment)
    else:
        _sweep(args, experiment)


def _failure(error: BaseException, args: argparse.Namespace) -> tuple[int | None, str]:
    """The exit code and one-line message for an error; code None for a bug (its traceback is shown)."""
    from ex_color.signals import Interrupted

    # An interrupt can land while torch is half imported: answer it before importing anything that needs torch.
    if isinstance(error, Interrupted):
        return EXIT_INTERRUPTED, str(error)
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED, 'interrupted; files written so far are complete (each is written atomically)'
    from ex_color.config import ConfigError
    from ex_color.dataflow import SurgeryError
    from ex_color.erasure import ErasureError
    from ex_color.experiment import RunExistsError
    from ex_color.files import DamagedFileError
    from ex_color.loss import NonFiniteLossError
    from ex_color.rundir import RunArtifactsError
    from ex_color.training.engine import TrainingInterrupted
    from ex_color.workdir import DirectoryError

    match error:
        case ConfigError() | RunExistsError() | RunArtifactsError() | DirectoryError() | DamagedFileError():
            return EXIT_USAGE, f'error: {error}'
        case ErasureError():  # fitted after training: the trained model has no such concept to erase
            return EXIT_FAILED, f'error: erasure failed: {error}'
        case SurgeryError():  # the trained model cannot be edited exactly as the experiment asks
            return EXIT_FAILED, f'error: surgery failed: {error}'
        case NonFiniteLossError():  # the schedule diverged: not a usage error, but no traceback either
            return EXIT_FAILED, f'error: training failed: {error}'
        case TrainingInterrupted():
            if not error.resumable:
                return EXIT_INTERRUPTED, f'{error}; run it again to start over'
            if args.command == 'run':
                again = '--resume --compile' if args.compile else '--resume'
                return EXIT_INTERRUPTED, f'{error}; checkpoint saved, continue with {again}'
            if args.command == 'search':
                return EXIT_INTERRUPTED, f'{error}; finished trials are kept, continue with the same command'
            # A local chunk also saved a checkpoint; a Ray task keeps none: its chunk starts over.
            return EXIT_INTERRUPTED, f'{error}; finished seeds are kept, continue with the same command'
        case MemoryError():
            return EXIT_FAILED, 'error: out of memory; try fewer seeds per ensemble (--chunk) or a smaller experiment'
        case OSError():
            where = f': {error.filename}' if error.filename else ''
            return EXIT_FAILED, f'error: {error.strerror or error}{where}'
    return None, (
        f'internal error ({type(error).__name__}): this is a bug in ex-color; '
        'please report it with the command you ran and the traceback above'
    )


def _run(args: argparse.Namespace, experiment: Experiment) -> None:
    from ex_color.experiment import default_run_dir, run_experiment
    from ex_color.tracking import check_trackers, tracked

    seed = experiment.config.experiment.seed if args.seed is None else args.seed
    directory = Path(args.out) if args.out is not None else default_run_dir(experiment, seed)
    loggers = check_trackers(_loggers(args, experiment))
    with tracked(
        loggers,
        directory=directory,
        experiment=experiment.name,
        run=f'seed-{seed}',
        settings=experiment.config.tracking,
    ) as tracker:
        result = run_experiment(
            experiment,
            seed=args.seed,
            out=args.out,
            engine=args.engine,
            steps=args.steps,
            resume=args.resume,
            tracker=tracker,
            device=args.device,
            compile=args.compile,
        )
        print_results(result.directory, result.results)
        if args.report:
            from ex_color.vis.report import write_run_report

            print(f'Report: {write_run_report(result.directory)}')
            if tracker is not None:
                tracker.log_artifacts(result.directory)


def _loggers(args: argparse.Namespace, experiment: Experiment) -> list[str]:
    """--logger, else the experiment file's [tracking] loggers."""
    return list(args.logger) if args.logger else list(experiment.config.tracking.loggers)


def _sweep(args: argparse.Namespace, experiment: Experiment) -> None:
    from ex_color.runner import parse_seeds
    from ex_color.sweep import run_sweep

    result = run_sweep(
        experiment,
        parse_seeds(args.seeds),
        out=args.out,
        chunk=args.chunk,
        steps=args.steps,
        ray=args.ray,
        ray_cpus=args.ray_cpus,
        loggers=_loggers(args, experiment),
        device=args.device,
        compile=args.compile,
    )
    table, summary = result.table, result.summary
    where = f' · {summary.ray}' if summary.ray else ''
    print(
        f'{summary.title} · {len(table)} seeds · {summary.steps} steps · chunks of {summary.chunk}{where} · '
        f'{summary.wall_seconds_this_call:.1f} s'
    )
    ranked = table[summary.best_column]
    best_value = ranked.max() if summary.best_column in summary.maximise else ranked.min()
    print(
        f'{summary.best_column}: median {_figure(ranked.median())}, best {_figure(best_value)}; '
        f'Pareto seeds: {", ".join(str(s) for s in summary.pareto_seeds)}'
    )
    best = table.set_index('seed').loc[result.best_seed]
    print(f'best seed {result.best_seed}: ' + ', '.join(f'{c} {_figure(best[c])}' for c in summary.print))
    print(f'Results: {result.directory} (best run: {result.directory / "best"})')
    if args.report:
        from ex_color.vis.report import write_sweep_report

        print(f'Report: {write_sweep_report(result.directory)}')


def _search(args: argparse.Namespace, experiment: Experiment) -> None:
    from ex_color.config import ConfigError
    from ex_color.search import run_search

    if args.logger:
        raise ConfigError('--logger: a search is not tracked yet; its study opens in optuna-dashboard (docs/search.md)')
    result = run_search(
        experiment,
        trials=args.trials,
        batch=args.batch,
        sampler=args.sampler,
        steps=args.steps,
        out=args.out,
        ray=args.ray,
        ray_cpus=args.ray_cpus,
        device=args.device,
        compile=args.compile,
    )
    summary, finalists = result.summary, result.finalists
    where = f' · {summary.ray}' if summary.ray else ''
    speed = f' · {summary.trials_per_second_this_call:.2f} trials/s' if summary.trials_per_second_this_call else ''
    print(
        f'{summary.title} · {summary.trials} trials ({summary.failed} failed) · {summary.sampler} · batches of '
        f'{summary.batch} × {summary.seeds_per_trial} seeds · {summary.steps} steps{where} · '
        f'{summary.wall_seconds_this_call:.1f} s{speed}'
    )
    print(f'Pareto trials: {", ".join(map(str, summary.pareto_trials)) or "none"}')
    if summary.winner is None:
        print('No finalist completed on the fresh seeds; no winner.')
    else:
        won = finalists.set_index('trial').loc[summary.winner]
        seeds = summary.validate_seeds
        print(f'Winner: trial {summary.winner}, on fresh seeds {seeds[0]}…{seeds[-1]} ({len(seeds)}):')
        bounded = [c.split()[0] for c in summary.constraints]
        for column in dict.fromkeys([*summary.maximise, *summary.minimise, *bounded]):
            print(
                f'  {column}: {_interval(won[f"{column}_mean"], won[f"{column}_low"], won[f"{column}_high"])} '
                f'(searched seeds: {_figure(won[f"{column}_searched"])})'
            )
        print(f'Best schedule: {result.directory / "best"} (ex-color run {result.directory / "best"} --seed K)')
    print(f'Results: {result.directory} (study: optuna-dashboard {result.directory / "study.journal"})')
    if args.report:
        from ex_color.vis.search_report import write_search_report

        print(f'Report: {write_search_report(result.directory)}')


def _compare(args: argparse.Namespace, experiment: Experiment) -> None:
    from ex_color.compare import run_compare
    from ex_color.comparedir import ONE_SEED_CAVEAT, REMOVAL_RULE
    from ex_color.runner import parse_seeds

    result = run_compare(
        experiment,
        parse_seeds(args.seeds),
        out=args.out,
        chunk=args.chunk,
        steps=args.steps,
        ray=args.ray,
        ray_cpus=args.ray_cpus,
        loggers=_loggers(args, experiment),
        device=args.device,
        compile=args.compile,
    )
    facts = result.facts
    print(f'{facts.title} · {len(facts.seeds)} seeds · {facts.wall_seconds_this_call:.1f} s')
    if experiment.config.is_text:
        print_text_summary(result.summary, facts)
        print(f'Results: {result.directory}')
        if args.report:
            from ex_color.vis.compare_report import write_compare_report

            print(f'Report: {write_compare_report(result.directory)}')
        return
    print_summary(result.summary)
    if len(facts.seeds) < 2:
        print(ONE_SEED_CAVEAT)
    for name, model in facts.models.items():
        fair = 'fair' if model.fair else f'NOT FAIR: the {name} model reconstructs worse'
        route = f', routed through {model.route["layer"]} dims {model.route["dims"]}' if model.route else ''
        print(
            f'{name} (keeps {", ".join(model.keep) or "nothing"}{route}): median error {model.baseline_median:.2g} '
            f'vs prepared {model.prepared_baseline_median:.2g} ({model.ratio:.2f}×, {fair})'
        )
    least, target = facts.least_collateral, facts.compared_targets
    if least is None:
        rule = REMOVAL_RULE.format(threshold=facts.removal_threshold)
        print(f'No method removes {target} ({rule}).')
    else:
        print(f'Removes {target} with the least collateral damage: {least}')
    if facts.other_targets:
        print(f'Not ranked against these (other targets): {", ".join(facts.other_targets)}')
    print(f'Results: {result.directory}')
    if args.report:
        from ex_color.vis.compare_report import write_compare_report

        print(f'Report: {write_compare_report(result.directory)}')


def print_summary(summary: object) -> None:
    """summary.csv as a table: each figure's mean over seeds, with its 95% interval in brackets."""
    from ex_color.comparedir import FIGURES

    print(f'{"method":<28}{"model":<10}' + ''.join(f'{f:>28}' for f in FIGURES))
    for row in summary.to_dict('records'):  # type: ignore[attr-defined]
        cells = [_interval(row[f'{f}_mean'], row[f'{f}_low'], row[f'{f}_high']) for f in FIGURES]
        print(f'{row["method"]:<28}{row["model"]:<10}' + ''.join(f'{c:>28}' for c in cells))


def print_text_summary(summary: Any, facts: Any) -> None:
    """A text comparison's summary: per method, the means over seeds of the concept's and each class's
    cross-entropy ratio, and the probability on the concept where it comes next, before → after."""
    from ex_color.data.corpus import ALL, CHAR_CLASSES

    classes = [*CHAR_CLASSES, ALL]
    print(
        f'{"method":<26}{"model":<10}{"concept":>9}{"worst":>8}'
        + ''.join(f'{c:>8}' for c in classes)
        + f'{"p(concept) before → after":>28}{"untouched CE":>14}'
    )
    for row in summary.to_dict('records'):
        cells = ''.join(f'{row[f"ratio_{c}_mean"]:>8.3f}' for c in classes)
        mass = f'{row["target_mass_before_mean"]:.3g} → {row["target_mass_after_mean"]:.3g}'
        print(
            f'{row["method"]:<26}{row["model"]:<10}{row["target_ratio_mean"]:>9.3f}{row["collateral_ratio_mean"]:>8.3f}'
            f'{cells}{mass:>28}{row["untouched_ce_mean"]:>14.4f}'
        )
    print(
        'Ratios: held-out cross-entropy after the edit over the same model untouched (means over seeds); '
        'worst: the largest ratio of a class outside the concept.'
    )
    for name, ce in facts.untouched_ce.items():
        print(f'{name}: untouched held-out cross-entropy {ce:.4f} nats per character')
    if facts.least_collateral is not None:
        print(
            f'Removes the concept (p falls ≥ {facts.mass_fall:g}×) with the least collateral: {facts.least_collateral}'
        )
    else:
        print(f'No method makes the probability on the concept fall {facts.mass_fall:g}× or more')


def _interval(mean: float, low: float, high: float) -> str:
    return f'{_figure(mean)} [{_figure(low)}, {_figure(high)}]'


def _quiet_lightning() -> None:
    """Lightning logs hardware banners and tips at INFO through its own handler; keep warnings only."""
    import lightning.pytorch  # noqa: F401  (sets its loggers' levels on import; override after)

    for name in ('lightning.pytorch', 'lightning.fabric'):
        logging.getLogger(name).setLevel(logging.WARNING)
    # A deprecation inside Lightning itself, which a user can do nothing about.
    warnings.filterwarnings('ignore', message=r'.*isinstance\(treespec, LeafSpec\).*')


def _figure(value: float) -> str:
    """A selectivity-like figure to three decimals, an error to two significant digits."""
    return f'{value:.3f}' if 0.01 <= abs(value) <= 1 else f'{value:.2g}'


def print_results(directory: object, results: RunResults) -> None:
    """The headline figures of a run, as a short table: each evaluation's targets first among the colours."""
    print(
        f'{results.title} · seed {results.seed} · {results.engine} engine · {results.steps} steps '
        f'in {results.train_seconds:.1f} s'
    )
    if results.is_text:
        print_text_results(results.evaluations)  # type: ignore[arg-type]
        print(f'Results: {directory}')
        return
    from ex_color.data.named_colors import NAMED_COLORS

    targets = [t for e in results.evaluations.values() for t in e.targets if t in NAMED_COLORS]
    colours = list(dict.fromkeys([*targets, *HEADLINE_COLOURS]))
    print(f'{"":<12}{"mse max":>10}{"median":>10}{"select r²":>10}' + ''.join(f'{c:>9}' for c in colours))
    for name, e in results.evaluations.items():
        errors = ''.join(f'{e.named_colors[c]:>9.2g}' for c in colours)
        print(f'{name:<12}{e.mse_max:>10.2g}{e.mse_median:>10.2g}{e.selectivity_r2:>10.3f}{errors}')
    said = [removal_words(name, e, results.evaluations['baseline']) for name, e in results.evaluations.items()]
    targets_line = '; '.join(words for name, words in zip(results.evaluations, said, strict=True) if words)
    if targets_line:
        print(f'Targets: {targets_line}')
    print(f'Results: {directory}')


def print_text_results(evaluations: dict[str, Any]) -> None:
    """A text run's table: held-out cross-entropy per class of the next character (the untouched model's in nats,
    each edit's as a ratio to it), the concept's ratio, the worst other class's, and the probability on the concept
    where it comes next."""
    from ex_color.data.corpus import ALL, CHAR_CLASSES

    classes = [*CHAR_CLASSES, ALL]
    print(f'{"":<14}' + ''.join(f'{c:>8}' for c in classes) + f'{"concept":>9}{"worst other":>18}{"p(concept)":>12}')
    for name, e in evaluations.items():
        values = e.class_ce if name == 'baseline' else e.class_ce_ratio
        unit = '' if name == 'baseline' else '×'
        cells = ''.join(f'{f"{values[c]:.3g}{unit}":>8}' for c in classes)
        other = '' if name == 'baseline' else f'{e.collateral_ratio:.3g}× {e.collateral_class}'
        concept = '' if name == 'baseline' else f'{e.target_ratio:.3g}×'
        print(f'{name:<14}{cells}{concept:>9}{other:>18}{e.target_mass:>12.3g}')
    print(
        'baseline: cross-entropy in nats per character; the rest: ratio to it. p(concept): the probability on the '
        "concept's characters where one comes next."
    )


def removal_words(name: str, evaluation: Any, baseline: Any) -> str:
    """'ablated removes red (0.27, 41× unedited)', 'does not remove', or 'aims at' where the target has no named
    colour to measure: the one rule of `comparedir.removes_target`."""
    from ex_color.comparedir import removes_target

    if name == 'baseline' or not evaluation.targets:
        return ''
    targets = ', '.join(evaluation.targets)
    error, untouched = evaluation.mean_error(evaluation.targets), baseline.mean_error(evaluation.targets)
    if error is None or untouched is None:
        return f'{name} aims at {targets}'
    ratio = f'{error / untouched:.2g}× unedited' if untouched > 0 else 'unedited 0'
    verb = 'removes' if removes_target(error, untouched) else 'does not remove'
    return f'{name} {verb} {targets} (error {error:.2g}, {ratio})'
