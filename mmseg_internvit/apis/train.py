"""``tools/train.py``: train a segmentor or detector from an mm config (mmseg's flags).

Configs may set ``runner_type='FlexibleRunner'`` (DeepSpeed / FSDP) and
``custom_imports``; no PYTHONPATH changes are needed.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--cfg-options k=v ...] [--launcher pytorch] [--debug]
"""
import argparse
from typing import List, Optional

import torch

from .config_checks import check_optimizer_type, check_training_schedule
from .errors import ToolError, one_line, raised_in
from .launch import add_common_args, build_runner, load_config
from .resume import (check_fits_before_loading, check_load_from, load_file_at_model_init,
                     resolve_resume)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='tools/train.py',
                                     description='Train with an mmseg/mmdet config')
    parser.add_argument('config', help='config file')
    parser.add_argument('--resume', nargs='?', const='auto', default=None,
                        help='resume from CKPT, or without a path from the newest complete '
                             'checkpoint in the work dir (incomplete ones are skipped)')
    parser.add_argument('--amp', action='store_true', help='mixed precision (GPU only)')
    add_common_args(parser)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Train; returns the exit status (user errors raise: tools/*.py run it through
    :func:`~mmseg_internvit.apis.errors.run_tool`)."""
    args = parse_args(argv)
    cfg = load_config(args)
    check_training_schedule(cfg, args.config)
    if args.amp:
        # mmengine's default optim wrapper is OptimWrapper.
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper not in ('OptimWrapper', 'AmpOptimWrapper'):
            raise ToolError(f"--amp switches OptimWrapper to AmpOptimWrapper; {args.config}'s "
                            f'optim_wrapper is {wrapper}, whose precision is set in the config '
                            '(DeepSpeed / FSDP: the strategy): drop --amp')
        if not torch.cuda.is_available():
            raise ToolError('--amp needs a GPU (mmengine AmpOptimWrapper); drop --amp on CPU, '
                            'or set dtype=bfloat16 on a frozen backbone.')
        if wrapper == 'OptimWrapper':
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    resolve_resume(cfg, args.resume)
    check_load_from(cfg)
    load_file_at_model_init(cfg)
    runner = build_runner(cfg)
    check_optimizer_type(cfg)
    # mmengine loads `load_from` / resume checkpoints non-strictly: check the
    # fit first, so a checkpoint of another config fails before training.
    check_fits_before_loading(cfg, runner, cfg.get('load_from'))
    try:
        runner.train()
    except ValueError as error:
        if cfg.get('resume') and raised_in(error, 'torch/optim/optimizer.py', 'load_state_dict'):
            # torch names neither the file nor what to do.
            raise ValueError(
                f'--resume {cfg.load_from}: its optimizer state does not fit the optimizer of '
                f'this config ({one_line(error)}): it was saved for other trainable parameters '
                '(e.g. a frozen backbone, or other parameter groups); to start from its weights '
                f'instead, drop --resume and pass --cfg-options load_from={cfg.load_from}'
            ) from error
        raise
    return 0
