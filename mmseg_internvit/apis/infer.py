"""``tools/infer.py``: segment images and write label maps and overlays (docs/inference.md)."""
import argparse
import os.path as osp
import sys
from typing import List, Optional

from mmengine.config import DictAction

from mmseg_internvit.dtypes import DTYPE_CHOICES
from mmseg_internvit.inference.inputs import InputImage, expand_inputs
from mmseg_internvit.inference.runner import run_inference
from mmseg_internvit.inference.segmenter import Segmenter, check_device
from mmseg_internvit.inference.writers import check_out_dir, prepare_out_dir
from .errors import add_debug_flag

USAGE_EXAMPLE = """examples:
  python tools/infer.py CONFIG CHECKPOINT photos/ --out-dir out
  python tools/infer.py CONFIG CHECKPOINT 'shots/**/*.jpg' a.png --out-dir out \\
      --batch-size 4 --tile 504 504 --stride 336 336 --dtype bf16 --save-areas
  python tools/infer.py --onnx model.onnx photos/ --out-dir out   # tools/export_onnx.py

exit status: 0 all images done, 1 some images failed (listed), 2 nothing run
(bad config, checkpoint, output folder or arguments)."""


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='tools/infer.py',
        usage='%(prog)s CONFIG CHECKPOINT INPUTS... --out-dir DIR [options]\n'
              '       %(prog)s --onnx MODEL.onnx INPUTS... --out-dir DIR [options]',
        description='Segment images with a trained config and checkpoint; write label maps '
                    'and overlays (see docs/inference.md).',
        epilog=USAGE_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('paths', nargs='+', metavar='PATH',
                        help='model config (.py), a checkpoint trained with it, then image '
                             'files, folders (searched recursively) or glob patterns; with '
                             '--onnx only the images')
    parser.add_argument('--onnx', metavar='MODEL.onnx',
                        help='run a file of tools/export_onnx.py with onnxruntime instead of '
                             'CONFIG CHECKPOINT (its preprocessing and classes are stored in it)')
    parser.add_argument('--out-dir', required=True, help='output folder (created if needed)')
    parser.add_argument('--device', help='cpu, cuda, cuda:1, ... (default: cuda if available)')
    parser.add_argument('--batch-size', type=int, default=1, help='images per forward')
    parser.add_argument('--tile', type=int, nargs=2, metavar=('H', 'W'),
                        help='sliding-window crop size (switches to slide mode)')
    parser.add_argument('--stride', type=int, nargs=2, metavar=('H', 'W'),
                        help='sliding-window stride (default: the config\'s, or 2/3 of --tile)')
    parser.add_argument('--crop-batch', type=int, default=8,
                        help='sliding-window crops per forward (default 8)')
    parser.add_argument('--dtype', choices=DTYPE_CHOICES,
                        help='backbone dtype (heads stay fp32; default: the config\'s)')
    parser.add_argument('--compile', action='store_true',
                        help="compile the backbone's blocks with torch.compile (the first "
                             'forward of each image size class pays the compilation)')
    parser.add_argument('--tta', action='store_true',
                        help="flip + multi-scale test-time augmentation (the config's "
                             'tta_model / tta_pipeline)')
    parser.add_argument('--opacity', type=float, default=0.5,
                        help='colour weight in the overlays, 0..1 (default 0.5)')
    parser.add_argument('--save-logits', action='store_true',
                        help='also write <name>_logits.npz: float16 class probabilities')
    parser.add_argument('--save-areas', action='store_true',
                        help='also write <name>_areas.json: pixels and fraction per class')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. model.decode_head.num_classes=19')
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if args.onnx:
        args.config = args.checkpoint = None
        args.inputs = args.paths
        torch_only = [flag for flag, value in (('--dtype', args.dtype), ('--tta', args.tta),
                                               ('--compile', args.compile),
                                               ('--cfg-options', args.cfg_options)) if value]
        if torch_only:
            parser.error(f'{", ".join(torch_only)} cannot be used with --onnx: the exported '
                         'graph fixes the dtype and the config')
    elif len(args.paths) < 3:
        parser.error('give CONFIG CHECKPOINT and at least one image (or --onnx MODEL.onnx '
                     'and images)')
    else:
        args.config, args.checkpoint, *args.inputs = args.paths
    if not 0.0 <= args.opacity <= 1.0:
        parser.error(f'--opacity must be in [0, 1], got {args.opacity}')
    if args.batch_size < 1 or args.crop_batch < 1:
        parser.error('--batch-size and --crop-batch must be >= 1')
    return args


def check_some_input_exists(images: List[InputImage]) -> None:
    """Stop before anything runs when no input exists at all (a mistyped path).

    A missing path among inputs that exist is reported with the failed images,
    so one typo does not stop a run over other folders.

    Args:
        images: The expanded inputs.

    Raises:
        FileNotFoundError: none of ``images`` exists; names them.
    """
    missing = [image.path for image in images if not osp.exists(image.path)]
    if len(missing) == len(images):
        raise FileNotFoundError(f'no such image file: {", ".join(missing)}; check the path '
                                '(or give a folder or glob pattern)')


def main(argv: Optional[List[str]] = None) -> int:
    """Segment the images; returns the exit status (user errors raise: tools/*.py run it through
    :func:`~mmseg_internvit.apis.errors.run_tool`)."""
    args = parse_args(argv)
    # Checked now, created only once the model has loaded: a bad config or
    # checkpoint leaves no empty output folder behind.
    check_out_dir(args.out_dir)
    for path, what in ((args.config, 'config'), (args.onnx, 'ONNX model')):
        if path is not None and not osp.isfile(path):
            raise FileNotFoundError(f'{what} {path} does not exist')
    if args.checkpoint is not None and '://' not in args.checkpoint and \
            not osp.exists(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint} does not exist')
    if args.device:
        check_device(args.device, '--device')
    images = expand_inputs(args.inputs, on_nothing_found=lambda item: print(
        f'warning: {item} matched no image files', file=sys.stderr))
    if not images:
        raise ValueError(f'no images found in {" ".join(args.inputs)}')
    check_some_input_exists(images)
    if args.onnx:
        from mmseg_internvit.export import OnnxSegmenter
        segmenter = OnnxSegmenter(args.onnx, device=args.device or 'cpu',
                                  batch_size=args.batch_size, tile=args.tile,
                                  stride=args.stride, crop_batch=args.crop_batch,
                                  keep_probs=args.save_logits)
    else:
        segmenter = Segmenter(args.config, args.checkpoint, device=args.device,
                              batch_size=args.batch_size, tile=args.tile, stride=args.stride,
                              crop_batch=args.crop_batch, dtype=args.dtype, tta=args.tta,
                              keep_probs=args.save_logits, cfg_options=args.cfg_options,
                              compile=args.compile)
    prepare_out_dir(args.out_dir)
    summary = run_inference(segmenter, images, args.out_dir, opacity=args.opacity,
                            save_logits=args.save_logits, save_areas=args.save_areas)
    print(f'{summary}; outputs in {args.out_dir}')
    for path, reason in summary.failed:
        print(f'  failed: {path}: {reason}')
    return 1 if summary.failed else 0
