"""The strategy a config trains with (DeepSpeed, FSDP or none) and the start-up
checks that it can run: a missing package, a runner or optimizer wrapper that
does not go with it, compiled blocks it would break."""
from importlib.util import find_spec

import torch
from mmengine.config import Config

from mmseg_internvit.models.backbones.vit_config import internvit_config


def strategy_type(cfg: Config) -> str:
    """The ``type`` of the config's FlexibleRunner strategy; '' without one."""
    return (cfg.get('strategy') or {}).get('type', '')


def uses_deepspeed(cfg: Config) -> bool:
    """Whether ``cfg`` trains through mmengine's DeepSpeed strategy."""
    return strategy_type(cfg) == 'DeepSpeedStrategy'


def uses_fsdp(cfg: Config) -> bool:
    """Whether ``cfg`` trains through an FSDP strategy (mmengine's or a subclass
    named ``*FSDPStrategy``)."""
    return strategy_type(cfg).endswith('FSDPStrategy')


def zero_stage(cfg: Config) -> int:
    """The ZeRO stage of the config's DeepSpeed strategy; 0 without one."""
    return ((cfg.get('strategy') or {}).get('zero_optimization') or {}).get('stage', 0)


def check_strategy(cfg: Config) -> None:
    """Fail at start-up, with what to change, for strategies that cannot run."""
    kind = strategy_type(cfg)
    wrapper = cfg.get('optim_wrapper', {}).get('type', 'OptimWrapper')
    if kind and cfg.get('runner_type') != 'FlexibleRunner':
        raise ValueError(f"strategy={kind!r} is only used by runner_type='FlexibleRunner'; "
                         'add that line to the config')
    if kind == 'DeepSpeedStrategy':
        if find_spec('deepspeed') is None:
            raise ImportError('This config trains with DeepSpeed, which is not installed: '
                              '`pip install --no-build-isolation -r requirements-deepspeed.txt` '
                              '(make install does it), or use an FSDP config.')
        if 'DeepSpeed' not in wrapper:
            raise ValueError(f"DeepSpeedStrategy needs optim_wrapper.type="
                             f"'DeepSpeedNoGradStepOptimWrapper' (or 'DeepSpeedOptimWrapper'), "
                             f'got {wrapper!r}')
    check_compile_fits_strategy(cfg)
    if uses_fsdp(cfg) and wrapper == 'AmpOptimWrapper' and not torch.cuda.is_available():
        raise ValueError('AmpOptimWrapper needs a GPU; on CPU use optim_wrapper.type='
                         "'OptimWrapper' with FSDP's own mixed_precision")


def check_compile_fits_strategy(cfg: Config) -> None:
    """Refuse compiled InternViT blocks where the strategy's parameter handling breaks them.

    DeepSpeed ZeRO-3 gathers each block's parameters in hooks that a compiled
    block would have to trace. FSDP without ``use_orig_params=True`` hands the
    blocks its flat parameters; with it (as this package's FSDP configs do)
    the compiled blocks see the original parameters and train (tested on 2
    CPU processes; the GPU lane has an NCCL case). Plain runs, DDP and
    ZeRO-1/2 keep whole parameters and are fine.
    """
    vit = internvit_config((cfg.get('model') or {}).get('backbone'))
    if not vit or not vit.get('compile'):
        return
    if uses_deepspeed(cfg) and zero_stage(cfg) == 3:
        raise ValueError('model.backbone compile=True cannot be combined with DeepSpeed ZeRO-3: '
                         'its parameter gathering around each block does not work inside a '
                         'compiled block. Set compile=False (e.g. --cfg-options '
                         'model.backbone.compile=False), or train with DeepSpeed ZeRO-1/2, DDP '
                         'or FSDP.')
    if uses_fsdp(cfg) and not (cfg.strategy.get('model_wrapper') or {}).get('use_orig_params'):
        raise ValueError('model.backbone compile=True under FSDP needs '
                         'strategy.model_wrapper.use_orig_params=True (without it the compiled '
                         "blocks would see FSDP's flat parameters), or set compile=False.")
