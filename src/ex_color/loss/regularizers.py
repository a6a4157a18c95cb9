"""Per-sample regularizers for latent activations.

Every regularizer maps activations `[..., B, D]` to a per-sample loss `[..., B]`, so one
model (`[B, D]`) and an ensemble of S models (`[S, B, D]`) share the same code. Nothing
couples leading (ensemble) indices: each `[B, D]` slice gives exactly the result it would
give alone. Reductions are elementwise products summed over the last dim, and Separate's
pairwise products use `member_exact_bmm`, so results do not depend on the batched shape;
integer powers are computed by repeated multiplication for the same reason.
(Gradients are bit-identical too on CPU; on CUDA the reductions in the
backward pass may round differently for stacked inputs, by about 1e-8.)
"""

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from ex_color.batched import member_exact_bmm
from ex_color.indices import check_indices

EPS = 1e-8
"""Added to vector norms before dividing, so zero vectors give a cosine of 0 instead of NaN."""

DUPLICATE_TOLERANCE = 1e-6
"""`Separate` treats two samples as duplicates when their cosine exceeds `1 - DUPLICATE_TOLERANCE`."""


@runtime_checkable
class Regularizer(Protocol):
    """A per-sample loss: activations `[..., B, D]` → loss `[..., B]`."""

    def __call__(self, x: Tensor) -> Tensor: ...


def cosine_to(x: Tensor, point: Tensor) -> Tensor:
    """Cosine similarity of each vector with `point`: `[..., D]`, `[D]` → `[...]`.

    `cos = x·p / ((‖x‖ + 1e-8)(‖p‖ + 1e-8))`, clamped to [−1, 1] to absorb rounding (so
    `1 − cos` is never negative). A zero vector has cosine 0 with everything.
    """
    dot = (x * point).sum(dim=-1)
    x_norm = torch.linalg.vector_norm(x, dim=-1)
    p_norm = torch.linalg.vector_norm(point, dim=-1)
    return (dot / ((x_norm + EPS) * (p_norm + EPS))).clamp(-1.0, 1.0)


def _as_point(point: Tensor | Sequence[float]) -> Tensor:
    """Validate and copy a reference vector `[D]` (floating point) for use as a buffer."""
    point = torch.as_tensor(point)
    if point.ndim != 1 or point.shape[0] == 0:
        raise ValueError(f'point must be a non-empty 1-D vector [D], got shape {tuple(point.shape)}')
    if not point.is_floating_point():
        point = point.to(torch.get_default_dtype())
    return point.detach().clone()


def _power(x: Tensor, exponent: float) -> Tensor:
    """`x ** exponent`, by repeated squaring when the exponent is a whole number.

    On CPU, `torch.pow` computes an element with SIMD or scalar code depending on its
    position in the tensor, so the same value can round differently in a `[S, B, B]` tensor
    than in a `[B, B]` one. Multiplications round identically everywhere (forward and
    backward), which keeps ensemble members bit-identical to single models.
    """
    if not exponent.is_integer() or exponent > 2**16:
        return x.pow(exponent)
    remaining = int(exponent)
    result: Tensor | None = None
    base = x
    while True:
        if remaining & 1:
            result = base if result is None else result * base
        remaining >>= 1
        if not remaining:
            break
        base = base * base
    assert result is not None  # exponent >= 1
    return result


def _pairwise_dots(x: Tensor) -> Tensor:
    """Dot products of every pair of vectors within each batch: `[..., B, D] → [..., B, B]`.

    Computed so that each batch's result is the same whatever the leading shape (see
    `ex_color.batched`); an ensemble member's Separate loss then equals its lone value.
    """
    return member_exact_bmm(x, x.transpose(-1, -2))


def _without_denormal_powers(x: Tensor, exponent: float) -> Tensor:
    """`x` with the entries whose `exponent`-th power (or an intermediate square of it) would be denormal set to 0.

    For |x| < 1 and a power above about 87, tiny entries give denormal floats, and CPUs compute
    those tens of times slower than normal ones (a third of a compiled step's time for Ex 2.9's
    Separate). Such a power is below `torch.finfo(x.dtype).tiny` (1e-38 for float32): it cannot
    change a loss or gradient of normal size, so dropping it changes nothing measurable.
    """
    cutoff = torch.finfo(x.dtype).tiny ** (1.0 / exponent)
    return torch.where(x.abs() < cutoff, torch.zeros_like(x), x)


