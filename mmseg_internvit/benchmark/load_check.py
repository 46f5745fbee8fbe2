"""Write a random InternViT checkpoint shard by shard, then time loading it in a fresh process.

The writer never holds more than one block: it builds a one-block model of
the same width (random init of the project), saves the embeddings once and
that block under every block index. Values are irrelevant to load and
forward time, and the reader's peak memory is what is measured, so the
writer's process stays small and does not inflate the machine's memory use.

The child (:func:`run_child`, started with :data:`CHILD_BOOT`) builds
``InternViT(arch, dtype, init_cfg=Pretrained)``, loads, runs one forward and
writes its timings and ``ru_maxrss`` to the config's ``output`` path.
"""
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Optional, Union

import torch

from mmseg_internvit.checkpoint import save_safetensors
from mmseg_internvit.models.backbones.arch_zoo import resolve_arch
from mmseg_internvit.models.backbones.intern_vit import InternViT
from .measure import available_host_bytes

INDEX_NAME = 'model.safetensors.index.json'
# The child imports only the backbone (torch, timm, mmengine: no mmseg, mmdet
# or mmcv), as a bare GPU machine runs it, so its RSS holds no downstream imports.
CHILD_BOOT = ("import sys; from mmseg_internvit.benchmark.load_check import run_child; "
              "run_child(sys.argv[1])")


def weight_bytes(arch: Union[str, dict], dtype: str = 'bfloat16') -> int:
    """Bytes of the backbone's parameters in ``dtype`` (built on meta: no memory).

    Args:
        arch: Preset name or arch dict.
        dtype: Parameter dtype name.
    """
    with torch.device('meta'):
        model = InternViT(arch=arch, dtype=dtype)
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def write_random_checkpoint(arch: Union[str, dict], folder: str,
                            dtype: str = 'bfloat16') -> dict:
    """Write a sharded safetensors checkpoint (our key names) with an index.

    Args:
        arch: Preset name or arch dict.
        folder: Existing, empty folder to write into.
        dtype: Stored dtype.

    Returns:
        ``dict(bytes=..., seconds=..., shards=...)``.
    """
    start = time.perf_counter()
    settings = resolve_arch(arch)
    template = InternViT(arch=dict(settings, num_layers=1), dtype=dtype)
    state = template.state_dict()
    embeddings = {k: v for k, v in state.items() if not k.startswith('blocks.')}
    block = {k[len('blocks.0.'):]: v for k, v in state.items() if k.startswith('blocks.0.')}
    shards = {'embeddings.safetensors': embeddings}
    for i in range(settings['num_layers']):
        shards[f'block-{i:05d}.safetensors'] = {f'blocks.{i}.{k}': v for k, v in block.items()}
    weight_map, total = {}, 0
    for name, tensors in shards.items():
        save_safetensors(tensors, os.path.join(folder, name))
        weight_map.update({key: name for key in tensors})
        total += sum(t.numel() * t.element_size() for t in tensors.values())
    with open(os.path.join(folder, INDEX_NAME), 'w') as f:
        json.dump({'metadata': {'total_size': total}, 'weight_map': weight_map}, f)
    return dict(bytes=total, seconds=time.perf_counter() - start, shards=len(shards))


def _repo_root() -> str:
    import mmseg_internvit
    return os.path.dirname(os.path.dirname(os.path.abspath(mmseg_internvit.__file__)))


