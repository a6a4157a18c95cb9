"""The key tables of docs/experiment-file.md, generated from the schema so that the reference cannot drift.

Each table sits in the page between `<!-- generated: NAME -->` and `<!-- end generated -->`; NAME is
`sections` (the top-level sections) or a section (`experiment`, `labels`, `regularizers`, …). A row is
a field of the schema: its key, type, default, the values it allows (from its constraints) and its
docstring. For a list of kinds (`[[regularizers]]`, `[[evaluations]]`, `[labels.<name>]`) the table
holds the keys every kind shares.

    python -m ex_color.config.docs            # print every table
    python -m ex_color.config.docs --write    # rewrite the tables in docs/experiment-file.md
    python -m ex_color.config.docs --check    # exit 1 if the page's tables differ from the schema's
"""

from __future__ import annotations

import argparse
import ast
import inspect
import re
import sys
import textwrap
import types
from collections.abc import Iterator
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ex_color.config.schema import (
    CharTransformerSection,
    DataSection,
    ExperimentConfig,
    LabelDefinition,
    LabelsSection,
    ModelSection,
    RouteSection,
    TextDataSection,
)

PAGE = Path(__file__).resolve().parents[3] / 'docs' / 'experiment-file.md'
"""The reference page in a source checkout."""
BLOCK = re.compile(r'(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end generated -->)', re.DOTALL)


def field_docs(model: type[BaseModel]) -> dict[str, str]:
    """Each field's attribute docstring (the string literal under its annotation), base classes included."""
    docs: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if isinstance(cls, type) and issubclass(cls, BaseModel) and cls is not BaseModel:
            docs |= _own_field_docs(cls)
    return docs


