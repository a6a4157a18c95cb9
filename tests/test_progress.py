"""Progress: a chunk's part of the bar, and what the bar says once the chunk's training is done."""

from __future__ import annotations

from ex_color.progress import Progress


def test_a_part_moves_the_bar_by_its_models_and_says_what_follows_its_last_step():
    with Progress('Sweep', total=100, completed=40, enabled=False) as bar:
        advance = bar.part(3, steps=20, then='evaluating 3 models')
        advance(10)
        assert (bar.completed, bar.note) == (70, '')
        advance(20)
        assert (bar.completed, bar.note) == (100, 'evaluating 3 models')


def test_a_part_without_steps_never_changes_the_note():
    with Progress('Sweep', total=10, enabled=False) as bar:
        advance = bar.part(1)
        advance(10)
        assert (bar.completed, bar.note) == (10, '')