def run_load_check(arch: Union[str, dict], height: int = 224, width: int = 224,
                   dtype: str = 'bfloat16', threads: Optional[int] = None,
                   workdir: Optional[str] = None, keep: bool = False) -> dict:
    """Write a random checkpoint, then load it and run one forward in a child process.

    Args:
        arch: Preset name or arch dict.
        height: Forward input height.
        width: Forward input width.
        dtype: Checkpoint and model dtype.
        threads: torch threads in the child (default: torch's choice).
        workdir: Parent of the temporary checkpoint folder (default: system temp).
        keep: Keep the checkpoint folder (its path is returned).

    Returns:
        The record written to JSON: sizes, times and the child's peak RSS.

    Raises:
        RuntimeError: Not enough free disk or memory, or the child failed.
    """
    settings = resolve_arch(arch)
    expected = weight_bytes(settings, dtype)
    available = available_host_bytes()
    # The child holds the weights plus imports (~0.5 GiB) and one tensor in
    # flight; refuse early rather than let the kernel's OOM killer decide.
    needed = int(expected * 1.1) + (1 << 30)
    if available is not None and needed > available:
        raise RuntimeError(f'load6b needs about {needed / 2**30:.1f} GiB of free memory for '
                           f'{expected / 2**30:.1f} GiB of {dtype} weights, but only '
                           f'{available / 2**30:.1f} GiB is available: use a smaller --arch '
                           "(e.g. '300m') or a larger machine.")
    parent = workdir or tempfile.gettempdir()
    free_disk = shutil.disk_usage(parent).free
    if free_disk < expected * 1.05:
        raise RuntimeError(f'load6b writes {expected / 2**30:.1f} GiB but {parent} has '
                           f'{free_disk / 2**30:.1f} GiB free: pass --workdir on a larger disk.')
    folder = tempfile.mkdtemp(prefix='internvit_load_', dir=parent)
    try:
        written = write_random_checkpoint(settings, folder, dtype)
        config = dict(arch=settings, checkpoint=folder, height=height, width=width,
                      dtype=dtype, threads=threads, output=os.path.join(folder, 'result.json'))
        config_path = os.path.join(folder, 'config.json')
        with open(config_path, 'w') as f:
            json.dump(config, f)
        env = dict(os.environ)
        env['PYTHONPATH'] = os.pathsep.join(
            p for p in (_repo_root(), env.get('PYTHONPATH')) if p)
        proc = subprocess.run([sys.executable, '-c', CHILD_BOOT, config_path], env=env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f'load6b child process failed (exit {proc.returncode}):\n'
                               f'{proc.stderr[-3000:]}')
        with open(config['output']) as f:
            child = json.load(f)
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    record = dict(mode='load6b', arch=settings,
                  arch_name=arch if isinstance(arch, str) else 'custom', dtype=dtype,
                  height=height, width=width, weight_bytes=expected,
                  checkpoint_bytes=written['bytes'], shards=written['shards'],
                  write_s=written['seconds'], checkpoint=folder if keep else None, **child)
    record['peak_rss_ratio'] = child['peak_rss_bytes'] / expected
    record['peak_rss_above_imports_ratio'] = (
        (child['peak_rss_bytes'] - child['rss_after_imports_bytes']) / expected)
    return record


def _peak_rss_bytes() -> int:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_child(config_path: str) -> None:
    """Child process: build, load, run one forward; write timings and peak RSS to JSON.

    Args:
        config_path: JSON written by :func:`run_load_check` (arch, checkpoint,
            height, width, dtype, threads, output).
    """
    with open(config_path) as f:
        cfg = json.load(f)
    if cfg.get('threads'):
        torch.set_num_threads(cfg['threads'])
    rss_imports = _peak_rss_bytes()
    start = time.perf_counter()
    model = InternViT(arch=cfg['arch'], dtype=cfg['dtype'],
                      init_cfg=dict(type='Pretrained', checkpoint=cfg['checkpoint']))
    built = time.perf_counter()
    model.init_weights()
    loaded = time.perf_counter()
    rss_loaded = _peak_rss_bytes()
    model.eval()
    images = torch.randn(1, 3, cfg['height'], cfg['width'])
    with torch.no_grad():
        out = model(images)[-1]
    done = time.perf_counter()
    result = dict(build_s=built - start, load_s=loaded - built, forward_s=done - loaded,
                  rss_after_imports_bytes=rss_imports, peak_rss_after_load_bytes=rss_loaded,
                  peak_rss_bytes=_peak_rss_bytes(), output_shape=list(out.shape),
                  output_finite=bool(torch.isfinite(out).all()),
                  torch_threads=torch.get_num_threads())
    with open(cfg['output'], 'w') as f:
        json.dump(result, f)
