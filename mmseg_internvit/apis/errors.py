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


def user_error_types() -> tuple:
    """The exception classes that mean "the input was unusable", not "a bug"."""
    from mmseg_internvit.checkpoint import CheckpointMismatchError, CheckpointReadError
    from mmseg_internvit.inference.writers import OutputDirError
    return (ToolError, CheckpointMismatchError, CheckpointReadError, OutputDirError,
            FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError,
            ValueError)


def add_debug_flag(parser) -> None:
    """``--debug``: show the traceback of a user error instead of one line."""
    parser.add_argument('--debug', action='store_true',
                        help='show the full traceback of errors (for bug reports)')


def one_line(error: BaseException) -> str:
    """The error's message on one line (multi-line messages joined)."""
    text = str(error).strip() or type(error).__name__
    if isinstance(error, KeyError) and text.startswith("'"):
        text = text.strip("'")  # KeyError quotes its message
    return ' '.join(part.strip() for part in text.splitlines() if part.strip())


def run_tool(tool: str, argv: Optional[Sequence[str]] = None, register: bool = True) -> int:
    """Start ``tools/<tool>.py``: register, then run ``mmseg_internvit.apis.<tool>.main``
    with user errors turned into the one-line style.

    The tool's module is imported only after :func:`register_all_modules`, so
    DeepSpeed (imported by mmengine's runner) finds its accelerator named.

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
        return main(argv)
    except user_error_types() as error:
        if '--debug' in argv:
            raise
        print(f'error: {one_line(error)}', file=sys.stderr)
        return EXIT_USER_ERROR
