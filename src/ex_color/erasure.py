"""Post-hoc concept erasure on one layer's activations: LEACE and the mean-difference projection.

An erasure is fitted on activations `x` `[N, D]` of N fitting samples, given each sample's
concept value `p` `[N]` in [0, 1] and optional sampling weights `w` `[N]` (≥ 0; None means
uniform). The concept values are label probabilities — the expected value of the hard
label: the same supervision a prepared model's regularizers get, where each training sample
is labelled with probability p. Hard 0/1 labels are the special case. The weights make the
fit a weighted average over samples, e.g. to match the training distribution.

The fitted erasure is a plain callable `[..., D] → [..., D]` on the last axis, usable as an
activation intervention (`InterventionConfig(apply=erasure, layer_affinities=[layer])`).

Methods:

- `mean-difference`: `x' = x − (x·d)d` with `d = unit(μ₁ − μ₀)`, where
  `μ₁ = Σ wᵢpᵢxᵢ / Σ wᵢpᵢ` is the concept's (label-weighted) mean and
  `μ₀ = Σ wᵢ(1 − pᵢ)xᵢ / Σ wᵢ(1 − pᵢ)` the rest's. With Σwᵢ = 1 and p̄ = Σwᵢpᵢ,
  `μ₁ − μ₀ = Cov_w(x, p) / (p̄(1 − p̄))`, so d is the direction of the cross-covariance and
  this is concept_erasure's orthogonal ('orth') eraser: it zeroes the cross-covariance too,
  but it is linear (it also moves the mean) and not the smallest such edit.
- `leace`: LEACE (Belrose et al. 2023, https://arxiv.org/abs/2306.03819) through
  `concept_erasure`: the affine map `x' = x − Σ^{½}u uᵀΣ^{-½}(x − μx)` with `u` the unit
  left singular vector of `Σ^{-½}Σxz`. After it the weighted cross-covariance of x' and the
  concept is zero, so no linear classifier does better than a constant on the fitting
  distribution, and it is the least-squares smallest edit that does so. We fit it with
  `affine=True`, `shrinkage=False` (thousands of samples in few dimensions; and the weighted
  fit below is then exact) and `constrain_cov_trace=False`, which keeps the exact oblique
  projection of the paper, hence idempotent.

Weighting LEACE. `concept_erasure` takes no sample weights, but LEACE depends on the data
only through means, `Σxx` and `Σxz`. With weights normalised to Σwᵢ = 1 and weighted means
μx, μz, the 2N points `xᵢ± = μx ± √(Nwᵢ)(xᵢ − μx)`, `zᵢ± = μz ± √(Nwᵢ)(zᵢ − μz)` (signs
paired) have unweighted mean μx, μz and (biased) covariances exactly the weighted ones; the
library's Bessel factor scales Σxx and Σxz alike, which leaves the projection unchanged.

The svd_tol guard. The library drops singular values of `Σ^{-½}Σxz` below `svd_tol` (0.01 by
default), and they scale with the concept's standard deviation: a concept with small
probabilities (e.g. `0.5·redness¹⁰`, above 0.1 for only 5 of 3,600 colours) would be treated
as absent and the eraser would silently be the identity. So z is standardised under the
weights first, which makes the singular value the multiple correlation of z with x, in
[0, 1] (the projection itself does not depend on z's scale), `svd_tol` is `SVD_TOL`, and an
eraser that is still the identity is an error: the concept has no linear signal there.

Renormalisation. With `renormalize=True` the edited activation is put back on the unit sphere
(`x'/‖x'‖`). That is only meaningful on a layer whose activations are unit vectors, such as the
colour model's L2-normalised bottleneck: its decoder only ever saw unit vectors, and ablating a
bottleneck dimension there zeroes it *before* the L2 norm, which equals projecting it out of
the unit vector and renormalising. Fitting with `renormalize=True` therefore checks that the
fitting activations' norms are within `UNIT_NORM_TOLERANCE` of 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from concept_erasure import LeaceEraser
from torch import Tensor

__all__ = [
    'ERASURE_KINDS',
    'Erasure',
    'ErasureError',
    'ErasureKind',
    'LeaceErasure',
    'MeanDifferenceErasure',
    'fit_erasure',
    'fit_leace',
    'fit_mean_difference',
    'mean_difference_direction',
]

ErasureKind = Literal['leace', 'mean-difference']
ERASURE_KINDS: tuple[str, ...] = ('leace', 'mean-difference')

SVD_TOL = 1e-6
"""Smallest correlation between the standardised concept and the activations that LEACE erases."""
UNIT_NORM_TOLERANCE = 1e-3
"""How far from 1 a fitting activation's norm may be when fitting with `renormalize=True`."""


