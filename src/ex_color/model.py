"""The colour autoencoder: an MLP with a unit-norm bottleneck, and layer lookup by module path."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ['CNColorMLP', 'L2Norm', 'UnknownLayerError', 'forward_hooks', 'get_layer']


class UnknownLayerError(KeyError):
    """A layer path that names no submodule of the model."""

    def __str__(self) -> str:
        # KeyError would show the message in quotes; we want it as written.
        return str(self.args[0]) if self.args else ''


class L2Norm(nn.Module):
    """Project activations onto the unit sphere: `x / max(‖x‖, eps)` along the last dim.

    Shapes: `[..., D] → [..., D]`. The eps only guards the all-zero vector (which maps to 0).
    """

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(x, p=2.0, dim=-1, eps=self.eps)

    def extra_repr(self) -> str:
        return f'eps={self.eps}'


def _mlp(k_in: int, k_hidden: int, k_out: int, n_nonlinear: int) -> nn.Sequential:
    """Linear(k_in,h), GELU, (Linear(h,h), GELU)×(n−1), Linear(h,k_out)."""
    layers: list[nn.Module] = [nn.Linear(k_in, k_hidden), nn.GELU()]
    for _ in range(n_nonlinear - 1):
        layers += [nn.Linear(k_hidden, k_hidden), nn.GELU()]
    layers.append(nn.Linear(k_hidden, k_out))
    return nn.Sequential(*layers)


class CNColorMLP(nn.Module):
    """RGB autoencoder with a unit-norm bottleneck (the seed's model).

    `encoder` maps RGB `[..., 3]` to `[..., k_bottleneck]`, `bottleneck` (L2Norm) puts that on
    the unit sphere, `decoder` maps back to `[..., 3]`. Each codec has `n_nonlinear` GELUs and
    hidden width `k_codec`. In eval mode the output is clamped to [0, 1] (valid colours); in
    training mode it is not, so the loss still has a gradient outside the cube.

    Layers are addressed by module path: `'encoder'`, `'bottleneck'`, `'decoder.0'`, ...
    The constructor arguments are kept as attributes so the model can be rebuilt from them.
    """

    def __init__(self, k_bottleneck: int, k_codec: int = 16, n_nonlinear: int = 1) -> None:
        super().__init__()
        for name, value in (('k_bottleneck', k_bottleneck), ('k_codec', k_codec), ('n_nonlinear', n_nonlinear)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f'CNColorMLP: {name} must be a positive integer, got {value!r}')
        self.k_bottleneck = k_bottleneck
        self.k_codec = k_codec
        self.n_nonlinear = n_nonlinear
        self.encoder = _mlp(3, k_codec, k_bottleneck, n_nonlinear)
        self.bottleneck = L2Norm()
        self.decoder = _mlp(k_bottleneck, k_codec, 3, n_nonlinear)

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruct colours: `[..., 3] → [..., 3]` (clamped to [0, 1] in eval mode)."""
        h = self.bottleneck(self.encoder(x))
        y = self.decoder(h)
        if not self.training:
            y = torch.clamp(y, 0.0, 1.0)
        return y


def get_layer(model: nn.Module, path: str) -> nn.Module:
    """The submodule of `model` at module path `path` (e.g. `'decoder.0'`).

    Raises UnknownLayerError (a KeyError) naming the valid paths when there is no such layer.
    """
    modules = dict(model.named_modules())
    if path == '' or path not in modules:
        valid = ', '.join(repr(name) for name in modules if name)
        raise UnknownLayerError(f'no layer {path!r} in {type(model).__name__}; valid layers: {valid}')
    return modules[path]


@contextmanager
def forward_hooks(
    model: nn.Module, layer_names: Iterable[str], on_output: Callable[[str, Tensor], object]
) -> Iterator[None]:
    """Within the block, call `on_output(name, output)` each time a named layer runs.

    The one place activations are captured: inference, the Lightning trainer and the config's
    width check all go through it. Hooks are removed on exit, also after an error.
    """
    layers = [(name, get_layer(model, name)) for name in dict.fromkeys(layer_names)]

    def hook(name: str) -> Callable[[nn.Module, object, Tensor], None]:
        def observe(_module: nn.Module, _inputs: object, output: Tensor) -> None:
            on_output(name, output)  # returns None: a hook that returns a value would replace the output

        return observe

    handles = []
    try:
        for name, layer in layers:
            handles.append(layer.register_forward_hook(hook(name)))
        yield
    finally:
        for handle in handles:
            handle.remove()
