"""Activation interventions: Suppression and Repulsion along a concept direction v, and Ablation of dims.

Each is a plain callable `[..., D, ...] → same shape` that acts on each activation vector
independently; the vector runs along `feature_dim` (default -1, the last dim; 1 for a
convolutional map `[B, C, H, W]`). Bind them to layers with `InterventionConfig` and
`apply_interventions`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ex_color.indices import check_indices
from ex_color.intervention.falloff import BoundedFalloff, Mapper

__all__ = ['Ablation', 'Repulsion', 'Suppression']


def _unit_direction(v: Tensor | Sequence[float], owner: str) -> Tensor:
    """`v / ‖v‖` as a 1-D float tensor `[D]`, or a one-line ValueError."""
    direction = v.detach().clone() if isinstance(v, Tensor) else torch.as_tensor(v, dtype=torch.get_default_dtype())
    if not direction.is_floating_point():
        direction = direction.to(torch.get_default_dtype())
    if direction.ndim != 1 or direction.numel() == 0:
        raise ValueError(f'{owner}: direction v must be a non-empty 1-D vector [D], got shape {tuple(direction.shape)}')
    norm = torch.linalg.vector_norm(direction)
    if not torch.isfinite(norm) or norm == 0:
        raise ValueError(f'{owner}: direction v must be finite and non-zero, got {direction.tolist()}')
    return direction / norm


def _check_feature_dim(feature_dim: int, owner: str) -> int:
    if isinstance(feature_dim, bool) or not isinstance(feature_dim, int):
        raise TypeError(f'{owner}: feature_dim must be an int (the axis of the feature vector), got {feature_dim!r}')
    return feature_dim


def _on_features(activations: Tensor, feature_dim: int, owner: str, act: Callable[[Tensor], Tensor]) -> Tensor:
    """Apply `act` (`[..., D] → [..., D]`) with `feature_dim` moved last, and move it back."""
    if activations.ndim == 0 or not -activations.ndim <= feature_dim < activations.ndim:
        raise ValueError(
            f'{owner}: feature_dim {feature_dim} is out of range for activations of shape {tuple(activations.shape)}'
        )
    if feature_dim in (-1, activations.ndim - 1):
        return act(activations)
    return act(activations.movedim(feature_dim, -1)).movedim(-1, feature_dim)


class _DirectionalIntervention:
    """Shared plumbing: the unit direction, moved to the activations' device and dtype on use."""

    def __init__(self, v: Tensor | Sequence[float], feature_dim: int = -1) -> None:
        self.v = _unit_direction(v, type(self).__name__)
        """Unit concept direction `[D]`."""
        self.feature_dim = _check_feature_dim(feature_dim, type(self).__name__)
        """The axis of the activations that holds the D features."""

    def __call__(self, activations: Tensor) -> Tensor:
        return _on_features(activations, self.feature_dim, type(self).__name__, self._act)

    def _act(self, activations: Tensor) -> Tensor:
        raise NotImplementedError

    def _direction_like(self, activations: Tensor) -> Tensor:
        if activations.shape[-1:] != self.v.shape:
            raise ValueError(
                f'{type(self).__name__}: activations have {activations.shape[-1] if activations.ndim else 0} '
                f'dims in the last axis; expected {self.v.shape[0]} to match v'
            )
        return self.v.to(device=activations.device, dtype=activations.dtype)


class Suppression(_DirectionalIntervention):
    """Remove (part of) the component along v: `a − g·(a·v)·v` with `g = falloff(clamp(a·v, 0, 1))`.

    `a` are activations `[..., D]`, `v` is normalised at construction. Activations not aligned
    with v (a·v ≤ 0) get g = falloff(0), which is 0 for any BoundedFalloff, so they pass
    unchanged. With `BoundedFalloff(0, 1, power=0)`, g = 1 whenever a·v > 0: the positive
    component along v is removed entirely.
    """

    def __init__(self, v: Tensor | Sequence[float], falloff: Mapper | None = None, feature_dim: int = -1) -> None:
        super().__init__(v, feature_dim)
        self.falloff = falloff if falloff is not None else BoundedFalloff()  # the experiment file's default too

    def _act(self, activations: Tensor) -> Tensor:
        v = self._direction_like(activations)  # [D]
        dot = (activations * v).sum(dim=-1, keepdim=True)  # [..., 1]
        gain = self.falloff(dot.clamp(0.0, 1.0))  # [..., 1]
        return activations - gain * dot * v

    def __repr__(self) -> str:
        return f'Suppression(v={self.v.tolist()}, falloff={self.falloff!r})'


