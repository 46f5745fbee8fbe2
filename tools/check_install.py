"""Check that the installed stack works: mmcv ops run, mm packages import.

See ``python tools/check_install.py --help`` and :mod:`mmseg_internvit.apis.check_install`.
"""
import sys

from mmseg_internvit.apis.errors import run_tool

if __name__ == '__main__':
    sys.exit(run_tool('check_install', register='none'))