class ErasureError(ValueError):
    """Erasure cannot be fitted or applied as asked; a one-line message that starts with the caller's `name`."""


class Erasure:
    """A fitted erasure: `[..., D] → [..., D]` on the last axis; dtype and device follow the input."""

    kind: str = ''

    def __init__(self, dim: int, *, renormalize: bool, name: str = 'erasure') -> None:
        if not isinstance(renormalize, bool):
            raise ErasureError(f'{name}: renormalize must be True or False, got {renormalize!r}')
        self.dim = dim
        """Width D of the activations it applies to."""
        self.renormalize = renormalize
        """Put each edited activation back on the unit sphere."""
        self.name = name
        """How messages refer to this erasure."""

    def edit(self, x: Tensor) -> Tensor:
        """The edit before any renormalisation, `[..., D] → [..., D]`."""
        raise NotImplementedError

    def __call__(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or not x.is_floating_point():
            what = f'a {x.dtype} tensor' if isinstance(x, Tensor) else type(x).__name__
            raise ErasureError(f'{self.name}: expected floating-point activations [..., {self.dim}], got {what}')
        if x.ndim < 1 or x.shape[-1] != self.dim:
            width = x.shape[-1] if x.ndim else 0
            raise ErasureError(f'{self.name}: activations have {width} dims in the last axis; fitted on {self.dim}')
        edited = self.edit(x)
        return F.normalize(edited, dim=-1) if self.renormalize else edited

    def describe(self) -> dict:
        """What to report about this erasure."""
        return {'kind': self.kind, 'renormalize': self.renormalize}

    def __repr__(self) -> str:
        details = ', '.join(f'{k}={v!r}' for k, v in self.describe().items() if k != 'kind')
        return f'{type(self).__name__}({details})'


class MeanDifferenceErasure(Erasure):
    """Project out one unit direction d: `x' = x − (x·d)d`."""

    kind = 'mean-difference'

    def __init__(self, direction: Tensor | Sequence[float], *, renormalize: bool, name: str = 'erasure') -> None:
        d = torch.as_tensor(direction).detach().to('cpu', torch.float64)
        if d.ndim != 1 or d.numel() == 0:
            raise ErasureError(f'{name}: direction must be a non-empty 1-D vector [D], got shape {tuple(d.shape)}')
        norm = torch.linalg.vector_norm(d)
        if not torch.isfinite(norm) or norm == 0:
            raise ErasureError(f'{name}: direction must be finite and non-zero, got {d.tolist()}')
        super().__init__(d.shape[0], renormalize=renormalize, name=name)
        self.direction = d / norm
        """Unit direction `[D]` (float64, CPU)."""

    def edit(self, x: Tensor) -> Tensor:
        d = self.direction.to(device=x.device, dtype=x.dtype)
        return x - (x @ d).unsqueeze(-1) * d

    def describe(self) -> dict:
        return super().describe() | {'direction': self.direction.tolist()}


class LeaceErasure(Erasure):
    """Apply a fitted `concept_erasure.LeaceEraser`: `x' = eraser(x)`."""

    kind = 'leace'

    def __init__(self, eraser: LeaceEraser, *, renormalize: bool, name: str = 'erasure') -> None:
        super().__init__(eraser.proj_left.shape[0], renormalize=renormalize, name=name)
        self.eraser = _eraser_as(eraser, torch.device('cpu'), torch.float64)
        """The eraser, its tensors in float64 on the CPU."""
        self._cast: dict[tuple[torch.device, torch.dtype], LeaceEraser] = {}

    @property
    def rank(self) -> int:
        """Rank of the edit `I − P` (0 would be the identity)."""
        return int(torch.linalg.matrix_rank(self.eraser.proj_left @ self.eraser.proj_right))

    def edit(self, x: Tensor) -> Tensor:
        key = (x.device, x.dtype)
        if key not in self._cast:
            self._cast[key] = _eraser_as(self.eraser, x.device, x.dtype)
        return self._cast[key](x)

    def describe(self) -> dict:
        return super().describe() | {'rank': self.rank}


def _eraser_as(eraser: LeaceEraser, device: torch.device, dtype: torch.dtype) -> LeaceEraser:
    bias = eraser.bias.to(device, dtype) if eraser.bias is not None else None
    return LeaceEraser(eraser.proj_left.to(device, dtype), eraser.proj_right.to(device, dtype), bias)


def _check_inputs(
    x: Tensor, concept: Tensor, weights: Tensor | None, *, renormalize: bool, name: str
) -> tuple[Tensor, Tensor, Tensor]:
    """Validated float64 CPU copies: activations `[N, D]`, concept `[N]` and weights `[N]` summing to 1."""
    if not isinstance(renormalize, bool):
        raise ErasureError(f'{name}: renormalize must be True or False, got {renormalize!r}')
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim != 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ErasureError(f'{name}: activations must be a float tensor [N, D], got {shape}')
    n, d = x.shape
    if n < 2 or d < 1:
        raise ErasureError(f'{name}: need at least 2 fitting samples of at least 1 dim, got activations [{n}, {d}]')
    unit_tolerance = max(UNIT_NORM_TOLERANCE, 10 * torch.finfo(x.dtype).eps)  # bfloat16 rounds norms by ~4e-3
    x = x.detach().to('cpu', torch.float64)
    if not torch.isfinite(x).all():
        raise ErasureError(f'{name}: {int((~torch.isfinite(x)).any(-1).sum())} fitting activations are not finite')

    p = torch.as_tensor(concept).detach().to('cpu', torch.float64)
    if p.shape != (n,):
        raise ErasureError(f'{name}: concept values must have shape [N] = [{n}], got {tuple(p.shape)}')
    if not ((p >= 0) & (p <= 1)).all():  # also catches NaN
        raise ErasureError(f'{name}: concept values must lie in [0, 1], got range [{p.min():.4g}, {p.max():.4g}]')

    if weights is None:
        w = torch.full((n,), 1 / n, dtype=torch.float64)
    else:
        w = torch.as_tensor(weights).detach().to('cpu', torch.float64)
        if w.shape != (n,):
            raise ErasureError(f'{name}: weights must have shape [N] = [{n}], got {tuple(w.shape)}')
        if not (torch.isfinite(w) & (w >= 0)).all() or not (w > 0).any():
            raise ErasureError(f'{name}: weights must be finite and ≥ 0 with a positive sum')
        w = w / w.max()  # first, so that huge weights cannot overflow the sum
        w = w / w.sum()

    used = p[w > 0]
    if used.max() == used.min():
        raise ErasureError(
            f'{name}: the concept is constant ({float(used[0]):.4g}) over the fitting samples: nothing to erase'
        )

    spread = torch.sqrt(w @ (x - w @ x) ** 2)  # [D]: weighted standard deviation per dim
    if spread.max() <= 1e-7 * max(float(x.abs().max()), 1e-30):
        raise ErasureError(
            f'{name}: the activations are the same for every fitting sample (the layer has collapsed), '
            'so no direction carries the concept'
        )

    if renormalize:
        norms = torch.linalg.vector_norm(x, dim=-1)
        if ((norms - 1).abs() > unit_tolerance).any():
            raise ErasureError(
                f'{name}: the activations are not unit vectors (norms in [{norms.min():.4g}, {norms.max():.4g}]), '
                'so renormalising would change them; set renormalize = false'
            )
    return x, p, w


def _mean_difference(x: Tensor, p: Tensor, w: Tensor, name: str) -> Tensor:
    """Unit `μ₁ − μ₀` `[D]` from validated float64 inputs."""
    on, off = w * p, w * (1 - p)  # [N]
    if on.sum() <= 0 or off.sum() <= 0:
        which = 'Σ w·p' if on.sum() <= 0 else 'Σ w·(1 − p)'
        raise ErasureError(f'{name}: {which} is 0, so one of the two class means is undefined')
    difference = (on @ x) / on.sum() - (off @ x) / off.sum()  # [D]
    norm = torch.linalg.vector_norm(difference)
    # Differences at rounding level of the activations carry no direction.
    if norm <= 1e-12 * x.abs().max():
        raise ErasureError(f'{name}: the concept mean equals the mean of the rest; no direction to erase')
    return difference / norm


def mean_difference_direction(
    x: Tensor, concept: Tensor, weights: Tensor | None = None, *, name: str = 'erasure'
) -> Tensor:
    """`unit(μ₁ − μ₀)` `[D]` (float64, CPU) for activations `[N, D]`, concept `[N]` and weights `[N]`."""
    x, p, w = _check_inputs(x, concept, weights, renormalize=False, name=name)
    return _mean_difference(x, p, w, name)


def fit_mean_difference(
    x: Tensor, concept: Tensor, weights: Tensor | None = None, *, renormalize: bool, name: str = 'erasure'
) -> MeanDifferenceErasure:
    """Project out the direction between the concept's mean and the rest's (see the module docstring)."""
    x, p, w = _check_inputs(x, concept, weights, renormalize=renormalize, name=name)
    return MeanDifferenceErasure(_mean_difference(x, p, w, name), renormalize=renormalize, name=name)


def _moment_matched(x: Tensor, z: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """2N unweighted points `[2N, D]`, `[2N]` whose mean and biased covariances are the weighted ones of x, z."""
    n = x.shape[0]
    mean_x, mean_z = w @ x, w @ z
    scale = torch.sqrt(n * w)  # [N]
    dx = scale[:, None] * (x - mean_x)  # [N, D]
    dz = scale * (z - mean_z)  # [N]
    return torch.cat([mean_x + dx, mean_x - dx]), torch.cat([mean_z + dz, mean_z - dz])


def fit_leace(
    x: Tensor, concept: Tensor, weights: Tensor | None = None, *, renormalize: bool, name: str = 'erasure'
) -> LeaceErasure:
    """Weighted LEACE, fitted in float64 on the standardised concept (see the module docstring)."""
    x, p, w = _check_inputs(x, concept, weights, renormalize=renormalize, name=name)
    mean_p = w @ p
    z = (p - mean_p) / torch.sqrt(w @ (p - mean_p) ** 2)  # unit weighted variance
    points_x, points_z = _moment_matched(x, z, w)
    eraser = LeaceEraser.fit(
        points_x, points_z, affine=True, shrinkage=False, constrain_cov_trace=False, svd_tol=SVD_TOL
    )
    erasure = LeaceErasure(eraser, renormalize=renormalize, name=name)
    if erasure.rank == 0:
        raise ErasureError(
            f'{name}: the concept has no linear signal at this layer (correlation ≤ {SVD_TOL:g}); nothing to erase'
        )
    return erasure


def fit_erasure(
    kind: ErasureKind,
    x: Tensor,
    concept: Tensor,
    weights: Tensor | None = None,
    *,
    renormalize: bool,
    name: str = 'erasure',
) -> Erasure:
    """Fit the erasure of `kind` on activations `[N, D]`, concept values `[N]` and weights `[N]`."""
    match kind:
        case 'leace':
            return fit_leace(x, concept, weights, renormalize=renormalize, name=name)
        case 'mean-difference':
            return fit_mean_difference(x, concept, weights, renormalize=renormalize, name=name)
    raise ErasureError(f'{name}: unknown erasure kind {kind!r}; expected one of {", ".join(ERASURE_KINDS)}')
