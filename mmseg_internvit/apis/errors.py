"""One error style for every tool.

A user error (a missing or unreadable file, a config or checkpoint that does
not fit, a bad argument) ends a tool with one line on stderr,
``error: <what was wrong, naming the file, key or value, and what to do>``,
and exit status 2; no traceback unless ``--debug`` is given. Anything else is
a bug and keeps its traceback.
"""
import importlib
import sys
from typing import Optional, Sequence

EXIT_USER_ERROR = 2


class ToolError(Exception):
    """A user error whose message is meant for the command line as it is."""


# The exception classes that mean "the input was unusable", not "a bug".
# ValueError covers this package's own: CheckpointReadError,
# CheckpointMismatchError and OutputDirError derive from it.
USER_ERRORS = (ToolError, ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
               IsADirectoryError, PermissionError)


def add_debug_flag(parser) -> None:
    """``--debug``: show the traceback of a user error instead of one line."""
    parser.add_argument('--debug', action='store_true',
                        help='show the full traceback of errors (for bug reports)')


def one_line(error: BaseException) -> str:
    """The error's message on one line (multi-line messages joined)."""
    text = str(error).strip() or type(error).__name__
    if 'Original Traceback' in text:  # re-raised from a DataLoader worker
        text = [line for line in text.splitlines() if line.strip()][-1]
    if isinstance(error, KeyError) and text.startswith("'"):
        text = text.strip("'")  # KeyError quotes its message
    return ' '.join(part.strip() for part in text.splitlines() if part.strip())


def run_tool(tool: str, argv: Optional[Sequence[str]] = None, register: bool = True) -> int:
    """Start ``tools/<tool>.py``: register, then run ``mmseg_internvit.apis.<tool>.main``
    with user errors turned into the one-line style.

    The tool's module is imported only after :func:`register_all_modules`, so
    mmengine's runner finds DeepSpeed deferred to its first use and, when it
    is used, its accelerator named.
    After a tool succeeds, the process group a distributed run started is
    destroyed (:func:`~mmseg_internvit.apis.launch.close_process_group`).

    Args:
        tool: Module name in :mod:`mmseg_internvit.apis`, e.g. ``'train'``.
        argv: Arguments (default: ``sys.argv[1:]``).
        register: False for tools that need no model stack (the dataset
            tools run with numpy and Pillow alone).

    Returns:
        The tool's exit status (2 for a user error).
    """
    if register:
        from mmseg_internvit import register_all_modules
        register_all_modules()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        main = importlib.import_module(f'mmseg_internvit.apis.{tool}').main
        status = main(argv)
    except Exception as error:  # noqa: BLE001  (sorted below: user error or bug)
        message = _user_message(error)
        if message is None or '--debug' in argv:
            raise
        print(f'error: {message}', file=sys.stderr)
        return EXIT_USER_ERROR
    if 'torch.distributed' in sys.modules:  # the dataset tools never import torch
        from .launch import close_process_group
        close_process_group()
    return status


# Raised inside a pipeline step, these mean a bug in the step, not a bad file:
# they keep their traceback.
BUG_ERRORS = (AttributeError, NameError, TypeError, ImportError, NotImplementedError,
              RecursionError)


def _user_message(error: BaseException) -> Optional[str]:
    """The one-line message of a user error, or None for a bug."""
    sample = None if isinstance(error, BUG_ERRORS) else _failing_sample(error)
    if sample is not None:
        # A data pipeline step failed on a file (unreadable image, broken
        # annotation, bad label): name the sample's files, whatever the error.
        step, files = sample
        return (f'{step} failed on {files}: {type(error).__name__}: {one_line(error)}; fix or '
                'remove the file (tools/dataset/check_ade20k.py checks an ADE20K folder)')
    if isinstance(error, USER_ERRORS):
        return one_line(error)
    return None


def _failing_sample(error: BaseException) -> Optional[tuple]:
    """``(transform name, files)`` when ``error`` was raised inside a data pipeline step.

    mmcv transforms receive the sample as a ``results`` dict that carries its
    file paths; the innermost such frame of the traceback names the sample.
    """
    found = None
    tb = error.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        results = frame.f_locals.get('results')
        owner = frame.f_locals.get('self')
        if frame.f_code.co_name in ('transform', '__call__') and isinstance(results, dict):
            paths = [str(results[key]) for key in ('img_path', 'seg_map_path')
                     if results.get(key)]
            if paths:
                found = (type(owner).__name__ if owner is not None else 'pipeline',
                         ' / '.join(paths))
        tb = tb.tb_next
    return found
