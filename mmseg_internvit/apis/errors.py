"""One error style for every tool.

A user error (a missing or unreadable file, a config or checkpoint that does
not fit, a bad argument) ends a tool with one line on stderr,
``error: <what was wrong, naming the file, key or value, and what to do>``,
and exit status 2; no traceback unless ``--debug`` is given. Anything else is
a bug and keeps its traceback.
"""
import importlib
import os
import re
import sys
import traceback
from types import FrameType
from typing import Iterator, Optional, Sequence

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


def check_folder_argument(flag: str, path: Optional[str]) -> None:
    """An output-folder argument must not name an existing file."""
    if path and os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f'{flag} {path} is a file; give a folder (it is created if needed)')


def one_line(error: BaseException) -> str:
    """The error's message on one line (multi-line messages joined)."""
    text = str(error).strip() or type(error).__name__
    if 'Original Traceback' in text:  # re-raised from a DataLoader worker
        text = [line for line in text.splitlines() if line.strip()][-1]
    if isinstance(error, KeyError) and text.startswith("'"):
        text = text.strip("'")  # KeyError quotes its message
    return ' '.join(part.strip() for part in text.splitlines() if part.strip())


def run_tool(tool: str, argv: Optional[Sequence[str]] = None, register: str = 'all') -> int:
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
        register: ``'all'``: :func:`register_all_modules`; ``'checkpoint_io'``:
            only :func:`~mmseg_internvit.registration.prepare_checkpoint_io`
            (the checkpoint tools build no model); ``'none'`` for tools that
            need no model stack (the dataset tools run with numpy and Pillow
            alone).

    Returns:
        The tool's exit status (2 for a user error).
    """
    if register == 'all':
        from mmseg_internvit import register_all_modules
        register_all_modules()
    elif register == 'checkpoint_io':
        from mmseg_internvit.registration import prepare_checkpoint_io
        prepare_checkpoint_io()
    elif register != 'none':
        raise ValueError(f"register={register!r}: use 'all', 'checkpoint_io' or 'none'")
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
        step, files, segmentation = sample
        checker = ' (tools/dataset/check_ade20k.py checks an ADE20K folder)' if segmentation else ''
        return (f'{step} failed on {files}: {type(error).__name__}: {one_line(error)}; fix or '
                f'remove the file{checker}')
    if isinstance(error, USER_ERRORS):
        text, built = one_line(error), _class_built_from_config(error)
        if built and built not in text:
            # A constructor's own message ("invalid literal for int()", a missing
            # data folder) does not say which part of the config gave the value.
            text = f'{built} (built from the config): {text}'
        return text
    unknown = _unknown_config_type(error)
    if unknown is not None:
        return unknown
    if isinstance(error, TypeError) and _is_unknown_config_argument(error):
        return (f'{one_line(error)}: the config gives this class an argument it does not take; '
                'check the spelling of that key in the config or in --cfg-options')
    if isinstance(error, AssertionError) and raised_in(error, NUM_CLASS_CHECK, '_check_head'):
        # mmdet's NumClassCheckHook: the heads' class count against the dataset's.
        return (f'{one_line(error)}; set num_classes of the heads (model.roi_head.bbox_head '
                'and mask_head) to the number of classes of the dataset')
    return None


NUM_CLASS_CHECK = 'mmdet/engine/hooks/num_class_check_hook.py'
# mmengine's registry builds every object of a config here; it re-raises a
# constructor's TypeError with the class named.
BUILD_FROM_CONFIG = 'mmengine/registry/build_functions.py'
_UNKNOWN_ARGUMENT = re.compile(r"got an unexpected keyword argument '\w+'")
# mmengine's words for a type it cannot find ("X is not in the mmseg::model registry").
_NOT_IN_REGISTRY = re.compile(r'(\S+) is not in the .+? registry')


def _is_unknown_config_argument(error: TypeError) -> bool:
    """Whether ``error`` is a class built from a config that was given a key it
    does not take (a misspelt ``train_cfg.max_iter``)."""
    return bool(_UNKNOWN_ARGUMENT.search(str(error))) and raised_in(error, BUILD_FROM_CONFIG)


def _unknown_config_type(error: BaseException) -> Optional[str]:
    """The message for a config ``type`` that mmengine's registry does not hold
    (its KeyError, raised while building from the config), else None."""
    if not isinstance(error, KeyError) or not raised_in(error, BUILD_FROM_CONFIG):
        return None
    match = _NOT_IN_REGISTRY.match(one_line(error))
    # The innermost build: a loop builds its dataset, a dataset its transforms.
    registries = [frame.f_locals['registry'] for frame in _frames(error)
                  if _in_file(frame, BUILD_FROM_CONFIG) and 'registry' in frame.f_locals]
    if match is None or not registries:
        return None
    registry = registries[-1]
    from .config_checks import unknown_type_message
    return unknown_type_message(match.group(1), registry)


def _frames(error: BaseException) -> Iterator[FrameType]:
    """The frames of ``error``'s traceback, outermost first."""
    return (frame for frame, _ in traceback.walk_tb(error.__traceback__))


def _in_file(frame: FrameType, file_suffix: str) -> bool:
    return frame.f_code.co_filename.replace('\\', '/').endswith(file_suffix)


def _class_built_from_config(error: BaseException) -> Optional[str]:
    """The class mmengine's registry was building (innermost) when ``error`` was raised."""
    name = None
    for frame in _frames(error):
        if _in_file(frame, BUILD_FROM_CONFIG):
            name = getattr(frame.f_locals.get('obj_cls'), '__name__', name)
    return name


def raised_in(error: BaseException, file_suffix: str, function: Optional[str] = None) -> bool:
    """Whether a frame of ``error``'s traceback runs in a file whose path ends with
    ``file_suffix`` (and, if given, in ``function``)."""
    return any(_in_file(frame, file_suffix) and function in (None, frame.f_code.co_name)
               for frame in _frames(error))


def _failing_sample(error: BaseException) -> Optional[tuple]:
    """``(transform name, files, has a segmentation map)`` when ``error`` was raised
    inside a data pipeline step.

    mmcv transforms receive the sample as a ``results`` dict that carries its
    file paths; the innermost such frame of the traceback names the sample.
    """
    found = None
    for frame in _frames(error):
        results = frame.f_locals.get('results')
        owner = frame.f_locals.get('self')
        if frame.f_code.co_name in ('transform', '__call__') and isinstance(results, dict):
            paths = [str(results[key]) for key in ('img_path', 'seg_map_path')
                     if results.get(key)]
            if paths:
                found = (type(owner).__name__ if owner is not None else 'pipeline',
                         ' / '.join(paths), bool(results.get('seg_map_path')))
    return found
