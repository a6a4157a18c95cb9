"""Text as training data: a UTF-8 corpus in character tokens, split into a training part and a held-out part.

The default corpus is the Python language reference that ships with CPython (`pydoc_data.topics`,
about 465 KB), so a text experiment needs nothing from the internet. Tokens are the corpus's
distinct characters in code-point order; the held-out part is the corpus's last `held_out`
fraction, one contiguous stretch, so no training window overlaps it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import torch
from torch import Tensor

PYTHON_REFERENCE = 'python-reference'
"""The built-in corpus: CPython's `pydoc_data.topics`, its topics joined in name order."""

CHAR_CLASSES = ('digit', 'upper', 'lower', 'space', 'punct')
"""The fixed classes of a character that text evaluation reports (every character is in exactly one)."""
ALL = 'all'
"""Every position, reported beside the classes."""


def char_class(char: str) -> str:
    """The class of one character: `digit` (0–9), `upper`, `lower`, `space` (whitespace), else `punct`."""
    if char in '0123456789':
        return 'digit'
    if char.isupper():
        return 'upper'
    if char.islower():
        return 'lower'
    if char.isspace():
        return 'space'
    return 'punct'


def python_reference() -> str:
    """The text of CPython's `pydoc_data.topics`, topics in name order, separated by a blank line."""
    from pydoc_data.topics import topics

    return '\n\n'.join(topics[name] for name in sorted(topics))


@dataclass(frozen=True)
class Corpus:
    """A text as character tokens, split at `split` into training tokens and held-out tokens."""

    name: str
    """Where it came from (`python-reference` or the file's path)."""
    vocab: str
    """The distinct characters, in code-point order; token i is `vocab[i]`."""
    tokens: Tensor = field(repr=False)
    """Every character as its token id, `[N]` int64."""
    split: int
    """The first held-out token."""

    @classmethod
    def from_text(cls, text: str, held_out: float, name: str = '<text>') -> Corpus:
        if not 0 < held_out < 1:
            raise ValueError(f'held_out must be in (0, 1), got {held_out}')
        vocab = ''.join(sorted(set(text)))
        index = {c: i for i, c in enumerate(vocab)}
        tokens = torch.tensor([index[c] for c in text], dtype=torch.long)
        return cls(name, vocab, tokens, round(len(text) * (1 - held_out)))

    @property
    def train(self) -> Tensor:
        """The training tokens `[split]`."""
        return self.tokens[: self.split]

    @property
    def held_out(self) -> Tensor:
        """The held-out tokens `[N − split]`."""
        return self.tokens[self.split :]

    def encode(self, text: str) -> Tensor:
        """Token ids `[len(text)]`; a ValueError names a character the corpus does not have."""
        index = {c: i for i, c in enumerate(self.vocab)}
        missing = sorted({c for c in text if c not in index})
        if missing:
            raise ValueError(f'characters not in the corpus {self.name}: {"".join(missing)!r}')
        return torch.tensor([index[c] for c in text], dtype=torch.long)

    def decode(self, ids: Iterable[int]) -> str:
        return ''.join(self.vocab[int(i)] for i in ids)

    @property
    def sha256(self) -> str:
        """A fingerprint of the text (its characters and their order): work on a corpus records it, so a corpus file
        that changes under a run directory is noticed."""
        return hashlib.sha256(self.vocab.encode() + self.tokens.numpy().tobytes()).hexdigest()

    def class_ids(self) -> Tensor:
        """Each token's class as an index into `CHAR_CLASSES`, `[vocab]` int64."""
        return torch.tensor([CHAR_CLASSES.index(char_class(c)) for c in self.vocab], dtype=torch.long)

    def members(self, chars: str) -> Tensor:
        """1.0 for each token in `chars`, else 0.0: `[vocab]` float32."""
        return torch.tensor([float(c in chars) for c in self.vocab])


def load_corpus(source: str | None, path: str | None, held_out: float) -> Corpus:
    """The corpus an experiment names: the built-in `source`, or a UTF-8 file at `path`.

    Read once per process for each file version: a file that changes (its size or modification time) is read again.
    """
    if path is not None:
        stat = Path(path).stat()
        return _read_corpus(None, path, held_out, (stat.st_size, stat.st_mtime_ns))
    if source != PYTHON_REFERENCE:
        raise ValueError(f'unknown corpus source {source!r}; expected {PYTHON_REFERENCE!r} or a path')
    return _read_corpus(source, None, held_out, None)


@cache
def _read_corpus(source: str | None, path: str | None, held_out: float, version: object) -> Corpus:
    if path is not None:
        return Corpus.from_text(Path(path).read_text(encoding='utf-8'), held_out, name=path)
    return Corpus.from_text(python_reference(), held_out, name=PYTHON_REFERENCE)


def windows(tokens: Tensor, starts: Tensor, length: int) -> Tensor:
    """Windows `tokens[s : s + length]` for each start, `[len(starts), length]`."""
    return tokens[starts.unsqueeze(-1) + torch.arange(length)]


def held_out_windows(corpus: Corpus, context: int, limit: int | None = None) -> Tensor:
    """The held-out part cut into consecutive windows of `context + 1` tokens (inputs and their next tokens),
    `[W, context + 1]`; with `limit`, the first `limit` of them."""
    tokens = corpus.held_out
    count = (len(tokens) - 1) // context
    if limit is not None:
        count = min(count, limit)
    if count < 1:
        raise ValueError(f'the held-out part of {corpus.name} ({len(tokens)} characters) is shorter than one window')
    return windows(tokens, torch.arange(count) * context, context + 1)


__all__ = [
    'ALL',
    'CHAR_CLASSES',
    'PYTHON_REFERENCE',
    'Corpus',
    'char_class',
    'held_out_windows',
    'load_corpus',
    'python_reference',
    'windows',
]
