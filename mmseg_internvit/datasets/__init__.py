"""Dataset helpers: a synthetic ADE20K-style sample and an ADE20K folder checker.

The sample builder and checker import only numpy and Pillow; the pipeline
check (an mmcv transform) is registered where mmcv is installed, the
COCO-format dataset (an mmdet dataset) where mmdet is.
"""
from importlib.util import find_spec

from .ade20k_check import ADE20KReport, SplitCounts, check_ade20k, find_ade20k_root
from .sample_data import SAMPLE_CLASSES_USED, build_sample_ade20k

__all__ = ['ADE20KReport', 'SAMPLE_CLASSES_USED', 'SplitCounts',
           'build_sample_ade20k', 'check_ade20k', 'find_ade20k_root']

if find_spec('mmcv') is not None:
    from .label_check import CheckSegLabels  # noqa: F401
    __all__.append('CheckSegLabels')

if find_spec('mmdet') is not None:
    from .coco_format import CocoFormatDataset, coco_categories  # noqa: F401
    __all__ += ['CocoFormatDataset', 'coco_categories']
