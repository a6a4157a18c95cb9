"""Regularizers that would silently never apply: a phase nobody trains in, labels that never come."""

import torch

from ex_color.loss import (
    LabelCoverage,
    RegularizerConfig,
    Unitarity,
    expected_weight_problems,
    phase_problems,
)


def reg(name: str, affinities=None, phase='train') -> RegularizerConfig:
    return RegularizerConfig(name, Unitarity(), affinities, ['a'], phase=phase)


def test_phase_problems_name_the_regularizer_and_the_phase():
    problems = phase_problems([reg('reg-a'), reg('reg-b', phase='Train')])
    assert len(problems) == 1
    assert problems[0].startswith("regularizer 'reg-b' has phase 'Train', but training runs in phase 'train'")


def test_coverage_reports_labels_that_never_appeared_and_what_the_batches_carried():
    coverage = LabelCoverage([reg('reg-anchor', {'cluster2': 1.0}), reg('reg-ok', {'c2': 1.0}), reg('reg-all')])
    for _ in range(3):
        coverage.update({'c2': torch.tensor([0.0, 1.0]), 'c3': torch.tensor([1.0, 0.0])})
    assert coverage.problems() == [
        "regularizer 'reg-anchor' matched no label in the first 3 steps: its labels ['cluster2'] never appeared; "
        "batches carried ['c2', 'c3']"
    ]


def test_coverage_reports_labels_that_appeared_but_weighed_nothing():
    coverage = LabelCoverage([reg('reg-zero', {'c2': 1.0}), reg('reg-off', {'c2': 0.0}), reg('reg-not', {'~c2': 1.0})])
    coverage.update({'c2': torch.zeros(4)})
    problems = coverage.problems()
    assert [p.split("'")[1] for p in problems] == ['reg-zero', 'reg-off']  # '~c2' weighs all-zero c2 as 1
    assert 'weighed every sample 0 in the first 1 step' in problems[0]


def test_a_label_seen_once_is_enough():
    coverage = LabelCoverage([reg('reg', {'c2': 1.0})])
    coverage.update({'c2': torch.zeros(4)})
    coverage.update({'c3': torch.ones(4)})
    coverage.update({'c2': torch.tensor([0.0, 0.0, 1.0, 0.0])})
    assert coverage.problems() == []


def test_a_complement_needs_its_label():
    coverage = LabelCoverage([reg('reg', {'~red': 1.0})])
    coverage.update({'blue': torch.ones(2)})
    assert "its labels ['red'] never appeared" in coverage.problems()[0]


def test_other_phases_are_not_tracked():
    coverage = LabelCoverage([reg('reg', {'x': 1.0}, phase='val')])
    coverage.update({})
    assert coverage.problems() == []


def test_expected_weight_problems():
    probabilities = {'red': torch.tensor([0.0, 0.5, 0.0]), 'always': torch.ones(3), 'never': torch.zeros(3)}
    regularizers = [
        reg('reg-red', {'red': 1.0}),
        reg('reg-never', {'never': 1.0}),
        reg('reg-not-always', {'~always': 1.0}),
        reg('reg-not-never', {'~never': 1.0}),
        reg('reg-zero', {'red': 0.0}),
        reg('reg-absent', {'green': 1.0}),
        reg('reg-all'),
    ]
    problems = expected_weight_problems(regularizers, probabilities)
    assert sorted(problems) == ['reg-absent', 'reg-never', 'reg-not-always', 'reg-zero']
    assert "labels ['green'] are never in a batch" in problems['reg-absent']
    # Only the examples training draws count: red's one non-zero example is never drawn here.
    drawn = torch.tensor([1.0, 0.0, 1.0])
    assert 'reg-red' in expected_weight_problems([regularizers[0]], probabilities, drawn)


def test_a_complement_that_weighs_nothing_says_every_sample_carried_its_label():
    coverage = LabelCoverage([reg('reg-not', {'~red': 1.0}), reg('reg-mixed', {'blue': 1.0, '~red': 0.5})])
    coverage.update({'red': torch.ones(3), 'blue': torch.zeros(3)})
    assert coverage.problems() == [
        "regularizer 'reg-not' weighed every sample 0 in the first 1 step: every sample carried 'red', so '~red' is 0 "
        'everywhere (clamp(Σ label × affinity, 0, 1) was always 0)',
        "regularizer 'reg-mixed' weighed every sample 0 in the first 1 step: no sample carried 'blue'; every sample "
        "carried 'red', so '~red' is 0 everywhere (clamp(Σ label × affinity, 0, 1) was always 0)",
    ]


def test_a_zero_or_negative_affinity_gets_no_per_label_reason():
    coverage = LabelCoverage([reg('reg-off', {'c2': 0.0}), reg('reg-sub', {'c2': 1.0, 'c3': -1.0})])
    coverage.update({'c2': torch.ones(2), 'c3': torch.ones(2)})
    problems = coverage.problems()
    assert problems[0].startswith(
        "regularizer 'reg-off' weighed every sample 0 in the first 1 step: with affinities {'c2': 0.0}, the labels "
        "that appeared (['c2']) gave every sample 0"
    )
    assert 'carried' not in ''.join(problems)
