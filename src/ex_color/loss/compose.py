"""Combining per-sample regularizer losses into the training objective.

This is the single place both trainers (the Lightning module and the vectorised ensemble
engine) turn activations, labels and schedule weights into a loss, so they cannot drift
apart. Shapes carry an optional leading ensemble shape `[...]` (empty for one model, `[S]`
for S models): activations `[..., B, D]`, labels `[..., B]` (or `[B]`, shared by all
members), terms and totals `[...]`. Nothing here couples ensemble members, and nothing
synchronises with the device except `check_finite`.
"""

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from ex_color.loss.config import RECON_TERM, RegularizerConfig, parse_label_key

WEIGHT_EPS = 1e-8
"""Added to the sum of sample weights, so a batch whose weights are all 0 gives a term of 0."""


def label_weights(label_affinities: Mapping[str, float], labels: Mapping[str, Tensor]) -> Tensor | None:
    """Per-sample weights from label affinities: `w_i = clamp(Σ_k v_k,i · affinity_k, 0, 1)`.

    For a key `'name'`, `v = label_name`; for a complement key `'~name'`, `v = 1 − label_name`
    ("not name"), so `{'~red': 1.0}` weighs a sample without red 1 and a red one 0, with soft
    labels in between. A key takes part only when its label `name` is present in `labels`:
    a complement needs its label too (an absent label is unknown, not false). Returns
    `[..., B]`, or None when none of the keys' labels is present (the caller then skips the
    term). Clamping keeps a sample that has several matching labels at weight 1; a negative
    affinity subtracts (clamped at 0), which is not a complement: `{'red': -1.0}` alone
    weighs every sample 0.
    """
    weights: Tensor | None = None
    for key, affinity in label_affinities.items():
        label, complement = parse_label_key(key)
        values = labels.get(label)
        if values is None:
            continue
        if not values.is_floating_point():
            values = values.to(torch.get_default_dtype())
        if complement:
            values = 1.0 - values
        contribution = values * affinity
        weights = contribution if weights is None else weights + contribution
    if weights is None:
        return None
    return weights.clamp(0.0, 1.0)


def weighted_term(per_sample: Tensor, weights: Tensor | None) -> Tensor:
    """Reduce a per-sample loss `[..., B]` to a term `[...]`.

    The batch mean when `weights` is None, else the weighted mean
    `Σ w_i·loss_i / (Σ w_i + 1e-8)` with weights `[..., B]` (or `[B]`).
    """
    if weights is None:
        return per_sample.mean(dim=-1)
    weights = weights.to(dtype=per_sample.dtype)
    return (weights * per_sample).sum(dim=-1) / (weights.sum(dim=-1) + WEIGHT_EPS)


def _activation(activations: Mapping[str, Tensor], regularizer: RegularizerConfig, layer: str) -> Tensor:
    try:
        return activations[layer]
    except KeyError:
        raise KeyError(
            f'regularizer {regularizer.name!r} needs activations of layer {layer!r}, '
            f'but only these layers were captured: {sorted(activations)}'
        ) from None


def per_sample_loss(regularizer: RegularizerConfig, x: Tensor, *, ensemble_dims: int = 0, layer: str = '?') -> Tensor:
    """The regularizer's per-sample loss on one layer's activations, `[..., B]`.

    With the default `feature_dim` (-1) this is `compute_loss_term(x)` on `[..., B, D]`. With
    another `feature_dim`, `x` is `[...ensemble, B, ...]` with `ensemble_dims` leading dims;
    the features are moved last and the other per-model dims (positions) ahead of the batch,
    `[..., P, B, C]`, so the term sees each position's batch as a batch of its own; the
    loss `[..., P, B]` is then averaged over positions → `[..., B]`.
    """
    feature_dim = regularizer.feature_dim
    if feature_dim == -1:
        return regularizer.compute_loss_term(x)
    batch = ensemble_dims
    per_model = tuple(x.shape[batch:])
    feature = batch + feature_dim if feature_dim > 0 else x.ndim + feature_dim
    if len(per_model) < 2 or not batch < feature < x.ndim:
        span = max(len(per_model) - 1, 1)
        raise ValueError(
            f'regularizer {regularizer.name!r}: feature_dim {feature_dim} does not fit layer {layer!r}, whose '
            f'activations per model are {list(per_model)} ([B, ...] after {ensemble_dims} ensemble dims); '
            f'expected 1..{span} or -{span}..-1'
        )
    positions = [d for d in range(batch + 1, x.ndim) if d != feature]
    moved = x.permute(*range(batch), *positions, batch, feature)  # [..., *P, B, C]
    moved = moved.reshape(*x.shape[:batch], -1, x.shape[batch], x.shape[feature])  # [..., P, B, C]
    return regularizer.compute_loss_term(moved).mean(dim=-2)  # [..., P, B] → [..., B]


