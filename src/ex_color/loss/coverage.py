"""Catching regularizers that would silently never apply.

`regularization_loss` skips a term whose labels are absent from a batch, and ignores a
regularizer whose phase is not the current one. Within one step both are normal (a batch
may lack a rare label); over a whole run they are usually a mistake: a label spelt
differently in the data (`'c2'` for `'cluster2'`), a phase spelt differently
(`'Train'` for `'train'`), a label switched off or never drawn. These helpers turn such
mistakes into one-line messages naming the regularizer and what it expected, for the
trainers to log as warnings or raise as errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from ex_color.loss.compose import label_weights
from ex_color.loss.config import RegularizerConfig, parse_label_key

TRAIN_PHASE = 'train'
"""The phase both trainers train in: only regularizers with this phase apply while training."""


class RegularizerCoverageError(ValueError):
    """A regularizer would never apply (a strict trainer's error; otherwise the message is a warning)."""


def needed_labels(regularizer: RegularizerConfig) -> list[str]:
    """The label names a regularizer's affinities read (`'~red'` reads `'red'`), in order, each once."""
    return list(dict.fromkeys(parse_label_key(key)[0] for key in regularizer.label_affinities or {}))


def phase_problems(regularizers: Sequence[RegularizerConfig], phase: str = TRAIN_PHASE) -> list[str]:
    """One message for each regularizer whose `phase` is not `phase`, so that it would never apply."""
    phases = sorted({r.phase for r in regularizers})
    return [
        f'regularizer {r.name!r} has phase {r.phase!r}, but training runs in phase {phase!r}, so it never applies; '
        f'expected phase={phase!r} (a dopesheet PHASE column does not select regularizers; phases given: {phases})'
        for r in regularizers
        if r.phase != phase
    ]


class LabelCoverage:
    """Whether each label-weighted regularizer applied to some sample, over the batches seen.

    `update` once per step with that step's labels: it records the label names seen and adds
    each regularizer's sample weights up on their device (no host sync); `problems` then
    reads them back once. Regularizers without label affinities, or not in `phase`, are not
    tracked (they apply to every batch, or never: see `phase_problems`).
    """

    def __init__(self, regularizers: Sequence[RegularizerConfig], phase: str = TRAIN_PHASE) -> None:
        self.regularizers = [r for r in regularizers if r.label_affinities is not None and r.phase == phase]
        self.steps = 0
        self.seen: dict[str, None] = {}
        """Label names carried by the batches so far, in order of first appearance."""
        self._weight: dict[str, Tensor] = {}
        """Regularizer name → Σ of its sample weights over the steps (only once a label matched)."""

    def update(self, labels: Mapping[str, Tensor]) -> None:
        """Account for one step's labels (name → `[..., B]`)."""
        self.steps += 1
        self.seen.update(dict.fromkeys(labels))
        with torch.no_grad():
            for r in self.regularizers:
                weights = label_weights(r.label_affinities or {}, labels)
                if weights is None:
                    continue
                total = weights.detach().sum()
                self._weight[r.name] = total if r.name not in self._weight else self._weight[r.name] + total

    def problems(self) -> list[str]:
        """One message per tracked regularizer that never applied: its labels never appeared, or every
        sample it saw weighed 0. One host sync."""
        if not self.steps:
            return []
        names = list(self._weight)
        totals = torch.stack([self._weight[n].cpu().double() for n in names]).tolist() if names else []
        weight = dict(zip(names, totals, strict=True))
        carried = list(self.seen) or 'none'
        span = f'the first {self.steps} step{"s" if self.steps != 1 else ""}'
        messages = []
        for r in self.regularizers:
            if r.name not in weight:
                messages.append(
                    f'regularizer {r.name!r} matched no label in {span}: its labels {needed_labels(r)} never '
                    f'appeared; batches carried {carried}'
                )
            elif weight[r.name] <= 0:
                messages.append(
                    f'regularizer {r.name!r} weighed every sample 0 in {span}: {self._why_zero(r)} '
                    '(clamp(Σ label × affinity, 0, 1) was always 0)'
                )
        return messages

    def _why_zero(self, regularizer: RegularizerConfig) -> str:
        """Why a regularizer's weights summed to 0, key by key, for the labels that appeared."""
        affinities = regularizer.label_affinities or {}
        present = {key: a for key, a in affinities.items() if parse_label_key(key)[0] in self.seen}
        if any(a <= 0 for a in present.values()):  # a key that subtracts or adds nothing: no per-key reason holds
            return f'with affinities {affinities}, the labels that appeared ({list(present)}) gave every sample 0'
        reasons = []
        for key in present:
            label, complement = parse_label_key(key)
            if complement:
                reasons.append(f'every sample carried {label!r}, so {key!r} is 0 everywhere')
            else:
                reasons.append(f'no sample carried {label!r}')
        return '; '.join(reasons)


def expected_weight_problems(
    regularizers: Sequence[RegularizerConfig], probabilities: Mapping[str, Tensor], sampled: Tensor | None = None
) -> dict[str, str]:
    """Regularizers that can never weigh a sample above 0, given each label's probability per example.

    Args:
        regularizers: the terms; those without label affinities always apply and are skipped.
        probabilities: label name → probability `[N]` of each training example carrying it
            (the expected value of a hard label, or the soft label itself). An absent label is
            never in a batch (e.g. switched off).
        sampled: `[N]`, True (or > 0) for the examples training draws; default: all.

    Returns: regularizer name → why it never applies. The expected weight
    `clamp(Σ affinity × E[v], 0, 1)` is checked over the drawn examples: for non-negative
    affinities it is above 0 for an example exactly when a draw can weigh it above 0.
    """
    problems: dict[str, str] = {}
    for r in regularizers:
        if r.label_affinities is None:
            continue
        present = [name for name in needed_labels(r) if name in probabilities]
        if not present:
            problems[r.name] = (
                f'regularizer {r.name!r} never applies: its labels {needed_labels(r)} are never in a batch '
                f'(labels drawn: {sorted(probabilities) or "none"})'
            )
            continue
        weights = label_weights(r.label_affinities, probabilities)
        assert weights is not None  # a needed label is present
        if sampled is not None:
            weights = weights[sampled > 0]
        if not bool((weights > 0).any()):
            problems[r.name] = (
                f'regularizer {r.name!r} never applies: with affinities {r.label_affinities}, its labels '
                f'{present} give every training example weight 0 (clamp(Σ label × affinity, 0, 1) is 0 '
                'wherever they can be drawn)'
            )
    return problems
