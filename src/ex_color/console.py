"""The `ex-color` console script: Ctrl-C and SIGTERM honoured from the first instant.

The command's module (`ex_color.cli`) imports argparse, logging and more before it can catch
anything, and SIGTERM's default action kills a process without a word. This module imports
nothing of ours first: it turns SIGTERM into the same interrupt as Ctrl-C, then imports the
command, so a signal at any time ends in one line and exit code 130.
"""

from __future__ import annotations

import signal
import sys

EXIT_INTERRUPTED = 130


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def entry() -> None:
    """Run `ex_color.cli.entry`, having made SIGTERM an interrupt and caught one that lands while it is imported."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        from ex_color.cli import entry as command
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print('ex-color: interrupted before it started; nothing was written', file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    command()


__all__ = ['entry']
