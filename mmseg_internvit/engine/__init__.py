"""Training machinery: layer-decay optimizer constructor, DeepSpeed/FSDP helpers,
crash-safe checkpoint saving."""
from mmseg_internvit import runner_import  # noqa: F401 (first: see that module)
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .deepspeed_optim_wrapper import DeepSpeedNoGradStepOptimWrapper
from .fsdp_strategy import TorchCompatFSDPStrategy
from .fsdp_policy import internvit_auto_wrap_policy, is_internvit_block
from .layer_decay_constructor import LayerDecayOptimWrapperConstructor, find_layer_depth_owner

__all__ = [
    'AtomicCheckpointHook', 'DeepSpeedNoGradStepOptimWrapper', 'internvit_auto_wrap_policy',
    'is_internvit_block', 'TorchCompatFSDPStrategy', 'LayerDecayOptimWrapperConstructor',
    'find_layer_depth_owner'
]
