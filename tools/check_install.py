"""Check that the installed stack works: mmcv ops load and run, mm packages import."""
import sys

import torch


def main() -> int:
    import mmseg_internvit  # noqa: F401  (first: it keeps DeepSpeed's CPU notice quiet)
    try:
        from mmcv.ops import nms
    except ImportError as exc:
        print(f'mmcv was installed without its compiled ops ({exc}). Rebuild it with '
              '`rm -rf ~/.cache/mmseg_internvit && make clean install`.', file=sys.stderr)
        return 1
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]])
    _, keep = nms(boxes, torch.tensor([0.9, 0.8]), iou_threshold=0.5)
    if keep.tolist() != [0]:
        print(f'mmcv.ops.nms returned {keep.tolist()} instead of [0]: the mmcv wheel '
              'does not match this torch; remove ~/.cache/mmseg_internvit and reinstall.',
              file=sys.stderr)
        return 1
    import mmdet  # noqa: F401
    import mmseg  # noqa: F401
    print(f'install ok: torch {torch.__version__}, mmcv ops run')
    return 0


if __name__ == '__main__':
    sys.exit(main())
