"""Check an ADE20K folder before training (numpy and Pillow only; no torch needed).

See ``python tools/dataset/check_ade20k.py --help`` and :mod:`mmseg_internvit.apis.check_ade20k`.
"""
import sys

from mmseg_internvit.apis.errors import run_tool

if __name__ == '__main__':
    sys.exit(run_tool('check_ade20k', register='none'))
