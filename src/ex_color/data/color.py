"""
Colour maths: RGB ↔ HSV, per-primary "-ness" scores, and HSV similarity.

Every function takes colours as `[..., 3]` arrays (numpy arrays or torch tensors) with
channels in [0, 1] and hue in turns (0 = red, 1/3 = green, 2/3 = blue), and returns the
same kind of array it was given.
"""

from __future__ import annotations

from typing import Literal, TypeVar

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor

ArrayT = TypeVar('ArrayT', NDArray[np.floating], Tensor)


def _check_channels(colors: NDArray | Tensor, what: str) -> None:
    if colors.ndim < 1 or colors.shape[-1] != 3:
        raise ValueError(f'{what} must have shape [..., 3], got {tuple(colors.shape)}')


def _to_numpy(colors: ArrayLike | Tensor) -> NDArray[np.float64]:
    if isinstance(colors, Tensor):
        return colors.detach().cpu().numpy().astype(np.float64)
    return np.asarray(colors, dtype=np.float64)


def _like(result: NDArray[np.float64], template: ArrayLike | Tensor) -> NDArray[np.float64] | Tensor:
    """Return `result` as the same kind of array as `template` (tensor: same dtype and device)."""
    if isinstance(template, Tensor):
        dtype = template.dtype if template.is_floating_point() else torch.get_default_dtype()
        return torch.as_tensor(result, dtype=dtype, device=template.device)
    return result


def rgb_to_hsv(rgb: ArrayT) -> ArrayT:
    """
    Convert RGB colours to HSV.

    Hue ties break as in `colorsys` (red, then green, then blue wins); greys get hue 0
    and black gets saturation 0. Tensors pass through float64 numpy, so no gradient flows.

    Args: rgb `[..., 3]`. Returns: hsv `[..., 3]`.
    """
    values = _to_numpy(rgb)
    _check_channels(values, 'rgb')
    r, g, b = values[..., 0], values[..., 1], values[..., 2]
    v = values.max(axis=-1)
    chroma = v - values.min(axis=-1)
    has_chroma = chroma > 0
    safe_chroma = np.where(has_chroma, chroma, 1.0)
    s = np.where(v > 0, chroma / np.where(v > 0, v, 1.0), 0.0)

    # Hue sextant, measured from whichever primary is largest.
    h = np.where(
        r == v,
        (g - b) / safe_chroma,
        np.where(g == v, (b - r) / safe_chroma + 2.0, (r - g) / safe_chroma + 4.0),
    )
    h = np.mod(h / 6.0, 1.0)
    # A tiny negative hue wraps to exactly 1.0 in floats; it belongs at 0.
    h = np.where(has_chroma & (h < 1.0), h, 0.0)
    return _like(np.stack([h, s, v], axis=-1), rgb)  # type: ignore[return-value]


def hsv_to_rgb(hsv: ArrayT) -> ArrayT:
    """
    Convert HSV colours to RGB. Hue wraps (1.25 is 0.25).

    Tensors pass through float64 numpy, so no gradient flows.

    Args: hsv `[..., 3]`. Returns: rgb `[..., 3]`.
    """
    values = _to_numpy(hsv)
    _check_channels(values, 'hsv')
    h, s, v = np.mod(values[..., 0], 1.0), values[..., 1], values[..., 2]
    sextant_position = h * 6.0
    sextant = np.floor(sextant_position).astype(np.int64) % 6
    f = sextant_position - np.floor(sextant_position)
    p = v * (1.0 - s)
    q = v * (1.0 - s * f)
    t = v * (1.0 - s * (1.0 - f))
    # For each sextant, which of (v, t, p, q) goes to r, g and b.
    r = np.choose(sextant, [v, q, p, p, t, v])
    g = np.choose(sextant, [t, v, v, q, p, p])
    b = np.choose(sextant, [p, p, t, v, v, q])
    return _like(np.stack([r, g, b], axis=-1), hsv)  # type: ignore[return-value]


