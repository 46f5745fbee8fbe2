"""Build a small synthetic dataset in ADE20K's folder layout and label encoding.

The dataset exists so the full mmseg pipeline (loading, ``reduce_zero_label``,
cropping, training, evaluation) can run end to end in minutes on a CPU, and so
a tiny model can visibly learn something: a few classes, each with its own
colour and texture, drawn as large blobs.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = ['SAMPLE_CLASSES_USED', 'build_sample_ade20k']

# ADE20K ids (1-based, as stored in the PNGs): wall, sky, tree, road, person.
SAMPLE_CLASSES_USED: tuple[int, ...] = (1, 3, 5, 7, 13)

_DIRNAME = 'ADEChallengeData2016'
_MARKER = '.complete'
_PARTIAL_PREFIX = f'.{_DIRNAME}.partial-'
# Bump when the drawing code changes, so an old build is not taken for a new one.
_BUILDER_VERSION = 1

_BACKGROUND = 1
_FOREGROUND = (3, 5, 7, 13)
_IGNORE = 0  # ADE20K's "other": mmseg maps it to 255 with reduce_zero_label=True

# Base colours are far apart in RGB so colour alone separates the classes; the
# textures give patch-level cues that survive the mild noise and JPEG.
_BASE_RGB: dict[int, tuple[int, int, int]] = {
    1: (200, 190, 165),   # wall: beige, horizontal stripes
    3: (90, 150, 235),    # sky: blue, smooth vertical gradient
    5: (40, 140, 50),     # tree: green, 4 px checkerboard
    7: (75, 75, 85),      # road: dark grey, diagonal stripes
    13: (215, 50, 60),    # person: red, vertical stripes
}
_NOISE_STD = 6.0
_JPEG_QUALITY = 95


def build_sample_ade20k(root: str, num_train: int = 48, num_val: int = 12,
                        size: int = 128, seed: int = 0,
                        num_classes: int = 150) -> str:
    """Write a deterministic ADE20K-style sample dataset and return its path.

    Files land in ``root/ADEChallengeData2016/{images,annotations}/
    {training,validation}/`` as ``ADE_train_00000001.jpg`` / ``.png`` and
    ``ADE_val_00000001.jpg`` / ``.png``. Annotations are 8-bit single-channel
    PNGs in ADE20K's encoding (0 = other/ignored, k = class k); only the ids in
    :data:`SAMPLE_CLASSES_USED` and 0 occur.

    The build is idempotent: a finished build carries a ``.complete`` marker
    with its arguments, and calling again with the same arguments returns it
    untouched. Files are written to a hidden sibling folder that is renamed
    into place only when complete, so an interrupted build is never mistaken
    for a finished one.

    Args:
        root: Folder that will contain ``ADEChallengeData2016`` (created if
            missing), e.g. ``data/ade``.
        num_train: Number of training image/annotation pairs (>= 1).
        num_val: Number of validation image/annotation pairs (>= 1).
        size: Smallest image side in pixels (>= 64); heights and widths are
            drawn independently from ``[size, 1.5 * size]``.
        seed: Non-negative seed; the same seed gives byte-identical files.
        num_classes: Number of classes of the label space (ADE20K: 150). It
            must cover every id in :data:`SAMPLE_CLASSES_USED` and fit in
            uint8 next to the 255 ignore value.

    Returns:
        The path of the ``ADEChallengeData2016`` folder.

    Raises:
        ValueError: If an argument is out of range.
        FileExistsError: If ``ADEChallengeData2016`` already exists but is not
            a finished sample build with the same arguments.
    """
    params = _validated_params(num_train, num_val, size, seed, num_classes)
    root_path = Path(root)
    final = root_path / _DIRNAME
    if _is_nonempty_dir_or_file(final):
        return _reuse_existing(final, params)

    root_path.mkdir(parents=True, exist_ok=True)
    # os.mkdir (not tempfile.mkdtemp) so the folder gets the umask's mode
    # instead of 0700 once renamed into place.
    partial = root_path / f'{_PARTIAL_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}'
    partial.mkdir()
    try:
        _write_split(partial, 'training', 'ADE_train', num_train, seed, 0, size)
        _write_split(partial, 'validation', 'ADE_val', num_val, seed, 1, size)
        # The marker goes last: its presence means every file above is written.
        (partial / _MARKER).write_text(json.dumps(params, indent=2, sort_keys=True) + '\n')
        try:
            os.replace(partial, final)
        except OSError:
            # A concurrent build may have renamed its copy into place first.
            if not _is_nonempty_dir_or_file(final):
                raise
            shutil.rmtree(partial, ignore_errors=True)
            return _reuse_existing(final, params)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return str(final)


def _validated_params(num_train: int, num_val: int, size: int, seed: int,
                      num_classes: int) -> dict[str, Any]:
    for name, value, low in (('num_train', num_train, 1), ('num_val', num_val, 1),
                             ('size', size, 64), ('seed', seed, 0)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f'build_sample_ade20k: {name}={value!r} must be an '
                             f'integer >= {low}.')
    if not max(SAMPLE_CLASSES_USED) <= num_classes <= 254:
        raise ValueError(
            f'build_sample_ade20k: num_classes={num_classes!r} must lie in '
            f'[{max(SAMPLE_CLASSES_USED)}, 254]: the sample uses ADE ids '
            f'{SAMPLE_CLASSES_USED} and 255 is the ignore value.')
    return {
        'builder_version': _BUILDER_VERSION,
        'classes_used': list(SAMPLE_CLASSES_USED),
        'num_classes': int(num_classes),
        'num_train': int(num_train),
        'num_val': int(num_val),
        'seed': int(seed),
        'size': int(size),
    }


def _is_nonempty_dir_or_file(path: Path) -> bool:
    # An empty folder (e.g. made by hand ahead of time) holds nothing to
    # protect, and os.replace may replace it.
    if path.is_dir():
        return any(path.iterdir())
    return path.exists()


def _reuse_existing(final: Path, params: dict[str, Any]) -> str:
    marker = final / _MARKER
    try:
        found = json.loads(marker.read_text())
    except (OSError, ValueError):
        raise FileExistsError(
            f'{final} exists but has no readable {_MARKER} marker, so it is not a '
            'finished sample build (it may be a real ADE20K copy or a foreign '
            'folder). Nothing was written; delete it or pass another root.') from None
    if found != params:
        diff = ', '.join(f'{key}={found.get(key)!r} (requested {params[key]!r})'
                         for key in sorted(params) if found.get(key) != params[key])
        raise FileExistsError(
            f'{final} holds a sample build made with other arguments: {diff}. '
            'Delete the folder to rebuild, or pass another root.')
    return str(final)


def _write_split(base: Path, split: str, prefix: str, count: int, seed: int,
                 split_code: int, size: int) -> None:
    img_dir = base / 'images' / split
    ann_dir = base / 'annotations' / split
    img_dir.mkdir(parents=True)
    ann_dir.mkdir(parents=True)
    for index in range(count):
        # One generator per sample: a sample does not change when num_train
        # or num_val change, and train and val never share a stream.
        rng = np.random.default_rng([seed, split_code, index])
        image, label = _draw_sample(rng, size, index)
        stem = f'{prefix}_{index + 1:08d}'
        Image.fromarray(image).save(img_dir / f'{stem}.jpg', format='JPEG',
                                    quality=_JPEG_QUALITY, subsampling=0,
                                    optimize=False)
        Image.fromarray(label).save(ann_dir / f'{stem}.png', format='PNG',
                                    optimize=False, compress_level=6)


def _draw_sample(rng: np.random.Generator, size: int,
                 index: int) -> tuple[np.ndarray, np.ndarray]:
    height = int(rng.integers(size, size * 3 // 2 + 1))
    width = int(rng.integers(size, size * 3 // 2 + 1))
    label = np.full((height, width), _BACKGROUND, dtype=np.uint8)

    if rng.random() < 0.5:
        # A sky band along the top, like many real scenes.
        label[:int(rng.integers(height // 5, height * 2 // 5 + 1))] = 3

    num_blobs = int(rng.integers(2, 5))
    for blob in range(num_blobs):
        # Cycle the first blob's class over samples so every class is frequent.
        cls = (_FOREGROUND[index % len(_FOREGROUND)] if blob == 0
               else _FOREGROUND[int(rng.integers(len(_FOREGROUND)))])
        label[_blob_mask(rng, height, width)] = cls

    # A thin band of ADE's "other" label, so ignore handling is exercised.
    thickness = int(rng.integers(3, 6))
    if rng.random() < 0.5:
        start = int(rng.integers(0, height - thickness + 1))
        label[start:start + thickness] = _IGNORE
    else:
        start = int(rng.integers(0, width - thickness + 1))
        label[:, start:start + thickness] = _IGNORE

    return _render(rng, label), label


def _blob_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    # >= 30 px per side so a blob spans at least two 14 px ViT patches.
    bh = int(rng.integers(max(30, height // 4), max(31, height // 2) + 1))
    bw = int(rng.integers(max(30, width // 4), max(31, width // 2) + 1))
    top = int(rng.integers(0, height - bh + 1))
    left = int(rng.integers(0, width - bw + 1))
    mask = np.zeros((height, width), dtype=bool)
    if rng.random() < 0.5:
        mask[top:top + bh, left:left + bw] = True
    else:
        yy, xx = np.ogrid[:height, :width]
        cy, cx = top + (bh - 1) / 2, left + (bw - 1) / 2
        mask[:] = ((yy - cy) / (bh / 2)) ** 2 + ((xx - cx) / (bw / 2)) ** 2 <= 1.0
    return mask


def _render(rng: np.random.Generator, label: np.ndarray) -> np.ndarray:
    height, width = label.shape
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    textures = {
        1: 18.0 * ((yy // 3) % 2 * 2 - 1),                      # horizontal stripes
        3: 30.0 * (yy / height - 0.5),                            # gradient
        5: 25.0 * (((yy // 4) + (xx // 4)) % 2 * 2 - 1),          # checkerboard
        7: 15.0 * (((yy + xx) // 4) % 2 * 2 - 1),                 # diagonal stripes
        13: 25.0 * ((xx // 3) % 2 * 2 - 1),                       # vertical stripes
    }
    image = np.empty((height, width, 3), dtype=np.float32)
    for cls, base in _BASE_RGB.items():
        mask = label == cls
        # A small per-image colour shift keeps the task from being a lookup.
        shift = rng.uniform(-8.0, 8.0, size=3).astype(np.float32)
        image[mask] = (np.asarray(base, np.float32) + shift)[None, :] \
            + textures[cls][mask][:, None]
    ignore = label == _IGNORE
    image[ignore] = rng.uniform(0.0, 255.0, size=(int(ignore.sum()), 3))
    image += rng.normal(0.0, _NOISE_STD, size=image.shape).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
