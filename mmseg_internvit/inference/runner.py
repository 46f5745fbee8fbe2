"""Segment many files and write label maps, overlays, probabilities and areas."""
import os.path as osp
import sys
import time
from dataclasses import dataclass, field
from typing import List, Optional, TextIO, Tuple

import numpy as np
import torch
from mmengine.structures import PixelData
from mmengine.utils import ProgressBar
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer

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


def draw_overlay(segmenter: Segmenter, rgb: np.ndarray, label: np.ndarray,
                 opacity: float) -> np.ndarray:
    """The class colours over ``rgb`` at ``opacity``, drawn by mmseg's visualizer.

    Drawn a band of rows at a time (the blend is per pixel, so the result is
    the same), which keeps the visualizer's float64 copies of a 24-megapixel
    photo from costing gigabytes.
    """
    visualizer = SegLocalVisualizer.get_instance(
        f'mmseg_internvit-infer-{id(segmenter)}-{opacity}', alpha=opacity)
    visualizer.set_dataset_meta(classes=segmenter.classes, palette=segmenter.palette)
    out = np.empty(rgb.shape, dtype=np.uint8)
    for start in range(0, rgb.shape[0], OVERLAY_ROWS):
        rows = slice(start, start + OVERLAY_ROWS)
        band = SegDataSample(pred_sem_seg=PixelData(data=torch.from_numpy(label[None, rows])))
        visualizer.add_datasample('overlay', np.ascontiguousarray(rgb[rows]), band,
                                  draw_gt=False, with_labels=False)
        out[rows] = visualizer.get_image()
    return out


def write_outputs(segmenter: Segmenter, result, rgb: np.ndarray, out_base: str,
                  opacity: float, save_logits: bool, save_areas: bool) -> None:
    """Write ``<out_base>_label.png`` and ``_overlay.png``, optionally ``_logits.npz``
    and ``_areas.json``."""
    label = result.pred_sem_seg.data[0].cpu().numpy()
    write_label_png(out_base + '_label.png', label, segmenter.palette)
    write_rgb_png(out_base + '_overlay.png', draw_overlay(segmenter, rgb, label, opacity))
    if save_logits:
        probs = result.seg_probs.data.float().cpu().numpy().astype(np.float16)
        write_npz(out_base + '_logits.npz', probs=probs, classes=np.array(segmenter.classes))
    if save_areas:
        write_json(out_base + '_areas.json', class_areas(label, segmenter.classes))


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
            except (OSError, ValueError) as e:
                fail(image, f'writing outputs failed: {e}')
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
