"""Running the `ex-color` command as a user does, and what its failures must look like."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LOG_PREFIXES = ('D ', 'I ', 'W ')
"""Our log lines (`%(levelname).1s name: message`); anything else on stderr is the command speaking."""


def ex_color(*args: object, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`python -m ex_color ARGS` in `cwd` (so that a default run directory never lands in the repository)."""
    command = [sys.executable, '-m', 'ex_color', *(str(a) for a in args)]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=timeout)


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
