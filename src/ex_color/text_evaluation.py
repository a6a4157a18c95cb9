"""What we measure on a text model, with or without an edit: held-out cross-entropy by class of the next
character, its ratio to the untouched model's, and the probability the model gives to the concept.

All figures are over the corpus's held-out part, cut into consecutive windows of `context + 1`
characters (`data.corpus.held_out_windows`): every position of every window predicts its next character.

- `class_ce[c]`: mean cross-entropy (nats) at the positions whose next character is of class c
  (`digit`, `upper`, `lower`, `space`, `punct`; `all` for every position).
- `class_ce_ratio[c]`: `class_ce[c]` over the untouched model's (1 for the untouched model itself).
- The concept: the positions an evaluation's target labels mark (the next character in the
  label's set for a `next-token` label, the current one for `current-token`). `target_ratio` is
  the cross-entropy ratio at those positions; `collateral_ratio` is the worst ratio, over the
  classes, at the positions outside the concept (`collateral_class` says which class).
- `target_mass`: the mean probability the model gives to *some* character of the concept at the
  concept's positions (for a `current-token` concept: the probability that the *next* character is one
  of its characters, where the current one is); `other_mass`: the same elsewhere;
  `untouched_target_mass`: the untouched model's `target_mass` at the same concept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ex_color.config import ExperimentConfig, text_corpus, text_section, token_labels
from ex_color.data.corpus import ALL, CHAR_CLASSES, Corpus, held_out_windows
from ex_color.data.token_labels import TokenLabel
from ex_color.intervention import InterventionConfig, apply_interventions
from ex_color.variants import ErasureEdit, Variant

CHUNK_WINDOWS = 128
"""Held-out windows per forward pass."""
PROMPTS = 4
"""Prompts in a report: held-out text that ends just before the concept."""
PROMPT_CHARS = 40
CONTINUATION_CHARS = 60
NO_CLASS = 'none'
"""`collateral_class` when no position lies outside the concept."""
TEMPERATURE = 0.7
"""Sampling temperature of the continuations (the same random draws for every version of a model)."""


@dataclass(frozen=True)
class TextEvaluation:
    """The reported figures for one version of a text model."""

    class_ce: dict[str, float]
    """Held-out cross-entropy (nats) per class of the next character, and `all`."""
    class_ce_ratio: dict[str, float]
    """`class_ce` over the untouched model's."""
    target_ce: float
    target_ratio: float
    collateral_ratio: float
    collateral_class: str
    target_mass: float
    other_mass: float
    targets: list[str] = field(default_factory=list)
    """The labels that mark the concept's positions."""
    edit: ErasureEdit | None = None
    untouched_target_mass: float = float('nan')
    """`target_mass` of the untouched model at this version's concept (its own for an untouched model)."""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(replace(self, edit=None)), 'edit': self.edit.to_dict() if self.edit is not None else {}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextEvaluation:
        edit = data.get('edit') or None
        return cls(**{**data, 'edit': ErasureEdit.from_dict(edit) if edit is not None else None})

    def row(self, name: str) -> dict[str, float]:
        """This variant's columns of a sweep's table (`ex_color.columns.text_evaluation_columns`)."""
        row = {f'{name}_{m}': getattr(self, m) for m in ('target_ratio', 'collateral_ratio', 'target_mass')}
        row |= {f'{name}_ce_{c}': v for c, v in self.class_ce.items()}
        row |= {f'{name}_ratio_{c}': v for c, v in self.class_ce_ratio.items()}
        return row


@dataclass(frozen=True)
class PositionFigures:
    """Per held-out position: cross-entropy and the probability on the concept's characters, `[W, T]` each."""

    ce: Tensor
    mass: Tensor


def held_out(config: ExperimentConfig) -> Tensor:
    """The evaluation windows `[W, context + 1]`."""
    return held_out_windows(text_corpus(config), text_section(config).context)


def concept_of(labels: Mapping[str, TokenLabel], targets: Sequence[str], x: Tensor, y: Tensor, corpus: Corpus):
    """The concept's positions `[W, T]` (bool) and its characters' membership `[vocab]` for these target labels."""
    positions = torch.zeros(x.shape, dtype=torch.bool)
    members = torch.zeros(len(corpus.vocab))
    for name in targets:
        label = labels[name]
        chars = corpus.members(label.chars)
        positions |= label.indicator(x, y, chars).bool()
        members = torch.maximum(members, chars)
    return positions, members


def position_figures(
    model: nn.Module, interventions: Sequence[InterventionConfig], windows: Tensor, members: Tensor
) -> PositionFigures:
    """Cross-entropy and probability mass on `members` at every position of `windows`, with `interventions`."""
    x, y = windows[:, :-1], windows[:, 1:]
    ce, mass = [], []
    model.eval()
    with torch.no_grad(), apply_interventions(model, interventions):
        for start in range(0, len(x), CHUNK_WINDOWS):
            logits = model(x[start : start + CHUNK_WINDOWS]).float()
            target = y[start : start + CHUNK_WINDOWS]
            ce.append(F.cross_entropy(logits.transpose(1, 2), target, reduction='none'))
            mass.append(logits.softmax(-1) @ members)
    return PositionFigures(torch.cat(ce), torch.cat(mass))


def _class_means(values: Tensor, classes: Tensor, where: Tensor | None = None) -> dict[str, float]:
    """Mean of `values [W, T]` per class of the next character (within `where`, if given), and over all."""
    keep = torch.ones_like(classes, dtype=torch.bool) if where is None else where
    means = {}
    for i, name in enumerate(CHAR_CLASSES):
        selected = values[(classes == i) & keep]
        means[name] = float(selected.double().mean()) if selected.numel() else float('nan')
    means[ALL] = float(values[keep].double().mean())
    return means