class _PointRegularizer(nn.Module):
    """Base for regularizers defined relative to a reference vector `point` `[D]` (a buffer)."""

    point: Tensor

    def __init__(self, point: Tensor | Sequence[float]):
        super().__init__()
        self.register_buffer('point', _as_point(point))

    def _point_for(self, x: Tensor) -> Tensor:
        """The reference point on x's device and dtype, after checking dimensions agree."""
        if x.shape[-1] != self.point.shape[0]:
            raise ValueError(
                f'{type(self).__name__}: activations have {x.shape[-1]} dims but point has {self.point.shape[0]}'
            )
        return self.point.to(device=x.device, dtype=x.dtype)

    def extra_repr(self) -> str:
        return f'point={self.point.tolist()}'


class Unitarity(nn.Module):
    """Pulls vectors onto the unit hypersphere: `(‖x‖ − 1)²`, `[..., B, D]` → `[..., B]`."""

    def forward(self, x: Tensor) -> Tensor:
        return (torch.linalg.vector_norm(x, dim=-1) - 1.0).square()


class Anchor(_PointRegularizer):
    """Pins vectors to a point: `‖x − p‖²`, `[..., B, D]` → `[..., B]`."""

    def forward(self, x: Tensor) -> Tensor:
        return (x - self._point_for(x)).square().sum(dim=-1)


class AngularAnchor(_PointRegularizer):
    """Pulls vectors toward the direction of a point: `1 − cos(x, p)`, `[..., B, D]` → `[..., B]`."""

    def forward(self, x: Tensor) -> Tensor:
        return 1.0 - cosine_to(x, self._point_for(x))


class AntiAnchor(_PointRegularizer):
    """Pushes vectors away from the direction of a point, `[..., B, D]` → `[..., B]`.

    With `hemi=True` the loss is `max(cos(x, p), 0)`: only vectors in p's hemisphere are
    pushed. With `hemi=False` it is `(cos(x, p) + 1) / 2`: everything is pushed toward −p.
    """

    def __init__(self, point: Tensor | Sequence[float], hemi: bool = True):
        super().__init__(point)
        self.hemi = hemi

    def forward(self, x: Tensor) -> Tensor:
        cos = cosine_to(x, self._point_for(x))
        if self.hemi:
            return cos.clamp_min(0.0)
        return (cos + 1.0) / 2.0

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, hemi={self.hemi}'


class _ChannelSelector:
    """Selects channels of the last dim, caching the index tensor per (D, device, invert)."""

    def __init__(self, channels: tuple[int, ...], owner: str):
        self.channels = channels
        self.owner = owner
        self._cache: dict[tuple[int, torch.device, bool], Tensor] = {}

    def select(self, x: Tensor, invert: bool = False) -> Tensor:
        """`x[..., channels]` (or the complement with `invert`), `[..., D]` → `[..., K]`."""
        n_dims = x.shape[-1]
        if torch.compiler.is_compiling():
            # A compiled graph holds the index as a constant; filling the cache while tracing would only
            # make the compiler guard on the cache's contents (and recompile once it is filled).
            chosen = self._chosen(n_dims, invert)
            if chosen and chosen == list(range(chosen[0], chosen[-1] + 1)):
                # A run of channels is a slice. Inductor (torch 2.13) corrupts the heap when it compiles
                # index_select with a one-element index over the unbacked member dim; a slice compiles cleanly.
                return x.narrow(-1, chosen[0], len(chosen))
            return x.index_select(-1, self._index(n_dims, x.device, invert))
        key = (n_dims, x.device, invert)
        index = self._cache.get(key)
        if index is None:
            index = self._cache[key] = self._index(n_dims, x.device, invert)
        return x.index_select(-1, index)

    def _chosen(self, n_dims: int, invert: bool) -> list[int]:
        if self.channels and max(self.channels) >= n_dims:
            raise ValueError(f'{self.owner}: dims {self.channels} out of range for activations with {n_dims} dims')
        return [d for d in range(n_dims) if (d in self.channels) != invert]

    def _index(self, n_dims: int, device: torch.device, invert: bool) -> Tensor:
        return torch.tensor(self._chosen(n_dims, invert), dtype=torch.long, device=device)


