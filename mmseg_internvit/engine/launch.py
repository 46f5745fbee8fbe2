"""Shared start-up of tools/train.py and tools/test.py."""
import os
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner


def add_common_args(parser) -> None:
    """The flags mmseg's tools/train.py and tools/test.py share."""
    parser.add_argument('--work-dir', help='folder for logs and checkpoints')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. model.backbone.arch=300m')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torchrun sets LOCAL_RANK; older launchers pass --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_config(args) -> Config:
    """Read the config, apply command-line overrides, set launcher and work_dir."""
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'Config file {args.config} does not exist.')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return cfg


def init_cpu_process_group(launcher: str) -> None:
    """Start a gloo process group when launched distributed on a machine without CUDA.

    mmengine 0.10's ``init_dist`` calls ``torch.cuda.set_device`` and dies
    without a GPU; its runners and strategies skip their own initialisation
    when a process group already exists, so starting gloo here first makes
    multi-process CPU runs (and CI) work unchanged.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')


def build_runner(cfg: Config) -> Runner:
    """Build ``Runner`` or, where the config names one, its ``runner_type``."""
    init_cpu_process_group(cfg.launcher)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def enable_visualization(cfg: Config, show_dir: str) -> None:
    """Make mmseg's visualization hook draw every test image into ``show_dir``."""
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise ValueError('--show-dir needs default_hooks.visualization in the config '
                         "(mmseg's default_runtime has one)")
    hook.draw = True
    # mmseg draws every `interval`-th image (50 by default): all of them here.
    hook.interval = 1
    cfg.visualizer.save_dir = show_dir


def latest_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint mmengine recorded as last in ``work_dir``, if any."""
    marker = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(marker):
        return None
    with open(marker) as f:
        return f.read().strip() or None
