"""DeepSpeed optimizer wrapper: aligned ZeRO buffers, step without autograd."""
import torch
from mmengine.logging import MMLogger
# mmengine exports no public path for this class; it lives beside its strategy.
from mmengine._strategy.deepspeed import DeepSpeedOptimWrapper

from mmseg_internvit.registry import OPTIM_WRAPPERS
from .zero_alignment import ALIGNMENT_BYTES, split_groups_for_zero_alignment


@OPTIM_WRAPPERS.register_module()
class DeepSpeedNoGradStepOptimWrapper(DeepSpeedOptimWrapper):
    """mmengine's ``DeepSpeedOptimWrapper`` for ZeRO on GPU and CPU.

    - Its optimizer's groups are laid out so that ZeRO keeps the parameters
      16-byte aligned (:mod:`.zero_alignment`; ZeRO-1/2 every one, ZeRO-3 in
      one process all but the second and later of those whose size is not a
      multiple of 16 bytes): the strategy builds this wrapper before it hands
      the optimizer to ``deepspeed.initialize``.
    - ``engine.step()`` runs under no_grad: ZeRO-2 all-gathers updated
      partitions into split views of a flat buffer that autograd tracks; with
      the gloo backend (CPU runs, CI) that raises "Output 0 of Split is a view
      and is being modified inplace". An optimizer step never needs autograd.

    Args:
        optimizer: The optimizer the constructor built (not stepped yet).
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        moved = split_groups_for_zero_alignment(optimizer)
        if moved:
            MMLogger.get_current_instance().info(
                f'ZeRO alignment: {len(moved)} parameter(s) in groups of their own, after the '
                f'others, so that parameters start {ALIGNMENT_BYTES}-byte aligned: '
                f'{", ".join(moved)}')
        super().__init__(optimizer)

    def step(self, **kwargs) -> None:
        with torch.no_grad():
            super().step(**kwargs)
