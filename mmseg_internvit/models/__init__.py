"""Models of the mmseg_internvit scope (registered on import)."""
from .backbones import *  # noqa: F401,F403
