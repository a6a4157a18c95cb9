"""The seed-faithful trainer: a LightningModule driven by a dopesheet, for any model and objective.

Forward hooks capture the layers the regularizers name; every step sets the learning
rate and regularizer weights from the schedule, adds the weighted regularization terms
to the objective and logs each term. Use it with `L.Trainer(max_steps=len(dopesheet))`.

Mistakes that would otherwise train silently are reported (as warnings, or errors with
`strict=True`): a regularizer in a phase training never uses, a regularizer whose labels
never weigh a sample in the first steps, a trainer whose step budget is not the
dopesheet's length. A batch in the wrong format is a one-line error at the first step, and
so is a regularized layer that runs twice per forward pass or whose output the regularizer
cannot read (a tuple, or not `[B, D]` with the default `feature_dim`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from ex_color.columns import train_loss_column
from ex_color.loss import (
    COMPLEMENT,
    TOTAL_LOSS,
    TRAIN_PHASE,
    LabelCoverage,
    RegularizerConfig,
    RegularizerCoverageError,
    check_finite,
    phase_problems,
    total_loss,
)
from ex_color.model import forward_hooks, get_layer
from ex_color.temporal import Dopesheet
from ex_color.training.routing import Route, route_gradient
from ex_color.training.schedule import TrainingSchedule

log = logging.getLogger(__name__)

Batch = tuple[Tensor, Mapping[str, Tensor]] | tuple[Tensor, Tensor, Mapping[str, Tensor]]
"""`(x, labels)` (the target is x) or `(x, y, labels)`; labels map name → `[B]` tensor."""
OutputSelector = int | str | Callable[[Any], Tensor]
"""Picks the objective's input from a model's output: a tuple index, a dict key (or named-tuple
field), or a function of the whole output."""

BATCH_FORMAT = '(x, {name: [B] tensor}) or (x, y, {name: [B] tensor})'
"""Logged as `train_loss`, the total; each term is logged as `train_<name>`, so no regularizer may be called this."""
LABEL_CHECK_STEPS = 100
"""By default, a regularizer whose labels weigh no sample in this many first steps is reported."""


WORKER_RESTART_EPOCHS = 10
"""Epochs from which a loader whose workers restart every epoch is worth a warning."""


class TrainingModule(L.LightningModule):
    """Train `model` under a dopesheet schedule, with regularizers on its layers.

    A batch is `(x, labels)` or `(x, y, labels)`, with `labels` a mapping of label name →
    `[B]` tensor (B = `x.shape[0]`; `{}` for none). The loss is
    `objective(output, target) + Σ weight(t) × term`, where the target is `y`, or `x` itself
    (reconstruction) for two-element batches, and `output` is the model's output, or the
    part of it that `output=` selects.

    Args:
        model: any module taking `x`; its layers named by the regularizers are captured.
        dopesheet: the schedule; its `lr` column drives Adam's learning rate and a
            column named like a regularizer weights that regularizer. Step i trains with
            row i; steps past the end hold the last row.
        objective: `(output, target) → scalar`, e.g. `torch.nn.MSELoss()` for
            reconstruction or `torch.nn.CrossEntropyLoss()` with class indices `y`.
        regularizers: the terms to add, each applied to the layers it names; names must be
            unique and not 'loss'. Each named layer must run once per forward pass and output
            one tensor `[B, ...]`: `[B, D]` unless the regularizer's `feature_dim` says otherwise.
        output: what the objective reads when the model returns a tuple, list or dict: an
            index, a key (or a named tuple's field) or a callable taking the raw output.
            Required for such models; a model returning a tensor needs none.
        strict: raise `RegularizerCoverageError` instead of warning for a regularizer that
            never applies (a phase other than 'train', at construction; labels that weigh no
            sample in the first `label_check_steps` steps).
        label_check_steps: how many first steps the label check covers (capped by the
            dopesheet's length; 0 turns it off). Within one step a batch without a
            regularizer's label is normal and the term is skipped; over this many steps it
            is a mistake, such as a label spelt differently in the data.
        planned_steps: the number of steps you mean to train, when deliberately not the
            whole dopesheet (e.g. a short trial); the trainer's step budget is checked
            against it (at least 1; default: `len(dopesheet)`).
        route: gradient routing at one layer (`ex_color.training.routing.Route`): its output keeps its value,
            but each sample's gradient flows only through the dims its labels choose. The layer must output
            `[B, D]` and run once per forward pass.
    """

    def __init__(
        self,
        model: nn.Module,
        dopesheet: Dopesheet,
        objective: Callable[[Tensor, Tensor], Tensor],
        regularizers: Sequence[RegularizerConfig],
        *,
        output: OutputSelector | None = None,
        strict: bool = False,
        label_check_steps: int = LABEL_CHECK_STEPS,
        planned_steps: int | None = None,
        route: Route | None = None,
    ) -> None:
        super().__init__()
        if not (output is None or callable(output) or (isinstance(output, int | str) and not isinstance(output, bool))):
            raise TypeError(
                f'output must be None, an index, a key or a callable, got {type(output).__name__} {output!r}'
            )
        for name, value, least in (('label_check_steps', label_check_steps, 0), ('planned_steps', planned_steps, 1)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
                raise ValueError(f'{name} must be a whole number >= {least}, got {value!r}')
        names = [r.name for r in regularizers]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(
                f'regularizer names must be unique (each names its term and weight column); repeated: {repeated}'
            )
        self.model = model
        self.dopesheet = dopesheet
        self.objective = objective
        self.output = output
        self.strict = strict
        self.regularizers = list(regularizers)
        self.schedule = TrainingSchedule.from_dopesheet(dopesheet, self.regularizers)
        self.planned_steps = len(self.schedule) if planned_steps is None else planned_steps
        self.layer_names = sorted({layer for r in self.regularizers for layer in r.layer_affinities})
        self.route = route
        for name in [*self.layer_names, *([route.layer] if route is not None else [])]:
            get_layer(model, name)  # fail now, not at the first step, if a layer is missing
        for problem in phase_problems(self.regularizers, TRAIN_PHASE):
            self._report(problem)
        self.label_check_steps = min(label_check_steps, len(self.schedule))
        self._coverage: LabelCoverage | None = None
        self._captured: dict[str, Any] = {}
        self._runs: dict[str, int] = {}
        """Layer name → how many times it ran in the current forward pass."""

    def _report(self, problem: str) -> None:
        if self.strict:
            raise RegularizerCoverageError(problem)
        log.warning(problem)

    def forward(self, x: Tensor) -> Any:
        return self.model(x)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=float(self.schedule.lr[0]))

    def on_train_start(self) -> None:
        coverage = LabelCoverage(self.regularizers, TRAIN_PHASE)
        self._coverage = coverage if coverage.regularizers and self.label_check_steps > 0 else None
        self._check_step_budget()
        self._check_worker_restarts()

    def on_train_end(self) -> None:
        if self._coverage is not None:  # a run shorter than the check: report what it saw
            self._check_coverage()

    def _check_step_budget(self) -> None:
        """Warn once when the trainer will run more or fewer steps than the dopesheet plans."""
        trainer = self.trainer
        max_steps = trainer.max_steps
        try:  # the smaller of max_steps and max_epochs × batches per epoch, as Lightning counts them
            budget = float(trainer.estimated_stepping_batches)
        except Exception:  # e.g. gradient accumulation that varies by epoch: trust max_steps alone
            budget = float(max_steps)
        if budget < 0:  # an iterable dataset without max_steps
            budget = math.inf
        if max_steps >= 0 and budget == max_steps:
            source = f'Trainer(max_steps={max_steps})'
        else:
            source = f'max_epochs={trainer.max_epochs} × {trainer.num_training_batches} batches per epoch'
            source += f', before max_steps={max_steps}' if max_steps >= 0 else ', max_steps unset'
        planned, length = self.planned_steps, len(self.schedule)
        if budget == planned:
            return
        shown = 'unlimited' if math.isinf(budget) else f'{int(budget)}'
        plan = f'the dopesheet has {length} (steps 0–{length - 1})'
        if planned != length:
            plan = f'{planned} were planned (planned_steps; the dopesheet has {length})'
        if budget > length:
            last = self.schedule.weights_at(length - 1)
            held = ', '.join([f'lr={self.schedule.lr[-1]:g}', *(f'{n}={w:g}' for n, w in last.items())])
            what = f'steps {length} onward hold its last row ({held})'
        elif budget > planned:
            what = f'the steps past {planned} follow the dopesheet up to step {int(budget) - 1}'
        else:
            what = f'training stops early: steps {int(budget)}–{planned - 1} never run'
        log.warning(
            'the trainer will run %s steps (%s) but %s: %s; use L.Trainer(max_steps=%d) to follow the schedule',
            shown,
            source,
            plan,
            what,
            planned,
        )

    def _check_worker_restarts(self) -> None:
        """Warn once when the loader's worker processes start afresh every epoch of a many-epoch run.

        The seed's loader (`num_workers=2`, 16 batches per epoch) restarts its workers 188 times in
        Ex 2.9's 3001 steps. Under the spawn or forkserver start method (macOS, Windows, Python ≥ 3.14)
        each restart imports torch again, ~1.5 s on a two-core machine: about 5 minutes in all, against
        seconds for the training itself (`benchmarks/notebook_path.py`).
        """
        loader = getattr(self.trainer, 'train_dataloader', None)
        workers = getattr(loader, 'num_workers', 0)
        if not workers or getattr(loader, 'persistent_workers', False):
            return
        batches = self.trainer.num_training_batches
        if not isinstance(batches, int) or batches <= 0 or math.isinf(batches):
            return
        epochs = math.ceil(self.planned_steps / batches)
        if epochs < WORKER_RESTART_EPOCHS:
            return
        log.warning(
            'the DataLoader starts its %d worker processes afresh for each of about %d epochs (%d batches each); '
            'pass persistent_workers=True, or num_workers=0 for data this small (with the spawn or forkserver '
            'start method each restart imports torch again, which can take longer than the training)',
            workers,
            epochs,
            batches,
        )

    def _check_coverage(self) -> None:
        coverage, self._coverage = self._coverage, None
        assert coverage is not None
        for problem in coverage.problems():
            self._report(problem)

    def _schedule_step(self) -> int:
        return min(self.global_step, len(self.schedule) - 1)

    def on_train_batch_start(self, batch: Batch, batch_idx: int) -> None:
        step = self._schedule_step()
        lr = float(self.schedule.lr[step])
        for optimizer in self.trainer.optimizers:
            for group in optimizer.param_groups:
                group['lr'] = lr
        frame = self.dopesheet[step]
        if frame.is_phase_start:
            log.info('Starting phase: %s', frame.phase)

    def _capture(self, layer: str, output: Any) -> None:
        """Forward-hook callback: keep the layer's output and count its runs (checked after the pass)."""
        self._runs[layer] = self._runs.get(layer, 0) + 1
        self._captured.setdefault(layer, output)

    def _check_captured(self, batch_size: int) -> None:
        """Each captured layer ran once and gives the regularizers reading it what they need (shapes only)."""
        active = [r for r in self.regularizers if r.phase == TRAIN_PHASE]
        for layer in dict.fromkeys(layer for r in active for layer in r.layer_affinities):
            if self._runs.get(layer, 0) > 1:
                raise ValueError(
                    f'layer {layer!r} ran {self._runs[layer]} times in one forward pass; a regularizer needs one '
                    'activation per sample: give each use its own module'
                )
        for regularizer in active:
            for layer in regularizer.layer_affinities:
                if layer in self._captured:  # a layer that never ran is total_loss's KeyError
                    check_activation(regularizer, layer, self._captured[layer], batch_size)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        x, target, labels = unpack_batch(batch)
        step = self._schedule_step()
        if self._coverage is not None:
            self._coverage.update(labels)
            if self._coverage.steps >= self.label_check_steps:
                self._check_coverage()
        try:
            # Hooks only around the forward pass: a failed step leaves the model as it was, unhooked. The route's
            # hook is registered first, so the regularizers capture the routed output.
            with (
                routed_layer(self.model, self.route, labels),
                forward_hooks(self.model, self.layer_names, self._capture),
            ):
                raw = self.model(x)
            self._check_captured(x.shape[0])
            output = select_output(raw, self.output)
            objective = self.objective(output, target)
            if not isinstance(objective, Tensor) or objective.ndim != 0:
                shape = list(objective.shape) if isinstance(objective, Tensor) else type(objective).__name__
                raise ValueError(f'the objective returned {shape}; expected a scalar tensor (e.g. reduction="mean")')
            loss, terms = total_loss(
                objective, self.regularizers, self._captured, labels, self.schedule.weights_at(step), phase=TRAIN_PHASE
            )
        finally:
            self._captured.clear()
            self._runs.clear()
        check_finite(terms, self.regularizers, step)
        batch_size = x.shape[0]
        self.log(train_loss_column(TOTAL_LOSS), loss, prog_bar=True, batch_size=batch_size)
        for name, value in terms.items():
            self.log(train_loss_column(name), value, batch_size=batch_size)
        self.log('lr', float(self.schedule.lr[step]), batch_size=batch_size)
        for name, weight in self.schedule.weights_at(step).items():
            self.log(f'weight_{name}', weight, batch_size=batch_size)
        return loss


@contextmanager
def routed_layer(model: nn.Module, route: Route | None, labels: Mapping[str, Tensor]) -> Iterator[None]:
    """Within the block, the route's layer passes its output on with the gradient masked for these labels."""
    if route is None:
        yield
        return

    def hook(_module: nn.Module, _inputs: object, output: Tensor) -> Tensor:
        if not isinstance(output, Tensor) or output.ndim != 2:
            raise ValueError(
                f'route at layer {route.layer!r}: the layer outputs {_describe(output)}; expected one tensor [B, D]'
            )
        return route_gradient(output, route.mask(labels, output.shape[-1]).to(output.dtype))

    handle = get_layer(model, route.layer).register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def unpack_batch(batch: object) -> tuple[Tensor, Tensor, Mapping[str, Tensor]]:
    """`(x, labels)` → `(x, x, labels)`; `(x, y, labels)` → as is; anything else is a one-line error.

    Checks (shapes only, no device sync): x is a tensor `[B, ...]`; labels a mapping of label
    name → tensor `[B]`. A TypeError or ValueError states the expected format otherwise.
    """
    if not isinstance(batch, tuple | list) or len(batch) not in (2, 3):
        raise TypeError(f'a batch is {_describe(batch)}; expected {BATCH_FORMAT}')
    x, labels = batch[0], batch[-1]
    if not isinstance(x, Tensor) or x.ndim == 0:
        raise TypeError(f'batch[0] (x) is {_describe(x)}; expected a tensor [B, ...] in a batch {BATCH_FORMAT}')
    if len(batch) == 2 and isinstance(labels, Tensor):
        raise ValueError(
            f'a batch is (x, y) of tensors {list(x.shape)} and {list(labels.shape)}, without labels; expected '
            f'{BATCH_FORMAT} (add the labels per batch, e.g. in a collate_fn; {{}} for none)'
        )
    if not isinstance(labels, Mapping):
        raise TypeError(f'the labels (batch[{len(batch) - 1}]) are {_describe(labels)}; expected {BATCH_FORMAT}')
    target = batch[1] if len(batch) == 3 else x
    if not isinstance(target, Tensor) or target.ndim == 0:
        raise TypeError(f'batch[1] (y) is {_describe(target)}; expected a tensor [B, ...] in a batch {BATCH_FORMAT}')
    n = x.shape[0]
    for name, values in labels.items():
        if not isinstance(name, str) or not name or name.startswith(COMPLEMENT):
            raise ValueError(
                f'label name {name!r} in the batch: expected a non-empty string not starting with {COMPLEMENT!r} '
                f'(reserved for complements in label affinities), in a batch {BATCH_FORMAT}'
            )
        if not isinstance(values, Tensor):
            raise TypeError(f'label {name!r} is {_describe(values)}; expected a tensor [B] = [{n}] in {BATCH_FORMAT}')
        if tuple(values.shape) != (n,):
            raise ValueError(
                f'label {name!r} has shape {list(values.shape)}; expected [B] = [{n}] (one value per sample of x) '
                f'in {BATCH_FORMAT}'
            )
    return x, target, labels


def check_activation(regularizer: RegularizerConfig, layer: str, activation: object, batch_size: int) -> None:
    """A one-line error unless `activation` is a tensor the regularizer can read (shapes only, no device sync).

    It must be one tensor `[B, ...]` with B = `batch_size`; with the default `feature_dim=-1`,
    exactly `[B, D]`, since more dims would be taken for ensemble members.
    """
    where = f'regularizer {regularizer.name!r}: layer {layer!r}'
    if not isinstance(activation, Tensor):
        raise TypeError(
            f'{where} outputs {_describe(activation)}; a regularized layer must output one tensor: name the module '
            'that computes the part you mean (wrap it in a module of its own if none does)'
        )
    shape = list(activation.shape)
    if activation.ndim == 0 or shape[0] != batch_size:
        raise ValueError(
            f'{where} outputs a tensor {shape}; expected the batch first, [B, ...] with B = {batch_size} '
            '(the batch size of x)'
        )
    if regularizer.feature_dim == -1 and activation.ndim != 2:
        hint = (
            'a layer with one value per sample has no features to regularize'
            if activation.ndim == 1
            else "pass feature_dim= with the features' axis (e.g. 2 for [B, T, D], 1 for [B, C, H, W])"
        )
        raise ValueError(f'{where} outputs {shape}, but feature_dim=-1 (the default) expects [B, D]; {hint}')


def select_output(raw: Any, selector: OutputSelector | None) -> Tensor:
    """The part of a model's output that the objective reads (see `TrainingModule`'s `output`)."""
    if selector is None:
        if isinstance(raw, Tensor):
            return raw
        raise TypeError(
            f'the model returned {_describe(raw)}; pass output= to TrainingModule (an index, a key or a '
            'callable) to choose what the objective reads'
        )
    if callable(selector):
        chosen = selector(raw)
    elif isinstance(selector, int):
        if not isinstance(raw, tuple | list) or not -len(raw) <= selector < len(raw):
            raise TypeError(
                f'output={selector} needs a tuple or list with that index; the model returned {_describe(raw)}'
            )
        chosen = raw[selector]
    elif isinstance(raw, Mapping) and selector in raw:
        chosen = raw[selector]
    elif isinstance(raw, tuple) and selector in getattr(raw, '_fields', ()):
        chosen = getattr(raw, selector)
    else:
        raise TypeError(f'output={selector!r} needs a dict with that key; the model returned {_describe(raw)}')
    if not isinstance(chosen, Tensor):
        raise TypeError(f'output={selector!r} selected {_describe(chosen)}; expected a tensor for the objective')
    return chosen


def _describe(value: object) -> str:
    """A short description of a value for error messages: its type, and shapes or keys."""
    if value is None:
        return 'None'
    if isinstance(value, Tensor):
        return f'a tensor {list(value.shape)}'
    if isinstance(value, Mapping):
        return f'a {type(value).__name__} with keys {list(value)[:8]}'
    if isinstance(value, tuple | list):
        return f'a {type(value).__name__} of {len(value)} ({", ".join(type(v).__name__ for v in value[:8])})'
    return f'a {type(value).__name__}'
