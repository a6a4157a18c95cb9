"""Running the `ex-color` command, in this process or as a user does, and what its failures must look like.

`run_cli` runs `ex_color.cli.main` in process: the same parser, dispatch and one-line failures
as the console script, without starting Python and importing torch again for each call.
`ex_color` runs the real entry point in a subprocess, for what only a process shows (its exit
status, signals, the `python -m ex_color` wiring); keep those few.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

from ex_color import cli

LOG_PREFIXES = ('D ', 'I ', 'W ')
"""Our log lines (`%(levelname).1s name: message`); anything else on stderr is the command speaking."""


def ex_color(*args: object, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`python -m ex_color ARGS` in `cwd` (so that a default run directory never lands in the repository)."""
    command = [sys.executable, '-m', 'ex_color', *(str(a) for a in args)]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=timeout)


def run_cli(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`ex-color ARGS` in this process (in `cwd` if given): exit code, stdout and stderr, as from a subprocess.

    As in a fresh process, `main`'s `logging.basicConfig` installs its stderr handler (our log
    lines reach stderr). Whatever the command changes of the process is put back afterwards:
    the root logger's handlers and level, other loggers' levels, SIGINT/SIGTERM handlers,
    warning filters and the working directory. Not thread-safe: run one at a time.
    """
    argv = [str(a) for a in args]
    stdout, stderr = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    loggers = {
        name: logger.level for name, logger in logging.root.manager.loggerDict.items() if hasattr(logger, 'level')
    }
    handled = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    here = os.getcwd()
    root.handlers = []  # so that basicConfig configures, as in a new process
    try:
        if cwd is not None:
            os.chdir(cwd)
        with warnings.catch_warnings(), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = cli.main(argv)
            except SystemExit as exit:  # argparse: --help, --version and usage errors
                code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    finally:
        os.chdir(here)
        for handler in root.handlers:
            handler.close()
        root.handlers = handlers
        root.setLevel(level)
        for name, old in loggers.items():
            logging.getLogger(name).setLevel(old)
        for signum, handler in handled.items():
            if signal.getsignal(signum) is not handler:
                signal.signal(signum, handler)
    return subprocess.CompletedProcess(argv, code, stdout.getvalue(), stderr.getvalue())


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The process failed with `code` and said so in exactly one line, without a traceback; returns the line."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert 'Traceback' not in proc.stderr
    line = proc.stderr.strip()
    assert line, 'no error message'
    assert '\n' not in line, proc.stderr
    assert line.startswith('ex-color'), line
    return line


def assert_one_line_after_logs(stderr: str, code: int, returncode: int) -> str:
    """Like `assert_one_line_error` for a failure after work began: log lines, then one line of ours."""
    assert returncode == code, (returncode, stderr)
    assert 'Traceback' not in stderr, stderr
    spoken = [line for line in stderr.splitlines() if line.strip() and not line.startswith(LOG_PREFIXES)]
    assert len(spoken) == 1, stderr
    assert spoken[0].startswith('ex-color: '), spoken[0]
    return spoken[0]
