"""`--compile/--no-compile`: the flag, then EX_COLOR_COMPILE, then each command's default.

(What a compiled run records, and the promises of the compiled mode through the commands: tests/training/
test_compiled.py, which shares one compiled graph with the engine's tests.)
"""

from __future__ import annotations

import pytest

from ex_color.compiling import COMPILED_BY_DEFAULT, ENVIRONMENT, resolve_compile
from ex_color.config import ConfigError

STEPS = 30


@pytest.mark.parametrize('command', sorted(COMPILED_BY_DEFAULT))
def test_the_flag_wins_then_the_environment_then_the_commands_default(command: str, monkeypatch):
    monkeypatch.delenv(ENVIRONMENT, raising=False)
    assert resolve_compile(None, command) is COMPILED_BY_DEFAULT[command]
    assert COMPILED_BY_DEFAULT == {'run': False, 'sweep': False, 'compare': False, 'search': True}
    for value, expected in (('1', True), ('0', False)):
        monkeypatch.setenv(ENVIRONMENT, value)
        assert resolve_compile(None, command) is expected
        assert resolve_compile(not expected, command) is (not expected)
    monkeypatch.setenv(ENVIRONMENT, 'yes')
    with pytest.raises(ConfigError, match="EX_COLOR_COMPILE='yes': expected 1"):
        resolve_compile(None, command)
