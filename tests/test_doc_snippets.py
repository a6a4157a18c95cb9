"""Every Python block of the README and docs/, and examples/notebook.ipynb, runs top to bottom.

A page's blocks run in order in one namespace, as a notebook's cells would, in a fresh
Python process whose working directory holds nothing but a link to the repository's
experiments/ (the blocks use relative paths, as a reader in a checkout would). A failure names
the page and the line its block starts on. The notebook runs in a Jupyter kernel (nbclient).
Pages and notebook share one working directory, so the Ex 2.9 run that the README's cell
trains is reopened, not trained again, by docs/notebook.md and the notebook.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]
NOTEBOOK = ROOT / 'examples' / 'notebook.ipynb'
FENCE = re.compile(r'^```python\n(.*?)^```$', flags=re.MULTILINE | re.DOTALL)
RUN_BLOCKS = """
import json, sys
namespace = {'__name__': '__main__'}
for where, code in json.load(sys.stdin):
    exec(compile(code, where, 'exec'), namespace)
"""

pytestmark = pytest.mark.slow


def python_blocks(page: Path) -> list[tuple[str, str]]:
    """`(where, code)` for each ```python block of `page`; `where` is `README.md line 12`."""
    text = page.read_text()
    return [
        (f'{page.relative_to(ROOT)} line {text.count(chr(10), 0, m.start()) + 2}', m.group(1))
        for m in FENCE.finditer(text)
    ]


@pytest.fixture(scope='module')
def workdir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp('reader')
    (directory / 'experiments').symlink_to(ROOT / 'experiments')
    return directory


def test_the_pages_have_python_blocks_and_the_fence_finds_them():
    blocks = {page.relative_to(ROOT).as_posix(): python_blocks(page) for page in PAGES}
    assert [len(blocks[p]) for p in ('README.md', 'docs/notebook.md', 'docs/your-own-model.md')] == [3, 2, 6]
    for page in PAGES:  # a block the pattern missed would silently go unrun
        assert page.read_text().count('```python') == len(python_blocks(page)), page


@pytest.mark.parametrize('page', [p for p in PAGES if python_blocks(p)], ids=lambda p: p.name)
def test_every_python_block_of_the_page_runs(page, workdir):
    env = os.environ | {'MPLBACKEND': 'Agg', 'PYTHONWARNINGS': 'ignore'}
    proc = subprocess.run(
        [sys.executable, '-c', RUN_BLOCKS],
        input=json.dumps(python_blocks(page)),
        capture_output=True,
        text=True,
        cwd=workdir,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_the_notebook_runs_top_to_bottom_and_is_kept_without_outputs(workdir):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(
        not c.get('outputs') and c.get('execution_count') is None for c in notebook.cells if c.cell_type == 'code'
    )
    NotebookClient(
        notebook, timeout=300, kernel_name='python3', resources={'metadata': {'path': str(workdir)}}
    ).execute()
    outputs = [o for c in notebook.cells if c.cell_type == 'code' for o in c.outputs]
    assert not [o for o in outputs if o.output_type == 'error']
    text = json.dumps([o.get('text', '') for o in outputs])
    assert 'baseline:' in text and 'ablated:' in text  # the cell comparing the model with its ablated variant
    assert (workdir / 'runs' / 'ex-2.9' / 'seed-0' / 'results.json').is_file()
