"""Generated concept labels (the seed's import path); the code lives in `ex_color.data.labels`."""

from ex_color.data.labels import collate_with_generated_labels, label_probabilities, sample_labels

__all__ = ['collate_with_generated_labels', 'label_probabilities', 'sample_labels']
