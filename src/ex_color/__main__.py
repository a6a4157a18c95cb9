"""`python -m ex_color` is the `ex-color` command."""

from ex_color.console import entry

entry()
