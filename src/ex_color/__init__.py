"""ex-color: concept-anchored representation engineering.

Pin a concept (e.g. *red*) to a chosen latent direction while training, with selective
regularizers under a keyframed schedule; then delete it by surgery or suppress it with
an activation intervention. The names the seed notebook uses are importable from here.
"""

from importlib import import_module

# Imported on first use (PEP 562), so `import ex_color` and the CLI start fast.
_EXPORTS = {
    'ex_color.api': ['load'],
    'ex_color.data': ['ColorCube', 'arange_cyclic', 'collate_with_generated_labels', 'vibrancy'],
    'ex_color.inference': ['InferenceModule', 'infer'],
    'ex_color.intervention': ['Ablation', 'BoundedFalloff', 'InterventionConfig', 'Repulsion', 'Suppression'],
    'ex_color.loss': [
        'Anchor',
        'AngularAnchor',
        'AntiAnchor',
        'AxisAlignedSubspace',
        'Planarity',
        'RegularizerConfig',
        'Separate',
        'Unitarity',
    ],
    'ex_color.model': ['CNColorMLP', 'L2Norm'],
    'ex_color.seed': ['set_deterministic_mode'],
    'ex_color.surgery': ['SurgeryError', 'ablate', 'prune'],
    'ex_color.temporal': ['Dopesheet', 'Timeline'],
    'ex_color.training': ['TrainingModule'],
    'ex_color.training.routing': ['Route'],
    'ex_color.vis': ['plot_colors', 'plot_cube_series', 'plot_latent_grid_3d'],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version('ex-color')
    except PackageNotFoundError:  # running from a source tree that was not installed
        return '0.0.0+unknown'


def __getattr__(name: str) -> object:
    if name == '__version__':  # looked up on first use: `import ex_color` stays instant for the console script
        globals()[name] = _version()
        return globals()[name]
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    'Ablation',
    'Anchor',
    'AngularAnchor',
    'AntiAnchor',
    'AxisAlignedSubspace',
    'BoundedFalloff',
    'CNColorMLP',
    'ColorCube',
    'Dopesheet',
    'InferenceModule',
    'InterventionConfig',
    'L2Norm',
    'Planarity',
    'RegularizerConfig',
    'Repulsion',
    'Route',
    'Separate',
    'Suppression',
    'SurgeryError',
    'Timeline',
    'TrainingModule',
    'Unitarity',
    '__version__',
    'ablate',
    'arange_cyclic',
    'collate_with_generated_labels',
    'infer',
    'load',
    'plot_colors',
    'plot_cube_series',
    'plot_latent_grid_3d',
    'prune',
    'set_deterministic_mode',
    'vibrancy',
]
