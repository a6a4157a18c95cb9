"""docs/experiment-file.md against the schema: its key tables are the schema's, and every section and kind is there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ex_color.config import docs as schema_docs

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / 'docs' / 'experiment-file.md'


@pytest.fixture(scope='module')
def page() -> str:
    return PAGE.read_text()


def test_the_key_tables_are_generated_from_the_schema(page):
    assert schema_docs.PAGE == PAGE
    assert schema_docs.regenerate(page) == page, 'run: python -m ex_color.config.docs --write'
    assert schema_docs.main(['--check', str(PAGE)]) == 0


def test_every_section_has_a_row_and_a_key_table(page):
    names = [name for name, _ in schema_docs.blocks(page)]
    assert sorted(names) == sorted(
        ['sections', 'label', 'route', 'data-text', 'model-char-transformer', *schema_docs.section_names()]
    )
    headed = [n for n in schema_docs.section_names() if f'## [{n}]' in page or f'## [[{n}]]' in page]
    assert headed == schema_docs.section_names()
    (sections,) = [body for name, body in schema_docs.blocks(page) if name == 'sections']
    listed = re.findall(r'^\| `\[\[?([\w-]+)\]\]?` \|', sections, flags=re.MULTILINE)
    assert listed == schema_docs.section_names()
    assert {'control', 'tracking', 'experiment'} <= set(listed)


def test_a_table_shows_each_field_its_type_default_constraints_and_docstring():
    table = schema_docs.render('model')
    assert '| `k_bottleneck` | int | required | 1–1024 | Width of the unit-norm latent. |' in table
    assert '| `kind` | str | `"CNColorMLP"` | `CNColorMLP` | The model class. |' in table
    experiment = schema_docs.render('experiment')
    assert '| `unused_columns` | [str] | `[]` | Dopesheet columns kept in the sheet on purpose' in experiment
    assert 'allowed' not in experiment.splitlines()[0]  # no constraints in this section: no such column


def _kind_rows(page: str, heading: str) -> dict[str, str]:
    """The rows of the first table under `heading` that starts with `| kind |`: kind → row."""
    section = page[page.index(heading) :]
    table = section[section.index('\n| kind |') :]
    rows = {}
    for line in table.splitlines()[3:]:
        if not line.startswith('|'):
            break
        rows[line.split('`')[1]] = line
    return rows


@pytest.mark.parametrize(
    ('heading', 'kinds'),
    [('## [labels]', 'label'), ('## [[regularizers]]', 'regularizers'), ('## [[evaluations]]', 'evaluations')],
)
def test_each_kind_has_a_row_naming_its_own_keys(page, heading, kinds):
    rows = _kind_rows(page, heading)
    expected = schema_docs.kind_keys(kinds)
    assert list(rows) == list(expected)
    for kind, keys in expected.items():
        row = rows[kind]
        if same := re.search(r'\| as `([\w-]+)` \|', row):  # `mean-difference` takes the keys of `leace`
            assert keys == expected[same[1]], kind
            continue
        for key in keys:
            assert re.search(rf'`{key}\b', row), (kind, key)  # `hsv = [h, s, v]` names hsv too


def test_the_design_spec_outside_the_repository_is_not_cited():
    cited = 'DESIGN' + '.md'  # spelt apart, so that this file does not cite it either
    places = [ROOT / 'README.md', *(ROOT / d for d in ('src', 'tests', 'docs', 'benchmarks', 'examples'))]
    files = [p for place in places for p in ([place] if place.is_file() else place.rglob('*')) if p.is_file()]
    citing = [str(p.relative_to(ROOT)) for p in files if p.suffix in {'.py', '.md', '.toml'} and cited in p.read_text()]
    assert citing == []
