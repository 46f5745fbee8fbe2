"""The module OpenMMLab configs import to use this package.

``custom_imports = dict(imports=['mmseg_internvit.plugin'], allow_failed_imports=False)``
registers every module of :mod:`mmseg_internvit` (see
:func:`mmseg_internvit.register_all_modules`).
"""
from .registration import register_all_modules

register_all_modules()
