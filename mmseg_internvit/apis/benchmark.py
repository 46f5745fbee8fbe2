"""``tools/benchmark.py``: benchmark InternViT backbone steps: speed, memory, FLOP/s
against a same-shape GEMM; and batched vs mmseg sliding-window inference.

Usage:
    python tools/benchmark.py --mode forward --arch 300m --size 448 448 --attn both
    python tools/benchmark.py --mode train --arch '{"embed_dims": 768, ...}' --with-cp
    python tools/benchmark.py --mode probe --arch 6b --device cuda --dtype bfloat16
    python tools/benchmark.py --mode load6b --arch 6b
    python tools/benchmark.py --mode forward --arch 300m --sizes 224 336 448 --plot out.png
    python tools/benchmark.py --mode train --arch 6b --windows both --device cuda --dtype bf16
    python tools/benchmark.py --mode slide --config CONFIG --size 448 448 --crop-batch 1 8
    python tools/benchmark.py --arch 6b --device cuda --dtype bf16 --batch 8 --compile \
        --peer transformers --peer upstream --peer-file PATH/intern_vit_6b.py

Modes: ``forward`` (no_grad inference), ``train`` (full-tuning forward +
backward), ``probe`` (frozen backbone + BN/1x1-conv head step), ``load6b``
(random bf16 checkpoint written shard by shard, then loaded and run once at
224x224 in a fresh process; reports its peak RSS against the weight bytes).
Detection shape: ``--windows both`` times the same weights with global
attention and with 14-token windows (4 evenly spaced global blocks, the
detection configs' layout) at 1024 x 1024 unless sizes are given, and
reports their time and peak-memory ratios. ``--compile`` adds our backbone
with compiled blocks and ``--peer`` what a user would run instead
(transformers' ``InternVLVisionModel``; the upstream segmentation code's
``InternViT6B`` from ``--peer-file``), all on the same weights, checked
against our eager output before timing. ``slide`` times mmseg's
sliding-window loop against ``BatchedSlideEncoderDecoder`` on a config's model
(needs mmseg). The backbone modes need only torch, timm, mmengine and this
repository (on a bare checkout: ``PYTHONPATH=. python tools/benchmark.py ...``).
See docs/benchmarks.md.
"""
import argparse
import importlib.metadata
import json
import os
import platform
import re
import sys
from typing import List, Optional, Tuple, Union

import torch

from mmseg_internvit.atomic_io import check_writable
from mmseg_internvit.dtypes import DTYPE_CHOICES, dtype_name
from mmseg_internvit.benchmark.peers import PEERS, PeerUnavailable
from mmseg_internvit.models.backbones.arch_zoo import ARCH_ZOO, resolve_arch
from .errors import ToolError

MODES = ('forward', 'train', 'probe', 'load6b', 'slide')
PRESETS = tuple(sorted(ARCH_ZOO))


def parse_arch(text: str) -> Union[str, dict]:
    """A preset name, or a JSON object with the InternViT arch keys."""
    if text.lstrip().startswith('{'):
        try:
            arch = json.loads(text)
        except json.JSONDecodeError as exc:
            raise argparse.ArgumentTypeError(
                f'--arch {text!r} is not valid JSON ({exc}); pass a preset name '
                f'{PRESETS} or a JSON object such as \'{{"embed_dims": 64, ...}}\'')
        return arch
    if text not in PRESETS:
        raise argparse.ArgumentTypeError(
            f'unknown --arch {text!r}: use a preset {PRESETS} or a JSON arch dict')
    return text


def parse_size(text: str) -> Tuple[int, int]:
    """``S`` (square) or ``HxW``, in pixels."""
    match = re.fullmatch(r'(\d+)(?:x(\d+))?', text)
    if not match or int(match.group(1)) == 0 or (match.group(2) and int(match.group(2)) == 0):
        raise argparse.ArgumentTypeError(f'bad size {text!r}: use S or HxW with positive '
                                         'integers, e.g. 504 or 504x336')
    height = int(match.group(1))
    return height, int(match.group(2) or height)


