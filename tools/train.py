"""Train a segmentor or detector from an mm config (mmseg's tools/train.py flags).

See `python tools/train.py --help` and :mod:`mmseg_internvit.apis.train`.
"""
import sys

from mmseg_internvit.apis.errors import run_tool

if __name__ == '__main__':
    sys.exit(run_tool('train'))
