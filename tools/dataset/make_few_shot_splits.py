"""Write the fixed, nested few-shot ADE20K training lists shipped with the configs.

See ``python tools/dataset/make_few_shot_splits.py --help`` and
:mod:`mmseg_internvit.apis.make_few_shot_splits`.
"""
import sys

from mmseg_internvit.apis.errors import run_tool

if __name__ == '__main__':
    sys.exit(run_tool('make_few_shot_splits', register='none'))
