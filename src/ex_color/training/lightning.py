"""The seed-faithful trainer: a LightningModule driven by a dopesheet.

Forward hooks capture the layers the regularizers name; every step sets the learning
rate and regularizer weights from the schedule, adds the weighted regularization terms
to the objective and logs each term. Use it with `L.Trainer(max_steps=len(dopesheet))`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence

import lightning as L
import torch
from torch import Tensor, nn

from ex_color.loss import RegularizerConfig, check_finite, total_loss
from ex_color.model import forward_hooks, get_layer
from ex_color.temporal import Dopesheet
from ex_color.training.schedule import TrainingSchedule

log = logging.getLogger(__name__)

Batch = tuple[Tensor, Mapping[str, Tensor]]


class TrainingModule(L.LightningModule):
    """Train `model` to reconstruct its input under a dopesheet schedule.

    Args:
        model: any module mapping colours `[B, 3]` to reconstructions `[B, 3]`.
        dopesheet: the schedule; its `lr` column drives Adam's learning rate and a
            column named like a regularizer weights that regularizer.
        objective: reconstruction loss, e.g. `torch.nn.MSELoss()`.
        regularizers: the terms to add, each applied to the layers it names.
    """

    def __init__(
        self,
        model: nn.Module,
        dopesheet: Dopesheet,
        objective: Callable[[Tensor, Tensor], Tensor],
        regularizers: Sequence[RegularizerConfig],
    ) -> None:
        super().__init__()
        self.model = model
        self.dopesheet = dopesheet
        self.objective = objective
        self.regularizers = list(regularizers)
        self.schedule = TrainingSchedule.from_dopesheet(dopesheet, self.regularizers)
        self.layer_names = sorted({layer for r in self.regularizers for layer in r.layer_affinities})
        for name in self.layer_names:
            get_layer(model, name)  # fail now, not at the first step, if a layer is missing
        self._captured: dict[str, Tensor] = {}
        self._hooks = contextlib.ExitStack()

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=float(self.schedule.lr[0]))

    def on_train_start(self) -> None:
        self._hooks.enter_context(forward_hooks(self.model, self.layer_names, self._captured.__setitem__))

    def on_train_end(self) -> None:
        self._hooks.close()
        self._captured.clear()

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

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        colours, labels = batch
        step = self._schedule_step()
        outputs = self.model(colours)
        recon = self.objective(outputs, colours)
        loss, terms = total_loss(
            recon, self.regularizers, self._captured, labels, self.schedule.weights_at(step), phase='train'
        )
        check_finite(terms, self.regularizers, step)
        batch_size = colours.shape[0]
        self.log('train_loss', loss, prog_bar=True, batch_size=batch_size)
        for name, value in terms.items():
            self.log(f'train_{name}', value, batch_size=batch_size)
        self.log('lr', float(self.schedule.lr[step]), batch_size=batch_size)
        for name, weight in self.schedule.weights_at(step).items():
            self.log(f'weight_{name}', weight, batch_size=batch_size)
        return loss
