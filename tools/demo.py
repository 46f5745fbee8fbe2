"""The quick-start demo: train the smoke linear probe on the generated sample data.

1. builds the deterministic sample ADE20K dataset in data/ade_sample (once);
2. evaluates the untrained model (the baseline);
3. trains it with tools/train.py;
4. evaluates the trained checkpoint, writing colour-overlaid predictions of
   every validation image to the work dir, and prints both mIoUs.
"""
import argparse
import os
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs', 'smoke', 'linear_internvit-tiny_1xb4-300_ade20k-sample-112x112.py')


def evaluate(config: str, work_dir: str, checkpoint: str = None, show_dir: str = None) -> dict:
    """Run mmengine's test loop in this process and return its metrics."""
    from types import SimpleNamespace

    from mmseg_internvit.engine.launch import build_runner, enable_visualization, load_config
    args = SimpleNamespace(config=config, work_dir=work_dir, cfg_options=None,
                           launcher='none', local_rank=0)
    cfg = load_config(args)
    cfg.load_from = checkpoint
    # mmseg's runtime names its visualizer 'visualizer', and mmengine hands an
    # existing instance of that name back: give each evaluation its own.
    cfg.visualizer.name = f'demo-{osp.basename(work_dir)}'
    if show_dir:
        enable_visualization(cfg, show_dir)
    return build_runner(cfg).test()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'demo'))
    parser.add_argument('--data-root', default=osp.join(ROOT, 'data', 'ade_sample'))
    args = parser.parse_args(argv)
    from mmseg_internvit.datasets import build_sample_ade20k
    data = build_sample_ade20k(args.data_root)
    print(f'sample dataset: {data}')
    os.chdir(ROOT)  # the smoke config names data/ade_sample relative to the repo

    before = evaluate(CONFIG, osp.join(args.work_dir, 'untrained'))
    train = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), CONFIG,
             '--work-dir', args.work_dir]
    subprocess.run(train, check=True)
    from mmseg_internvit.engine.launch import latest_checkpoint
    checkpoint = latest_checkpoint(args.work_dir)
    show_dir = osp.join(args.work_dir, 'predictions')
    after = evaluate(CONFIG, args.work_dir, checkpoint, show_dir=show_dir)
    print('\n=== demo result (validation split of the sample data) ===')
    print(f'untrained mIoU: {before["mIoU"]:.2f}')
    print(f'trained   mIoU: {after["mIoU"]:.2f}  (checkpoint {checkpoint})')
    print(f'overlays: {show_dir}/vis_data/vis_image')
    return 0 if after['mIoU'] > before['mIoU'] else 1


if __name__ == '__main__':
    sys.exit(main())
