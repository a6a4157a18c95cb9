"""Track runs where researchers already look: TensorBoard, MLflow, Weights & Biases (and CSV).

Lightning's logger classes do the writing for both engines. The Lightning engine hands them
to its `Trainer`; for the fast engine, a `Tracker` calls `log_hyperparams`, `log_metrics`
and `finalize` itself. Either way a tracked run holds the same keys:

    hyperparameters   the resolved experiment (flattened), seed, engine and steps
    train_loss, train_<term>, lr, weight_<regularizer>
                      every logged step (every 50 steps and the last)
    final/<column>    the run's figures at the last step, named like sweep.csv's columns
                      (`final/ablated_selectivity_r2`, `final/val_recon`, ...)
    artifacts         report.html and figures/ (MLflow and W&B)

Everything works offline by default:

- csv: `<directory>/tracking/csv/metrics.csv` and `hparams.yaml`.
- tensorboard: event files under `<directory>/tensorboard/`.
- mlflow: `$MLFLOW_TRACKING_URI` if set, else a SQLite store `runs/mlflow.db` (artifacts in
  `runs/mlflow-artifacts/`). Recent MLflow refuses a plain file store unless told to, and a
  database is what it recommends, so we use SQLite, which needs no server.
- wandb: offline unless `$WANDB_MODE` or `[tracking] wandb_mode` says otherwise; the run is
  written under `<directory>/wandb/`, and `wandb sync` uploads it later.

A sweep tracks one run per seed, grouped by sweep (TensorBoard: `tensorboard/seed-<N>`;
MLflow: the tag `ex_color.group`; W&B: the run group). The trackers are an optional extra:
`pip install 'ex-color[track]'`; asking for a missing one is a one-line error that says so.
"""

from __future__ import annotations

import csv
import errno
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ex_color.config import ConfigError
from ex_color.config.schema import TRACKERS, TrackingSection
from ex_color.files import write_atomic
from ex_color.training.engine import TrainingInterrupted

log = logging.getLogger(__name__)

EXTRA = "pip install 'ex-color[track]'"
REQUIRES = {'tensorboard': ('tensorboard', 'TensorBoard'), 'mlflow': ('mlflow', 'MLflow'), 'wandb': ('wandb', 'W&B')}
"""Logger → (the module it needs, its name in messages)."""
MLFLOW_STORE = 'sqlite:///runs/mlflow.db'
MLFLOW_ARTIFACTS = Path('runs') / 'mlflow-artifacts'
TRACKING_FILE = 'tracking.json'
"""In a run directory: the tracked runs' ids, so that a resumed run continues them."""


class TrackerError(ConfigError):
    """A tracker that cannot be opened or written to (e.g. a malformed or unreachable MLflow URI)."""


def check_trackers(names: Sequence[str]) -> list[str]:
    """`names` if each is a known logger whose package is installed, each once; a one-line ConfigError otherwise."""
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f'--logger {name} is given twice; expected each logger once')
        if name not in TRACKERS:
            raise ConfigError(f'--logger: unknown logger {name!r}; expected one of {", ".join(TRACKERS)}')
        if name == 'wandb':
            os.environ.setdefault('WANDB_SILENT', 'true')  # before wandb is imported: it prints notes of its own
        if name in REQUIRES:
            module, title = REQUIRES[name]
            try:
                __import__(module)
            except ImportError:
                raise ConfigError(f'--logger {name} needs {title}, which is not installed: {EXTRA}') from None
    return list(names)


