"""``tools/export_onnx.py``: export a segmentor to ONNX and check it with onnxruntime;
see docs/export.md.

    python tools/export_onnx.py CONFIG CHECKPOINT OUT.onnx [--shape H W] [--dynamic]
        [--dtype fp32|fp16] [--output logits|labels] [--backbone-only] [--opset N]
        [--overwrite]

exit status: 0 exported and checked, 1 the export failed or does not match
PyTorch (nothing written), 2 nothing done (bad config, checkpoint, output
path, an existing output without --overwrite, options, or a model part that
cannot be exported).
"""
import argparse
import sys
from typing import List, Optional

from mmengine.config import DictAction

from .errors import add_debug_flag


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    from mmseg_internvit.export.exporter import DEFAULT_OPSET, EXPORT_DTYPES
    parser = argparse.ArgumentParser(
        prog='tools/export_onnx.py',
        description='Export a segmentor (config + checkpoint) to ONNX; onnxruntime checks it '
                    'against PyTorch before the file is written (docs/export.md).',
        epilog=__doc__.split('\n\n', 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='model config (.py)')
    parser.add_argument('checkpoint', help='checkpoint trained with that config')
    parser.add_argument('out', help='ONNX file to write (weights over 1.5 GiB go to OUT.data)')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help="the input size (default: the config's slide crop); with "
                             '--dynamic the size traced and checked first')
    parser.add_argument('--dynamic', action='store_true',
                        help='any input height and width (checked at a second, odd size too)')
    parser.add_argument('--dtype', choices=EXPORT_DTYPES,
                        help="backbone dtype (heads stay fp32; default: the config's)")
    parser.add_argument('--output', choices=['logits', 'labels'], default='logits',
                        help='graph output: class logits (N, K, H, W) or labels (N, H, W)')
    parser.add_argument('--backbone-only', action='store_true',
                        help="export the backbone's feature maps instead of the segmentor")
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET,
                        help=f'ONNX opset (default {DEFAULT_OPSET})')
    parser.add_argument('--external-data', action='store_true', default=None,
                        help='weights in OUT.data even when under 1.5 GiB')
    parser.add_argument('--atol', type=float,
                        help='check bound: max |onnx - torch| <= atol + rtol * max |torch| '
                             '(default 1e-4 for fp32, 1e-2 for fp16)')
    parser.add_argument('--rtol', type=float,
                        help='see --atol (default 1e-4 for fp32, 1e-2 for fp16)')
    parser.add_argument('--time', type=int, default=0, metavar='N',
                        help='also time one image in PyTorch and onnxruntime (median of N)')
    parser.add_argument('--threads', type=int, metavar='T',
                        help='CPU threads of both while timing (default: their own defaults)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing OUT (and OUT.data), once the new export '
                             'has passed its check')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. model.decode_head.num_classes=19')
    add_debug_flag(parser)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Export and check; returns the exit status (user errors, e.g. ``ExportError``,
    raise: tools/*.py run it through :func:`~mmseg_internvit.apis.errors.run_tool`)."""
    args = parse_args(argv)
    from mmseg_internvit.export import ExportFailed, export_segmentor
    try:
        report = export_segmentor(
            args.config, args.checkpoint, args.out, shape=args.shape, dynamic=args.dynamic,
            dtype=args.dtype, output=args.output, backbone_only=args.backbone_only,
            opset=args.opset, external_data=args.external_data, atol=args.atol, rtol=args.rtol,
            cfg_options=args.cfg_options, time_repeats=args.time, time_threads=args.threads,
            overwrite=args.overwrite, log=lambda line: print(line, flush=True))
    except ExportFailed as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f'wrote {", ".join(report.files)} ({report.total_bytes / 2**20:.1f} MiB, '
          f'exported in {report.export_seconds:.1f} s)')
    if report.timings:
        threads = f'{args.threads} thread(s)' if args.threads else 'default threads'
        print(f'one image at the export size, CPU, {threads}: PyTorch '
              f'{report.timings["torch"] * 1e3:.1f} ms, onnxruntime '
              f'{report.timings["onnxruntime"] * 1e3:.1f} ms')
    return 0
