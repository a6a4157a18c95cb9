"""Colour data: cubes of colours, cyclic ranges, colour maths, named colours and generated labels."""

from ex_color.data.color import blueness, greenness, hsv_similarity, hsv_to_rgb, redness, rgb_to_hsv
from ex_color.data.color_cube import ColorCube
from ex_color.data.cube_sampler import CubeSamples, cube_training_tensors, vibrancy
from ex_color.data.cyclic import arange_cyclic, isclose_cyclic
from ex_color.data.labels import collate_with_generated_labels, label_probabilities, sample_labels
from ex_color.data.named_colors import NAMED_COLORS, NAMED_COLORS_HSV, named_colors_hsv, named_colors_rgb

__all__ = [
    'NAMED_COLORS',
    'NAMED_COLORS_HSV',
    'ColorCube',
    'CubeSamples',
    'arange_cyclic',
    'blueness',
    'collate_with_generated_labels',
    'cube_training_tensors',
    'greenness',
    'hsv_similarity',
    'hsv_to_rgb',
    'isclose_cyclic',
    'label_probabilities',
    'named_colors_hsv',
    'named_colors_rgb',
    'redness',
    'rgb_to_hsv',
    'sample_labels',
    'vibrancy',
]
