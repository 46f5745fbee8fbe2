"""The quick-start demo (make demo): train the smoke linear probe on generated sample data.

See ``python tools/demo.py --help`` and :mod:`mmseg_internvit.apis.demo`.
"""
import sys

from mmseg_internvit.apis.errors import run_tool

if __name__ == '__main__':
    sys.exit(run_tool('demo'))
