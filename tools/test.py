"""Evaluate a checkpoint with an mm config (mmseg's tools/test.py flags).

See `python tools/test.py --help` and :mod:`mmseg_internvit.apis.test`.
"""
import sys

from mmseg_internvit.apis.errors import run_tool

if __name__ == '__main__':
    sys.exit(run_tool('test'))
