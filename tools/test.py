"""Evaluate a checkpoint with an mm config (mmseg's test.py flags).

Honours ``runner_type`` (a model trained with DeepSpeed / FSDP is tested with
the same config) and ``custom_imports``.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--show-dir DIR]
        [--out DIR] [--tta] [--cfg-options k=v ...] [--launcher pytorch]
"""
import argparse
import os.path as osp
import sys

from mmseg_internvit.engine.launch import (adapt_for_testing, add_common_args, build_runner,
                                            enable_visualization, load_config)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test with an mmseg/mmdet config')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file (or folder of a sharded one)')
    parser.add_argument('--show-dir', help='write visualised predictions here')
    parser.add_argument('--out', help='write predicted label maps (mmseg) here')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation')
    add_common_args(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not osp.exists(args.checkpoint):
        print(f'error: checkpoint {args.checkpoint} does not exist', file=sys.stderr)
        return 2
    cfg = load_config(args)
    cfg.load_from = adapt_for_testing(cfg, args.checkpoint)
    if args.show_dir:
        enable_visualization(cfg, args.show_dir)
    if args.out:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    if args.tta:
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    runner = build_runner(cfg)
    metrics = runner.test()
    print({k: round(float(v), 4) for k, v in metrics.items()} if metrics else metrics)
    return 0


if __name__ == '__main__':
    sys.exit(main())