@cache
def _own_field_docs(cls: type) -> dict[str, str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, after in pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = ' '.join(inspect.cleandoc(after.value.value).split())
    return docs


def _strip(annotation: Any) -> Any:
    """The annotation without Annotated metadata and without `| None`."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return _strip(members[0])
    return annotation


def type_name(annotation: Any) -> str:
    """How the page writes a field's type: int, float, str, bool, [str], table str → float, str or [str]."""
    annotation = _strip(annotation)
    origin = get_origin(annotation)
    if origin is Literal:
        return type_name(type(get_args(annotation)[0]))
    if origin in (Union, types.UnionType):
        return ' or '.join(type_name(a) for a in get_args(annotation))
    if origin is list:
        return f'[{type_name(get_args(annotation)[0])}]'
    if origin is dict:
        key, value = get_args(annotation)
        return f'table {type_name(key)} → {type_name(value)}'
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return 'table'
    return {int: 'int', float: 'float', str: 'str', bool: 'bool'}.get(annotation, str(annotation))


def _number(x: float) -> str:
    return f'{x:g}' if isinstance(x, float) else f'{x:,}'.replace(',', '')


def allowed(field: FieldInfo) -> str:
    """The values a field allows, from its Literal choices and its numeric and length constraints."""
    annotation = _strip(field.annotation)
    if get_origin(annotation) is list:
        annotation = _strip(get_args(annotation)[0])
    if get_origin(annotation) is Literal:
        return ', '.join(f'`{choice}`' for choice in get_args(annotation))
    low = high = None
    low_strict = high_strict = False
    parts = []
    for constraint in field.metadata:
        match constraint:
            case annotated_types.Gt(gt=bound):
                low, low_strict = bound, True
            case annotated_types.Ge(ge=bound):
                low = bound
            case annotated_types.Lt(lt=bound):
                high, high_strict = bound, True
            case annotated_types.Le(le=bound):
                high = bound
            case annotated_types.MinLen(min_length=n) if n > 0:
                parts.append('not empty' if annotation is str else 'at least one' if n == 1 else f'at least {n}')
    is_int = annotation is int
    if is_int and low_strict:  # a whole number above `low` is at least low + 1
        low, low_strict = low + 1, False
    if is_int and high_strict:
        high, high_strict = high - 1, False
    if low is not None and high is not None and not (low_strict or high_strict):
        parts.insert(0, f'{_number(low)}–{_number(high)}')
    else:
        if low is not None:
            parts.insert(0, f'{">" if low_strict else "≥"} {_number(low)}')
        if high is not None:
            parts.insert(1 if low is not None else 0, f'{"<" if high_strict else "≤"} {_number(high)}')
    return '; '.join(parts)


def default(field: FieldInfo) -> str:
    """The default as the page writes it: `required`, `none`, or the TOML value."""
    if field.is_required():
        return 'required'
    value = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
    if value is None:
        return 'none'
    if isinstance(value, BaseModel):
        return 'every key at its default'
    return f'`{_toml(value)}`'


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return '[' + ', '.join(_toml(v) for v in value) + ']'
    return repr(value)


def _cell(text: str) -> str:
    return text.replace('|', '\\|')


def _kinds(union: Any) -> list[type[BaseModel]]:
    """The models of a discriminated union (`RegularizerSection`, `LabelDefinition`, …)."""
    return [_strip(kind) for kind in get_args(_strip(union))]


def _list_item(annotation: Any) -> Any:
    annotation = _strip(annotation)
    return get_args(annotation)[0] if get_origin(annotation) is list else annotation


def _rows(fields: dict[str, FieldInfo], docs: dict[str, str]) -> list[list[str]]:
    return [
        [f'`{key}`', type_name(f.annotation), default(f), allowed(f), docs.get(key, '')] for key, f in fields.items()
    ]


def _table(header: list[str], rows: list[list[str]]) -> str:
    if all(not row[3] for row in rows):  # no constraints anywhere: no 'allowed' column
        header = header[:3] + header[4:]
        rows = [row[:3] + row[4:] for row in rows]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(_cell(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines) + '\n'


KEY_HEADER = ['key', 'type', 'default', 'allowed', 'meaning']


def section_names() -> list[str]:
    """Every top-level section of the experiment file, in the schema's order."""
    return list(ExperimentConfig.model_fields)


def section_table() -> str:
    """The top-level sections: `[name]` or `[[name]]` for a list of tables, whether required, what each holds."""
    docs = field_docs(ExperimentConfig)
    lines = ['| section | required | holds |', '|---|---|---|']
    for name, field in ExperimentConfig.model_fields.items():
        is_list = get_origin(_strip(field.annotation)) is list
        title = f'`[[{name}]]`' if is_list else f'`[{name}]`'
        required = 'yes' if field.is_required() else 'no'
        lines.append(f'| {title} | {required} | {_cell(docs.get(name, ""))} |')
    return '\n'.join(lines) + '\n'


def shared_keys(kinds: list[type[BaseModel]]) -> dict[str, FieldInfo]:
    """The fields every kind has, in the first kind's order; `kind` lists every kind's value."""
    first = kinds[0].model_fields
    shared = {k: f for k, f in first.items() if all(k in kind.model_fields for kind in kinds) and k != 'kind'}
    choices = [value for kind in kinds for value in get_args(_strip(kind.model_fields['kind'].annotation))]
    kind = FieldInfo(annotation=Literal[tuple(choices)])  # type: ignore[misc]
    keys = list(shared)
    at = 1 if keys[:1] == ['name'] else 0  # right after the name, as a reader looks for it
    return dict([*list(shared.items())[:at], ('kind', kind), *list(shared.items())[at:]])


SINGLE_TABLES: dict[str, type[BaseModel]] = {
    'labels': LabelsSection,
    'route': RouteSection,
    'model': ModelSection,
    'model-char-transformer': CharTransformerSection,
    'data': DataSection,
    'data-text': TextDataSection,
}
"""Tables of one section model each (a section with a colour and a text form has a table per form)."""


def section_key_table(name: str) -> str:
    """The key table of one section; for a list of kinds (and for `labels`, its label tables) the shared keys."""
    if name in SINGLE_TABLES:
        section = SINGLE_TABLES[name]
        return _table(KEY_HEADER, _rows(section.model_fields, field_docs(section)))
    if name == 'label':
        kinds = _kinds(LabelDefinition)
    elif name in ExperimentConfig.model_fields:
        item = _list_item(ExperimentConfig.model_fields[name].annotation)
        if isinstance(item, type) and issubclass(item, BaseModel):
            return _table(KEY_HEADER, _rows(item.model_fields, field_docs(item)))
        kinds = _kinds(item)
    else:
        raise KeyError(f'no table {name!r}: expected sections, label or one of {section_names()}')
    docs: dict[str, str] = {}
    for kind in kinds:
        docs = field_docs(kind) | docs
    docs.setdefault('kind', 'one of the kinds below')
    return _table(KEY_HEADER, _rows(shared_keys(kinds), docs))


def kind_keys(name: str) -> dict[str, list[str]]:
    """For a list of kinds (`regularizers`, `evaluations` or `label`): each kind's value → its own extra keys."""
    item = (
        _kinds(LabelDefinition)
        if name == 'label'
        else _kinds(_list_item(ExperimentConfig.model_fields[name].annotation))
    )
    shared = shared_keys(item)
    return {
        value: [k for k in kind.model_fields if k not in shared]
        for kind in item
        for value in get_args(_strip(kind.model_fields['kind'].annotation))
    }


def render(name: str) -> str:
    """The generated table called `name`."""
    return section_table() if name == 'sections' else section_key_table(name)


def blocks(text: str) -> Iterator[tuple[str, str]]:
    """Each generated block of the page: (name, body as written)."""
    for match in BLOCK.finditer(text):
        yield match['name'], match['body']


def regenerate(text: str) -> str:
    """The page with every generated block rewritten from the schema."""
    return BLOCK.sub(lambda m: m[1] + render(m['name']) + m[4], text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m ex_color.config.docs', description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument('--write', action='store_true', help='rewrite the tables in the page')
    action.add_argument('--check', action='store_true', help='exit 1 if the page differs from the schema')
    parser.add_argument('page', nargs='?', type=Path, default=PAGE)
    args = parser.parse_args(argv)
    if not (args.write or args.check):
        for name in ['sections', *section_names(), 'label']:
            print(f'<!-- generated: {name} -->\n{render(name)}<!-- end generated -->\n')
        return 0
    text = args.page.read_text()
    updated = regenerate(text)
    if args.write:
        args.page.write_text(updated)
        return 0
    if updated != text:
        print(
            f'{args.page}: its tables differ from the schema; run python -m ex_color.config.docs --write',
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
