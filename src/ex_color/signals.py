"""SIGINT and SIGTERM as a flag that long work polls, so it can save its state before it stops."""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM ended some work at a safe point; the message says what is kept and how to go on."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else 'interrupted'


@contextlib.contextmanager
def stop_on_signals(stopping: str = 'checkpointing and stopping') -> Iterator[Callable[[], bool]]:
    """Turn SIGINT/SIGTERM into a flag the training loop polls, so it can checkpoint first; `stopping` says
    what happens next, in the warning logged on the first signal. A second signal stops at once."""
    requested = False

    def handler(signum: int, _frame: object) -> None:
        nonlocal requested
        if requested:  # a second signal: stop now
            raise KeyboardInterrupt
        requested = True
        log.warning('Received %s; %s', signal.Signals(signum).name, stopping)

    try:
        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave signals alone
        yield lambda: False
        return
    try:
        yield lambda: requested
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


__all__ = ['Interrupted', 'stop_on_signals']
