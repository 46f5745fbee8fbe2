"""Write the synthetic ADE20K-style sample dataset and print its path.

See ``python tools/dataset/make_sample_ade20k.py --help`` and
:mod:`mmseg_internvit.apis.make_sample_ade20k`.
"""
import sys

from mmseg_internvit.apis.errors import run_tool

if __name__ == '__main__':
    sys.exit(run_tool('make_sample_ade20k', register='none'))
