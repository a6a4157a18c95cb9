"""Whether the fast engine trains with the compiled step: `--compile/--no-compile` (and `compile=` in the API).

The compiled step (`ex_color.training.compiled`) is faster per step than the eager one, but
compiling costs time before the first step. Measured on Ex 2.9 by `make bench` (two-core AMD EPYC,
one run, `benchmarks/results.json`): compiling takes 52 s the first time on a machine and 6 s once
inductor's on-disk cache holds the graphs; a compiled step is 2.4× the eager one for one model
(2.05× a plain PyTorch loop), 2.2× for 8, 1.6× for 32 and 1.7× for 60. What that buys end to end:
- one model of 3,001 steps: 7.8 s of eager training against 3.3 s compiled plus 6 s of compiling
  (cache warm; 52 s cold), so `run` stays eager;
- a 60-seed sweep (`ex-color sweep --no-report`, a new process): 39.5 s eager, 37.4 s compiled; 5
  seeds 14–19 s eager against 15–17 s compiled; so `sweep` and `compare` stay eager (compiling pays
  from about 60 seeds on: pass `--compile`);
- a search trains batch after batch of up to 60 trials in one process and compiles once, so
  `search` compiles.

Evaluation stays eager: a seed's evaluation (every variant on the error cube, the named colours and
the selectivity grid) takes about 0.2 s at 14 M colours/s per variant, so even an infinitely fast
compiled evaluation would repay its 6 s of compiling only after some 30 seeds in one process, and
the variants' forward hooks and edits would each need graphs of their own.

`EX_COLOR_COMPILE=1` or `0` sets the default of every command (the test suite runs eager unless a
test asks otherwise). Compiled and eager kernels round differently, so a run records its mode, and a
directory is never continued in the other mode.
"""

from __future__ import annotations

import os
from typing import Any

from ex_color.config import ConfigError

COMPILED_BY_DEFAULT = {'run': False, 'sweep': False, 'compare': False, 'search': True}
"""Each command's default, from the measurements above."""

ENVIRONMENT = 'EX_COLOR_COMPILE'


def resolve_compile(compile: bool | None, command: str) -> bool:
    """`compile` when given, else `EX_COLOR_COMPILE` when set (1/0), else the command's default."""
    if compile is not None:
        return bool(compile)
    value = os.environ.get(ENVIRONMENT)
    if value is None or value == '':
        return COMPILED_BY_DEFAULT[command]
    if value not in ('0', '1'):
        raise ConfigError(f'{ENVIRONMENT}={value!r}: expected 1 (compile) or 0 (eager)')
    return value == '1'


def compile_fields(compile: bool) -> dict[str, Any]:
    """The fingerprint's record of the mode: nothing for eager (so eager work keeps its fingerprint)."""
    return {'compiled': True} if compile else {}


__all__ = ['COMPILED_BY_DEFAULT', 'ENVIRONMENT', 'compile_fields', 'resolve_compile']
