"""Multi-seed jobs and search batches on Ray: each chunk of seeds (or part of a batch) a Ray task, gathered as it
finishes (`--ray`).

Only this module imports Ray, and `ex_color.runner` imports it only when asked for Ray, so the
core install never needs Ray (`pip install 'ex-color[ray]'`). A task runs the job's
`train_chunk` as a local run does (`runner.chunk_task`), on `num_cpus` torch threads and
without a checkpoint (it may run on another machine); it returns the chunk's records and the
runner saves them as they arrive. The engine trains each member exactly as it would alone,
whatever the ensemble or its threads, so a sweep's or comparison's tables are the same as a
local run's, row for row.

- Cluster: the one at ADDRESS ('auto': the one `ray start` started on this machine), the
  one in RAY_ADDRESS, or else a new local cluster sized to this machine, shut down at the
  end. A process where Ray is already initialised (a notebook, a test) uses that cluster.
- Token authentication: a new local cluster gets a fresh token for its lifetime, in the
  environment its processes inherit (nothing is written to ~/.ray). For a cluster at an
  address, Ray reads the user's RAY_AUTH_MODE and RAY_AUTH_TOKEN (or the token file).
- Chunks: by default one task per free slot (cluster CPUs / num_cpus), each at most
  MAX_CHUNK models, so every CPU works and a lost task costs little.
- A task whose worker dies is retried (up to RETRIES times); an error in the training
  itself (e.g. a diverging loss) is not, and stops the job.
- SIGINT/SIGTERM cancel the tasks still running; the finished seeds are saved, and a
  rerun trains only the others.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any

import ray

from ex_color.config import ConfigError, Experiment
from ex_color.progress import Progress
from ex_color.runner import MAX_CHUNK, SeedJob, chunk_task, span
from ex_color.training.engine import TrainingInterrupted
from ex_color.trials import Trained, trials_task

log = logging.getLogger(__name__)

DEFAULT_CPUS = 1
"""CPUs (and torch threads) per task. Ensembles of this small model are bound by Python
overhead, not arithmetic (the engine runs ensembles under 16 members on one thread), so
one single-threaded process per core is fastest."""
RETRIES = 3
"""Times a chunk is retried after its worker or node dies (Ray's `max_retries`)."""
POLL_SECONDS = 0.2
"""How often the driver checks for a stop request while it waits for chunks."""
CONNECT_TIMEOUT = 5.0


class RayChunks:
    """Trains a job's chunks as Ray tasks. Enter it to connect (or start a cluster); exit to let go.

    Args:
        address: 'local' (RAY_ADDRESS if set, else a new local cluster), 'auto', or
            HOST:PORT / ray://HOST:PORT of a running cluster.
        num_cpus: CPUs and torch threads per task (default DEFAULT_CPUS); compiled kernels use as many threads.
        compile: train with the compiled step (`ex_color.compiling`).
    """

    def __init__(
        self,
        experiment: Experiment,
        steps: int,
        *,
        address: str = 'local',
        num_cpus: int | None = None,
        compile: bool = False,
    ) -> None:
        self.experiment, self.steps, self.compile = experiment, steps, compile
        self.num_cpus = num_cpus or DEFAULT_CPUS
        self.cluster = cluster(check_address(address))
        self.cpus = 0.0
        self.description: str | None = None
        self.stopping = 'cancelling the running Ray tasks and stopping (finished seeds are kept)'

    def __enter__(self) -> RayChunks:
        self.cpus = self.cluster.__enter__()
        largest = max((n['Resources'].get('CPU', 0) for n in ray.nodes() if n['Alive']), default=0)
        if 0 < largest < self.num_cpus:  # Ray would wait forever (0: an autoscaler adds CPUs)
            self.cluster.__exit__(None, None, None)
            raise ConfigError(f'--ray-cpus {self.num_cpus}: the largest node of the Ray cluster has {largest:g} CPUs')
        self.description = f'Ray: {self.cpus:g} CPUs, {self.num_cpus} per task'
        return self

    def __exit__(self, *exc: object) -> None:
        self.cluster.__exit__(*exc)

    def default_chunk(self, seeds: int, todo: int, members: int) -> int:
        """Seeds per task: the unfinished seeds spread over the cluster's slots, at most MAX_CHUNK models."""
        slots = max(1, int(self.cpus // self.num_cpus))
        return max(1, min(MAX_CHUNK // members, math.ceil((todo or seeds) / slots)))

    def train(
        self, job: SeedJob, chunks: Sequence[list[int]], bar: Progress, should_stop: Callable[[], bool]
    ) -> Iterator[tuple[list[Any], float]]:
        """Each chunk's outcomes and training seconds, in the order the chunks finish."""
        task = ray.remote(chunk_task).options(num_cpus=self.num_cpus, max_retries=RETRIES, retry_exceptions=False)
        config, dopesheet = ray.put(self.experiment.config), ray.put(self.experiment.dopesheet)
        pending = {
            task.remote(job.train_chunk, config, dopesheet, s, self.steps, self.num_cpus, self.compile): s
            for s in chunks
        }
        if chunks:
            log.info(
                '%d chunks of up to %d seeds as Ray tasks (%s)', len(chunks), max(map(len, chunks)), self.description
            )
        total = len(chunks)
        stopped = f'{job.kind} stopped after {{done}} of {total} Ray tasks (the others cancelled)'
        for seeds, ref in _as_finished(pending, should_stop, stopped):
            outcomes, seconds = _result(ref, f'seeds {span(seeds)}')
            log.info('Chunk %d/%d done: seeds %s', total - len(pending), total, span(seeds))
            bar.part(job.members * len(seeds))(self.steps)
            yield outcomes, seconds


def _as_finished(pending: dict[Any, Any], should_stop: Callable[[], bool], stopped: str) -> Iterator[tuple[Any, Any]]:
    """`(what, ref)` for each task of `pending` (ref → what it trains) as it finishes, removed from `pending`.

    Between finishes it polls `should_stop`: then TrainingInterrupted (`stopped`, with `{done}` the tasks finished).
    Stopped, failed or abandoned, the tasks still running are cancelled, to free the cluster."""
    total = len(pending)
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
            for ref in ready:
                yield pending.pop(ref), ref
            if pending and should_stop():
                raise TrainingInterrupted(stopped.format(done=total - len(pending)))
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)


def _result(ref: Any, what: str) -> Any:
    """A finished task's value; its error as ex-color reports errors. `what`: the task's work, e.g. 'seeds 0–9'."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:  # raised by the training itself: the original error
        raise (error.cause or error) from error
    except ray.exceptions.OutOfMemoryError as error:
        raise MemoryError(f'Ray ran out of memory training {what}') from error
    except ray.exceptions.RayError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConnectionError(f'Ray lost {what} after {RETRIES} retries: {first}') from error


class RayTrials:
    """Trains each batch of a search as Ray tasks: its trials split evenly over the cluster's slots (CPUs /
    `num_cpus`), each task an ensemble of its trials × seeds (`trials.trials_task`). Enter it to connect."""

    stopping = 'cancelling the running Ray tasks and stopping (the batch is asked again when the search is run again)'

    def __init__(
        self,
        experiment: Experiment,
        steps: int,
        *,
        address: str = 'local',
        num_cpus: int | None = None,
        compile: bool = False,
    ):
        self.chunks = RayChunks(experiment, steps, address=address, num_cpus=num_cpus, compile=compile)

    @property
    def description(self) -> str | None:
        return self.chunks.description

    def __enter__(self) -> RayTrials:
        self.chunks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.chunks.__exit__(*exc)

    def train(
        self, made: Sequence[Experiment], seeds: Sequence[int], steps: int, bar: Progress, stop: Callable[[], bool]
    ) -> list[Trained]:
        """Each trial's assessed seeds (or failure), in the order of `made`."""
        num_cpus = self.chunks.num_cpus
        slots = max(1, int(self.chunks.cpus // num_cpus))
        size = math.ceil(len(made) / min(slots, len(made)))
        parts = [list(range(i, min(i + size, len(made)))) for i in range(0, len(made), size)]
        task = ray.remote(trials_task).options(num_cpus=num_cpus, max_retries=RETRIES, retry_exceptions=False)
        pending = {
            task.remote([made[i] for i in part], list(seeds), steps, num_cpus, self.chunks.compile): part
            for part in parts
        }
        trained: dict[int, Trained] = {}
        stopped = 'search stopped: the Ray tasks of its batch were cancelled'
        for part, ref in _as_finished(pending, stop, stopped):
            results, _ = _result(ref, f'{len(part)} trials of a search batch')
            trained.update(zip(part, results, strict=True))
            bar.part(len(part) * len(seeds))(steps)
        return [trained[i] for i in range(len(made))]


@contextlib.contextmanager
def cluster(address: str = 'local', *, local_cpus: int | None = None) -> Iterator[float]:
    """Ray connected, for the duration; yields the cluster's CPUs.

    A cluster this call starts is shut down at the end, and a connection it opens is closed;
    one already open in this process is left as it is. Ray logs warnings only, unless
    ex-color logs debug messages (-v).
    """
    if ray.is_initialized():  # the caller's cluster, whatever `address` says
        log.info('Using the Ray cluster this process is connected to')
        yield ray.cluster_resources().get('CPU', 0.0)
        return
    verbose = logging.getLogger('ex_color').isEnabledFor(logging.DEBUG)
    options: dict[str, Any] = {
        'logging_level': logging.DEBUG if verbose else logging.WARNING,
        'log_to_driver': verbose,  # the workers' own logs; their errors reach us as exceptions
    }
    if address == 'local' and os.environ.get('RAY_ADDRESS'):
        address = os.environ['RAY_ADDRESS']
    sigterm = signal.getsignal(signal.SIGTERM)  # ray.init replaces it
    with contextlib.ExitStack() as stack:
        if address == 'local':
            stack.enter_context(_auth_environment(_local_auth()))
            ray.init(num_cpus=local_cpus, include_dashboard=False, **options)
            log.info('Started a local Ray cluster (%g CPUs)', ray.cluster_resources().get('CPU', 0.0))
        else:
            _connect(address, options, quiet=not verbose)
        try:
            yield ray.cluster_resources().get('CPU', 0.0)
        finally:
            ray.shutdown()
            if sigterm is not None:
                with contextlib.suppress(ValueError):  # not the main thread
                    signal.signal(signal.SIGTERM, sigterm)


def _local_auth() -> dict[str, str]:
    """The token settings for a new local cluster.

    Ray turns token authentication on for a new local cluster and, when the user has no
    token, writes one to ~/.ray/auth_token. We keep it on, say so (else Ray warns), and give
    the cluster a token of its own through the environment, unless the user set one.
    """
    if 'RAY_AUTH_MODE' in os.environ:  # the user's choice, which Ray follows
        return {}
    variables = {'RAY_AUTH_MODE': 'token'}
    if 'RAY_AUTH_TOKEN' not in os.environ and 'RAY_AUTH_TOKEN_PATH' not in os.environ:
        variables['RAY_AUTH_TOKEN'] = secrets.token_hex(32)
    return variables


@contextlib.contextmanager
def _auth_environment(variables: dict[str, str]) -> Iterator[None]:
    """`variables` in os.environ (inherited by the cluster's processes) for the duration."""
    saved = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    _reload_auth()
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _reload_auth()


def _reload_auth() -> None:
    """Make this process re-read the auth mode and token: Ray caches both from first use."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:  # a Ray without token authentication caches nothing
        return
    Config.initialize('')
    AuthenticationTokenLoader.instance().reset_cache()


def check_address(address: str) -> str:
    """`address`, or a ConfigError in one line for a URL that no Ray cluster answers at (http://, …)."""
    scheme, sep, _ = address.partition('://')
    if sep and scheme != 'ray':  # Ray's own message for this stops at "To fix this, either:"
        raise ConfigError(
            f"--ray {address}: a {scheme}:// address is not a Ray cluster's; expected HOST:PORT (the GCS port, "
            "e.g. 10.0.0.5:6379), ray://HOST:PORT (Ray Client, e.g. port 10001) or 'auto'"
        )
    return address


def _connect(address: str, options: dict[str, Any], *, quiet: bool) -> None:
    """Connect to the cluster at `address`, or a ConfigError in one line that says why not."""
    host, port = _host_port(address)
    if port is not None:  # Ray retries an unreachable address for minutes; ask the port first
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
        except OSError as error:
            raise ConfigError(f'--ray {address}: no Ray cluster answers there ({error.strerror or error})') from None
    with tempfile.TemporaryFile() as held:
        try:
            with _stderr_to(held if quiet else None):
                ray.init(address=address, **options)
        except Exception as error:
            ray.shutdown()
            held.seek(0)
            said = held.read().decode(errors='replace')
            raise ConfigError(_connect_failure(address, error, said)) from None


def _connect_failure(address: str, error: Exception, said: str) -> str:
    """One line on why connecting failed, from Ray's error and what its client logged (`said`)."""
    text = f'{error}\n{said}'
    if 'InvalidAuthToken' in text or isinstance(error, ray.exceptions.AuthenticationError):
        if os.environ.get('RAY_AUTH_MODE') == 'token':
            return f'--ray {address}: the Ray cluster refused the token; check RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH)'
        return (
            f'--ray {address}: the Ray cluster needs a token; set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN '
            '(or RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token)'
        )
    if address == 'auto' and 'Could not find any running Ray instance' in text:
        return '--ray auto: no Ray cluster is running on this machine (start one with `ray start --head`)'
    lines = str(error).strip().splitlines()
    return f'--ray {address}: cannot connect to a Ray cluster: {lines[0] if lines else type(error).__name__}'


def _host_port(address: str) -> tuple[str, int | None]:
    """'ray://h:10001' or 'h:6379' → (h, port); no port for 'auto' or an address without one."""
    bare = address.removeprefix('ray://')
    host, sep, port = bare.rpartition(':')
    if not sep or not port.isdigit():
        return bare, None
    return host.strip('[]'), int(port)


@contextlib.contextmanager
def _stderr_to(sink: IO[bytes] | None) -> Iterator[None]:
    """Send file descriptor 2 to `sink` for the duration: Ray's C++ client logs every failed attempt there."""
    if sink is None:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(sink.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


__all__ = ['DEFAULT_CPUS', 'RETRIES', 'RayChunks', 'RayTrials', 'cluster']
