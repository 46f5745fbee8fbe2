"""Segment many files and write label maps, overlays, probabilities and areas."""
import os.path as osp
import sys
import time
from dataclasses import dataclass, field
from typing import List, Optional, TextIO, Tuple

import numpy as np

from .image_io import ImageReadError, read_image
from .inputs import InputImage
from .segmenter import Segmenter
from .writers import blend_overlay, class_areas, write_json, write_label_png, write_npz, \
    write_rgb_png


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


class Progress:
    """Progress with images/s on ``stream``: one line redrawn on a terminal, else a
    line per tenth of the work (so logs stay short).
    """

    def __init__(self, total: int, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.total, self.stream, self.width = total, stream, width
        self.count, self.failed = 0, 0
        self.start = time.perf_counter()
        self.interactive = getattr(stream, 'isatty', lambda: False)()

    def update(self, failed: bool = False) -> None:
        self.count += 1
        self.failed += failed
        step = max(self.total // 10, 1)
        if not self.interactive and self.count % step and self.count != self.total:
            return
        elapsed = time.perf_counter() - self.start
        filled = self.width * self.count // max(self.total, 1)
        rate = self.count / elapsed if elapsed > 0 else 0.0
        line = (f'[{"#" * filled}{"." * (self.width - filled)}] {self.count}/{self.total} '
                f'images, {rate:.2f} images/s, {self.failed} failed')
        if self.interactive:
            end = '\n' if self.count == self.total else ''
            self.stream.write(f'\r{line}{end}')
        else:
            self.stream.write(line + '\n')
        self.stream.flush()


def write_outputs(segmenter: Segmenter, result, rgb: np.ndarray, out_base: str,
                  opacity: float, save_logits: bool, save_areas: bool) -> None:
    """Write ``<out_base>_label.png`` and ``_overlay.png``, optionally ``_logits.npz``
    and ``_areas.json``."""
    label = result.pred_sem_seg.data[0].cpu().numpy()
    write_label_png(out_base + '_label.png', label, segmenter.palette)
    write_rgb_png(out_base + '_overlay.png',
                  blend_overlay(rgb, label, segmenter.palette, opacity))
    if save_logits:
        probs = result.seg_probs.data.float().cpu().numpy().astype(np.float16)
        write_npz(out_base + '_logits.npz', probs=probs, classes=np.array(segmenter.classes))
    if save_areas:
        write_json(out_base + '_areas.json', class_areas(label, segmenter.classes))


def run_inference(segmenter: Segmenter, images: List[InputImage], out_dir: str,
                  opacity: float = 0.5, save_logits: bool = False, save_areas: bool = False,
                  progress: Optional[Progress] = None, log: TextIO = sys.stderr) -> Summary:
    """Segment ``images`` ``segmenter.batch_size`` at a time and write their outputs.

    A file that cannot be read, segmented or written is reported on ``log``
    and counted as failed; the others go on.
    """
    summary = Summary()
    start = time.perf_counter()
    progress = progress or Progress(len(images), stream=log)

    def fail(image: InputImage, reason: str) -> None:
        reason = reason[len(image.path) + 2:] if reason.startswith(image.path + ': ') else reason
        summary.failed.append((image.path, reason))
        if progress.interactive:
            log.write('\n')  # keep the progress line above the message
        log.write(f'failed: {image.path}: {reason}\n')
        progress.update(failed=True)

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
    summary.seconds = time.perf_counter() - start
    return summary