class Repulsion(_DirectionalIntervention):
    """Rotate aligned activations towards or away from v, keeping their norm.

    For an activation `a` `[D]` with cosine `c = a·v/‖a‖ > 0`, write `a = ‖a‖(c·v + s·u)` where
    `s = √(1 − c²)` and `u` is the unit vector along `a − (a·v)v` (the part of a orthogonal to v).
    The result is `‖a‖(c'·v + √(1 − c'²)·u)` with `c' = clamp(mapper(c), −1, 1)`: a is rotated
    within the plane spanned by v and a until its cosine with v is c', and its norm is unchanged.
    Activations with c ≤ 0 (and zero vectors) pass unchanged.

    When a is parallel to v (‖a − (a·v)v‖ ≤ 1e-6·‖a‖) the plane is undefined; u is then the
    standard basis vector least aligned with v, made orthogonal to v. Needs D ≥ 2.
    """

    def __init__(self, v: Tensor | Sequence[float], mapper: Mapper, feature_dim: int = -1) -> None:
        super().__init__(v, feature_dim)
        if self.v.shape[0] < 2:
            raise ValueError('Repulsion: direction v must have at least 2 dimensions to rotate within a plane')
        self.mapper = mapper
        fallback = torch.zeros_like(self.v)
        fallback[self.v.abs().argmin()] = 1.0
        fallback = fallback - (fallback @ self.v) * self.v
        self._fallback_perpendicular = fallback / torch.linalg.vector_norm(fallback)

    def _act(self, activations: Tensor) -> Tensor:
        v = self._direction_like(activations)  # [D]
        norm = torch.linalg.vector_norm(activations, dim=-1, keepdim=True)  # [..., 1]
        dot = (activations * v).sum(dim=-1, keepdim=True)  # [..., 1]
        cos = dot / norm.clamp_min(torch.finfo(activations.dtype).tiny)  # [..., 1]

        perpendicular = activations - dot * v  # [..., D]
        perpendicular_norm = torch.linalg.vector_norm(perpendicular, dim=-1, keepdim=True)
        degenerate = perpendicular_norm <= 1e-6 * norm
        fallback = self._fallback_perpendicular.to(device=activations.device, dtype=activations.dtype)
        u = torch.where(degenerate, fallback, perpendicular / perpendicular_norm.clamp_min(1e-30))

        target = self.mapper(cos).clamp(-1.0, 1.0)  # [..., 1]
        rotated = norm * (target * v + torch.sqrt((1 - target**2).clamp_min(0.0)) * u)
        return torch.where(cos > 0, rotated, activations)

    def __repr__(self) -> str:
        return f'Repulsion(v={self.v.tolist()}, mapper={self.mapper!r})'


class Ablation:
    """Zero the features `dims` of every activation vector: `a[d] = 0` for d in dims, the rest unchanged.

    The intervention form of `surgery.ablate`: it edits no weights, so it works on any layer that
    outputs one tensor (a normalised or convolutional layer, a custom bottleneck), at the cost of a
    hook at inference. For `[B, C, H, W]` maps pass `feature_dim=1`.
    """

    def __init__(self, dims: Sequence[int], feature_dim: int = -1) -> None:
        self.dims = check_indices(dims, 'Ablation: dims')
        self.feature_dim = _check_feature_dim(feature_dim, 'Ablation')

    def __call__(self, activations: Tensor) -> Tensor:
        return _on_features(activations, self.feature_dim, 'Ablation', self._act)

    def _act(self, activations: Tensor) -> Tensor:
        width = activations.shape[-1]
        check_indices(self.dims, 'Ablation: dims', width)
        index = torch.tensor(self.dims, dtype=torch.long, device=activations.device)
        return activations.index_fill(-1, index, 0.0)  # exact zeros, even where the input was inf or NaN

    def __repr__(self) -> str:
        return f'Ablation(dims={self.dims}, feature_dim={self.feature_dim})'
