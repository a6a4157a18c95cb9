"""Gradient routing (Cloud et al., 2024): labels decide which dims of a layer a sample's gradient flows through.

A route at layer `L` with dims `d` leaves the forward pass as it is and masks the backward pass
per sample and per dim. A sample carrying the route's label reaches the layers before `L` only
through `d`; every other sample only through the remaining dims (or, with `others=False`, through
all of them). The layers after `L` learn from every sample as usual. Ablating `d` afterwards
should then remove what the labelled samples taught the network and little else.

With a label probability `p` (soft labels, or label affinities that add up to a fraction), the
mask is a weight on the gradient: `p` on the routed dims and `1 − p` on the others (with
`others=False`, `1` on the routed dims). Hard labels give masks of exactly 0 and 1.

Routing masks what the layers *after* `L` send back. Regularizers that read `L` read its output
before the mask, so a term the user adds (say, one that keeps unlabelled samples off `d`) still
reaches the layers before it.

`route_gradient(x, mask)` is the one place the mask acts: `x.detach() + mask · (x − x.detach())`
equals `x` exactly in the forward pass (the bracket is exactly 0) and passes `mask · ∂L/∂x` back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ex_color.loss.compose import label_weights


@dataclass(frozen=True)
class Route:
    """Route the gradient of labelled samples through `dims` of `layer`, and of the others around them."""

    layer: str
    """The module path whose output is masked, e.g. `'bottleneck'`."""
    dims: tuple[int, ...]
    """The dims the labelled samples' gradient flows through."""
    labels: Mapping[str, float] = field(default_factory=dict)
    """Label affinities, as a regularizer's: a sample's weight is `clamp(Σ affinity · label, 0, 1)`
    (`'~name'` for a complement)."""
    others: bool = True
    """Route every other sample around `dims` (through the remaining dims only), as the paper's MNIST
    autoencoder does for both halves of its encoding; False leaves their gradient unmasked."""

    def __post_init__(self) -> None:
        if not self.dims:
            raise ValueError('a route needs at least one dim')
        if len(set(self.dims)) != len(self.dims) or min(self.dims) < 0:
            raise ValueError(f'route dims must be distinct and >= 0, got {list(self.dims)}')
        if not self.labels:
            raise ValueError('a route needs at least one label')

    def mask(self, labels: Mapping[str, Tensor], width: int) -> Tensor:
        """The gradient mask `[..., B, width]` for labels {name: `[..., B]`}.

        A batch without any of the route's labels routes every sample as unlabelled.
        """
        if max(self.dims) >= width:
            raise ValueError(f'route dims {list(self.dims)} do not fit layer {self.layer!r} of width {width}')
        p = label_weights(self.labels, labels)
        if p is None:
            reference = next(iter(labels.values()))
            p = torch.zeros_like(reference, dtype=torch.get_default_dtype())
        p = p.unsqueeze(-1)  # [..., B, 1]
        routed = torch.zeros(width, dtype=p.dtype, device=p.device)
        routed[list(self.dims)] = 1.0
        on_routed = p if self.others else torch.ones_like(p)
        return torch.where(routed.bool(), on_routed, 1.0 - p)

    def to_dict(self) -> dict[str, object]:
        return {'layer': self.layer, 'dims': list(self.dims), 'labels': dict(self.labels), 'others': self.others}


def route_gradient(x: Tensor, mask: Tensor) -> Tensor:
    """`x` unchanged, with its gradient multiplied by `mask` (broadcast to `x`)."""
    frozen = x.detach()
    return frozen + mask * (x - frozen)


class MemberRoutes:
    """Each member's route (or none) in a stacked ensemble: the masks of one step, per routed layer.

    A member without a route gets a mask of ones, which leaves its forward and backward passes exactly as
    without routing; a routed member gets its route's mask, computed as for the member alone.
    """

    def __init__(self, routes: Sequence[Route | None]) -> None:
        self.routes = list(routes)
        self.layers = sorted({r.layer for r in self.routes if r is not None})
        distinct: list[Route] = []
        for route in self.routes:
            if route is not None and route not in distinct:
                distinct.append(route)
        # (route, which members take it [S])
        self._groups = [(route, torch.tensor([r == route for r in self.routes])) for route in distinct]

    def __bool__(self) -> bool:
        return bool(self.layers)

    def masks(self, labels: Mapping[str, Tensor], widths: Mapping[str, int]) -> dict[str, Tensor]:
        """{layer: mask `[S, B, D]`} for one step's labels {name: `[S, B]`}."""
        masks = {}
        for layer in self.layers:
            reference = next(iter(labels.values()))
            mask = torch.ones(*reference.shape, widths[layer], dtype=reference.dtype, device=reference.device)
            for route, members in self._groups:
                if route.layer == layer:
                    chosen = members.to(reference.device).view(-1, 1, 1)
                    mask = torch.where(chosen, route.mask(labels, widths[layer]).to(mask.dtype), mask)
            masks[layer] = mask
        return masks

    def select(self, members: Sequence[int]) -> MemberRoutes:
        """The routes of `members`, in that order."""
        return MemberRoutes([self.routes[m] for m in members])


__all__ = ['MemberRoutes', 'Route', 'route_gradient']
