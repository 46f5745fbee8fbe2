"""Upstream InternViT's evaluation resize: the short side to a fixed length."""
from typing import Tuple

from mmcv.image import rescale_size
from mmcv.transforms import BaseTransform, Resize

from mmseg_internvit.registry import TRANSFORMS


def short_side_size(width: int, height: int, short_side: int) -> Tuple[int, int]:
    """``(width, height)`` after scaling so that the shorter side is ``short_side``.

    The factor is ``short_side / min(width, height)`` and each side is rounded
    half up (mmcv's ``rescale_size``), so the short side comes out exactly
    ``short_side`` and the long side is not capped.
    """
    return rescale_size((width, height), short_side / min(width, height))


@TRANSFORMS.register_module()
class ShortSideResize(BaseTransform):
    """Resize keeping the aspect ratio so that the shorter side is ``short_side``.

    This is the test-time resize of the upstream InternViT segmentation
    configs: ``SETR_Resize(keep_ratio=True, crop_size=(c, c),
    setr_multi_scale=True)`` inside ``MultiScaleFlipAug(img_scale=(L, S))``
    sets the short side to ``max(S, c)`` whatever the long side becomes (the
    ``L`` cap of mmseg's ``Resize`` does not apply), with the sizes rounded and
    the image interpolated as mmcv's ``imrescale`` does (bilinear, cv2). Follow
    it with mmseg's ``ResizeToMultiple(size_divisor=14)`` for the full
    upstream protocol. Annotations loaded before this step are resized with
    nearest interpolation; mmseg 1.x test pipelines load them after it, so
    metrics are computed at the original size.

    mmcv's ``Resize`` does the resizing (image, segmentation map, boxes,
    ``scale_factor``); this class only chooses the size per image.

    Args:
        short_side: Length of the shorter side after resizing, in pixels.
        interpolation: Image interpolation, as for mmcv's ``Resize``.
        backend: ``'cv2'`` or ``'pillow'``, as for mmcv's ``Resize``.
    """

    def __init__(self, short_side: int, interpolation: str = 'bilinear',
                 backend: str = 'cv2') -> None:
        if isinstance(short_side, bool) or not isinstance(short_side, int) or short_side <= 0:
            raise ValueError(f'ShortSideResize: short_side must be a positive int, '
                             f'got {short_side!r}')
        self.short_side = short_side
        # keep_ratio=False: the size chosen per image is used as is.
        self.resize = Resize(scale=short_side, keep_ratio=False,
                             interpolation=interpolation, backend=backend)

    def transform(self, results: dict) -> dict:
        height, width = results['img'].shape[:2]
        # As mmcv's RandomResize does: set the size on the inner Resize, then run it.
        self.resize.scale = short_side_size(width, height, self.short_side)
        return self.resize(results)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(short_side={self.short_side}, '
                f'interpolation={self.resize.interpolation!r}, backend={self.resize.backend!r})')
