"""DeepSpeed optimizer wrapper: aligned ZeRO buffers, step without autograd, and a
resume that refuses optimizer states laid out for other parameter groups."""
from typing import List, Optional

import torch
from mmengine.logging import MMLogger
# mmengine exports no public path for this class; it lives beside its strategy.
from mmengine._strategy.deepspeed import DeepSpeedOptimWrapper

from mmseg_internvit.registry import OPTIM_WRAPPERS
from .zero_alignment import ALIGNMENT_BYTES, split_groups_for_zero_alignment

# The key of ZeRO's layout in the wrapper's state (in every checkpoint's optim_wrapper).
ZERO_LAYOUT_KEY = 'zero_param_groups'


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
    - Its state in a checkpoint records ZeRO's layout (the names of the
      parameters of each flat group, in order, as DeepSpeed lists them), and a
      resume refuses a checkpoint whose layout differs from the run's.
      DeepSpeed 0.18 restores ZeRO's fp32 master weights and optimizer moments
      group by group and position by position (``zip`` over the groups, each
      padded to the current size), so another order of the parameters in the
      groups (a model whose modules changed order, another layout of this
      wrapper) would put them on other parameters without an error (another
      number of groups fails in torch's ``load_state_dict``). mmengine's
      strategy loads this state right after the engine has loaded its own,
      before any step, so the run stops before it trains or saves.

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

    def state_dict(self) -> dict:
        state = super().state_dict()
        layout = self._zero_layout()
        if layout is not None:
            state[ZERO_LAYOUT_KEY] = layout
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        saved = state_dict.pop(ZERO_LAYOUT_KEY, None)
        current = self._zero_layout()
        if saved is not None and current is not None and saved != current:
            raise ValueError(
                'Cannot resume this DeepSpeed checkpoint: its ZeRO optimizer states were '
                'saved for other parameter groups than this run has '
                f'({describe_layout_difference(saved, current)}), and DeepSpeed would load '
                'its fp32 master weights and optimizer moments onto other parameters. '
                'Resume with the model and optim_wrapper config the checkpoint was trained '
                'with, or start from its weights only: load_from=CHECKPOINT without --resume.')
        super().load_state_dict(state_dict)

    def _zero_layout(self) -> Optional[List[List[str]]]:
        """The names of the parameters in each of ZeRO's flat groups, in order; None
        without ZeRO (stage 0) or before the strategy has set :attr:`model`."""
        engine = self._model
        if engine is None or not engine.zero_optimization():
            return None
        # DeepSpeed's own listing (private in 0.18, the pinned version): what it saves
        # in every model-states file as param_shapes, round-robin order included.
        return [list(group) for group in engine._get_zero_param_shapes()]


def describe_layout_difference(saved: List[List[str]], current: List[List[str]]) -> str:
    """The first place where two ZeRO layouts differ, in words."""
    if len(saved) != len(current):
        return f'{len(saved)} groups saved, {len(current)} now'
    for index, (old, new) in enumerate(zip(saved, current)):
        if old != new:
            only_old = [name for name in old if name not in new]
            only_new = [name for name in new if name not in old]
            what = (f'only saved: {only_old[:3]}, only now: {only_new[:3]}'
                    if only_old or only_new else 'the same parameters in another order')
            return f'group {index}: {what}'
    return 'the same layout'
