"""Regularizers for latent activations and the composition of the training loss.

Every regularizer maps activations `[..., B, D]` to a per-sample loss `[..., B]`; the
`compose` functions reduce those to per-model terms `[...]`, for one model or an ensemble.
"""

from ex_color.loss.compose import (
    NonFiniteLossError,
    check_finite,
    label_weights,
    regularization_loss,
    total_loss,
    weighted_term,
)
from ex_color.loss.config import RECON_TERM, RegularizerConfig
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
    'RECON_TERM',
    'Anchor',
    'AngularAnchor',
    'AntiAnchor',
    'AxisAlignedSubspace',
    'NonFiniteLossError',
    'Planarity',
    'Regularizer',
    'RegularizerConfig',
    'Separate',
    'Unitarity',
    'check_finite',
    'label_weights',
    'regularization_loss',
    'total_loss',
    'weighted_term',
]