class Separate(nn.Module):
    """Angular repulsion between samples of the same batch, `[..., B, D]` → `[..., B]`.

    On the selected channels (all if `channels` is None): `u = x / (‖x‖ + 1e-8)`,
    `C = u·uᵀ` `[..., B, B]` within each batch (never across leading/ensemble indices),
    clamped to [−1, 1]. Self-pairs and duplicate samples (true cosine above
    `1 − DUPLICATE_TOLERANCE`) are masked; with `shift`, `C = (C + 1) / 2`; masked entries
    are then set to 0 so they contribute nothing. `loss_i = Σ_j C_ij ** power`.

    Without `shift`, C can be negative, so use an integer `power` (non-integer powers of
    negative numbers are NaN). Integer powers are computed by repeated squaring, so stacked
    (ensemble) inputs give bit-identical results to each member alone; non-integer powers
    use `torch.pow` and match only to within rounding.
    """

    def __init__(self, channels: Sequence[int] | None = None, power: float = 1.0, shift: bool = True):
        super().__init__()
        if not power > 0:
            raise ValueError(f'Separate: power must be > 0, got {power}')
        self.channels = None if channels is None else tuple(check_indices(channels, 'Separate channels'))
        self.power = float(power)
        self.shift = shift
        self._selector = None if self.channels is None else _ChannelSelector(self.channels, 'Separate')

    def forward(self, x: Tensor) -> Tensor:
        if self._selector is not None:
            x = self._selector.select(x)
        norms = torch.linalg.vector_norm(x, dim=-1, keepdim=True)  # [..., B, 1]
        unit = x / (norms + EPS)  # [..., B, D]
        sims = _pairwise_dots(unit)  # [..., B, B]
        unit_norms = torch.linalg.vector_norm(unit, dim=-1)  # [..., B]
        # Compare against ‖u_i‖‖u_j‖ rather than 1 so that duplicates of short vectors (whose
        # u is slightly shorter than 1 because of EPS) are still recognised.
        scale = unit_norms.unsqueeze(-1) * unit_norms.unsqueeze(-2)
        n_batch = x.shape[-2]
        is_self = torch.eye(n_batch, dtype=torch.bool, device=x.device)
        masked = is_self | (sims > (1.0 - DUPLICATE_TOLERANCE) * scale)
        sims = sims.clamp(-1.0, 1.0)
        if self.shift:
            sims = (sims + 1.0) / 2.0
        sims = torch.where(masked, torch.zeros_like(sims), sims)
        if torch.compiler.is_compiling():
            sims = _without_denormal_powers(sims, self.power)
        return _power(sims, self.power).sum(dim=-1)

    def extra_repr(self) -> str:
        return f'channels={self.channels}, power={self.power}, shift={self.shift}'


class AxisAlignedSubspace(nn.Module):
    """Keeps vectors inside the axis-aligned subspace spanned by `dims`, `[..., B, D]` → `[..., B]`.

    Loss: Σ x_d² over the dims *not* in `dims`; with `invert=True`, over the dims in `dims`
    (keeping vectors *out* of that subspace).
    """

    def __init__(self, dims: Sequence[int], invert: bool = False):
        super().__init__()
        self.dims = tuple(check_indices(dims, 'AxisAlignedSubspace dims'))
        self.invert = invert
        self._selector = _ChannelSelector(self.dims, type(self).__name__)

    def forward(self, x: Tensor) -> Tensor:
        penalised = self._selector.select(x, invert=not self.invert)
        return penalised.square().sum(dim=-1)

    def extra_repr(self) -> str:
        return f'dims={self.dims}, invert={self.invert}'


class Planarity(AxisAlignedSubspace):
    """Keeps vectors in the plane of dims 0 and 1: `AxisAlignedSubspace((0, 1))`."""

    def __init__(self, invert: bool = False):
        super().__init__((0, 1), invert=invert)
