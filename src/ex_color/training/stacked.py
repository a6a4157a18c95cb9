"""An ensemble of identical chain-of-layers models, run as one with a leading model axis.

S copies of a model such as `CNColorMLP` become one set of stacked parameters: each
Linear's weight `[S, out, in]` and bias `[S, out]`. A forward pass takes `[S, B, in]`
and runs each member on its own batch with batched matmuls, so the whole ensemble
costs about as much Python overhead as one model. Nothing couples the members: member
s's output depends only on member s's parameters and batch.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ex_color.batched import member_exact_bmm
from ex_color.training.routing import route_gradient


class _StackedLinear(torch.autograd.Function):
    """`y = x·Wᵀ + b` per member `[S, B, in] → [S, B, out]`, with member-exact gradients."""

    # The ctx-in-forward form: the setup_context form costs an inspect.signature per call.
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        ctx.save_for_backward(x, weight)
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x, weight = ctx.saved_tensors
        grad_x = member_exact_bmm(grad, weight)  # [S, B, in]
        grad_weight = member_exact_bmm(grad.transpose(1, 2), x)  # [S, out, in]
        return grad_x, grad_weight, grad.sum(dim=1)


@dataclass(frozen=True)
class _Op:
    """One step of the flattened forward pass."""

    kind: str  # 'linear' or 'module'
    path: str
    linear_index: int  # index into the stacked parameters for 'linear', else -1
    module: nn.Module | None  # a parameter-free module applied as is (GELU, L2Norm, ...)
    ends: tuple[str, ...]  # module paths whose output is this op's output


def _flatten(module: nn.Module, path: str, ops: list[_Op], linears: list[str]) -> None:
    children = list(module.named_children())
    if isinstance(module, nn.Linear):
        ops.append(_Op('linear', path, len(linears), None, ()))
        linears.append(path)
    elif not children:
        if any(True for _ in module.parameters(recurse=False)):
            raise TypeError(
                f"the ensemble engine cannot stack layer '{path}' ({type(module).__name__}): it has parameters"
            )
        ops.append(_Op('module', path, -1, module, ()))
    else:
        if not isinstance(module, nn.Sequential) and path:
            raise TypeError(f"the ensemble engine needs a chain of layers; '{path}' is a {type(module).__name__}")
        for name, child in children:
            _flatten(child, f'{path}.{name}' if path else name, ops, linears)
    if path and ops:
        last = ops[-1]
        ops[-1] = _Op(last.kind, last.path, last.linear_index, last.module, (*last.ends, path))


class StackedChain:
    """S models of one architecture as stacked parameters (leaf tensors with grad).

    The model must be a chain: its children (and theirs, recursively) run in
    registration order, as `CNColorMLP`'s encoder → bottleneck → decoder do. Linear
    layers are stacked; parameter-free layers (GELU, L2Norm) are applied to `[S, B, D]`.
    """

    def __init__(self, models: Sequence[nn.Module], device: torch.device | str | None = None) -> None:
        """`device`: where the stacked parameters live (default: the models'); `to_models` and `state_dict`
        always give CPU tensors."""
        if not models:
            raise ValueError('an ensemble needs at least one model')
        self.template = copy.deepcopy(models[0])
        self._ops: list[_Op] = []
        self.linear_paths: list[str] = []
        _flatten(self.template, '', self._ops, self.linear_paths)
        self.weights: list[Tensor] = []
        self.biases: list[Tensor] = []
        for path in self.linear_paths:
            layers = [m.get_submodule(path) for m in models]
            for stacked, kind in ((self.weights, 'weight'), (self.biases, 'bias')):
                tensor = torch.stack([getattr(layer, kind).detach() for layer in layers]).clone()
                stacked.append(tensor.to(device).requires_grad_() if device is not None else tensor.requires_grad_())
        self.layer_paths = {path for op in self._ops for path in op.ends}

    @property
    def size(self) -> int:
        return self.weights[0].shape[0]

    def parameters(self) -> list[Tensor]:
        return [p for pair in zip(self.weights, self.biases, strict=True) for p in pair]

    def forward(
        self, x: Tensor, capture: Iterable[str] = (), masks: Mapping[str, Tensor] | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Run every member on its own batch: `x [S, B, in]` → (`[S, B, out]`, {layer: `[S, B, D]`}).

        `masks` {layer: `[S, B, D]`} route the gradient at those layers (`ex_color.training.routing`) for the layers
        after them; a captured layer is captured before routing, so regularizers reading it act unmasked.
        """
        wanted = set(capture)
        masks = masks or {}
        missing = (wanted | set(masks)) - self.layer_paths
        if missing:
            raise KeyError(f'unknown layer(s) {sorted(missing)}; the model has {sorted(self.layer_paths)}')
        captured: dict[str, Tensor] = {}
        for op in self._ops:
            if op.kind == 'linear':
                w, b = self.weights[op.linear_index], self.biases[op.linear_index]
                if torch.compiler.is_compiling():
                    # The compiled step runs two members or more, where autograd's own backward of baddbmm is
                    # member-exact (batched products of two or more agree slice by slice); a custom Function
                    # would also keep the compiler from caching the graph.
                    x = torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))
                else:
                    x = _StackedLinear.apply(x, w, b)  # [S, B, out]
            else:
                x = op.module(x)
            for path in op.ends:
                if path in wanted:
                    captured[path] = x
                if path in masks:
                    x = route_gradient(x, masks[path])
        return x, captured

    def to_models(self, make_copy: Callable[[], nn.Module] | None = None) -> list[nn.Module]:
        """S ordinary models holding the current stacked weights."""
        models = []
        for s in range(self.size):
            model = make_copy() if make_copy is not None else copy.deepcopy(self.template)
            with torch.no_grad():
                for path, w, b in zip(self.linear_paths, self.weights, self.biases, strict=True):
                    layer = model.get_submodule(path)
                    layer.weight.copy_(w[s])
                    layer.bias.copy_(b[s])
            models.append(model)
        return models

    def state_dict(self) -> dict[str, Tensor]:
        return {
            f'{path}.{kind}': t.detach().to('cpu', copy=True)
            for path, w, b in zip(self.linear_paths, self.weights, self.biases, strict=True)
            for kind, t in (('weight', w), ('bias', b))
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        with torch.no_grad():
            for path, w, b in zip(self.linear_paths, self.weights, self.biases, strict=True):
                w.copy_(state[f'{path}.weight'])
                b.copy_(state[f'{path}.bias'])
