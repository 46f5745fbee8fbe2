"""Output files, each written to a temporary file and renamed into place.

A reader never sees a half-written output: until ``os.replace`` the data sits
in a hidden ``.NAME.*.tmp`` file in the same folder (same file system, so the
rename is atomic), which is removed again if writing fails.
"""
import errno
import json
import os
import os.path as osp
from typing import Sequence

import numpy as np
from PIL import Image

from mmseg_internvit.atomic_io import atomic_file, check_writable


class OutputDirError(ValueError):
    """The output folder cannot be created or written to."""


def check_out_dir(path: str) -> str:
    """Check that ``path`` can be the output folder, creating nothing.

    An existing folder must be writable; a missing one must be creatable
    (its nearest existing parent a writable folder).

    Raises:
        OutputDirError: ``path`` (or a parent) is a file, or the folder (or
            the parent it would be created in) is not writable.
    """
    if osp.exists(path) and not osp.isdir(path):
        raise OutputDirError(f'output folder {path} exists and is not a folder; '
                             'pass a folder path with --out-dir')
    existing = osp.abspath(path)
    while not osp.exists(existing):
        existing = osp.dirname(existing)
    try:
        if not osp.isdir(existing):
            raise NotADirectoryError(errno.ENOTDIR, f'{existing} is a file')
        check_writable(existing)
    except OSError as e:
        raise OutputDirError(f'cannot write to output folder {path}: {e.strerror or e}; '
                             'pass a writable folder with --out-dir') from None
    return path


def prepare_out_dir(path: str) -> str:
    """Create the output folder ``path`` if needed (after :func:`check_out_dir`).

    Raises:
        OutputDirError: as :func:`check_out_dir`.
    """
    check_out_dir(path)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise OutputDirError(f'cannot write to output folder {path}: {e.strerror or e}; '
                             'pass a writable folder with --out-dir') from None
    return path


def write_label_png(path: str, label: np.ndarray, palette: Sequence[Sequence[int]]) -> None:
    """Class ids as an indexed ('P' mode) PNG whose palette colours the classes.

    Pixel values are the class ids. With more than 256 classes an indexed PNG
    cannot hold them: a 16-bit grayscale PNG is written instead.
    """
    if len(palette) > 256:
        image = Image.fromarray(label.astype(np.uint16))
    else:
        image = Image.fromarray(label.astype(np.uint8))  # 'L'; putpalette makes it 'P'
        flat = np.zeros((256, 3), dtype=np.uint8)
        flat[:len(palette)] = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
        image.putpalette(flat.ravel().tolist())
    with atomic_file(path) as f:
        image.save(f, format='PNG')


def write_rgb_png(path: str, rgb: np.ndarray) -> None:
    """An ``(H, W, 3)`` uint8 RGB array as a PNG."""
    with atomic_file(path) as f:
        Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(f, format='PNG')


def write_npz(path: str, **arrays: np.ndarray) -> None:
    """Arrays as a compressed ``.npz``."""
    with atomic_file(path) as f:
        np.savez_compressed(f, **arrays)


def write_json(path: str, data: dict) -> None:
    """``data`` as indented UTF-8 JSON."""
    with atomic_file(path) as f:
        f.write(json.dumps(data, indent=2, ensure_ascii=False).encode('utf-8'))
        f.write(b'\n')


def class_areas(label: np.ndarray, classes: Sequence[str]) -> dict:
    """Pixel count and fraction of every class present in ``label``, largest first."""
    counts = np.bincount(label.ravel(), minlength=len(classes))
    total = int(label.size)
    present = sorted(np.flatnonzero(counts), key=lambda c: (-counts[c], c))
    return dict(height=int(label.shape[0]), width=int(label.shape[1]), total_pixels=total,
                classes=[dict(id=int(c), name=str(classes[c]) if c < len(classes) else str(c),
                              pixels=int(counts[c]), fraction=float(counts[c]) / total)
                         for c in present])
