"""The fast engine's training step compiled with `torch.compile` (inductor): forward, every regularizer,
backward and the Adam update.

A step of the colour models is a few hundred small ops, so eager PyTorch spends its time dispatching
them; inductor fuses them into a few C++ loops. The step is compiled in two graphs, the loss (with
its backward, which AOTAutograd compiles from the same trace) and the update, joined by
`torch.autograd.grad`.

Exactness. Compiled kernels round differently from eager ones, so a run records its mode; within the
compiled mode the engine's promises hold as in eager mode:

- *a member equals the model alone*: the ensemble size S is compiled as a symbol (an unbacked size,
  so no kernel is specialised to one S, and every S runs the same code). A lone model trains as a
  pair of identical members, because batched products of one go through other kernels (see
  `ex_color.batched`).
- *resume equals uninterrupted*: the same kernels run on the same state.

The kernels run on a fixed number of threads (`threads`, recorded with a run). The compiler may
split a sum over a member's batch between them, so results depend on that number: two runs agree
bit for bit when their thread counts agree (a Ray task's `--ray-cpus` against the local process's
threads, for instance).

Compiled graphs persist in inductor's on-disk cache (`TORCHINDUCTOR_CACHE_DIR`, by default under the
system's temporary directory), so a second process does not compile again; it only traces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext

import torch
from torch import Tensor

from ex_color.loss import RegularizerConfig, total_loss
from ex_color.training.members import MemberAdam, adam_update
from ex_color.training.stacked import StackedChain

MIN_MEMBERS = 2
"""The compiled step runs at least two members; a lone model trains beside a copy of itself."""


MEMBERS_HINT = 64
"""The ensemble size the compiler tunes its loops for (an unbacked size has no value to tune for). One hint for
every size keeps one kernel for every size; 64, a large chunk's size, gave the fastest steps both for one model
(909 steps/s against 797 with the compiler's default of 8,192) and for 60 (214 against 174) on Ex 2.9."""


def _mark_members(tensors: Sequence[Tensor]) -> None:
    """Compile dim 0 (the members) of every tensor as one symbolic size of at least two (so `member_exact_bmm`
    takes its batched path without a branch)."""
    for tensor in tensors:
        torch._dynamo.decorators.mark_unbacked(
            tensor, 0, shape_id='members', min=MIN_MEMBERS, hint_override=MEMBERS_HINT
        )


class CompiledStep:
    """One training step of a stacked ensemble, compiled; `__call__` trains and returns the step's losses.

    The stacked parameters of `chain` and the moments of `optimizer` (a `MemberAdam`, one learning
    rate per member) are updated in place, so checkpoints read them as in eager mode.
    """

    def __init__(
        self,
        chain: StackedChain,
        optimizer: MemberAdam,
        regularizers: Sequence[RegularizerConfig],
        layers: Sequence[str],
        threads: int,
    ) -> None:
        if chain.size < MIN_MEMBERS:
            raise ValueError(f'the compiled step needs at least {MIN_MEMBERS} members, got {chain.size}')
        self.chain, self.optimizer = chain, optimizer
        self.regularizers = list(regularizers)
        self.names = [r.name for r in regularizers]
        self.layers = list(layers)
        self.threads = threads
        optimizer.init_state()
        self.params = chain.parameters()
        group = optimizer.param_groups[0]
        self.betas: tuple[float, float] = tuple(group['betas'])  # type: ignore[assignment]
        self.eps: float = group['eps']
        self._loss = torch.compile(self._loss_terms, dynamic=False, fullgraph=True)
        self._update = torch.compile(self._update_all, dynamic=False, fullgraph=True)
        self._compiled = False

    def _loss_terms(
        self, colours: Tensor, labels: dict[str, Tensor], weights: Tensor, masks: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """`(total [S], terms {name: [S]}, all finite)` for colours `[S, B, 3]`, weights `[S, R]` and gradient
        masks {layer: `[S, B, D]`}."""
        outputs, captured = self.chain.forward(colours, capture=self.layers, masks=masks)
        recon = (outputs - colours).square().mean(dim=(-2, -1))  # [S]
        named = {name: weights[..., r] for r, name in enumerate(self.names)}
        total, terms = total_loss(recon, self.regularizers, captured, labels, named)
        return total, terms, torch.isfinite(total).all()

    def _update_all(
        self,
        params: list[Tensor],
        grads: list[Tensor],
        exp_avgs: list[Tensor],
        exp_avg_sqs: list[Tensor],
        bias1: Tensor,
        bias2_sqrt: Tensor,
        member_lr: Tensor,
    ) -> None:
        for p, grad, exp_avg, exp_avg_sq in zip(params, grads, exp_avgs, exp_avg_sqs, strict=True):
            adam_update(
                p,
                grad,
                exp_avg,
                exp_avg_sq,
                bias1=bias1,
                bias2_sqrt=bias2_sqrt,
                member_lr=member_lr,
                betas=self.betas,
                eps=self.eps,
            )

    def __call__(
        self,
        colours: Tensor,
        labels: Mapping[str, Tensor],
        weights: Tensor,
        member_lr: Tensor,
        masks: Mapping[str, Tensor] | None = None,
    ) -> tuple[Tensor, dict[str, Tensor], bool]:
        """Train one step: colours `[S, B, 3]`, labels {name: `[S, B]`}, each member's regularizer weights `[S, R]`
        (the schedule's, times any per-member scale: one graph serves shared and per-member schedules alike),
        member_lr `[S]` float64, gradient masks {layer: `[S, B, D]`} of routed layers (see `StackedChain.forward`).
        Returns `(total [S], terms, finite)`; when not finite, nothing was updated."""
        states = [self.optimizer.state[p] for p in self.params]
        exp_avgs = [s['exp_avg'] for s in states]
        exp_avg_sqs = [s['exp_avg_sq'] for s in states]
        labels = dict(labels)
        masks = dict(masks or {})
        first = not self._compiled
        if first:
            # Only the first call compiles. Later calls pass tensors of the same kinds and shapes, so they skip
            # marking (30 µs a tensor) and the compiler's guards (200 µs a call; each graph has one entry).
            _mark_members([*self.params, colours, *labels.values(), weights, *masks.values()])
        # The first call compiles both graphs (the backward at its first use) for `threads` threads.
        compiling = torch._inductor.config.patch({'cpp.threads': self.threads}) if first else nullcontext()
        stance = nullcontext() if first else torch.compiler.set_stance(skip_guard_eval_unsafe=True)
        with stance, compiling:
            total, terms, finite = self._loss(colours, labels, weights, masks)
            if not bool(finite):
                return total.detach(), {k: v.detach() for k, v in terms.items()}, False
            grads = list(torch.autograd.grad(total.sum(), self.params))
            t = states[0]['step'] + 1
            for state in states:
                state['step'] = t
            beta1, beta2 = self.betas
            bias1 = torch.tensor(1 - beta1**t, dtype=torch.float64)
            bias2_sqrt = torch.tensor((1 - beta2**t) ** 0.5, dtype=torch.float64)
            if first:
                _mark_members([*grads, *exp_avgs, *exp_avg_sqs, member_lr])
            with torch.no_grad():
                self._update(self.params, grads, exp_avgs, exp_avg_sqs, bias1, bias2_sqrt, member_lr)
        self._compiled = True
        return total.detach(), {k: v.detach() for k, v in terms.items()}, True


__all__ = ['MIN_MEMBERS', 'CompiledStep']
