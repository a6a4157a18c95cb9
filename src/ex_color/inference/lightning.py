"""`InferenceModule`: the Lightning wrapper for `trainer.predict`, as the seed notebook uses it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import lightning as L
from torch import Tensor, nn

from ex_color.inference import capture_activations, concat_captured
from ex_color.intervention.config import InterventionConfig
from ex_color.intervention.hooks import apply_interventions
from ex_color.model import get_layer


class InferenceModule(L.LightningModule):
    """Lightning wrapper for `trainer.predict`: runs `model` with interventions, capturing layers.

    `predict_step` takes a batch `[B, F]` (or a 1-tuple/list holding it) and returns the model's
    output `[B, K]`. Captured activations accumulate per layer across batches, in order, and
    are read with `read_captured(name)` → `[N, D]`. Captures from an earlier `trainer.predict`
    run are cleared when a new one starts; `clear_captured()` clears them by hand.
    """

    def __init__(
        self,
        model: nn.Module,
        interventions: Iterable[InterventionConfig],
        capture_layers: Iterable[str] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.interventions = list(interventions)
        self.capture_layers = list(capture_layers) if capture_layers is not None else []
        # Fail at construction, naming the valid layers, rather than mid-prediction.
        for name in [*self.capture_layers, *(n for i in self.interventions for n in i.layer_affinities)]:
            get_layer(model, name)
        self._captured: dict[str, list[Tensor]] = {name: [] for name in self.capture_layers}

    def forward(self, x: Tensor) -> Tensor:
        """Model output `[..., K]` for `x` `[..., F]`, with interventions applied and layers captured."""
        with (
            apply_interventions(self.model, self.interventions),
            capture_activations(self.model, self.capture_layers, self._captured),
        ):
            return self.model(x)

    def predict_step(self, batch: Tensor | Sequence[Tensor], batch_idx: int) -> Tensor:
        if isinstance(batch, list | tuple):
            if len(batch) != 1:
                raise ValueError(
                    f'InferenceModule: expected a batch tensor [B, F] or a 1-tuple of it, got {len(batch)} items'
                )
            batch = batch[0]
        return self(batch)

    def on_predict_start(self) -> None:
        self.clear_captured()

    def read_captured(self, name: str) -> Tensor:
        """All activations captured at layer `name`, concatenated over batches: `[N, D]` (CPU)."""
        if name not in self._captured:
            raise KeyError(f'layer {name!r} was not captured; captured layers: {self.capture_layers}')
        return concat_captured(name, self._captured[name])

    def clear_captured(self) -> None:
        """Forget captured activations (the capture layers stay the same)."""
        for batches in self._captured.values():
            batches.clear()
