"""Registries of the ``mmseg_internvit`` scope.

Children of mmengine's root registries, so ``type='mmseg_internvit.InternViT'``
resolves from any OpenMMLab 2.x config. :func:`register_into_default_scopes`
also lists our models in mmseg's and mmdet's own registries, so that a plain
``type='InternViT'`` works there after ``custom_imports``.
"""
import importlib

from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import STRATEGIES as MMENGINE_STRATEGIES
from mmengine.registry import Registry

SCOPE = 'mmseg_internvit'
# A lookup in this scope before anything was registered (a config built with
# default_scope='mmseg_internvit') imports the plugin: it registers everything.

MODELS = Registry('model', parent=MMENGINE_MODELS, scope=SCOPE,
                  locations=['mmseg_internvit.plugin'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor', parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    scope=SCOPE, locations=['mmseg_internvit.plugin'])
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope=SCOPE,
                          locations=['mmseg_internvit.plugin'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope=SCOPE,
                 locations=['mmseg_internvit.plugin'])
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope=SCOPE,
                    locations=['mmseg_internvit.plugin'])
FUNCTIONS = Registry('function', parent=MMENGINE_FUNCTIONS, scope=SCOPE,
                     locations=['mmseg_internvit.plugin'])
STRATEGIES = Registry('strategy', parent=MMENGINE_STRATEGIES, scope=SCOPE,
                      locations=['mmseg_internvit.plugin'])
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, scope=SCOPE,
                      locations=['mmseg_internvit.plugin'])

# (our registry, attribute name in the downstream library's registry module)
_MIRRORED = ((MODELS, 'MODELS'), (DATASETS, 'DATASETS'), (TRANSFORMS, 'TRANSFORMS'),
             (HOOKS, 'HOOKS'), (OPTIM_WRAPPERS, 'OPTIM_WRAPPERS'),
             (OPTIM_WRAPPER_CONSTRUCTORS, 'OPTIM_WRAPPER_CONSTRUCTORS'),
             (FUNCTIONS, 'FUNCTIONS'))


def register_into_default_scopes(libraries=('mmseg', 'mmdet')) -> None:
    """Add every module of our scope to the same-kind registries of mmseg/mmdet.

    mmengine resolves an unprefixed ``type`` only in the default scope and its
    parents, never in sibling scopes; listing our classes there too lets mmseg
    and mmdet configs say ``type='InternViT'``. Libraries that are not
    installed are skipped; names they already define are left to them.
    """
    for library in libraries:
        try:
            downstream = importlib.import_module(f'{library}.registry')
        except ImportError:
            continue
        for ours, attr in _MIRRORED:
            theirs = getattr(downstream, attr, None)
            if theirs is None:  # e.g. FUNCTIONS: resolve it as 'mmseg_internvit.NAME'
                continue
            for name, module in ours.module_dict.items():
                if name not in theirs.module_dict:
                    theirs.register_module(name=name, module=module)
