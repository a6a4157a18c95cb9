"""ColorCube: a 3-D grid of colours with named axes and per-cell variables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ex_color.data.color import hsv_to_rgb

Index = int | slice


class ColorCube:
    """
    A 3-D grid of colours whose axes are named by letters of a colour space.

    Each cell holds variables: `'color'` `[a, b, c, 3]` (RGB), `'bias'` `[a, b, c]` (a
    sampling weight), and any added with `assign` (e.g. per-colour error). Variables
    have the grid's shape, optionally followed by channel dims, which stay last.

    Cubes are values: `permute`, slicing and `assign` return new cubes. Arrays are
    shared between cubes rather than copied, so don't modify them in place.

    Build one with `from_hsv` or `from_rgb`. `cube['bias']` reads a variable;
    `cube[:, -1:, ::-2]` slices every variable and coordinate, always keeping 3 axes.
    """

    def __init__(
        self,
        space: str,
        coordinates: Sequence[ArrayLike],
        variables: Mapping[str, ArrayLike],
        canonical_space: str | None = None,
    ) -> None:
        """
        Make a cube from its parts (most callers want `from_hsv` or `from_rgb`).

        Args:
            space: One letter per axis, in axis order, e.g. `'svh'`.
            coordinates: One 1-D array per axis, in the order of `space`.
            variables: Name → array of shape `[a, b, c, ...]` matching the coordinates.
            canonical_space: The space's usual letter order (default: `space`).
        """
        canonical_space = space if canonical_space is None else canonical_space
        if len(space) != 3 or sorted(space) != sorted(canonical_space) or len(set(space)) != 3:
            raise ValueError(f'space must be 3 distinct letters that permute {canonical_space!r}, got {space!r}')
        if len(coordinates) != 3:
            raise ValueError(f'expected 3 coordinate arrays (one per axis of {space!r}), got {len(coordinates)}')
        coords = tuple(np.asarray(c) for c in coordinates)
        for letter, coord in zip(space, coords, strict=True):
            if coord.ndim != 1:
                raise ValueError(f'coordinates for axis {letter!r} must be 1-D, got shape {coord.shape}')
        self._space = space
        self._canonical_space = canonical_space
        self._coordinates = coords
        self._variables: dict[str, NDArray] = {}
        for name, array in variables.items():
            self._variables[name] = self._checked_variable(name, array)

    # ----- construction

    @classmethod
    def from_hsv(cls, h: ArrayLike, s: ArrayLike, v: ArrayLike) -> Self:
        """
        Cube of every combination of hue, saturation and value (space `'hsv'`).

        Hue wraps (`h % 1`); s and v are clipped to [0, 1]. `'bias'` weights each cell so
        that sampling by it balances the cube, whose dark and grey corners have many
        cells for few distinct colours: it is bilinear in s and v, 1 at vibrant colours
        (s = v = 1), 1/n_h at white and 1/(n_s·n_h) at black.

        Args: 1-D arrays `h [a]`, `s [b]`, `v [c]`. Variables: color `[a, b, c, 3]`, bias `[a, b, c]`.
        """
        h_coords = np.mod(_as_1d(h, 'h'), 1.0)
        s_coords = np.clip(_as_1d(s, 's'), 0.0, 1.0)
        v_coords = np.clip(_as_1d(v, 'v'), 0.0, 1.0)
        H, S, V = np.meshgrid(h_coords, s_coords, v_coords, indexing='ij')
        rgb = hsv_to_rgb(np.stack([H, S, V], axis=-1))
        n_h, n_s = len(h_coords), len(s_coords)
        bias = (1 - V) / (n_s * n_h) + (1 - S) * V / n_h + S * V
        return cls('hsv', (h_coords, s_coords, v_coords), {'color': rgb, 'bias': bias})

    @classmethod
    def from_rgb(cls, r: ArrayLike, g: ArrayLike, b: ArrayLike) -> Self:
        """
        Cube of every combination of red, green and blue (space `'rgb'`); channels clipped to [0, 1].

        Args: 1-D arrays `r [a]`, `g [b]`, `b [c]`. Variables: color `[a, b, c, 3]`, bias `[a, b, c]` (all 1).
        """
        coords = tuple(np.clip(_as_1d(x, name), 0.0, 1.0) for x, name in ((r, 'r'), (g, 'g'), (b, 'b')))
        rgb = np.stack(np.meshgrid(*coords, indexing='ij'), axis=-1)
        return cls('rgb', coords, {'color': rgb, 'bias': np.ones(rgb.shape[:3])})

    # ----- properties

    @property
    def space(self) -> str:
        """Axis letters in axis order, e.g. `'hsv'`, or `'svh'` after `permute('svh')`."""
        return self._space

    @property
    def canonical_space(self) -> str:
        """The colour space in its usual letter order: `'hsv'` or `'rgb'`."""
        return self._canonical_space

    @property
    def coordinates(self) -> tuple[NDArray, NDArray, NDArray]:
        """One 1-D coordinate array per axis, in the order of `space`."""
        return self._coordinates  # type: ignore[return-value]

    @property
    def shape(self) -> tuple[int, int, int]:
        """Number of cells along each axis."""
        return tuple(len(c) for c in self._coordinates)  # type: ignore[return-value]

    @property
    def variables(self) -> tuple[str, ...]:
        """Names of the variables, in the order they were added."""
        return tuple(self._variables)

    @property
    def rgb_grid(self) -> NDArray:
        """RGB colour of each cell, `[a, b, c, 3]`."""
        return self._variables['color']

    @property
    def bias(self) -> NDArray:
        """Sampling weight of each cell, `[a, b, c]`."""
        return self._variables['bias']

    def coordinate(self, letter: str) -> NDArray:
        """The 1-D coordinates of the axis named `letter`, e.g. `cube.coordinate('h')`."""
        if letter not in self._space:
            raise KeyError(f'no axis {letter!r} in space {self._space!r}')
        return self._coordinates[self._space.index(letter)]

    # ----- new cubes from this one

    def permute(self, space: str) -> ColorCube:
        """Reorder the axes to `space` (a permutation of the same letters, e.g. `'svh'`); channel dims stay last."""
        if len(space) != 3 or sorted(space) != sorted(self._space):
            raise ValueError(f'permute expects a reordering of {self._canonical_space!r}, got {space!r}')
        order = tuple(self._space.index(letter) for letter in space)
        variables = {
            name: np.transpose(array, order + tuple(range(3, array.ndim))) for name, array in self._variables.items()
        }
        coordinates = tuple(self._coordinates[i] for i in order)
        return ColorCube(space, coordinates, variables, self._canonical_space)

    def assign(self, name: str, array: ArrayLike) -> ColorCube:
        """New cube with variable `name` added or replaced; `array` is `[a, b, c]` or `[a, b, c, ...]`."""
        variables = {**self._variables, name: self._checked_variable(name, array)}
        return ColorCube(self._space, self._coordinates, variables, self._canonical_space)

    def __getitem__(self, key: str | Index | tuple[Index, ...]) -> NDArray | ColorCube:
        """
        `cube['name']`: that variable's array. `cube[i, j, k]` (ints or slices, up to 3):
        a cube with every variable and coordinate sliced. An int keeps its axis as length 1.
        """
        if isinstance(key, str):
            if key not in self._variables:
                raise KeyError(f'no variable {key!r}; this cube has {list(self._variables)}')
            return self._variables[key]

        keys = key if isinstance(key, tuple) else (key,)
        if len(keys) > 3:
            raise IndexError(f'a ColorCube has 3 axes, got {len(keys)} indices')
        slices = tuple(_as_slice(k, n, letter) for k, n, letter in zip(keys, self.shape, self._space, strict=False))
        slices += (slice(None),) * (3 - len(slices))
        coordinates = tuple(coord[s] for coord, s in zip(self._coordinates, slices, strict=True))
        variables = {name: array[slices] for name, array in self._variables.items()}
        return ColorCube(self._space, coordinates, variables, self._canonical_space)

    def __repr__(self) -> str:
        axes = ', '.join(
            f'{letter}={len(c)}' + (f'[{c.min():.3g}..{c.max():.3g}]' if len(c) else '')
            for letter, c in zip(self._space, self._coordinates, strict=True)
        )
        return f'ColorCube({axes}; variables={list(self._variables)})'

    # ----- helpers

    def _checked_variable(self, name: str, array: ArrayLike) -> NDArray:
        values = np.asarray(array)
        if values.shape[:3] != self.shape:
            raise ValueError(
                f'variable {name!r} must have shape {self.shape} or {self.shape} + channels, got {values.shape}'
            )
        return values


def _as_1d(values: ArrayLike, name: str) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f'{name} must be a 1-D array of coordinates, got shape {array.shape}')
    return array


def _as_slice(index: Index, size: int, letter: str) -> slice:
    """An int becomes a length-1 slice, so that indexing never drops an axis."""
    if isinstance(index, slice):
        return index
    if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
        if not -size <= index < size:
            raise IndexError(f'index {index} out of range for axis {letter!r} of length {size}')
        start = int(index) % size
        return slice(start, start + 1)
    raise TypeError(f'ColorCube indices must be ints or slices, got {type(index).__name__} for axis {letter!r}')