def regularization_loss(
    regularizers: Sequence[RegularizerConfig],
    activations: Mapping[str, Tensor],
    labels: Mapping[str, Tensor],
    weights: Mapping[str, float | Tensor],
    *,
    phase: str = 'train',
    ensemble_dims: int = 0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Weighted sum of the regularization terms active in `phase`.

    Args:
        regularizers: the terms; those whose `phase` differs are ignored.
        activations: layer name → activations `[..., B, D]`.
        labels: label name → per-sample label values `[..., B]` (or `[B]`).
        weights: regularizer name → schedule weight (a number, or a tensor broadcastable
            to `[...]`); a name missing here has weight 1, and names of no regularizer are
            ignored (schedules may carry other parameters).
        phase: the current phase.
        ensemble_dims: how many leading ensemble dims `[...]` the activations have (0 for one
            model, 1 for `[S, B, ...]`). Only regularizers with a `feature_dim` other than -1
            read it, to find the batch dim; `total_loss` passes the reconstruction's `ndim`.

    Returns:
        `(total [...], terms)` where `terms` maps each regularizer name to its unweighted
        term `[...]` and `total = Σ weight × term`. A term is the sum over its layers of the
        (label-weighted) batch mean. A term whose label affinities match no label present
        in `labels` is skipped: absent from `terms`, contributing 0.

    Raises:
        KeyError: a regularizer's layer is missing from `activations`.
        ValueError: two active regularizers share a name.
    """
    active = [r for r in regularizers if r.phase == phase]
    if len({r.name for r in active}) != len(active):
        names = [r.name for r in active]
        raise ValueError(f'regularizer names must be unique, got {names}')

    total: Tensor | None = None
    terms: dict[str, Tensor] = {}
    reference: Tensor | None = None
    for regularizer in active:
        layer_activations = [_activation(activations, regularizer, layer) for layer in regularizer.layer_affinities]
        reference = layer_activations[0] if reference is None else reference
        if regularizer.label_affinities is None:
            sample_weights = None
        else:
            sample_weights = label_weights(regularizer.label_affinities, labels)
            if sample_weights is None:
                continue
        term: Tensor | None = None
        for layer, x in zip(regularizer.layer_affinities, layer_activations, strict=True):
            per_sample = per_sample_loss(regularizer, x, ensemble_dims=ensemble_dims, layer=layer)
            if sample_weights is not None and sample_weights.shape[-1] != per_sample.shape[-1]:
                raise ValueError(
                    f'regularizer {regularizer.name!r}: layer {layer!r} gives a loss for {per_sample.shape[-1]} '
                    f'samples but its labels are for {sample_weights.shape[-1]}; expected labels [..., B] '
                    'with B the batch size'
                )
            layer_term = weighted_term(per_sample, sample_weights)
            term = layer_term if term is None else term + layer_term
        assert term is not None  # layer_affinities is never empty
        terms[regularizer.name] = term
        weighted = term * weights.get(regularizer.name, 1.0)
        total = weighted if total is None else total + weighted

    if total is None:
        total = _zero_total(reference, activations)
    return total, terms


def _zero_total(reference: Tensor | None, activations: Mapping[str, Tensor]) -> Tensor:
    """A zero total `[...]` shaped like the leading dims of the activations."""
    if reference is None:
        reference = next(iter(activations.values()), None)
    if reference is None:
        return torch.zeros(())
    return reference.new_zeros(reference.shape[:-2])


def total_loss(
    reconstruction: Tensor,
    regularizers: Sequence[RegularizerConfig],
    activations: Mapping[str, Tensor],
    labels: Mapping[str, Tensor],
    weights: Mapping[str, float | Tensor],
    *,
    phase: str = 'train',
) -> tuple[Tensor, dict[str, Tensor]]:
    """The training objective: reconstruction `[...]` plus `regularization_loss`.

    Returns `(total [...], terms)` where `terms` holds `'recon'` (the reconstruction loss)
    and each unweighted regularization term. `total` has the leading ensemble shape `[...]`
    (a scalar for one model), which also tells `regularization_loss` how many leading
    ensemble dims the activations have. Arguments are as for `regularization_loss`.
    """
    reg_total, reg_terms = regularization_loss(
        regularizers, activations, labels, weights, phase=phase, ensemble_dims=reconstruction.ndim
    )
    terms = {RECON_TERM: reconstruction, **reg_terms}
    total = reconstruction + reg_total if reg_terms else reconstruction
    return total, terms


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; training cannot continue meaningfully.

    `term`, `step` and `member` say where, when known (None otherwise), so that a handler
    can always read them; the one-line message says the same for people.
    """

    def __init__(
        self,
        message: str,
        *,
        term: str | None = None,
        step: int | None = None,
        member: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(message)
        self.term = term
        """The first non-finite term, e.g. 'reg-anchor' or 'recon'."""
        self.step = step
        """The training step at which it was found."""
        self.member = member
        """The first bad ensemble member's index, or None for a single model."""


def check_finite(terms: Mapping[str, Tensor], regularizers: Sequence[RegularizerConfig], step: int) -> None:
    """Raise `NonFiniteLossError` if any term (`[...]`) has a NaN or infinite value.

    The one-line message names the first bad term, its layer(s), the step and, for
    ensembles, the first bad member, e.g.
    `non-finite loss at step 123: term 'reg-anchor' (layer 'bottleneck') = nan`.
    Costs one device sync when all terms are finite.
    """
    if not terms:
        return
    if bool(torch.stack([torch.isfinite(value).all() for value in terms.values()]).all()):
        return
    layers_by_name = {r.name: r.layer_affinities for r in regularizers}
    for name, value in terms.items():
        finite = torch.isfinite(value)
        if bool(finite.all()):
            continue
        layers = layers_by_name.get(name, [])
        layer_text = ''
        if len(layers) == 1:
            layer_text = f' (layer {layers[0]!r})'
        elif layers:
            layer_text = f' (layers {", ".join(repr(layer) for layer in layers)})'
        if value.ndim == 0:
            raise NonFiniteLossError(
                f'non-finite loss at step {step}: term {name!r}{layer_text} = {float(value)}',
                term=name,
                step=step,
                member=None,
            )
        bad = (~finite).nonzero()
        member = tuple(int(i) for i in bad[0])
        member_text = str(member[0]) if len(member) == 1 else str(member)
        raise NonFiniteLossError(
            f'non-finite loss at step {step}: term {name!r}{layer_text} = {float(value.detach()[member])} '
            f'in ensemble member {member_text} ({len(bad)} of {finite.numel()} members non-finite)',
            term=name,
            step=step,
            member=member,
        )
