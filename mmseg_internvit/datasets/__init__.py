"""Dataset helpers: a synthetic ADE20K-style sample and an ADE20K folder checker.

Only numpy and Pillow are imported here, so these helpers work without torch.
"""
from .ade20k_check import ADE20KReport, SplitCounts, check_ade20k, find_ade20k_root
from .sample_data import SAMPLE_CLASSES_USED, build_sample_ade20k

__all__ = ['ADE20KReport', 'SAMPLE_CLASSES_USED', 'SplitCounts',
           'build_sample_ade20k', 'check_ade20k', 'find_ade20k_root']
