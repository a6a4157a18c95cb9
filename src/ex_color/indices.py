"""One check for lists of dimension (channel) indices, shared by surgery, regularizers and the config."""

from __future__ import annotations

import operator
from collections.abc import Iterable


def check_indices(indices: Iterable[int], what: str, width: int | None = None, layer: str | None = None) -> list[int]:
    """`indices` as a non-empty list of distinct ints in [0, width), or a one-line ValueError.

    Args:
        what: how the message names the list, e.g. "ablate: dims" ('' to start with the problem).
        width: the layer's width; None checks only that the indices are non-negative.
        layer: the layer's name, for the message.
    """
    expected = f'[0, {width})' if width is not None else '[0, ∞)'
    if isinstance(indices, str | bytes):
        raise ValueError(f'{what} must be a sequence of integers, got the string {indices!r}')
    try:
        values = list(indices)
    except TypeError:
        raise ValueError(f'{what} must be a sequence of integers, got {indices!r}') from None
    checked: list[int] = []
    for value in values:
        try:
            if isinstance(value, bool):
                raise TypeError
            checked.append(operator.index(value))
        except TypeError:
            raise ValueError(f'{what} must be integers, got {value!r}') from None
    if not checked:
        raise ValueError(f'{what} is empty; expected at least one index in {expected}')
    duplicates = sorted({d for d in checked if checked.count(d) > 1})
    if duplicates:
        raise ValueError(f'{what} repeats {duplicates}; expected each index at most once')
    out_of_range = [d for d in checked if d < 0 or (width is not None and d >= width)]
    if out_of_range:
        of_layer = f' for layer {layer!r}' if layer is not None else ''
        of_width = f' of width {width}' if width is not None else ''
        raise ValueError(
            f'{what} {out_of_range}'.strip() + f' out of range{of_layer}{of_width}; expected indices in {expected}'
        )
    return checked
