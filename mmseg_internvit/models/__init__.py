"""Models of the mmseg_internvit scope (registered on import).

The backbone and neck need only torch, timm and mmengine; the decode head is a
mmseg head and is registered only where mmseg is installed, so the backbone
also serves mmdet-only and bare-torch environments.
"""
from importlib.util import find_spec

from .backbones import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403

if find_spec('mmseg') is not None:
    from .heads import *  # noqa: F401,F403
    from .segmentors import *  # noqa: F401,F403