def positive_int(text: str) -> int:
    """An integer >= 1 (argparse type)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'expected an integer >= 1, got {text}')
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 (argparse type)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f'expected an integer >= 0, got {text}')
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring and docs/benchmarks.md)."""
    parser = argparse.ArgumentParser(prog='tools/benchmark.py',
                                     description=__doc__.split('\n\n')[0].split(': ', 1)[1])
    parser.add_argument('--mode', choices=MODES, default='forward', help='default: forward')
    parser.add_argument('--config', help='slide mode: the segmentor config to time')
    parser.add_argument('--crop-batch', type=positive_int, nargs='+', default=[1, 8],
                        help='slide mode: crops per forward of the batched segmentors (1 8)')
    parser.add_argument('--images', type=positive_int, default=1,
                        help='slide mode: images per batch (1)')
    parser.add_argument('--arch', type=parse_arch, default=None,
                        help="preset (6b, 6b-448, 300m) or JSON arch dict "
                             "(default: '6b' for load6b, else required)")
    parser.add_argument('--size', type=positive_int, nargs=2, metavar=('H', 'W'),
                        help='input size in pixels (default: 504 504; load6b: 224 224)')
    parser.add_argument('--sizes', type=parse_size, nargs='+', metavar='S|HxW',
                        help='several input sizes (overrides --size), e.g. 224 336 504')
    parser.add_argument('--batch', type=positive_int, default=1, help='images per step (1)')
    parser.add_argument('--dtype', choices=DTYPE_CHOICES,
                        help='parameter/compute dtype (default: float32; load6b: bfloat16)')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu', help='default: cpu')
    parser.add_argument('--attn', choices=('sdpa', 'naive', 'both'), default='sdpa',
                        help='both: naive reference then fused sdpa, same weights and '
                             'process, with their time and peak-memory ratios (default: sdpa)')
    parser.add_argument('--windows', choices=('off', 'on', 'both'), default='off',
                        help='window attention: on, or both = global then windowed on the '
                             'same weights with their ratios (default: off; with windows the '
                             'default size is 1024 1024)')
    parser.add_argument('--window-size', type=positive_int, default=None,
                        help='window side in tokens (14)')
    parser.add_argument('--global-blocks', type=non_negative_int, default=None,
                        help='blocks kept global with --windows, evenly spaced (4)')
    parser.add_argument('--compile', action='store_true',
                        help='also time our backbone with torch.compile\'d blocks (same weights; '
                             'the first step, with compilation, is reported apart)')
    parser.add_argument('--peer', choices=PEERS, action='append', default=[],
                        help='also time a peer on the same weights (repeatable): transformers\' '
                             'InternVLVisionModel (sdpa), or upstream (needs --peer-file)')
    parser.add_argument('--peer-file', metavar='PATH',
                        help="--peer upstream: InternVL's segmentation/mmseg_custom/models/"
                             'backbones/intern_vit_6b.py (imported as it is)')
    parser.add_argument('--profile', action='store_true',
                        help='also run one step of each variant under torch.profiler: its time '
                             'in GEMMs, attention, fused (compiled) kernels and the rest, and '
                             'its largest kernels (CPU: operators)')
    parser.add_argument('--with-cp', action='store_true',
                        help='activation checkpointing (train mode)')
    parser.add_argument('--warmup', type=non_negative_int, default=2,
                        help='untimed rounds per size (2)')
    parser.add_argument('--repeats', type=positive_int, default=5, help='timed rounds (5)')
    parser.add_argument('--num-classes', type=positive_int, default=150,
                        help='probe head classes (150)')
    parser.add_argument('--threads', type=positive_int,
                        help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument('--seed', type=int, default=0, help='torch.manual_seed (0)')
    parser.add_argument('--workdir', help='load6b: parent folder of the temporary checkpoint')
    parser.add_argument('--json', metavar='PATH', help='write all results as JSON')
    parser.add_argument('--plot', metavar='PATH',
                        help='PNG of throughput and peak memory vs input size '
                             '(needs matplotlib and at least two --sizes)')
    return parser


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject combinations argparse cannot see, before any model is built.

    Fills the mode-dependent defaults (arch, dtype, sizes) in ``args``; exits
    with status 2 and a message naming the bad value on any error.

    Args:
        parser: For ``parser.error``.
        args: Parsed arguments.
    """
    check_output_files(parser, args)
    if args.mode == 'slide':
        if not args.config or not os.path.isfile(args.config):
            parser.error(f'--mode slide needs --config CONFIG (an existing file), got '
                         f'{args.config!r}')
        ignored = [flag for flag, given in (
            ('--arch', args.arch is not None), ('--sizes', args.sizes),
            ('--batch', args.batch != 1),
            ('--dtype', args.dtype), ('--compile', args.compile), ('--peer', args.peer),
            ('--peer-file', args.peer_file), ('--plot', args.plot),
            ('--profile', args.profile)) if given]
        if ignored:
            parser.error(f'{" / ".join(ignored)} do not apply to --mode slide (it times the '
                         "config's segmentor at --size with --crop-batch)")
        args.size = tuple(args.size or (448, 448))
        check_device(parser, args)
        return
    if args.arch is None:
        if args.mode != 'load6b':
            parser.error(f'--arch is required for --mode {args.mode}: a preset {PRESETS} or a '
                         'JSON arch dict (the 6B presets need a GPU or a lot of memory)')
        args.arch = '6b'
    load = args.mode == 'load6b'
    windowed = args.windows != 'off'
    default_size = (224, 224) if load else (1024, 1024) if windowed else (504, 504)
    args.dtype = dtype_name(args.dtype or ('bfloat16' if load else 'float32'))
    args.sizes = args.sizes or [tuple(args.size or default_size)]
    if not windowed and (args.window_size is not None or args.global_blocks is not None):
        parser.error('--window-size / --global-blocks apply with --windows on or both')
    args.window_size = args.window_size or 14
    args.global_blocks = 4 if args.global_blocks is None else args.global_blocks
    if args.windows == 'both' and args.attn == 'both':
        parser.error('--windows both and --attn both each compare two variants: compare one '
                     'thing per run (drop one of them)')
    if load:
        if (args.device != 'cpu' or args.attn != 'sdpa' or args.with_cp or windowed
                or args.profile):
            parser.error('--mode load6b measures host memory: it runs on CPU with sdpa; '
                         'drop --device/--attn/--with-cp/--windows/--profile')
        if len(args.sizes) > 1:
            parser.error('--mode load6b runs one forward: give one --size')
    if args.with_cp and args.mode != 'train':
        parser.error(f'--with-cp only applies to --mode train, not {args.mode}')
    check_implementation_args(parser, args)
    if args.plot and len(args.sizes) < 2:
        parser.error('--plot draws throughput and memory against input size: give at '
                     'least two sizes with --sizes, e.g. --sizes 224 336 504')
    # Checks that build or read something come after the argument checks.
    try:
        num_layers = resolve_arch(args.arch)['num_layers']
    except ValueError as exc:
        parser.error(f'--arch: {exc}')
    if windowed and args.global_blocks > num_layers:
        parser.error(f'--global-blocks {args.global_blocks} exceeds the {num_layers} blocks '
                     'of --arch')
    if args.plot:
        from mmseg_internvit.benchmark.report import require_matplotlib
        try:
            require_matplotlib()
        except RuntimeError as exc:
            parser.error(str(exc))
    check_device(parser, args)


def check_output_files(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``--json`` / ``--plot`` must be writable before a run that can take minutes."""
    for flag, path in (('--json', args.json), ('--plot', args.plot)):
        if not path:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            parser.error(f'{flag} {path} is a folder; give a file path')
        try:
            check_writable(folder)
        except OSError as exc:
            parser.error(f'{flag} {path}: cannot write in {folder} ({exc.strerror or exc}); '
                         'give a path in an existing, writable folder')


def check_device(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``--device cuda`` needs a GPU torch can use."""
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error(f'--device cuda requested but CUDA is not available to torch '
                     f'{torch.__version__} (built for CUDA {torch.version.cuda}, '
                     f'torch.cuda.is_available() is False): run on a GPU machine or use '
                     '--device cpu')


def check_implementation_args(parser: argparse.ArgumentParser,
                              args: argparse.Namespace) -> None:
    """Check ``--compile``, ``--peer`` and ``--peer-file`` against the other arguments.

    Args:
        parser: For ``parser.error``.
        args: Parsed arguments (sizes filled in); ``args.peer`` is de-duplicated.
    """
    args.peer = list(dict.fromkeys(args.peer))
    if args.peer_file and 'upstream' not in args.peer:
        parser.error('--peer-file is the upstream code for --peer upstream; add --peer upstream '
                     'or drop --peer-file')
    if 'upstream' in args.peer and not args.peer_file:
        parser.error("--peer upstream needs --peer-file PATH (InternVL's segmentation/"
                     'mmseg_custom/models/backbones/intern_vit_6b.py)')
    if not (args.compile or args.peer):
        return
    flags = ' / '.join(['--compile'] * args.compile + ['--peer'] * bool(args.peer))
    if args.mode not in ('forward', 'train'):
        parser.error(f'{flags} compare implementations in --mode forward or train, '
                     f'not {args.mode}')
    if args.attn == 'both' or args.windows == 'both':
        parser.error(f'{flags} compare implementations; --attn both / --windows both compare '
                     'variants of ours: one comparison per run')
    if not args.peer:
        return
    if args.windows != 'off':
        parser.error('--peer runs global attention only: drop --windows')
    for height, width in args.sizes:
        if height % 14 or width % 14:
            parser.error(f'--peer: size {height}x{width} is not a multiple of the patch size '
                         '14 (the peers do not pad the image as ours does); use e.g. 504')
        if 'upstream' in args.peer and height != width:
            parser.error(f'--peer upstream runs square images only (a fixed position grid); '
                         f'got {height}x{width}')


def check_fits(args: argparse.Namespace) -> None:
    """Refuse a model whose weights (and gradients) would not fit, rather than be OOM-killed.

    Args:
        args: Checked arguments (arch, dtype, device, mode).
    """
    from mmseg_internvit.benchmark.load_check import weight_bytes
    from mmseg_internvit.benchmark.measure import available_host_bytes
    # Full tuning also holds a gradient per weight; activations come on top.
    copies = 2 if args.mode == 'train' else 1
    need = copies * weight_bytes(args.arch, args.dtype)
    if args.device == 'cuda':
        free = torch.cuda.mem_get_info()[0]
    else:
        free = available_host_bytes()
    if free is not None and need > 0.8 * free:
        what = 'weights and gradients' if copies == 2 else 'weights'
        name = args.arch if isinstance(args.arch, str) else 'this arch'
        raise ToolError(f'{name} in {args.dtype} needs {need / 2**30:.1f} GiB of {what} but '
                        f'only {free / 2**30:.1f} GiB is free on {args.device}: use a smaller '
                        '--arch, --dtype bf16, or a larger machine.')


def environment() -> dict:
    """Versions and hardware the numbers were measured on."""
    env = dict(python=platform.python_version(), torch=torch.__version__,
               platform=platform.platform(), cpu_count=os.cpu_count(),
               torch_threads=torch.get_num_threads())
    if torch.cuda.is_available():
        env['cuda_device'] = torch.cuda.get_device_name()
        env['cuda'] = torch.version.cuda
    # The peers' speed depends on their versions too (read without importing them).
    for name in ('timm', 'transformers'):
        try:
            env[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            env[name] = None
    return env


def main(argv: Optional[List[str]] = None) -> int:
    """Run the benchmark the arguments describe; print tables, write JSON/plot.

    Args:
        argv: Command line without the program name (default: ``sys.argv[1:]``).

    Returns:
        Exit status: 0 on success, 1 when load6b cannot run.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    from mmseg_internvit.benchmark import report
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    result = dict(args={k: v for k, v in vars(args).items()}, environment=environment())
    if args.mode == 'slide':
        from mmseg_internvit.benchmark.slide import compare_slide, format_slide
        records = compare_slide(args.config, args.size, args.crop_batch, args.images,
                                args.warmup, args.repeats, args.device)
        result['slide'] = records
        print(f'{args.images} x {args.size[0]}x{args.size[1]} image(s), {args.device}, '
              f'{torch.get_num_threads()} threads, torch {torch.__version__}, '
              f'{args.repeats} repeats')
        print(format_slide(records))
    elif args.mode == 'load6b':
        from mmseg_internvit.benchmark.load_check import run_load_check
        (height, width), = args.sizes
        try:
            record = run_load_check(args.arch, height, width, args.dtype, args.threads,
                                    args.workdir)
        except RuntimeError as exc:
            print(f'error: {exc}', file=sys.stderr)
            return 1
        result['load'] = record
        print(report.format_load(record))
    else:
        from mmseg_internvit.benchmark.runner import BenchmarkConfig, run_benchmark
        check_fits(args)
        cfg = BenchmarkConfig(mode=args.mode, arch=args.arch, sizes=args.sizes,
                              batch=args.batch, dtype=args.dtype, device=args.device,
                              attn=args.attn, windows=args.windows,
                              window_size=args.window_size, global_blocks=args.global_blocks,
                              with_cp=args.with_cp, warmup=args.warmup,
                              repeats=args.repeats, num_classes=args.num_classes,
                              compile=args.compile, peers=args.peer, peer_file=args.peer_file,
                              profile=args.profile)
        try:
            runs, comparisons = run_benchmark(cfg)
        except PeerUnavailable as exc:
            raise ToolError(str(exc)) from exc
        result.update(runs=runs, comparisons=comparisons)
        print(report.format_runs(runs))
        for table in (report.format_agreement(runs),
                      comparisons and report.format_comparisons(comparisons),
                      args.profile and report.format_profiles(runs)):
            if table:
                print()
                print(table)
        if args.plot:
            report.plot_runs(runs, args.plot)
            print(f'plot written to {args.plot}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
        print(f'results written to {args.json}')
    return 0
