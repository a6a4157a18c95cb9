"""One resumable runner for every multi-seed job: a sweep, a comparison.

A job trains chunks of seeds, each chunk one ensemble (one call of the job's `train_chunk`),
and saves each finished seed as `seeds/seed-<N>.pt` in its directory. The runner owns
everything around that, the same for every job:

- the directory: claimed for the job's kind and work (`ex_color.workdir`), locked while it runs,
  its inputs written;
- done and to do: seeds whose files exist (and belong to this work) are skipped, the others
  split into chunks;
- where the chunks train, as it is given them (`ex_color.backends`): here, one after another, the
  chunk in progress checkpointed to `chunk.pt` (`LocalChunks`); or as Ray tasks
  (`ex_color.ray_runner.RayChunks`);
- one progress bar in model-steps, SIGINT/SIGTERM honoured between steps or tasks;
- each finished seed saved, then tracked as a run of its own (`ex_color.tracking`).

The job says only what a chunk trains (`SeedJob.train_chunk`, a module-level function of
picklable arguments, so a Ray task can run it) and what a seed's file holds (`SeedRecord`).
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from ex_color.compiling import compile_fields
from ex_color.config import ConfigError, Experiment, ExperimentConfig, check_seed
from ex_color.device import device_fields
from ex_color.files import read_torch, write_atomic
from ex_color.progress import Progress
from ex_color.rundir import RunArtifactsError, identity, read_json, resolved_config, write_inputs
from ex_color.signals import stop_on_signals
from ex_color.temporal import Dopesheet
from ex_color.tracking import check_trackers, track_seed
from ex_color.training.engine import EngineOptions, TrainingInterrupted
from ex_color.workdir import claim, lock

log = logging.getLogger(__name__)

MAX_SEEDS = 100_000
"""The most seeds one call takes."""
MAX_CHUNK = 60
"""Models per ensemble by default: enough to amortise per-step overhead, small in memory."""
CHUNK_CHECKPOINT = 'chunk.pt'
SEEDS_DIR = 'seeds'
UNTRACKED_FILE = 'untracked.json'
ENGINE = 'fast'
"""Multi-seed jobs train with the fast ensemble engine."""


class SeedRecord(Protocol):
    """What a job's chunk returns for each seed, and what its seed file holds."""

    seed: int
    evaluation_seconds: float
    """Seconds spent assessing the seed after training (left out of the training time)."""

    def to_state(self) -> dict[str, Any]:
        """The seed file's contents (tensors, numbers, strings, lists and dicts of them)."""
        ...

    def tracked(self) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """What a tracker receives for this seed: its final figures, and its metric rows (may be empty)."""
        ...


ChunkFunction = Callable[..., list[Any]]
"""`train_chunk(config, dopesheet, seeds, *, steps, options) -> [record per seed]`."""


@dataclass(frozen=True)
class SeedJob:
    """What differs between multi-seed jobs."""

    kind: str
    """The directory's kind ('sweep', 'compare'), checked by `ex_color.workdir`."""
    train_chunk: ChunkFunction
    """Trains and assesses one chunk; a module-level function (Ray pickles it by name)."""
    keys: tuple[str, ...]
    """Keys every seed file of this job holds (besides 'seed' and 'identity')."""
    members: int = 1
    """Models per seed in the ensemble (a comparison trains a prepared and a control model)."""
    label: str = 'Sweep'
    """The progress bar's name."""
    from_state: Callable[[dict[str, Any], ExperimentConfig], SeedRecord] | None = None
    """A seed file's record again (`to_state` undone), to track a seed whose tracking failed; a module-level
    function. None: such a seed is only named in a warning."""


@dataclass(frozen=True)
class RunnerReport:
    """What one call of `SeedRunner.run` did."""

    chunk: int
    """Seeds per chunk."""
    train_seconds: float
    """Training time of the chunks trained in this call (assessment excluded)."""
    description: str | None
    """Where the chunks ran: None here, else e.g. 'Ray: 2 CPUs, 1 per task'."""


