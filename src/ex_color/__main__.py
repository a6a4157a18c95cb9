"""`python -m ex_color` is the `ex-color` command."""

from ex_color.cli import entry

entry()
