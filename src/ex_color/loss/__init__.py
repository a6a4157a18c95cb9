"""Regularizers for latent activations and the composition of the training loss.

Every regularizer maps activations `[..., B, D]` to a per-sample loss `[..., B]`; the
`compose` functions reduce those to per-model terms `[...]`, for one model or an ensemble.
"""

from ex_color.loss.compose import (
    NonFiniteLossError,
    check_finite,
    label_weights,
    per_sample_loss,
    regularization_loss,
    total_loss,
    weighted_term,
)
from ex_color.loss.config import COMPLEMENT, RECON_TERM, TOTAL_LOSS, RegularizerConfig, parse_label_key
from ex_color.loss.coverage import (
    TRAIN_PHASE,
    LabelCoverage,
    RegularizerCoverageError,
    expected_weight_problems,
    phase_problems,
)
from ex_color.loss.regularizers import (
    Anchor,
    AngularAnchor,
    AntiAnchor,
    AxisAlignedSubspace,
    Planarity,
    Regularizer,
    Separate,
    Unitarity,
)

__all__ = [
    'COMPLEMENT',
    'RECON_TERM',
    'TOTAL_LOSS',
    'TRAIN_PHASE',
    'Anchor',
    'AngularAnchor',
    'AntiAnchor',
    'AxisAlignedSubspace',
    'LabelCoverage',
    'NonFiniteLossError',
    'Planarity',
    'Regularizer',
    'RegularizerConfig',
    'RegularizerCoverageError',
    'Separate',
    'Unitarity',
    'check_finite',
    'expected_weight_problems',
    'label_weights',
    'parse_label_key',
    'per_sample_loss',
    'phase_problems',
    'regularization_loss',
    'total_loss',
    'weighted_term',
]