def _mean(values: Tensor, where: Tensor) -> float:
    selected = values[where]
    return float(selected.double().mean()) if selected.numel() else float('nan')


def evaluate_text_variants(
    variants: Mapping[str, Variant], config: ExperimentConfig, untouched: Mapping[str, str] | None = None
) -> dict[str, TextEvaluation]:
    """Every variant's figures. `untouched` maps a variant to the untouched variant its ratios are taken to
    (default: `baseline`; a variant maps to itself when it is untouched)."""
    corpus = text_corpus(config)
    windows = held_out(config)
    x, y = windows[:, :-1], windows[:, 1:]
    classes = corpus.class_ids()[y]
    labels = token_labels(config)
    sections = {e.name: e for e in config.evaluations}
    first = config.evaluations[0].targets if config.evaluations else []
    figures: dict[str, tuple[PositionFigures, Tensor, list[str]]] = {}
    concepts: dict[str, tuple[Tensor, Tensor]] = {}
    for name, variant in variants.items():
        targets = sections[name].targets if name in sections else first
        positions, members = concepts[name] = concept_of(labels, targets, x, y, corpus)
        figures[name] = (position_figures(variant.model, variant.interventions, windows, members), positions, targets)
    reference = dict(untouched or {})
    results = {}
    for name, (measured, positions, targets) in figures.items():
        base_name = reference.get(name, 'baseline')
        base, _, base_targets = figures[base_name]
        base_mass = base.mass
        if sorted(base_targets) != sorted(targets):  # another concept than the untouched model was measured on
            untouched_variant = variants[base_name]
            base_mass = position_figures(
                untouched_variant.model, untouched_variant.interventions, windows, concepts[name][1]
            ).mass
        ce = _class_means(measured.ce, classes)
        outside = ~positions
        ratio = {c: ce[c] / base_ce for c, base_ce in _class_means(base.ce, classes).items()}
        collateral = {
            c: _class_means(measured.ce, classes, outside)[c] / v
            for c, v in _class_means(base.ce, classes, outside).items()
            if c != ALL and v == v  # a class with no position outside the concept has a NaN mean: skipped
        }
        # No class outside the concept (a concept of every character): nothing to damage, so no collateral figure.
        worst = max(collateral, key=lambda c: collateral[c]) if collateral else NO_CLASS
        target_ce = _mean(measured.ce, positions)
        results[name] = TextEvaluation(
            class_ce=ce,
            class_ce_ratio=ratio,
            target_ce=target_ce,
            target_ratio=target_ce / _mean(base.ce, positions),
            collateral_ratio=collateral.get(worst, float('nan')),
            collateral_class=worst,
            target_mass=_mean(measured.mass, positions),
            other_mass=_mean(measured.mass, outside),
            targets=list(targets),
            edit=variants[name].edit,
            untouched_target_mass=_mean(base_mass, positions),
        )
    return results


def text_validation(model: nn.Module, config: ExperimentConfig) -> dict[str, float]:
    """`val_recon`: the untouched model's held-out cross-entropy over every position."""
    figures = position_figures(model, [], held_out(config), torch.zeros(len(text_corpus(config).vocab)))
    return {'val_recon': float(figures.ce.double().mean())}


def prompts(config: ExperimentConfig, count: int = PROMPTS) -> list[str]:
    """`count` held-out passages of `PROMPT_CHARS` that end just before a position of the first evaluation's concept
    (spread over the held-out text), so a continuation shows whether the concept still appears."""
    corpus = text_corpus(config)
    tokens = corpus.held_out
    x, y = tokens[:-1].unsqueeze(0), tokens[1:].unsqueeze(0)
    targets = config.evaluations[0].targets if config.evaluations else []
    positions, _ = concept_of(token_labels(config), targets, x, y, corpus)
    ends = positions[0].nonzero().flatten()
    ends = ends[ends >= PROMPT_CHARS]
    if not len(ends):
        return []
    picked = ends[torch.linspace(0, len(ends) - 1, count).long().unique()]
    return [corpus.decode(tokens[int(end) - PROMPT_CHARS + 1 : int(end) + 1]) for end in picked]


def continue_text(
    model: nn.Module,
    interventions: Sequence[InterventionConfig],
    corpus: Corpus,
    prompt: str,
    *,
    chars: int = CONTINUATION_CHARS,
    seed: int = 0,
    temperature: float = TEMPERATURE,
) -> str:
    """`chars` characters sampled after `prompt` (each from the softmax at `temperature`, from a generator seeded
    with `seed`, so every version of a model draws the same random numbers)."""
    generator = torch.Generator().manual_seed(seed)
    ids = corpus.encode(prompt).unsqueeze(0)
    context = getattr(model, 'context', ids.shape[-1] + chars)
    model.eval()
    with torch.no_grad(), apply_interventions(model, interventions):
        for _ in range(chars):
            logits = model(ids[:, -context:])[0, -1].float() / temperature
            uniform = torch.rand((), generator=generator)
            cumulative = logits.softmax(-1).double().cumsum(-1)
            next_id = int(torch.searchsorted(cumulative, uniform.double().unsqueeze(0)).clamp(max=len(cumulative) - 1))
            ids = torch.cat([ids, torch.tensor([[next_id]])], dim=1)
    return corpus.decode(ids[0, -chars:].tolist())


__all__ = [
    'TextEvaluation',
    'concept_of',
    'continue_text',
    'evaluate_text_variants',
    'held_out',
    'position_figures',
    'prompts',
    'text_validation',
]
