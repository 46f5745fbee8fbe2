"""``tools/check_install.py``: check that the installed stack works (mmcv ops load and
run, mm packages import); ``make install`` runs it last."""
import sys

import torch


def main(argv=None) -> int:
    # Not register_all_modules(): it imports mmcv.ops, which this checks first.
    from mmseg_internvit.registration import name_cpu_accelerator_for_deepspeed
    name_cpu_accelerator_for_deepspeed()
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
    where = 'CPU'
    if torch.cuda.is_available():
        try:
            _, keep = nms(boxes.cuda(), torch.tensor([0.9, 0.8]).cuda(), iou_threshold=0.5)
        except RuntimeError as exc:
            print(f'mmcv.ops.nms has no CUDA kernel here ({exc}): the mmcv wheel was built '
                  'without CUDA ops (or for another GPU arch); remove its folder in '
                  '~/.cache/mmseg_internvit and run make install on this GPU machine.',
                  file=sys.stderr)
            return 1
        where = f'CPU and CUDA ({torch.cuda.get_device_name()})'
    import mmdet  # noqa: F401
    import mmseg  # noqa: F401
    print(f'install ok: torch {torch.__version__}, mmcv ops run on {where}')
    return 0