def parse_seeds(text: str) -> list[int]:
    """'0-59' → [0, …, 59]; '1,3,7-9' → [1, 3, 7, 8, 9]. Order kept, duplicates refused.

    At most MAX_SEEDS seeds, each in [0, 2⁶³); checked before anything is allocated.
    """
    seeds: list[int] = []
    for part in text.split(','):
        part = part.strip()
        lo, sep, hi = part.partition('-')
        if not (lo.isascii() and lo.isdigit() and (not sep or (hi.isascii() and hi.isdigit()))):
            raise ConfigError(f"--seeds: cannot read {part!r}; expected e.g. '0-59' or '1,3,7-9'")
        first, last = int(lo), int(hi) if sep else int(lo)
        if last < first:
            raise ConfigError(f'--seeds: range {part!r} runs backwards')
        for seed in (first, last):
            check_seed(seed, '--seeds')
        if len(seeds) + last - first + 1 > MAX_SEEDS:
            raise ConfigError(f'--seeds: more than {MAX_SEEDS:,} seeds; run them in parts')
        seeds.extend(range(first, last + 1))
    seen: set[int] = set()
    for seed in seeds:
        if seed in seen:
            raise ConfigError(f'--seeds: seed {seed} is listed twice')
        seen.add(seed)
    return seeds


def span(seeds: Sequence[int]) -> str:
    """'3–7' for a chunk of seeds, '3' for one."""
    return f'{seeds[0]}–{seeds[-1]}' if len(seeds) > 1 else str(seeds[0])


class SeedFiles:
    """`seeds/seed-<N>.pt` in a job's directory: each finished seed, with the identity of the work it belongs to."""

    def __init__(self, directory: Path, job: SeedJob, work: dict[str, Any]) -> None:
        self.directory, self.job, self.work = directory, job, work

    def path(self, seed: int) -> Path:
        return self.directory / SEEDS_DIR / f'seed-{seed}.pt'

    def exists(self, seed: int) -> bool:
        return self.path(seed).exists()

    def present(self) -> set[int]:
        """Every seed with a file here, whatever this call asks for."""
        names = (p.stem.removeprefix('seed-') for p in (self.directory / SEEDS_DIR).glob('seed-*.pt'))
        return {int(n) for n in names if n.isdigit()}

    def read(self, seed: int) -> dict[str, Any]:
        """A finished seed's state, checked to be this job's file for `seed` of this work.

        A RunArtifactsError for a damaged file, another seed's, or other work's. Files written
        before seed files recorded their work's identity are checked by seed only.
        """
        path = self.path(seed)
        state = read_torch(path)
        if not isinstance(state, dict) or any(key not in state for key in ('seed', *self.job.keys)):
            raise RunArtifactsError(f'{path}: not a seed file of ex-color {self.job.kind}; remove it and run again')
        if state['seed'] != seed or state.get('identity', self.work) != self.work:
            which = f'seed {state["seed"]}' if state['seed'] != seed else 'another experiment, schedule or --steps'
            raise RunArtifactsError(f'{path}: holds the results of {which}; remove it and run again')
        return state

    def write(self, record: SeedRecord, train_seconds: float) -> None:
        state = {'seed': record.seed, 'identity': self.work, 'train_seconds': train_seconds, **record.to_state()}
        buffer = io.BytesIO()
        torch.save(state, buffer)
        write_atomic(self.path(record.seed), buffer.getvalue())


