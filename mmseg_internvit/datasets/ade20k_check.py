"""Check an ADE20K folder before training, so data problems surface as a list
of named files instead of a crash (or silently wrong labels) hours into a run.

The checks follow what mmseg 1.x's ``ADE20KDataset`` and its default loading
transforms do: images are found by the ``.jpg`` suffix (recursively, skipping
hidden files), each needs ``annotations/<split>/<same stem>.png``, images
are decoded to 3-channel 8-bit colour, and annotations are read unchanged and
must hold ADE20K ids (0 = other, 1..150 = classes) that
``reduce_zero_label=True`` turns into 255 and 0..149.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ['ADE20KReport', 'SplitCounts', 'check_ade20k', 'find_ade20k_root',
           'ADE20K_LAYOUT']

SPLITS = ('training', 'validation')
ADE20K_LAYOUT = """\
ADE20K is expected in this layout (pass either folder):
  data/ade/
    ADEChallengeData2016/
      images/training/ADE_train_00000001.jpg ...      (20210 images)
      images/validation/ADE_val_00000001.jpg ...      (2000 images)
      annotations/training/ADE_train_00000001.png ... (one 8-bit PNG per image)
      annotations/validation/ADE_val_00000001.png ...
Get it by unzipping ADEChallengeData2016.zip
(http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip) into
data/ade, or make a small synthetic stand-in with
`python tools/dataset/make_sample_ade20k.py data/ade`."""

_IGNORE_INDEX = 255
_EXIF_ORIENTATION = 0x0112
# Pillow modes of images that are not plain 8-bit RGB, with what the loader
# does to them. mmseg decodes images with mmcv's 'color' flag (3-channel BGR).
_MODE_NOTES = {
    '1': '1-bit black and white; the loader expands it to 8-bit colour',
    'L': 'grayscale; the loader copies it to 3 identical channels',
    'LA': 'grayscale with alpha; the loader drops alpha and copies gray to 3 channels',
    'P': 'palette image; the loader converts it to RGB',
    'PA': 'palette image with alpha; the loader converts it to RGB and drops alpha',
    'RGBA': 'RGBA; the loader drops the alpha channel',
    'CMYK': 'CMYK; the loader converts it to RGB, check that colours look right',
    'YCbCr': 'YCbCr; the loader converts it to RGB',
    'I': '32-bit integer; the loader converts it to 8 bits per channel',
    'F': '32-bit float; the loader converts it to 8 bits per channel',
}


@dataclass
class SplitCounts:
    """File counts of one split.

    Args:
        images: Files with the image suffix under ``images/<split>``.
        annotations: Files with the annotation suffix under ``annotations/<split>``.
        pairs: Images that have an annotation with the same stem.
        checked: Pairs that were decoded and checked (at most ``max_files``).
    """

    images: int = 0
    annotations: int = 0
    pairs: int = 0
    checked: int = 0


@dataclass
class ADE20KReport:
    """Result of :func:`check_ade20k`.

    Args:
        root: The ``ADEChallengeData2016`` folder that was checked (or the
            path given, if none was found).
        errors: Problems that break training or corrupt labels; each names a file.
        warnings: Things mmseg copes with but you may not intend; each names a file.
        counts: Per-split file counts, keyed by ``'training'``/``'validation'``.
    """

    root: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, SplitCounts] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when there are no errors (warnings are allowed)."""
        return not self.errors


def find_ade20k_root(data_root: str | os.PathLike) -> Path | None:
    """Return the ``ADEChallengeData2016`` folder for ``data_root``, or None.

    Args:
        data_root: Either the ``ADEChallengeData2016`` folder itself (it has
            ``images/`` or ``annotations/``) or its parent, e.g. ``data/ade``.
    """
    path = Path(data_root)
    for candidate in (path, path / 'ADEChallengeData2016'):
        if (candidate / 'images').is_dir() or (candidate / 'annotations').is_dir():
            return candidate
    return None


