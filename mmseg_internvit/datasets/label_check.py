"""A pipeline step that rejects segmentation labels a loss cannot take."""
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform

from mmseg_internvit.registry import TRANSFORMS


@TRANSFORMS.register_module()
class CheckSegLabels(BaseTransform):
    """Fail on a sample whose label map has values outside the classes.

    A value >= num_classes reaches the cross-entropy as an out-of-bounds
    target: an opaque error deep in the loss on CPU, a device-side assert on
    GPU, hours into a run. Checked right after ``LoadAnnotations`` (so after
    ``reduce_zero_label``), the error names the annotation file instead.
    Image and label sizes, and single-channel annotations, are checked too.

    Args:
        num_classes: Valid labels are ``0 .. num_classes - 1``. Configs leave it
            out: ``tools/train.py`` / ``tools/test.py`` set it from the model's
            ``decode_head.num_classes`` (see
            :func:`mmseg_internvit.apis.launch.sync_label_checks`), so a class
            count changed on the command line is checked too. None skips the
            range check.
        ignore_index: The one other value allowed.
    """

    def __init__(self, num_classes: Optional[int] = None, ignore_index: int = 255) -> None:
        if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 1):
            raise ValueError(f'CheckSegLabels num_classes must be a positive int, got '
                             f'{num_classes!r}')
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def transform(self, results: dict) -> dict:
        label = results.get('gt_seg_map')
        if label is None:
            return results
        path = results.get('seg_map_path', '<in-memory label>')
        if label.ndim != 2:
            raise ValueError(
                f'{path} has {label.shape[2] if label.ndim == 3 else label.shape} channels: an '
                'annotation must be a single-channel map of class ids (a palette or grayscale '
                'PNG), not a colour image; convert colours to class ids first.')
        if self.num_classes is not None:
            self._check_range(label, path, results.get('reduce_zero_label', False))
        # ori_shape: the image as loaded (test pipelines resize it before
        # loading the label, which stays at the original size).
        shape = results.get('ori_shape')
        if shape is not None and tuple(shape[:2]) != label.shape[:2]:
            raise ValueError(f'{path} is {label.shape[1]}x{label.shape[0]} but its image '
                             f'{results.get("img_path")} is {shape[1]}x{shape[0]}; '
                             'an annotation must have the size of its image.')
        return results

    def _check_range(self, label: np.ndarray, path: str, reduced: bool) -> None:
        values = np.unique(label)
        bad = values[(values >= self.num_classes) & (values != self.ignore_index)]
        if not bad.size:
            return
        stored = (f' (stored as {(bad + 1).tolist()[:10]} before reduce_zero_label)'
                  if reduced else '')
        raise ValueError(
            f'{path} has label values {bad.tolist()[:10]}{stored} outside '
            f'0..{self.num_classes - 1} (and {self.ignore_index} = ignore) for a model of '
            f'{self.num_classes} classes, reduce_zero_label={bool(reduced)}: fix the file, or '
            'check model.decode_head.num_classes and reduce_zero_label for this dataset '
            '(tools/dataset/check_ade20k.py checks a whole ADE20K folder).')
