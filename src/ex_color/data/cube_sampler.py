"""Per-colour vibrancy, and a cube flattened into tensors ready for weighted sampling."""

from __future__ import annotations

from typing import NamedTuple, TypeVar, overload

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from ex_color.data.color_cube import ColorCube

ArrayT = TypeVar('ArrayT', NDArray[np.floating], Tensor)


@overload
def vibrancy(colors: ColorCube) -> NDArray[np.float64]: ...
@overload
def vibrancy(colors: ArrayT) -> ArrayT: ...
def vibrancy(colors: ColorCube | NDArray | Tensor) -> NDArray | Tensor:
    """
    How vibrant each colour is: saturation × value of its HSV, in [0, 1].

    S·V equals the chroma `max(r, g, b) - min(r, g, b)`, which is what we compute (exact,
    differentiable for tensors). 1 for the 6 primaries and secondaries, 0 for greys.

    Args: a ColorCube (→ `[a, b, c]`) or RGB `[..., 3]` numpy array or tensor (→ `[...]`, same type).
    """
    if isinstance(colors, ColorCube):
        colors = colors.rgb_grid
    if colors.ndim < 1 or colors.shape[-1] != 3:
        raise ValueError(f'vibrancy expects RGB colours of shape [..., 3] or a ColorCube, got {tuple(colors.shape)}')
    if isinstance(colors, Tensor):
        return colors.amax(dim=-1) - colors.amin(dim=-1)
    colors = np.asarray(colors)
    return colors.max(axis=-1) - colors.min(axis=-1)


class CubeSamples(NamedTuple):
    """A cube's cells flattened in C order (last axis fastest), as training tensors."""

    colors: Tensor
    """RGB, `[N, 3]` float32."""
    vibrancies: Tensor
    """S·V of each colour, `[N]` float32."""
    weights: Tensor
    """Sampling weight (the cube's bias), `[N]` float64 — e.g. for `WeightedRandomSampler`."""


def cube_training_tensors(cube: ColorCube) -> CubeSamples:
    """Flatten a cube into `(colors [N, 3], vibrancies [N], weights [N])` tensors, N = a·b·c."""
    colors = torch.tensor(cube.rgb_grid.reshape(-1, 3), dtype=torch.float32)
    return CubeSamples(
        colors=colors,
        vibrancies=torch.tensor(vibrancy(cube).reshape(-1), dtype=torch.float32),
        weights=torch.tensor(cube.bias.reshape(-1), dtype=torch.float64),
    )
