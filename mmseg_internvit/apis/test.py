"""``tools/test.py``: evaluate a checkpoint with an mm config (mmseg's flags).

Honours ``runner_type`` (a model trained with DeepSpeed / FSDP is tested with
the same config) and ``custom_imports``. The checkpoint must fit the config
exactly: a misfit (another class count, another head, another arch) fails
before any data is read, naming every mismatched key.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--show-dir DIR]
        [--out DIR] [--tta] [--cfg-options k=v ...] [--launcher pytorch] [--debug]
"""
import argparse
import os
import os.path as osp
from typing import List, Optional, Union

from .errors import ToolError, check_folder_argument
from .launch import (adapt_for_testing, add_common_args, build_runner, enable_visualization,
                     load_config, unwrapped_model)
from .resume import check_fits_before_loading


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='tools/test.py',
                                     description='Test with an mmseg/mmdet config')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file (or folder of a sharded one)')
    parser.add_argument('--show-dir', help='write visualised predictions here')
    parser.add_argument('--out', help='write predicted label maps (mmseg) here')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation')
    add_common_args(parser)
    return parser.parse_args(argv)


def evaluator_output_dirs(evaluator: Union[dict, list, None]) -> List[str]:
    """The ``output_dir`` of every metric in a ``test_evaluator`` config.

    Args:
        evaluator: One metric's dict, a list of them, or an evaluator dict
            with ``metrics``.
    """
    if isinstance(evaluator, (list, tuple)):
        return [folder for metric in evaluator for folder in evaluator_output_dirs(metric)]
    if not isinstance(evaluator, dict):
        return []
    if 'metrics' in evaluator:
        return evaluator_output_dirs(evaluator['metrics'])
    return [evaluator['output_dir']] if evaluator.get('output_dir') else []


def main(argv: Optional[List[str]] = None) -> int:
    """Evaluate; prints the metrics and returns the exit status."""
    args = parse_args(argv)
    if '://' not in args.checkpoint and not osp.exists(args.checkpoint):
        raise ToolError(f'checkpoint {args.checkpoint} does not exist')
    check_folder_argument('--out', args.out)
    check_folder_argument('--show-dir', args.show_dir)
    cfg = load_config(args)
    if args.out and (not isinstance(cfg.test_evaluator, dict) or 'metrics' in cfg.test_evaluator):
        raise ToolError(f'--out sets output_dir of the one metric in test_evaluator; '
                        f'{args.config} names several: give output_dir to the one that should '
                        'write, e.g. --cfg-options test_evaluator.0.output_dir=DIR')
    if args.tta and not ('tta_model' in cfg and 'tta_pipeline' in cfg):
        raise ToolError(f'--tta needs tta_model and tta_pipeline in the config; {args.config} '
                        'has no ' + ' or '.join(k for k in ('tta_model', 'tta_pipeline')
                                                if k not in cfg)
                        + ' (the ADE20K configs inherit both): drop --tta or add them')
    load_here = adapt_for_testing(cfg, args.checkpoint)
    # Before anything is built or read: a misfit names its keys at once (a
    # multi-process ZeRO-1/2 test lets DeepSpeed load, which would not).
    check_fits_before_loading(cfg, None, args.checkpoint)
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
    if load_here:  # the plain Runner: its model is built
        from mmseg_internvit.checkpoint import load_model_weights
        model = unwrapped_model(runner)
        load_model_weights(model.module if args.tta else model, args.checkpoint)
    # mmseg's IoUMetric makes output_dir in the main process only, and the
    # other ranks save into it with no barrier in between: a rank that starts
    # faster failed on the missing folder. Every rank makes every metric's.
    for folder in evaluator_output_dirs(cfg.get('test_evaluator')):
        os.makedirs(folder, exist_ok=True)
    metrics = runner.test()
    print({k: round(float(v), 4) for k, v in metrics.items()} if metrics else metrics)
    return 0