class Tracker:
    """One tracked run in each of several trackers (Lightning loggers).

    Args:
        names: loggers, e.g. ['tensorboard', 'mlflow'] (checked with `check_trackers`).
        directory: the run (or sweep) directory the offline trackers write under.
        experiment: the experiment's name (MLflow experiment, W&B project tag).
        run: the run's name, e.g. 'seed-0'.
        group: the sweep or comparison this run belongs to, if any.
        settings: the experiment file's [tracking] table.
    """

    def __init__(
        self,
        names: Sequence[str],
        *,
        directory: Path,
        experiment: str,
        run: str,
        group: str | None = None,
        settings: TrackingSection | None = None,
    ) -> None:
        self.names = check_trackers(names)
        self.directory = Path(directory)
        self.settings = settings or TrackingSection()
        self.experiment, self.run, self.group = experiment, run, group
        self.ids_file = self.directory / TRACKING_FILE if group is None else None
        self._loggers: list[Any] | None = None
        self._csv_before: list[dict[str, float]] = []
        """The CSV tracker's rows from before a resume, which Lightning's CSV logger would otherwise discard."""

    @property
    def loggers(self) -> list[Any]:
        """The Lightning loggers, opened on first use: only once the run's directory is claimed do they write there."""
        if self._loggers is None:
            ids = self._saved_ids()
            loggers = []
            for name in self.names:
                with naming_failures(name):
                    loggers.append(self._logger(name, self.experiment, self.run, self.group, ids.get(name)))
                    if name in ('mlflow', 'wandb'):  # these connect (or start) on first use: do it now
                        _ = loggers[-1].run_id if name == 'mlflow' else loggers[-1].experiment.id
            self._loggers = loggers
            self._save_ids()
        return self._loggers

    def _saved_ids(self) -> dict[str, str]:
        if self.ids_file is None or not self.ids_file.exists():
            return {}
        return json.loads(self.ids_file.read_text())

    def _save_ids(self) -> None:
        ids = {}
        for name, logger in zip(self.names, self.loggers, strict=True):
            if name == 'mlflow':
                ids[name] = logger.run_id
            elif name == 'wandb':
                ids[name] = logger.experiment.id
        if ids and self.ids_file is not None:
            write_atomic(self.ids_file, json.dumps(ids, indent=2) + '\n')

    def _logger(self, name: str, experiment: str, run: str, group: str | None, run_id: str | None) -> Any:
        sub = run if group is not None else ''
        if name == 'csv':
            from lightning.pytorch.loggers import CSVLogger

            logger = CSVLogger(self.directory / 'tracking', name='csv', version=sub)
            self._csv_before = _read_csv_rows(Path(logger.log_dir) / 'metrics.csv')  # before Lightning deletes it
            # Lightning warns that it will delete the old file; a resumed run gives its rows back (log_rows).
            warnings.filterwarnings('ignore', message=r'Experiment logs directory .* exists and is not empty')
            return logger
        if name == 'tensorboard':
            from lightning.pytorch.loggers import TensorBoardLogger

            return TensorBoardLogger(self.directory, name='tensorboard', version=sub, default_hp_metric=False)
        if name == 'mlflow':
            from lightning.pytorch.loggers import MLFlowLogger

            _quiet('mlflow', 'alembic')
            logging.getLogger('urllib3.connectionpool').setLevel(logging.ERROR)  # each retry, before our one line
            # A tracking server that does not answer is an error within seconds, not minutes of retries.
            os.environ.setdefault('MLFLOW_HTTP_REQUEST_MAX_RETRIES', '1')
            os.environ.setdefault('MLFLOW_HTTP_REQUEST_TIMEOUT', '10')
            # Lightning warns when it creates the MLflow experiment, which is what a first run should do.
            logging.getLogger('lightning.pytorch.loggers.mlflow').setLevel(logging.ERROR)
            uri = self.settings.mlflow_uri or os.environ.get('MLFLOW_TRACKING_URI') or MLFLOW_STORE
            default_store = uri == MLFLOW_STORE
            if default_store:
                MLFLOW_ARTIFACTS.mkdir(parents=True, exist_ok=True)
                # Absolute: MLflow caches a store by its URI, and a relative one would outlive a change of directory.
                uri = f'sqlite:///{(MLFLOW_ARTIFACTS.parent / "mlflow.db").resolve()}'
            problem = sqlite_store_problem(uri)
            if problem is not None:  # found now, not after a minute of MLflow's retries
                raise TrackerError(f'--logger mlflow: cannot track in {uri}: {problem}')
            tags = {'ex_color.directory': str(self.directory.resolve())}
            if group is not None:
                tags['ex_color.group'] = group
            return MLFlowLogger(
                experiment_name=experiment,
                run_name=run,
                tracking_uri=uri,
                tags=tags,
                artifact_location=MLFLOW_ARTIFACTS.resolve().as_uri() if default_store else None,
                run_id=run_id,
            )
        import wandb
        from lightning.pytorch.loggers import WandbLogger

        _quiet('wandb')
        # wandb stages artifacts and keeps caches under ~; keep them beside the run instead (unless set).
        os.environ.setdefault('WANDB_DATA_DIR', str((self.directory / 'wandb').resolve()))
        os.environ.setdefault('WANDB_CACHE_DIR', str((self.directory / 'wandb' / 'cache').resolve()))
        mode = self.settings.wandb_mode or os.environ.get('WANDB_MODE') or 'offline'
        self.directory.mkdir(parents=True, exist_ok=True)
        logger = WandbLogger(
            project=self.settings.wandb_project,
            name=run,
            group=group,
            save_dir=str(self.directory),
            mode=mode,
            id=run_id,
            resume='allow' if run_id else None,
            tags=[experiment],
            settings=wandb.Settings(console='off', silent=True),
        )
        # Lightning always passes `anonymous` (None by default), which recent wandb warns about on stderr.
        init = getattr(logger, '_wandb_init', None)
        if isinstance(init, dict) and init.get('anonymous') is None:
            init.pop('anonymous', None)
        return logger

    def log_config(self, config: Mapping[str, Any]) -> None:
        """The resolved experiment (and seed, engine, steps) as hyperparameters: the first thing logged, so a
        tracker that cannot be opened (a bad or unreachable MLflow URI) fails here, as a TrackerError."""
        for name, logger in zip(self.names, self.loggers, strict=True):
            with naming_failures(name):
                logger.log_hyperparams(dict(config))

    def log_rows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Metrics-table rows (step, lr, train_loss, train_<term>, weight_<name>) at their steps; NaN terms are
        skipped."""
        for row in rows:
            step = int(row['step'])
            self._restore_csv_rows(before=step)
            values = {
                k: float(v)
                for k, v in row.items()
                if k not in ('step', 'seed') and isinstance(v, int | float) and v == v  # NaN: a skipped term
            }
            for logger in self.loggers:
                logger.log_metrics(values, step=step)

    def log_final(self, figures: Mapping[str, float], step: int) -> None:
        """The run's figures (sweep.csv's columns) as `final/<column>` at `step`."""
        values = {f'final/{k}': float(v) for k, v in figures.items() if isinstance(v, int | float) and v == v}
        for logger in self.loggers:
            logger.log_metrics(values, step=step)

    def _restore_csv_rows(self, before: int) -> None:
        """Give the CSV logger back the rows a resumed run had logged before step `before`, the first it logs now, so
        its file holds every step once (the resumed run logs the later ones again). Only the fast engine resumes,
        and it logs its rows here; rows of a run that starts over are dropped with the file."""
        rows, self._csv_before = self._csv_before, []
        if not rows:
            return
        logger = self.loggers[self.names.index('csv')]
        for row in rows:
            step = int(row.pop('step'))
            if step < before:
                logger.log_metrics(row, step=step)

    def log_artifacts(self, directory: Path) -> None:
        """report.html and figures/ from `directory`, to the trackers that keep files (MLflow, W&B)."""
        directory = Path(directory)
        report, figures = directory / 'report.html', directory / 'figures'
        for name, logger in zip(self.names, self.loggers, strict=True):
            if name == 'mlflow':
                client = logger.experiment
                if report.exists():
                    client.log_artifact(logger.run_id, str(report))
                if figures.is_dir():
                    client.log_artifacts(logger.run_id, str(figures), artifact_path='figures')
            elif name == 'wandb':
                import wandb

                artifact = wandb.Artifact(f'report-{logger.experiment.id}', type='report')
                if report.exists():
                    artifact.add_file(str(report))
                if figures.is_dir():
                    artifact.add_dir(str(figures), name='figures')
                logger.experiment.log_artifact(artifact)

    def finish(self, status: str = 'success') -> None:
        """Close every tracked run ('success', 'failed' or 'interrupted'); nothing if none was opened."""
        if self._loggers is None:
            return
        for name, logger in zip(self.names, self._loggers, strict=True):
            # MLflow knows FINISHED, FAILED and KILLED (Lightning maps 'success' and 'failed' itself).
            logger.finalize('KILLED' if name == 'mlflow' and status == 'interrupted' else status)
            if name == 'wandb':
                logger.experiment.finish(exit_code=0 if status == 'success' else 1)


@contextmanager
def tracked(names: Sequence[str], **kwargs: Any) -> Iterator[Tracker | None]:
    """A `Tracker` for the block (None when `names` is empty), finished 'success', 'interrupted' or 'failed'
    by how the block ends. Keyword arguments are `Tracker`'s."""
    if not names:
        yield None
        return
    tracker = Tracker(names, **kwargs)
    try:
        yield tracker
    except BaseException as error:
        interrupted = isinstance(error, KeyboardInterrupt | TrainingInterrupted)
        try:
            tracker.finish('interrupted' if interrupted else 'failed')
        except Exception as closing:  # never hide why the block ended
            log.warning('Could not close the tracked runs: %s', closing)
        raise
    tracker.finish('success')