def check_ade20k(data_root: str | os.PathLike, num_classes: int = 150,
                 crop: int = 504, max_files: int | None = None,
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png') -> ADE20KReport:
    """Check an ADE20K folder for problems that break or silently spoil training.

    Errors: a missing ``images/<split>`` or ``annotations/<split>`` folder, an
    empty split, images without annotation and annotations without image,
    files that cannot be decoded, annotations that are not single-channel
    8-bit, whose size differs from their image, or with values outside
    ``[0, num_classes]`` and 255, and images with an EXIF rotation (OpenCV
    applies it, the annotation stays as stored). Warnings: images that are not
    8-bit RGB or are smaller than ``crop``; files that mmseg skips because of
    their suffix; labels that look already reduced.

    Args:
        data_root: The ``ADEChallengeData2016`` folder or its parent.
        num_classes: Largest valid class id (ADE20K: 150; 0 is "other").
        crop: Training crop side; smaller images are reported as a warning.
        max_files: Decode at most this many pairs per split (all when None);
            pairing and counting always cover every file.
        img_suffix: Image suffix, as mmseg's ``ADE20KDataset`` uses it.
        seg_map_suffix: Annotation suffix, as mmseg's ``ADE20KDataset`` uses it.

    Returns:
        An :class:`ADE20KReport`; bad data is reported there, never raised.

    Raises:
        ValueError: If ``num_classes``, ``crop`` or ``max_files`` is out of
            range, or a suffix is empty.
    """
    if not 1 <= num_classes < _IGNORE_INDEX:
        raise ValueError(f'check_ade20k: num_classes={num_classes!r} must lie in '
                         f'[1, {_IGNORE_INDEX - 1}] (255 is the ignore value).')
    if crop < 1 or (max_files is not None and max_files < 0):
        raise ValueError(f'check_ade20k: crop={crop!r} must be >= 1 and '
                         f'max_files={max_files!r} must be None or >= 0.')
    if not img_suffix or not seg_map_suffix:
        raise ValueError('check_ade20k: img_suffix and seg_map_suffix must not be '
                         "empty (ADE20K uses '.jpg' and '.png').")
    root = find_ade20k_root(data_root)
    if root is None:
        report = ADE20KReport(root=str(data_root))
        report.errors.append(
            f'{data_root}: no ADE20K dataset here (expected {Path(data_root)}/'
            f'ADEChallengeData2016/images or {Path(data_root)}/images).\n'
            f'{ADE20K_LAYOUT}')
        return report
    report = ADE20KReport(root=str(root))
    for split in SPLITS:
        report.counts[split] = _check_split(root, split, report, num_classes, crop,
                                            max_files, img_suffix, seg_map_suffix)
    return report


def _check_split(root: Path, split: str, report: ADE20KReport, num_classes: int,
                 crop: int, max_files: int | None, img_suffix: str,
                 seg_map_suffix: str) -> SplitCounts:
    counts = SplitCounts()
    img_dir = root / 'images' / split
    ann_dir = root / 'annotations' / split
    missing = [d for d in (img_dir, ann_dir) if not d.is_dir()]
    for folder in missing:
        report.errors.append(
            f'{folder}: folder is missing; {root} needs images/{{training,validation}} '
            'and annotations/{training,validation}.')
    images = _list_by_suffix(img_dir, img_suffix, report) if img_dir.is_dir() else {}
    annotations = (_list_by_suffix(ann_dir, seg_map_suffix, report)
                   if ann_dir.is_dir() else {})
    counts.images, counts.annotations = len(images), len(annotations)
    if missing:
        return counts
    if not images:
        report.errors.append(f'{img_dir}: no *{img_suffix} images in this folder.')

    for stem in sorted(images.keys() - annotations.keys()):
        report.errors.append(
            f'{images[stem]}: image has no annotation (expected '
            f'{ann_dir / (stem + seg_map_suffix)}); mmseg fails when it loads it. '
            'Restore the annotation or remove the image.')
    for stem in sorted(annotations.keys() - images.keys()):
        report.errors.append(
            f'{annotations[stem]}: annotation has no image (expected '
            f'{img_dir / (stem + img_suffix)}); mmseg silently skips it, which '
            'usually means images were lost when copying. Restore the image or '
            'remove the annotation.')

    paired = sorted(images.keys() & annotations.keys())
    counts.pairs = len(paired)
    to_check = paired if max_files is None else paired[:max_files]
    small: list[Path] = []
    with_ignore: list[Path] = []
    for stem in to_check:
        img_size = _check_image(images[stem], report)
        ann_size, has_ignore = _check_annotation(annotations[stem], report, num_classes)
        if has_ignore:
            with_ignore.append(annotations[stem])
        counts.checked += 1
        if img_size and ann_size and img_size != ann_size:
            report.errors.append(
                f'{annotations[stem]}: annotation is {ann_size[0]}x{ann_size[1]} '
                f'(WxH) but its image {images[stem]} is {img_size[0]}x{img_size[1]}; '
                'mmseg crops and flips them together, so they must match. '
                'Resize the annotation with nearest-neighbour interpolation.')
        if img_size and min(img_size) < crop:
            small.append(images[stem])

    if small:
        examples = ', '.join(str(p) for p in small[:3])
        report.warnings.append(
            f'{img_dir}: {len(small)} of {counts.checked} checked images are smaller '
            f'than the {crop}x{crop} crop (e.g. {examples}); mmseg pads them up to the '
            f'crop (padding is labelled {_IGNORE_INDEX} and ignored), which is fine '
            'but leaves less real content per crop.')
    # Original ADE20K annotations never contain 255 (0 marks "other"); 255 in
    # most of them means someone already applied reduce_zero_label.
    if with_ignore and 2 * len(with_ignore) >= counts.checked:
        examples = ', '.join(str(p) for p in with_ignore[:3])
        report.warnings.append(
            f'{ann_dir}: {len(with_ignore)} of {counts.checked} checked annotations '
            f'contain {_IGNORE_INDEX} (e.g. {examples}), which original ADE20K '
            'annotations never do; they look already reduced to 0..149 + 255. '
            'ADE20KDataset applies reduce_zero_label=True, which would shift them '
            'once more (wall would become ignored): use the original encoding '
            '(0 = other, 1..150 = classes).')
    return counts


def _list_by_suffix(folder: Path, suffix: str, report: ADE20KReport) -> dict[str, Path]:
    """Map relative stem -> path of files ending in ``suffix``, like mmengine's
    recursive listing (case-sensitive suffix, hidden files skipped)."""
    found: dict[str, Path] = {}
    # Like mmengine: symlinked and hidden folders are entered, hidden files skipped.
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames.sort()
        for name in sorted(filenames):
            if name.startswith('.'):
                continue
            path = Path(dirpath) / name
            rel = path.relative_to(folder).as_posix()
            if rel.endswith(suffix):
                found[rel[:-len(suffix)]] = path
            else:
                report.warnings.append(
                    f'{path}: does not end in {suffix!r} (case-sensitive), so mmseg '
                    'ignores it. Rename or remove it if it belongs to the dataset.')
    return found


def _check_image(path: Path, report: ADE20KReport) -> tuple[int, int] | None:
    try:
        with Image.open(path) as img:
            img.load()
            mode, size, fmt = img.mode, img.size, img.format
            orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception as exc:  # Pillow raises many types for bad files
        report.errors.append(
            f'{path}: cannot decode image ({type(exc).__name__}: {exc}); it is '
            'corrupt or truncated. Re-download it, or remove it and its annotation.')
        return None

    if _png_bit_depth(path, fmt) == 16 or mode.startswith('I;16'):
        report.warnings.append(
            f'{path}: 16-bit image; mmseg\'s loader (OpenCV) keeps only the high 8 '
            'bits per channel, check that the result is not too dark.')
    elif mode != 'RGB':
        note = _MODE_NOTES.get(mode, 'the loader converts it to 8-bit RGB')
        report.warnings.append(f'{path}: image mode {mode!r} ({note}).')
    if orientation not in (1, None):
        # Checked with OpenCV 5 + mmcv 2.1: imfrombytes(flag='color') applies the
        # EXIF rotation, the annotation (pillow, 'unchanged') is read as stored.
        report.errors.append(
            f'{path}: EXIF orientation {orientation}; OpenCV (mmseg\'s default image '
            'backend) rotates or flips the image on load while the annotation is '
            'read as stored, so labels end up misaligned (or a size mismatch crash). '
            'Apply the rotation to the pixels and drop the tag, e.g. '
            'PIL.ImageOps.exif_transpose, and transform the annotation the same way.')
    return size


def _check_annotation(path: Path, report: ADE20KReport,
                      num_classes: int) -> tuple[tuple[int, int] | None, bool]:
    """Return the annotation's size (None if undecodable) and whether it has 255."""
    try:
        with Image.open(path) as ann:
            ann.load()
            mode, size, fmt = ann.mode, ann.size, ann.format
            array = np.asarray(ann) if mode in ('L', 'P') else None
    except Exception as exc:  # Pillow raises many types for bad files
        report.errors.append(
            f'{path}: cannot decode annotation ({type(exc).__name__}: {exc}); it is '
            'corrupt or truncated. Re-download it.')
        return None, False

    if array is None:
        report.errors.append(
            f'{path}: annotation has PIL mode {mode!r}, but must be single-channel '
            '8-bit (mode \'L\') holding class ids. If it is a colour rendering, map '
            'colours back to ids; if it is 16-bit, convert it to uint8.')
        return size, False
    if fmt != 'PNG':
        report.warnings.append(
            f'{path}: annotation is {fmt} data, not PNG; lossy formats change label '
            'values at edges. Save annotations as PNG.')

    present = np.bincount(array.ravel(), minlength=256) > 0
    valid = np.zeros(256, dtype=bool)
    valid[:num_classes + 1] = True
    valid[_IGNORE_INDEX] = True
    bad = np.flatnonzero(present & ~valid)
    if bad.size:
        shown = ', '.join(str(v) for v in bad[:10]) + (', ...' if bad.size > 10 else '')
        report.errors.append(
            f'{path}: label values {shown} are outside 0..{num_classes} and '
            f'{_IGNORE_INDEX} (ADE20K: 0 = other, 1..{num_classes} = classes); '
            'mmseg would train on them as bogus classes or crash in the loss. '
            'Fix the annotation or pass the right --num-classes.')
    return size, bool(present[_IGNORE_INDEX])


def _png_bit_depth(path: Path, fmt: str | None) -> int | None:
    # Pillow opens 16-bit RGB PNGs as 8-bit 'RGB', so read IHDR's depth byte.
    if fmt != 'PNG':
        return None
    with open(path, 'rb') as f:
        header = f.read(26)
    return header[24] if len(header) == 26 and header[12:16] == b'IHDR' else None
