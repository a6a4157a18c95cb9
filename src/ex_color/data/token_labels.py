"""Labels over text: whether the next token, or the current one, is in a set of characters.

A label is per position. For a window of inputs `x [B, T]` and their next tokens `y [B, T]`, a
`next` label at position t is `scale · [y_t ∈ chars]^power` and a `current` label
`scale · [x_t ∈ chars]^power`: the same probability formula as the colour labels, on an
indicator. Regularizers read them as they read colour labels, one sample per position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

TokenPosition = Literal['next', 'current']


@dataclass(frozen=True)
class TokenLabel:
    """'The next (or current) token is one of `chars`', with the colour labels' power and scale."""

    chars: str
    position: TokenPosition
    power: float = 1.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.chars:
            raise ValueError('a token label needs at least one character')
        if self.position not in ('next', 'current'):
            raise ValueError(f"position must be 'next' or 'current', got {self.position!r}")
        if not 0 <= self.scale <= 1:
            raise ValueError(f'scale must be in [0, 1], got {self.scale}')

    def indicator(self, inputs: Tensor, targets: Tensor, members: Tensor) -> Tensor:
        """1.0 where the label's token is in `chars`, else 0.0, `[B, T]`; `members` is `[vocab]` (`Corpus.members`)."""
        return members[targets if self.position == 'next' else inputs]

    def probabilities(self, inputs: Tensor, targets: Tensor, members: Tensor) -> Tensor:
        """`scale · indicator^power`, `[B, T]`."""
        return self.scale * self.indicator(inputs, targets, members) ** self.power


def draw_labels(
    probabilities: dict[str, Tensor], soft: bool, generator: torch.Generator | None = None
) -> dict[str, Tensor]:
    """Labels from probabilities `{name: [...]}`: the probabilities themselves (`soft`), or one Bernoulli draw each."""
    if soft:
        return dict(probabilities)
    return {name: (torch.rand(p.shape, generator=generator) < p).to(p.dtype) for name, p in probabilities.items()}


__all__ = ['TokenLabel', 'TokenPosition', 'draw_labels']
