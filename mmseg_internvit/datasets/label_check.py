"""A pipeline step that rejects segmentation labels a loss cannot take."""
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
    Image and label sizes are checked too.

    Args:
        num_classes: Valid labels are ``0 .. num_classes - 1``.
        ignore_index: The one other value allowed.
    """

    def __init__(self, num_classes: int = 150, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def transform(self, results: dict) -> dict:
        label = results.get('gt_seg_map')
        if label is None:
            return results
        path = results.get('seg_map_path', '<in-memory label>')
        values = np.unique(label)
        bad = values[(values >= self.num_classes) & (values != self.ignore_index)]
        if bad.size:
            raise ValueError(
                f'{path} has label values {bad.tolist()[:10]} outside 0..{self.num_classes - 1} '
                f'(and {self.ignore_index} = ignore) after reduce_zero_label: fix the file, or '
                'check num_classes and reduce_zero_label for this dataset '
                '(tools/dataset/check_ade20k.py checks a whole ADE20K folder).')
        # ori_shape: the image as loaded (test pipelines resize it before
        # loading the label, which stays at the original size).
        shape = results.get('ori_shape')
        if shape is not None and tuple(shape[:2]) != label.shape[:2]:
            raise ValueError(f'{path} is {label.shape[1]}x{label.shape[0]} but its image '
                             f'{results.get("img_path")} is {shape[1]}x{shape[0]}; '
                             'an annotation must have the size of its image.')
        return results
