"""``tools/demo.py`` (``make demo``): train the smoke linear probe on generated sample data.

1. builds the deterministic sample ADE20K dataset (once; ``--data-root``);
2. evaluates the untrained model (the baseline);
3. trains it with ``tools/train.py``;
4. evaluates the trained checkpoint, writing colour-overlaid predictions of
   every validation image to the work dir, and prints both mIoUs.
"""
import argparse
import os.path as osp
import subprocess
import sys
from types import SimpleNamespace
from typing import List, Optional

from .errors import add_debug_flag
from .launch import build_runner, enable_visualization, load_config
from .resume import latest_checkpoint

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'smoke',
                  'linear_internvit-tiny_1xb4-300_ade20k-sample-112x112.py')


def data_overrides(data_root: str) -> dict:
    """Config overrides that point every split of the smoke config at ``data_root``."""
    return {f'{split}_dataloader.dataset.data_root': data_root
            for split in ('train', 'val', 'test')}


def evaluate(work_dir: str, data_root: str, checkpoint: Optional[str] = None,
             show_dir: Optional[str] = None) -> dict:
    """Run mmengine's test loop in this process and return its metrics."""
    args = SimpleNamespace(config=CONFIG, work_dir=work_dir, launcher='none', local_rank=0,
                           cfg_options=data_overrides(data_root))
    cfg = load_config(args)
    cfg.load_from = checkpoint
    # mmseg's runtime names its visualizer 'visualizer', and mmengine hands an
    # existing instance of that name back: give each evaluation its own.
    cfg.visualizer.name = f'demo-{osp.basename(work_dir)}'
    if show_dir:
        enable_visualization(cfg, show_dir)
    return build_runner(cfg).test()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='tools/demo.py', description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'demo'))
    parser.add_argument('--data-root', default=osp.join(ROOT, 'data', 'ade_sample'))
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    from mmseg_internvit.datasets import build_sample_ade20k
    data = build_sample_ade20k(args.data_root)
    print(f'sample dataset: {data}')

    before = evaluate(osp.join(args.work_dir, 'untrained'), data)
    train = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), CONFIG,
             '--work-dir', args.work_dir, '--cfg-options',
             *(f'{key}={value}' for key, value in data_overrides(data).items())]
    subprocess.run(train, check=True)
    checkpoint = latest_checkpoint(args.work_dir)
    show_dir = osp.join(args.work_dir, 'predictions')
    after = evaluate(args.work_dir, data, checkpoint, show_dir=show_dir)
    print('\n=== demo result (validation split of the sample data) ===')
    print(f'untrained mIoU: {before["mIoU"]:.2f}')
    print(f'trained   mIoU: {after["mIoU"]:.2f}  (checkpoint {checkpoint})')
    print(f'overlays: {show_dir}/vis_data/vis_image')
    return 0 if after['mIoU'] > before['mIoU'] else 1