def track_seed(
    names: Sequence[str],
    *,
    directory: Path,
    experiment: str,
    group: str,
    seed: int,
    config: Mapping[str, Any],
    figures: Mapping[str, float],
    step: int,
    rows: Iterable[Mapping[str, Any]] = (),
    settings: TrackingSection | None = None,
) -> None:
    """Track one finished seed of a sweep or comparison as its own run, grouped under `group`:
    its config, its metrics `rows` (if any) and its `figures` at `step`."""
    with tracked(
        names, directory=directory, experiment=experiment, run=f'seed-{seed}', group=group, settings=settings
    ) as tracker:
        assert tracker is not None
        tracker.log_config(config)
        tracker.log_rows(rows)
        tracker.log_final(figures, step=step)


def _read_csv_rows(path: Path) -> list[dict[str, float]]:
    """The numeric cells of each row of a CSV tracker's metrics file (none if there is no file)."""
    if not path.is_file():
        return []
    with open(path, newline='') as f:
        rows = []
        for row in csv.DictReader(f):
            numbers = {}
            for key, text in row.items():
                try:
                    numbers[key] = float(text)
                except (TypeError, ValueError):  # an empty cell: not logged at that step
                    continue
            if 'step' in numbers:
                rows.append(numbers)
    return rows


def sqlite_store_problem(uri: str) -> str | None:
    """Why a `sqlite:///PATH` store cannot be written (its directory missing, read-only or not ours), or None.

    Other URIs (a server, `sqlite:///file:...?mode=ro&uri=true`, memory) are left to MLflow.
    """
    if not uri.startswith('sqlite:///'):
        return None
    path = uri.removeprefix('sqlite:///')
    if not path or path.startswith(('file:', ':memory:')) or '?' in path:
        return None
    database = Path(path)
    if not database.parent.is_dir():
        return f'its directory {database.parent} does not exist'
    try:
        if database.exists():
            with open(database, 'ab'):
                pass
        else:
            with tempfile.NamedTemporaryFile(dir=database.parent, prefix='.ex-color-probe-'):
                pass
    except OSError as error:
        cause = {errno.EROFS: 'read-only', errno.EACCES: 'not writable by this user'}.get(error.errno, 'not writable')
        where = database if database.exists() else database.parent
        return f'the store is {cause} ({error.strerror}: {where})'
    return None


