"""Activation interventions: falloff mappers, Suppression/Repulsion, Ablation, and hooks that apply them."""

from ex_color.intervention.config import InterventionConfig
from ex_color.intervention.falloff import BoundedFalloff, Mapper
from ex_color.intervention.hooks import apply_interventions
from ex_color.intervention.interventions import Ablation, Repulsion, Suppression

__all__ = [
    'Ablation',
    'BoundedFalloff',
    'InterventionConfig',
    'Mapper',
    'Repulsion',
    'Suppression',
    'apply_interventions',
]
