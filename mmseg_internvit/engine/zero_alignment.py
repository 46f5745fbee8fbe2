"""Parameter groups laid out so that DeepSpeed ZeRO keeps parameters 16-byte aligned.

DeepSpeed 0.18 packs parameters back to back into flat buffers and turns the
model's parameters into views of them: ZeRO-1/2 one buffer per optimizer
parameter group, ZeRO-3 one buffer for all groups in order (its partitions; in
a single process these are the parameters themselves). A view starts where the
previous parameters' elements end, so after a parameter whose size is not a
multiple of 16 bytes (the 150-way classifier's bias) every later view is
misaligned, and kernels that assume aligned weights fail: the linear head's
first ZeRO-2 step on an H200 raised "CUDA error: misaligned address" (its
BatchNorm weight and bias sat 8 bytes off). DeepSpeed 0.18 has no option to pad
between parameters (0.19's ``parameter_alignment`` comes with a DeepSpeed that
mmengine 0.10.7's strategy cannot import: it removed the 1-bit optimizers).

:func:`split_groups_for_zero_alignment` keeps each group's parameters whose
size is a multiple of 16 bytes where they are and gives every other one a group
of its own with the same settings, after all the original groups. ZeRO-1/2
allocate each group's buffer on its own, so every parameter starts aligned;
ZeRO-3 in one process (several gather each parameter into a fresh tensor)
keeps all of them aligned up to and including the first such parameter, and
only the ones after it off (an InternViT-6B UperNet: its auxiliary head's
bias). The optimizer's arithmetic is unchanged. Order-changing options such as
ZeRO's ``round_robin_gradients`` undo the layout.
"""
from typing import List

import torch

ALIGNMENT_BYTES = 16
# The narrowest dtype ZeRO casts parameters to (bf16/fp16): a size that is a
# multiple of 16 bytes there is one in fp32 too.
NARROWEST_ELEMENT_BYTES = 2
ALIGNED_NUMEL = ALIGNMENT_BYTES // NARROWEST_ELEMENT_BYTES


def _subgroup(group: dict, indices: List[int]) -> dict:
    """``group`` with only the parameters at ``indices`` (and their ``param_names``)."""
    new = {**group, 'params': [group['params'][i] for i in indices]}
    if 'param_names' in group:
        new['param_names'] = [group['param_names'][i] for i in indices]
    return new


def split_groups_for_zero_alignment(optimizer: torch.optim.Optimizer) -> List[str]:
    """Rearrange ``optimizer.param_groups`` in place (see the module); before any step.

    Parameters that do not train stay in their group (ZeRO leaves them out of
    its buffers); a group's ``param_names`` (torch's named groups, as the
    layer-decay constructor makes) are split with its parameters.

    Returns:
        A line per parameter moved to a group of its own (its name where the
        group has ``param_names``, else its shape), for the log.
    """
    if optimizer.state:
        raise RuntimeError('split_groups_for_zero_alignment must run before the optimizer '
                           'has state (before the first step and before a resume loads it)')
    groups, singles, moved = [], [], []
    for group in optimizer.param_groups:
        params = group['params']
        trainable = [i for i, p in enumerate(params) if p.requires_grad]
        unaligned = [i for i in trainable if params[i].numel() % ALIGNED_NUMEL]
        if not unaligned or len(trainable) == 1:  # nothing to move, or alone already
            (singles if unaligned else groups).append(group)
            continue
        rest = [i for i in range(len(params)) if i not in unaligned]
        parts = [[i] for i in unaligned]
        if any(params[i].requires_grad for i in rest):
            groups.append(_subgroup(group, rest))
        else:  # only frozen ones stay: with the first moved one (ZeRO needs one that trains)
            parts[0] = rest + parts[0]
        for indices in parts:
            singles.append(_subgroup(group, indices))
            param = params[indices[-1]]
            name = group['param_names'][indices[-1]] if 'param_names' in group else tuple(
                param.shape)
            moved.append(f'{name} ({param.numel()} elements)')
    optimizer.param_groups[:] = groups + singles
    return moved
