"""Train a segmentor or detector from an mm config (mmseg's train.py flags).

Configs may set ``runner_type='FlexibleRunner'`` (DeepSpeed / FSDP) and
``custom_imports``; no PYTHONPATH changes are needed.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--cfg-options k=v ...] [--launcher pytorch]
"""
import argparse
import sys

from mmseg_internvit.engine.launch import (add_common_args, build_runner, load_config,
                                            resolve_resume)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train with an mmseg/mmdet config')
    parser.add_argument('config', help='config file')
    parser.add_argument('--resume', nargs='?', const='auto', default=None,
                        help="resume from CKPT, or without a path from the newest complete "
                        "checkpoint in the work dir (incomplete ones are skipped)")
    parser.add_argument('--amp', action='store_true', help='mixed precision (GPU only)')
    add_common_args(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = load_config(args)
    if args.amp:
        import torch
        if not torch.cuda.is_available():
            print('error: --amp needs a GPU (mmengine AmpOptimWrapper); drop --amp on CPU, '
                  'or set dtype=bfloat16 on a frozen backbone.', file=sys.stderr)
            return 2
        if cfg.optim_wrapper.get('type') == 'OptimWrapper':
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    try:
        resolve_resume(cfg, args.resume)
    except ValueError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    runner = build_runner(cfg)
    runner.train()
    return 0


if __name__ == '__main__':
    sys.exit(main())
