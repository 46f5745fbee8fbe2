"""Parameter groups laid out so that ZeRO-1/2 keep every parameter 16-byte aligned.

DeepSpeed's ZeRO stages 1 and 2 copy each optimizer parameter group into one
flat buffer and turn the model's parameters into views of it, one after the
other. A view starts where the previous parameters' elements end, so after a
parameter whose size is not a multiple of 16 bytes (the 150-way classifier's
bias) every later view of the group is misaligned, and kernels that assume
aligned weights fail: the linear head's first ZeRO-2 step on an H200 raised
"CUDA error: misaligned address" (its BatchNorm weight and bias sat 8 bytes
off). DeepSpeed 0.18 has no option to pad between parameters (0.19's
``parameter_alignment`` comes with a DeepSpeed that mmengine 0.10.7's strategy
cannot import: it removed the 1-bit optimizers).

Each group's buffer is allocated on its own, so its first parameter is always
aligned. :func:`split_groups_for_zero_alignment` keeps the parameters whose
size is a multiple of 16 bytes at the front of their group, one other at its
end, and gives each further one a group of its own with the same settings.
The optimizer's arithmetic is unchanged (an InternViT-6B UperNet gets one extra
group for the auxiliary head's bias). Order-changing options such as ZeRO's
``round_robin_gradients`` undo the layout.
"""
from typing import List

import torch

ALIGNMENT_BYTES = 16
# The narrowest dtype ZeRO casts parameters to (bf16/fp16): a size that is a
# multiple of 16 bytes there is one in fp32 too.
NARROWEST_ELEMENT_BYTES = 2
ALIGNED_NUMEL = ALIGNMENT_BYTES // NARROWEST_ELEMENT_BYTES


def split_groups_for_zero_alignment(optimizer: torch.optim.Optimizer) -> List[str]:
    """Rearrange ``optimizer.param_groups`` in place (see the module); before any step.

    Parameters that do not train are left where they are: ZeRO leaves them out
    of its buffers.

    Returns:
        A line per parameter moved to a group of its own (its shape), for the log.
    """
    if optimizer.state:
        raise RuntimeError('split_groups_for_zero_alignment must run before the optimizer '
                           'has state (before the first step and before a resume loads it)')
    groups, moved = [], []
    for group in optimizer.param_groups:
        unaligned, rest = [], []
        for param in group['params']:
            (unaligned if param.requires_grad and param.numel() % ALIGNED_NUMEL else rest).append(
                param)
        groups.append({**group, 'params': rest + unaligned[:1]})
        for param in unaligned[1:]:
            groups.append({**group, 'params': [param]})
            moved.append(f'{tuple(param.shape)} ({param.numel()} elements)')
    optimizer.param_groups[:] = groups
    return moved