CAUSES = (
    (('readonly', 'read-only', 'read only'), 'read-only'),
    (('database is locked', 'locked'), 'locked'),
    (
        ('connection refused', 'max retries', 'timed out', 'name or service not known', 'failed to resolve'),
        'unreachable',
    ),
    (('permission denied', 'forbidden', '401', '403'), 'not allowed'),
)
"""Words in a tracker library's error → the cause our one line names."""


def _root_message(error: BaseException) -> str:
    """The innermost error's first line: a database driver's (SQLAlchemy keeps it as `.orig`) or the first cause."""
    inner: BaseException = error
    for _ in range(10):  # a chain, not a loop
        nested = getattr(inner, 'orig', None) or inner.__cause__
        if not isinstance(nested, BaseException):
            break
        inner = nested
    text = str(inner).strip() or str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextmanager
def naming_failures(name: str) -> Iterator[None]:
    """Turn a tracker library's failure (a malformed, read-only, locked or unreachable store, say) into one
    TrackerError line that names the cause."""
    try:
        yield
    except TrackerError:
        raise
    except Exception as error:
        detail = _root_message(error)
        lowered = f'{detail} {error}'.lower()
        cause = next((cause for words, cause in CAUSES if any(w in lowered for w in words)), None)
        said = f'the store is {cause}: ' if cause else ''
        raise TrackerError(f'--logger {name}: cannot track there: {said}{detail[:300]}') from None


def _quiet(*names: str) -> None:
    """Trackers log set-up chatter at INFO; keep their warnings only (unless -v)."""
    if not logging.getLogger('ex_color').isEnabledFor(logging.DEBUG):
        for name in names:
            logging.getLogger(name).setLevel(logging.WARNING)
        # MLflow's store logs each database error with its traceback and retries; the error reaches us as one line.
        logging.getLogger('mlflow.store').setLevel(logging.CRITICAL)


__all__ = [
    'EXTRA',
    'TRACKERS',
    'Tracker',
    'TrackerError',
    'check_trackers',
    'naming_failures',
    'sqlite_store_problem',
    'track_seed',
    'tracked',
]
