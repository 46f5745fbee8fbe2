"""Load a module of ``mmseg_internvit/datasets`` by file path, without the package.

``import mmseg_internvit`` pulls in torch and registers models in mmseg/mmdet,
which takes seconds and a full training stack. The dataset tools need only
numpy and Pillow, so they load their module file directly: checking data then
works on any machine and starts in well under a second.
"""
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

DATASETS_DIR = Path(__file__).resolve().parents[2] / 'mmseg_internvit' / 'datasets'


def load_dataset_module(name: str) -> ModuleType:
    """Import ``mmseg_internvit/datasets/<name>.py`` on its own.

    Args:
        name: Module file name without ``.py``, e.g. ``'ade20k_check'``; the
            module must not use relative imports.
    """
    path = DATASETS_DIR / f'{name}.py'
    if not path.is_file():
        raise FileNotFoundError(f'{path} not found: run this tool from a checkout '
                                'of the mmseg_internvit repository.')
    spec = importlib.util.spec_from_file_location(f'_mmseg_internvit_datasets_{name}', path)
    module = importlib.util.module_from_spec(spec)
    # dataclasses look the module up in sys.modules while building classes.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
