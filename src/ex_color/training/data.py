"""What the trainers sample from: colours, their sampling weights and their concept labels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property, partial

from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from ex_color.data.cube_sampler import vibrancy
from ex_color.data.labels import ConceptLabel, collate_with_labels, probabilities_of


@dataclass(frozen=True)
class TrainingData:
    """Training colours with their sampling weights and label definitions.

    Batches are drawn with replacement, weighted by `weights`. With `soft=False` each
    sample's labels are fresh Bernoulli draws from its probabilities (noisy on purpose, as
    in the seed); with `soft=True` the labels are the probabilities themselves.
    """

    colors: Tensor
    """RGB `[N, 3]` float32."""
    weights: Tensor
    """Sampling weight per colour `[N]`."""
    labels: Mapping[str, ConceptLabel]
    """Label name → definition."""
    vibrancies: Tensor | None = None
    """S·V per colour `[N]` (computed from `colors` when None)."""
    soft: bool = False
    batch_size: int = 64

    def loader(self) -> DataLoader:
        """Batches of `(colours [B, 3], labels {name: [B]})` as the seed draws them: `batch_size` colours with
        replacement, weighted by `weights`, labelled by `collate_with_labels` (seed torch's RNG to repeat them)."""
        vibrancies = self.vibrancies if self.vibrancies is not None else vibrancy(self.colors)
        dataset = TensorDataset(self.colors, vibrancies)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=WeightedRandomSampler(self.weights.tolist(), num_samples=len(dataset), replacement=True),
            collate_fn=partial(collate_with_labels, labels=dict(self.labels), soft=self.soft),
        )

    @cached_property
    def label_probabilities(self) -> dict[str, Tensor]:
        """Label name → probability per colour `[N]` (labels with scale 0 left out)."""
        return probabilities_of(self.labels, self.colors, self.vibrancies)
