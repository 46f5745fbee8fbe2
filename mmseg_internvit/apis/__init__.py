"""What the tools start up: one module per ``tools/*.py`` (its argument parser and
``main``), plus the shared start-up of training and testing (:mod:`.launch`:
config loading, runner building, CPU/distributed adaptations) and the one
error style of every tool (:mod:`.errors`).

Each ``tools/X.py`` is a thin entry point: ``sys.exit(run())`` of
``mmseg_internvit.apis.X``. Importing this package imports nothing heavy.
"""
