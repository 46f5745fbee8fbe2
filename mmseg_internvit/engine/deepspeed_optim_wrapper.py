"""DeepSpeed optimizer wrapper whose step runs without autograd."""
import torch
# mmengine exports no public path for this class; it lives beside its strategy.
from mmengine._strategy.deepspeed import DeepSpeedOptimWrapper

from mmseg_internvit.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class DeepSpeedNoGradStepOptimWrapper(DeepSpeedOptimWrapper):
    """mmengine's ``DeepSpeedOptimWrapper`` with ``engine.step()`` under no_grad.

    ZeRO-2 all-gathers updated partitions into split views of a flat buffer
    that autograd tracks; with the gloo backend (CPU runs, CI) that raises
    "Output 0 of Split is a view and is being modified inplace". An optimizer
    step never needs autograd, so running it under ``torch.no_grad()`` is
    correct everywhere and makes ZeRO-2 work on CPU as on GPU.
    """

    def step(self, **kwargs) -> None:
        with torch.no_grad():
            super().step(**kwargs)
