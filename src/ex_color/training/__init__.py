"""Trainers: the seed-faithful Lightning module and the shared schedule."""

from ex_color.training.lightning import TrainingModule
from ex_color.training.schedule import TrainingSchedule

__all__ = ['TrainingModule', 'TrainingSchedule']
