"""A concept an edit removes, as a colour: what selectivity and collateral damage are measured against."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from torch import Tensor

from ex_color.data.color import hsv_similarity, rgb_to_hsv


class Target(NamedTuple):
    """A concept an edit removes: its name and its colour in HSV (hue in turns)."""

    name: str
    hsv: tuple[float, float, float]


def target_similarity(colors: np.ndarray | Tensor, targets: Sequence[Target]) -> np.ndarray:
    """Each colour's similarity to its nearest target, `hsv_similarity` (angular, hemi): `[N, 3]` RGB → `[N]`."""
    hsv = rgb_to_hsv(np.asarray(colors, dtype=np.float64))
    if not targets:
        return np.zeros(hsv.shape[:-1])
    similarity = [hsv_similarity(hsv, np.array(t.hsv), hemi=True, mode='angular') for t in targets]
    return np.max(np.stack(similarity), axis=0)


__all__ = ['Target', 'target_similarity']
