"""Dataset helpers: a synthetic ADE20K-style sample and an ADE20K folder checker.

Importing this package needs only numpy and Pillow (the dataset tools run on
any machine). The pipeline steps (mmcv transforms: :mod:`.label_check`,
:mod:`.short_side_resize`) and the COCO-format dataset (mmdet:
:mod:`.coco_format`) are their own modules, imported by
``register_all_modules`` where those libraries are installed.
"""
from .ade20k_check import ADE20KReport, SplitCounts, check_ade20k, find_ade20k_root
from .sample_data import SAMPLE_CLASSES_USED, build_sample_ade20k

__all__ = ['ADE20KReport', 'SAMPLE_CLASSES_USED', 'SplitCounts',
           'build_sample_ade20k', 'check_ade20k', 'find_ade20k_root']
