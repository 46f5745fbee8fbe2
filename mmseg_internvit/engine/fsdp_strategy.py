"""mmengine's FSDPStrategy with resume working on current torch."""
from mmengine._strategy import FSDPStrategy
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

from mmseg_internvit.registry import STRATEGIES


@STRATEGIES.register_module()
class TorchCompatFSDPStrategy(FSDPStrategy):
    """``FSDPStrategy`` whose optimizer-state loading names its arguments.

    mmengine 0.10.7 calls ``FSDP.optim_state_dict_to_load(state, model, optim)``
    positionally, in the order of torch 1.x; torch 2.x takes ``(model, optim,
    state)``, so every resume fails with "unhashable type: 'dict'". Use in a
    config as ``strategy=dict(type='mmseg_internvit.TorchCompatFSDPStrategy')``.
    """

    def load_optim_state_dict(self, state_dict: dict) -> None:
        optim_state_dict = FSDP.optim_state_dict_to_load(
            model=self.model, optim=self.optim_wrapper.optimizer, optim_state_dict=state_dict)
        self.optim_wrapper.load_state_dict(optim_state_dict)
