"""The models: the colour autoencoder (an MLP with a unit-norm bottleneck), a character-level transformer with
a unit-norm bottleneck before its unembedding, and layer lookup by module path."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ['CNColorMLP', 'CharTransformer', 'L2Norm', 'UnknownLayerError', 'forward_hooks', 'get_layer']


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


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which each position sees itself and the positions before it.

    `[B, T, width] → [B, T, width]`; `qkv` and `proj` are the two Linears."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)  # [B, H, T, C/H]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    """A pre-norm transformer block: `x + attention(LN(x))`, then `x + MLP(LN(x))` (hidden width 4×)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attention = CausalSelfAttention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CharTransformer(nn.Module):
    """A decoder-only character transformer with a unit-norm bottleneck before the unembedding.

    Token ids `[B, T]` (T ≤ `context`) → next-token logits `[B, T, vocab]`. After the blocks and
    the final LayerNorm, `encoder` (one Linear) maps each position to `k_bottleneck` dims,
    `bottleneck` (L2Norm) puts them on the unit sphere and `unembed` (one Linear) reads them, so
    surgery on `'bottleneck'` edits those two Linears exactly as it edits the colour model's. The logits
    are `unembed`'s output times a fixed `logit_scale`: from a unit vector a Linear's outputs are bounded
    by its weights, and the factor lets them reach confident predictions early in training.
    """

    def __init__(
        self,
        vocab_size: int,
        context: int,
        layers: int,
        width: int,
        heads: int,
        k_bottleneck: int,
        logit_scale: float = 1.0,
    ) -> None:
        super().__init__()
        sizes = {'vocab_size': vocab_size, 'context': context, 'layers': layers, 'width': width, 'heads': heads}
        for name, value in {**sizes, 'k_bottleneck': k_bottleneck}.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f'CharTransformer: {name} must be a positive integer, got {value!r}')
        if width % heads:
            raise ValueError(f'CharTransformer: width {width} must be a multiple of heads {heads}')
        if not logit_scale > 0:
            raise ValueError(f'CharTransformer: logit_scale must be > 0, got {logit_scale!r}')
        self.logit_scale = float(logit_scale)
        self.vocab_size, self.context, self.width, self.heads = vocab_size, context, width, heads
        self.n_layers, self.k_bottleneck = layers, k_bottleneck
        self.embed = nn.Embedding(vocab_size, width)
        self.position = nn.Embedding(context, width)
        self.blocks = nn.Sequential(*(Block(width, heads) for _ in range(layers)))
        self.norm = nn.LayerNorm(width)
        self.encoder = nn.Linear(width, k_bottleneck)
        self.bottleneck = L2Norm()
        self.unembed = nn.Linear(k_bottleneck, vocab_size)

    def forward(self, tokens: Tensor) -> Tensor:
        """Next-token logits `[B, T, vocab]` for token ids `[B, T]`."""
        positions = torch.arange(tokens.shape[-1], device=tokens.device)
        x = self.blocks(self.embed(tokens) + self.position(positions))
        return self.unembed(self.bottleneck(self.encoder(self.norm(x)))) * self.logit_scale


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
