"""A small, fast version of the Ex 2.9 set-up for trainer tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ex_color.data import ColorCube, arange_cyclic
from ex_color.data.cube_sampler import cube_training_tensors
from ex_color.data.labels import seed_labels
from ex_color.loss import AngularAnchor, AntiAnchor, AxisAlignedSubspace, RegularizerConfig, Separate, Unitarity
from ex_color.model import CNColorMLP
from ex_color.temporal import Dopesheet
from ex_color.training.data import TrainingData
from ex_color.training.schedule import TrainingSchedule

# Ex 2.9's dopesheet with every step divided by 10: 301 steps, same shape.
SHORT_SHEET = """STEP,PHASE,ACTION,lr,reg-separate,reg-anchor,reg-planar-d,reg-anti-anchor,reg-unit
0,Train,,1e-8,0.01,0.02,0.001,0.002,0.01
+1,,,0.01,,,,,
100,,,0.1,0.01,0.05,0.01,0.01,0.1
+0.9,,,,0,0,0,0,0
300,,,0.05,0,0,0,0,0
"""


def seed_regularizers() -> list[RegularizerConfig]:
    red = torch.tensor([1.0, 0, 0, 0, 0])
    return [
        RegularizerConfig('reg-unit', Unitarity(), None, ['encoder']),
        RegularizerConfig('reg-anchor', AngularAnchor(red), {'red': 1.0}, ['bottleneck']),
        RegularizerConfig('reg-separate', Separate(power=100.0, shift=True), None, ['bottleneck']),
        RegularizerConfig('reg-planar-d', AxisAlignedSubspace((2, 3, 4)), {'desaturated': 1.0}, ['bottleneck']),
        RegularizerConfig('reg-anti-anchor', AntiAnchor(-red), None, ['bottleneck']),
    ]


def make_model() -> CNColorMLP:
    return CNColorMLP(5, n_nonlinear=2)


@pytest.fixture
def short_sheet() -> Dopesheet:
    return Dopesheet.from_string(SHORT_SHEET)


@pytest.fixture
def regularizers() -> list[RegularizerConfig]:
    return seed_regularizers()


@pytest.fixture
def schedule(short_sheet: Dopesheet, regularizers: list[RegularizerConfig]) -> TrainingSchedule:
    return TrainingSchedule.from_dopesheet(short_sheet, regularizers)


@pytest.fixture
def data() -> TrainingData:
    cube = ColorCube.from_hsv(h=arange_cyclic(step_size=1 / 12), s=np.linspace(0, 1, 5), v=np.linspace(0, 1, 5))
    samples = cube_training_tensors(cube)
    return TrainingData(
        colors=samples.colors,
        weights=samples.weights,
        labels=seed_labels(),
        vibrancies=samples.vibrancies,
        batch_size=32,
    )