class PendingTracking:
    """`untracked.json` in a job's directory: each saved seed that some logger has not tracked yet, with those loggers.

    A seed is added before its file is written and removed once it is tracked, so a seed whose tracking failed (an
    unreachable store) or was killed is tracked when the job runs again, and never silently left out.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / UNTRACKED_FILE

    def read(self) -> dict[int, list[str]]:
        if not self.path.exists():
            return {}
        data = read_json(self.path)
        if not isinstance(data, dict):
            raise RunArtifactsError(f'{self.path}: expected a JSON object of seed → loggers; remove it')
        return {int(seed): list(names) for seed, names in data.items()}

    def set(self, seed: int, loggers: Sequence[str]) -> None:
        """Record that `seed` still owes `loggers` (none: it is fully tracked)."""
        owed = self.read()
        if loggers:
            owed[seed] = list(loggers)
        else:
            owed.pop(seed, None)
        if owed:
            write_atomic(self.path, json.dumps({str(k): v for k, v in sorted(owed.items())}, indent=2) + '\n')
        else:
            self.path.unlink(missing_ok=True)


class ChunkTrainer(Protocol):
    """Trains chunks of seeds (in this process or elsewhere); entered around the job."""

    description: str | None
    """Where the chunks run: None here, else e.g. 'Ray: 2 CPUs, 1 per task'."""

    stopping: str
    """What a SIGINT or SIGTERM does, for the warning logged when one arrives."""

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: object) -> Any: ...

    def default_chunk(self, seeds: int, todo: int, members: int) -> int:
        """Seeds per chunk when none is given: `seeds` in the job, `todo` unfinished, `members` models per seed."""
        ...

    def train(
        self, job: SeedJob, chunks: Sequence[list[int]], bar: Progress, should_stop: Callable[[], bool]
    ) -> Iterator[tuple[list[Any], float]]:
        """Each chunk's records, as it finishes, with its training seconds (assessment excluded)."""
        ...


