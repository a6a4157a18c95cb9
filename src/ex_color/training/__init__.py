"""Trainers: the seed-faithful Lightning module and the fast ensemble engine, sharing one schedule."""

from ex_color.training.schedule import TrainingSchedule

__all__ = ['TrainingModule', 'TrainingSchedule']


def __getattr__(name: str) -> object:
    # TrainingModule needs Lightning, which is slow to import; load it on first use.
    if name == 'TrainingModule':
        from ex_color.training.lightning import TrainingModule

        return TrainingModule
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
