"""Ex 2.9 copied with another [search] table in place of its own, for the search tests."""

from __future__ import annotations

import shutil
from pathlib import Path

EX29 = Path(__file__).resolve().parents[1] / 'experiments' / 'ex-2.9'


def ex29_searching(directory: Path, search: str) -> Path:
    """Copy Ex 2.9 to `directory` with `search` (TOML text holding a [search] table) instead of its own table."""
    shutil.copytree(EX29, directory)
    path = directory / 'experiment.toml'
    text = path.read_text()
    path.write_text(text[: text.index('\n[search]')] + '\n' + search)
    return directory