def primary_ness(rgb: ArrayT, channel: int) -> ArrayT:
    """How much of primary `channel` (0 red, 1 green, 2 blue) a colour holds: `c·(1 − o₁/2 − o₂/2)`.

    `[..., 3] → [...]`.
    """
    _check_channels(rgb, 'rgb')
    others = [c for c in range(3) if c != channel]
    return rgb[..., channel] * (1 - rgb[..., others[0]] / 2 - rgb[..., others[1]] / 2)


def redness(rgb: ArrayT) -> ArrayT:
    """How red a colour is: `r·(1 - g/2 - b/2)`; 1 for pure red, 0 for black, cyan, green, blue. `[..., 3] → [...]`."""
    return primary_ness(rgb, 0)


def greenness(rgb: ArrayT) -> ArrayT:
    """How green a colour is: `g·(1 - r/2 - b/2)`. `[..., 3] → [...]`."""
    return primary_ness(rgb, 1)


def blueness(rgb: ArrayT) -> ArrayT:
    """How blue a colour is: `b·(1 - r/2 - g/2)`. `[..., 3] → [...]`."""
    return primary_ness(rgb, 2)


def hsv_similarity(
    hsv1: ArrayLike | Tensor,
    hsv2: ArrayLike | Tensor,
    hemi: bool = True,
    mode: Literal['angular'] = 'angular',
) -> NDArray[np.float64] | Tensor:
    """
    Similarity in [0, 1] of two HSV colours, 1 for identical colours.

    Hue counts in proportion to how colourful the pair is: with `r = (s1·v1 + s2·v2)/2`,
    `sim = (r·hs + 1 - r)·(1 - |Δs|)·(1 - |Δv|)`, where `hs` is the hue similarity of the
    hue angle `a = 360·min(|Δh|, 1 - |Δh|)` degrees:
    - `hemi=True`: `hs = max(0, (90 - a)/90)` — hues 90° or more apart share nothing.
    - `hemi=False`: `hs = (180 - a)/180` — falls linearly to 0 only at the opposite hue.

    Broadcasts over leading dims: `[..., 3]` and `[..., 3]` → `[...]`. Returns a tensor
    if either input is one (differentiable), else a numpy array.
    """
    if mode != 'angular':
        raise ValueError(f"mode must be 'angular', got {mode!r}")
    if isinstance(hsv1, Tensor) or isinstance(hsv2, Tensor):
        ref = hsv1 if isinstance(hsv1, Tensor) else hsv2
        dtype = ref.dtype if ref.is_floating_point() else torch.get_default_dtype()  # type: ignore[union-attr]
        a_hsv = torch.as_tensor(hsv1, dtype=dtype, device=ref.device)  # type: ignore[union-attr]
        b_hsv = torch.as_tensor(hsv2, dtype=dtype, device=ref.device)  # type: ignore[union-attr]
        minimum, clip_below = torch.minimum, lambda x: torch.clamp(x, min=0.0)
    else:
        a_hsv = np.asarray(hsv1, dtype=np.float64)
        b_hsv = np.asarray(hsv2, dtype=np.float64)
        minimum, clip_below = np.minimum, lambda x: np.maximum(x, 0.0)
    _check_channels(a_hsv, 'hsv1')
    _check_channels(b_hsv, 'hsv2')

    h1, s1, v1 = a_hsv[..., 0], a_hsv[..., 1], a_hsv[..., 2]
    h2, s2, v2 = b_hsv[..., 0], b_hsv[..., 1], b_hsv[..., 2]
    hue_distance = abs(h1 - h2) % 1.0  # % 1 so unwrapped hues (e.g. 1.1) still work
    angle = 360.0 * minimum(hue_distance, 1.0 - hue_distance)
    limit = 90.0 if hemi else 180.0
    hue_similarity = clip_below((limit - angle) / limit)
    colorfulness = (s1 * v1 + s2 * v2) / 2
    return (colorfulness * hue_similarity + 1 - colorfulness) * (1 - abs(s1 - s2)) * (1 - abs(v1 - v2))