class LocalChunks:
    """Trains the chunks one after another in this process, each checkpointed to `chunk.pt`."""

    def __init__(
        self, experiment: Experiment, steps: int, checkpoint: Path, device: str = 'cpu', *, compile: bool = False
    ) -> None:
        self.experiment, self.steps, self.checkpoint, self.device = experiment, steps, checkpoint, device
        self.compile = compile
        self.description = None
        self.stopping = 'checkpointing the chunk and stopping'

    def __enter__(self) -> LocalChunks:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def default_chunk(self, seeds: int, todo: int, members: int) -> int:
        # From the whole job, not what is left, so a rerun keeps the chunk of chunk.pt.
        return min(seeds, max(1, MAX_CHUNK // members))

    def train(
        self, job: SeedJob, chunks: Sequence[list[int]], bar: Progress, should_stop: Callable[[], bool]
    ) -> Iterator[tuple[list[Any], float]]:
        for index, seeds in enumerate(chunks):
            log.info('Chunk %d/%d: seeds %s', index + 1, len(chunks), span(seeds))
            options = EngineOptions(
                checkpoint_path=self.checkpoint,
                progress=False,
                should_stop=should_stop,
                device=self.device,
                compile=self.compile,
                on_progress=bar.part(
                    job.members * len(seeds), self.steps, then=f'evaluating {job.members * len(seeds)} models'
                ),
            )
            drop_stale_checkpoint(self.checkpoint, seeds * job.members)
            started = time.perf_counter()
            records = job.train_chunk(
                self.experiment.config, self.experiment.dopesheet, seeds, steps=self.steps, options=options
            )
            yield records, time.perf_counter() - started - sum(r.evaluation_seconds for r in records)
            self.checkpoint.unlink(missing_ok=True)  # the chunk's seeds are saved


def _log_estimate(first_chunk_seconds: float, chunks_left: int) -> None:
    """After the first chunk: how long the rest should take at its pace (training and assessment, wall clock)."""
    left = first_chunk_seconds * chunks_left
    finish = datetime.datetime.now() + datetime.timedelta(seconds=left)
    log.info(
        'The first chunk took %s; the %d left should take about %s more (done around %s)',
        _duration(first_chunk_seconds),
        chunks_left,
        _duration(left),
        finish.strftime('%H:%M'),
    )


def _duration(seconds: float) -> str:
    """'42 s', '7.5 min', '3.2 h'."""
    if seconds < 90:
        return f'{seconds:.0f} s'
    if seconds < 5400:
        return f'{seconds / 60:.1f} min'
    return f'{seconds / 3600:.1f} h'


def drop_stale_checkpoint(path: Path, members: list[int]) -> None:
    """A chunk checkpoint for other seeds (e.g. after changing --chunk) cannot be resumed."""
    if path.exists() and read_torch(path).get('seeds') != members:
        log.warning('Discarding %s: it belongs to a chunk of other seeds', path)
        path.unlink()


class SeedRunner:
    """A job's directory, claimed and locked, and where its chunks train. Enter it, `run` the seeds, then
    write the job's tables while it is still held.

    Args:
        trainer: where the chunks train (`ex_color.backends.chunk_trainer`); entered with the runner.
        chunk: seeds per ensemble (default: the trainer's, see `ChunkTrainer.default_chunk`).
        loggers: also track each newly finished seed as a run of its own, grouped by the job.
        device: where the chunks train (resolved); recorded in the directory's fingerprint unless the CPU.
        compile: whether the chunks train compiled; recorded in the fingerprint when they do.
    """

    def __init__(
        self,
        job: SeedJob,
        experiment: Experiment,
        directory: Path,
        steps: int,
        seeds: Sequence[int],
        *,
        chunk: int | None = None,
        trainer: ChunkTrainer,
        loggers: Sequence[str] = (),
        device: str = 'cpu',
        compile: bool = False,
    ) -> None:
        self.seeds = list(seeds)
        if not self.seeds:
            raise ConfigError('--seeds: no seeds given')
        if chunk is not None and chunk < 1:
            raise ConfigError(f'--chunk must be >= 1, got {chunk}')
        self.chunk = chunk
        self.loggers = check_trackers(loggers)
        self.job, self.experiment, self.directory, self.steps = job, experiment, directory, steps
        self.work = identity(experiment, engine=ENGINE, steps=steps, **device_fields(device), **compile_fields(compile))
        self.files = SeedFiles(directory, job, self.work)
        self.pending = PendingTracking(directory)
        claim(directory, job.kind, self.work, write=False)  # a wrong --out fails before a cluster starts
        self.trainer = trainer
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> SeedRunner:
        with contextlib.ExitStack() as stack:
            stack.enter_context(self.trainer)  # a cluster that cannot be reached fails before the directory is written
            claim(self.directory, self.job.kind, self.work)
            stack.enter_context(lock(self.directory))
            write_inputs(self.directory, self.experiment, self.experiment.config.experiment.seed)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.__exit__(*exc)

    def run(
        self,
        *,
        progress: bool | None = None,
        after_chunk: Callable[[], None] | None = None,
    ) -> RunnerReport:
        """Train every unfinished seed in chunks, saving (and tracking) each seed as its chunk finishes.

        Args:
            after_chunk: called once a chunk's seeds are saved (a sweep rewrites its table).
        """
        seeds, loggers = self.seeds, self.loggers
        done = {seed for seed in seeds if self.files.exists(seed)}
        for seed in done:  # before any training: a seed file from other work is refused now, not after
            self.files.read(seed)
        self._track_what_is_owed(done)
        others = sorted(self.files.present() - set(seeds))
        if others:
            left_out = ', '.join(map(str, others))
            log.info('%s also holds seeds %s, which --seeds leaves out of this call', self.directory, left_out)
        todo = [seed for seed in seeds if seed not in done]
        if done:
            log.info(
                '%d of %d seeds already finished in %s; %d to go', len(done), len(seeds), self.directory, len(todo)
            )
        members = self.job.members
        chunk = self.chunk or self.trainer.default_chunk(len(seeds), len(todo), members)
        chunks = [todo[i : i + chunk] for i in range(0, len(todo), chunk)]
        train_seconds = 0.0
        total, completed = len(seeds) * members * self.steps, len(done) * members * self.steps
        with (
            Progress(self.job.label, total, completed=completed, enabled=progress, unit='model-steps/s') as bar,
            stop_on_signals(self.trainer.stopping) as stop,
            contextlib.closing(self.trainer.train(self.job, chunks, bar, stop)) as finished,
        ):
            started = time.perf_counter()
            for done_chunks, (records, chunk_train_seconds) in enumerate(finished, start=1):
                train_seconds += chunk_train_seconds
                if done_chunks == 1 and len(chunks) > 1:
                    _log_estimate(time.perf_counter() - started, len(chunks) - 1)
                for record in records:
                    if loggers:
                        self.pending.set(record.seed, loggers)
                    self.files.write(record, chunk_train_seconds / len(records))
                    if loggers:
                        self._track(record, loggers)
                        self.pending.set(record.seed, [])
                if after_chunk is not None:
                    after_chunk()
            if stop():  # asked while the last chunk was assessed: its seeds are saved, the rest is not done
                raise TrainingInterrupted(f'{self.job.kind} stopped after its last chunk was trained')
        return RunnerReport(chunk=chunk, train_seconds=train_seconds, description=self.trainer.description)

    def _track_what_is_owed(self, done: set[int]) -> None:
        """Track the finished seeds whose tracking failed before, in the loggers asked for now; warn about the rest."""
        for seed, owed in self.pending.read().items():
            now = [name for name in owed if name in self.loggers]
            if seed not in done or not now or self.job.from_state is None:
                continue
            log.info('Tracking seed %d in %s, which the last call could not', seed, ', '.join(now))
            self._track(self.job.from_state(self.files.read(seed), self.experiment.config), now)
            self.pending.set(seed, [name for name in owed if name not in now])
        for seed, owed in self.pending.read().items():
            log.warning(
                'Seed %d of %s was saved but never tracked in %s (its tracking failed or was stopped): run again with '
                '--logger %s and seed %d among --seeds to track it',
                seed,
                self.directory,
                ', '.join(owed),
                ' --logger '.join(owed),
                seed,
            )

    def _track(self, record: SeedRecord, loggers: Sequence[str]) -> None:
        figures, rows = record.tracked()
        name = self.experiment.name
        track_seed(
            loggers,
            directory=self.directory,
            experiment=name,
            group=f'{name}/{self.directory.name}',
            seed=record.seed,
            config=resolved_config(self.experiment, record.seed) | {'engine': ENGINE, 'steps': self.steps},
            figures=figures,
            step=self.steps - 1,
            rows=rows,
            settings=self.experiment.config.tracking,
        )


def chunk_task(
    train: ChunkFunction,
    config: ExperimentConfig,
    dopesheet: Dopesheet,
    seeds: list[int],
    steps: int,
    threads: int,
    compile: bool = False,
) -> tuple[list[Any], float]:
    """One chunk as a remote worker runs it: on `threads` torch threads, no checkpoint, no progress bar.

    Returns the chunk's records and its training seconds (assessment excluded).
    """
    torch.set_num_threads(threads)  # not left to how the worker was started (OMP_NUM_THREADS)
    started = time.perf_counter()
    records = train(config, dopesheet, seeds, steps=steps, options=EngineOptions(progress=False, compile=compile))
    return records, time.perf_counter() - started - sum(r.evaluation_seconds for r in records)


__all__ = [
    'CHUNK_CHECKPOINT',
    'MAX_CHUNK',
    'ChunkTrainer',
    'LocalChunks',
    'PendingTracking',
    'RunnerReport',
    'SeedFiles',
    'SeedJob',
    'SeedRecord',
    'SeedRunner',
    'chunk_task',
    'parse_seeds',
    'span',
]
