"""Segment many files and write label maps, overlays, probabilities and areas."""
import contextlib
import os.path as osp
import sys
import time
from dataclasses import dataclass, field
from typing import List, Optional, TextIO, Tuple

import numpy as np
from mmengine.structures import PixelData
from mmengine.utils import ProgressBar
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer

from mmseg_internvit.atomic_io import remove_path
from .image_io import ImageReadError, read_image
from .inputs import InputImage
from .segmenter import Segmenter
from .writers import class_areas, write_json, write_label_png, write_npz, write_rgb_png


@dataclass
class Summary:
    """What a run did: images written, failures ``(path, reason)`` and wall time."""
    done: int = 0
    failed: List[Tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def __str__(self) -> str:
        total = self.done + len(self.failed)
        rate = total / self.seconds if self.seconds > 0 else 0.0
        return (f'{self.done} of {total} images done, {len(self.failed)} failed, '
                f'{self.seconds:.1f} s ({rate:.2f} images/s)')


OVERLAY_ROWS = 256  # rows drawn per call: the visualizer's float copies stay small


def overlay_visualizer(segmenter: Segmenter, opacity: float) -> SegLocalVisualizer:
    """The visualizer drawing ``segmenter``'s classes at ``opacity``, made once.

    mmengine warns whenever an existing instance is asked for with arguments,
    so the arguments are given only when the instance is created.
    """
    name = f'mmseg_internvit-infer-{id(segmenter)}-{opacity}'
    if SegLocalVisualizer.check_instance_created(name):
        visualizer = SegLocalVisualizer.get_instance(name)
    else:
        visualizer = SegLocalVisualizer.get_instance(name, alpha=opacity)
    # Set every time: a later segmenter may get the id of a collected one.
    visualizer.set_dataset_meta(classes=segmenter.classes, palette=segmenter.palette)
    return visualizer


def draw_overlay(segmenter: Segmenter, rgb: np.ndarray, label: np.ndarray,
                 opacity: float) -> np.ndarray:
    """The class colours over ``rgb`` at ``opacity``, drawn by mmseg's visualizer.

    Drawn a band of rows at a time (the blend is per pixel, so the result is
    the same), which keeps the visualizer's float64 copies of a 24-megapixel
    photo from costing gigabytes.
    """
    visualizer = overlay_visualizer(segmenter, opacity)
    out = np.empty(rgb.shape, dtype=np.uint8)
    for start in range(0, rgb.shape[0], OVERLAY_ROWS):
        rows = slice(start, start + OVERLAY_ROWS)
        # A numpy label, not a tensor: the visualizer indexes with ``label == id``,
        # and numpy reads a one-element tensor as an integer index (1-pixel bands).
        band = SegDataSample(pred_sem_seg=PixelData(data=np.ascontiguousarray(label[None, rows])))
        visualizer.add_datasample('overlay', np.ascontiguousarray(rgb[rows]), band,
                                  draw_gt=False, with_labels=False)
        out[rows] = visualizer.get_image()
    return out


# Failures that are about one image's outputs (a file that cannot be written,
# an image too large to draw): that image fails, the others go on. Anything
# else is a bug and keeps its traceback.
WRITE_ERRORS = (OSError, ValueError, MemoryError)


def write_outputs(segmenter: Segmenter, result, rgb: np.ndarray, out_base: str,
                  opacity: float, save_logits: bool, save_areas: bool) -> None:
    """Write ``<out_base>_label.png`` and ``_overlay.png``, optionally ``_logits.npz``
    and ``_areas.json``: all of them or, if one fails, none.

    Everything is computed before the first file is written, and the files
    already written are removed again if a later one cannot be.

    Args:
        segmenter: Gives the class names and colours.
        result: The image's ``SegDataSample`` (``seg_probs`` with ``save_logits``).
        rgb: The image, ``(H, W, 3)`` uint8 RGB.
        out_base: Output path without the ``_label.png`` etc. suffixes.
        opacity: Colour weight in the overlay, 0..1.
        save_logits, save_areas: Also write the probabilities / class areas.
    """
    label = result.pred_sem_seg.data[0].cpu().numpy()
    writes = [(out_base + '_label.png', lambda path: write_label_png(path, label,
                                                                     segmenter.palette))]
    overlay = draw_overlay(segmenter, rgb, label, opacity)
    writes.append((out_base + '_overlay.png', lambda path: write_rgb_png(path, overlay)))
    if save_logits:
        probs = result.seg_probs.data.float().cpu().numpy().astype(np.float16)
        writes.append((out_base + '_logits.npz', lambda path: write_npz(
            path, probs=probs, classes=np.array(segmenter.classes))))
    if save_areas:
        areas = class_areas(label, segmenter.classes)
        writes.append((out_base + '_areas.json', lambda path: write_json(path, areas)))
    written = []
    try:
        for path, write in writes:
            write(path)
            written.append(path)
    except BaseException:
        for path in written:
            with contextlib.suppress(OSError):  # the original error is the one to report
                remove_path(path)
        raise


def run_inference(segmenter: Segmenter, images: List[InputImage], out_dir: str,
                  opacity: float = 0.5, save_logits: bool = False, save_areas: bool = False,
                  log: Optional[TextIO] = None) -> Summary:
    """Segment ``images`` ``segmenter.batch_size`` at a time and write their outputs.

    Progress is mmengine's progress bar on ``log`` (default: stderr). A file
    that cannot be read, segmented or written is reported on ``log`` and
    counted as failed; the others go on.
    """
    log = log or sys.stderr
    summary = Summary()
    start = time.perf_counter()
    progress = ProgressBar(len(images), file=log)

    def fail(image: InputImage, reason: str) -> None:
        reason = reason[len(image.path) + 2:] if reason.startswith(image.path + ': ') else reason
        summary.failed.append((image.path, reason))
        log.write(f'\nfailed: {image.path}: {reason}\n')
        progress.update()

    def flush(batch: List[Tuple[InputImage, np.ndarray]]) -> None:
        try:
            results = segmenter.predict_batch([bgr for _, bgr in batch])
        except Exception as e:  # noqa: BLE001  (one bad batch must not end the run)
            if len(batch) > 1:  # find the culprit (or fit in memory) one image at a time
                for item in batch:
                    flush([item])
                return
            fail(batch[0][0], f'inference failed: {type(e).__name__}: {e}')
            return
        for (image, bgr), result in zip(batch, results):
            try:
                write_outputs(segmenter, result, bgr[..., ::-1], osp.join(out_dir, image.name),
                              opacity, save_logits, save_areas)
            except WRITE_ERRORS as e:
                fail(image, f'writing outputs failed: {str(e) or type(e).__name__}')
                continue
            summary.done += 1
            progress.update()

    batch = []
    for image in images:
        try:
            batch.append((image, read_image(image.path)))
        except ImageReadError as e:
            fail(image, str(e))
            continue
        if len(batch) == segmenter.batch_size:
            flush(batch)
            batch = []
    if batch:
        flush(batch)
    log.write('\n')
    summary.seconds = time.perf_counter() - start
    return summary
