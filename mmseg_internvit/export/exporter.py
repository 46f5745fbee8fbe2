"""Export a segmentor (config + checkpoint) to ONNX, verified with onnxruntime.

Nothing half-written is ever left at the output path: the graph (and its
external-data file for models over torch's 1.5 GiB limit) is saved into a
hidden folder beside the output, checked with onnxruntime against PyTorch,
and only then renamed into place.
"""
import os
import os.path as osp
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from mmseg.apis import init_model
from mmseg.models.segmentors import EncoderDecoder

from mmseg_internvit.atomic_io import check_writable, fsync_tree
from mmseg_internvit.checkpoint import load_model_weights
from mmseg_internvit.dtypes import to_torch_dtype
from mmseg_internvit.inference.segmenter import (build_pipeline, check_segmentor, dataset_meta,
                                                 prepare_config)
from mmseg_internvit.models.backbones.vit_config import internvit_config
from .exportable_pooling import exportable_adaptive_pools
from .graphs import (BackboneGraph, ExportError, SegmentorGraph, check_exportable, output_names,
                     refuse_bfloat16)
from .metadata import build_metadata
from .verify import (TOLERANCES, CheckResult, compare_outputs, interleaved_medians,
                     sample_shapes)

OPSETS = range(18, 24)  # what torch 2.14's exporter and onnxruntime 1.32 both handle
DEFAULT_OPSET = 18


# onnxruntime's CPU provider has no bfloat16 convolution: fp32 or an fp16 backbone.
EXPORT_DTYPES = ('fp32', 'fp16', 'float32', 'float16')


class ExportFailed(RuntimeError):
    """The exporter failed, or the exported graph does not match PyTorch."""


@dataclass
class ExportReport:
    """What :func:`export_segmentor` wrote.

    Attributes:
        path: The ``.onnx`` file.
        files: Every file written (``path`` and its external data, if any).
        total_bytes: Their size.
        check: The onnxruntime-vs-PyTorch comparison.
        export_seconds: Time of ``torch.onnx.export`` and saving.
        timings: With ``time_repeats``: median seconds of one image at the
            export size, ``{'torch': s, 'onnxruntime': s}``, both on the CPU,
            runs alternating so load changes hit both alike (onnxruntime
            without intra-op spinning, which would steal the CPU from the
            PyTorch run after it).
    """
    path: str
    files: List[str]
    total_bytes: int
    check: CheckResult
    export_seconds: float
    timings: Dict[str, float] = field(default_factory=dict)


def export_folder(path: str, overwrite: bool = False) -> str:
    """The folder the export will be written to; raise :class:`ExportError` unless
    a file can be created there and, without ``overwrite``, ``path`` and its
    external-data file ``path.data`` do not exist."""
    folder = osp.dirname(osp.abspath(path))
    if osp.isdir(path):
        raise ExportError(f'output {path} is a folder; give a file path such as {path}/model.onnx')
    if not str(path).endswith('.onnx'):
        raise ExportError(f'output {path} must end with .onnx')
    try:
        check_writable(folder)
    except OSError as e:
        raise ExportError(f'cannot write {path}: {e.strerror or e} ({folder}); '
                          'give an output path in an existing, writable folder') from None
    if not overwrite:
        for existing in (path, f'{path}.data'):  # an export replaces (or removes) both
            if osp.lexists(existing):
                raise ExportError(f'{existing} exists; pass --overwrite to replace it')
    return folder


def _check_options(shape: Optional[Sequence[int]], dtype: Optional[str], opset: int,
                   output: str, backbone_only: bool, bounds: Dict[str, Tuple[Any, int]]) -> None:
    if shape is not None and (len(shape) != 2 or min(shape) < 1):
        raise ExportError(f'--shape must be two positive ints (H W), got {list(shape)}')
    if dtype is not None and dtype not in EXPORT_DTYPES:
        raise ExportError(f'--dtype must be one of {sorted(EXPORT_DTYPES)}, got {dtype!r}')
    if opset not in OPSETS:
        raise ExportError(f'--opset {opset} is not supported: use {OPSETS[0]}..{OPSETS[-1]}')
    if backbone_only and output != 'logits':
        raise ExportError('--backbone-only exports feature maps; it takes no --output')
    for name, (value, least) in bounds.items():
        if value is not None and value < least:
            raise ExportError(f'{name} must be at least {least}, got {value}')


def _export_shape(cfg: Config, shape: Optional[Sequence[int]]) -> Tuple[int, int]:
    if shape is not None:
        return int(shape[0]), int(shape[1])
    test_cfg = cfg.model.get('test_cfg') or {}
    if test_cfg.get('mode') == 'slide':
        return tuple(int(s) for s in test_cfg['crop_size'])
    raise ExportError("the config's test_cfg is not in slide mode, so it names no input "
                      'size: give --shape H W (with --dynamic: the size traced and checked)')


def export_config(config: str, checkpoint: str, dtype: Optional[str],
                  cfg_options: Optional[dict] = None) -> Config:
    """The config as the export builds it; refuses what cannot be exported before
    any model is built (a 6B build and load takes minutes)."""
    for path, what in ((config, 'config'), (checkpoint, 'checkpoint')):
        if not osp.exists(path):
            raise FileNotFoundError(f'{what} {path} does not exist')
    cfg = prepare_config(config, dtype=dtype, cfg_options=cfg_options, checkpoint=checkpoint)
    check_segmentor(cfg, config, 'exported', ExportError)
    vit = internvit_config(cfg.model.get('backbone')) or {}
    refuse_bfloat16(to_torch_dtype(vit.get('dtype', 'float32')))
    return cfg


def build_segmentor(cfg: Config, checkpoint: str, dynamic: bool) -> EncoderDecoder:
    """Build the config's segmentor on the CPU, check it can be exported, load the
    checkpoint (strictly: a misfit raises ``CheckpointMismatchError``)."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # mmseg's deprecation chatter while building
        model = init_model(cfg, None, device='cpu')
    param_dtype = next(model.backbone.parameters()).dtype
    check_exportable(model, dynamic, param_dtype)
    meta = load_model_weights(model, checkpoint)
    model.dataset_meta = dataset_meta(cfg, meta, model.decode_head.num_classes)
    return model.eval()


def _head_channels(cfg: Config) -> Optional[int]:
    """Output channels of the config's decode head (mmseg: out_channels, else num_classes)."""
    head = cfg.model.get('decode_head')
    if not isinstance(head, dict):
        return None
    return head.get('out_channels') or head.get('num_classes')


def _run_torch(graph: torch.nn.Module, inputs: List[torch.Tensor]) -> List[List[torch.Tensor]]:
    with torch.no_grad():
        return [list(out) if isinstance(out, tuple) else [out] for out in map(graph, inputs)]


def _cpu_session(onnx_path: str, threads: Optional[int] = None, spinning: bool = True):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 0  # 0: onnxruntime's default (physical cores)
    if not spinning:  # idle onnxruntime threads would busy-wait into the next PyTorch run
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    return ort.InferenceSession(onnx_path, options, providers=['CPUExecutionProvider'])


def _time_both(graph: torch.nn.Module, onnx_path: str, x: torch.Tensor, repeats: int,
               threads: Optional[int]) -> Dict[str, float]:
    session = _cpu_session(onnx_path, threads, spinning=False)
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(threads or torch_threads)
    try:
        with torch.no_grad():
            return interleaved_medians(
                {'torch': lambda: graph(x),
                 'onnxruntime': lambda: session.run(None, {'inputs': x.numpy()})}, repeats)
    finally:
        torch.set_num_threads(torch_threads)


def _verify(onnx_path: str, inputs: List[torch.Tensor], references: List[List[torch.Tensor]],
            logits: Optional[List[torch.Tensor]], tolerance: Tuple[float, float]) -> CheckResult:
    session = _cpu_session(onnx_path)
    name = session.get_inputs()[0].name
    diff, ref, mismatches = 0.0, 0.0, 0
    for i, (x, expected) in enumerate(zip(inputs, references)):
        got = session.run(None, {name: x.numpy()})
        d, r, m = compare_outputs(got, expected, None if logits is None else logits[i])
        diff, ref, mismatches = max(diff, d), max(ref, r), mismatches + m
    atol, rtol = tolerance
    return CheckResult(diff, ref, atol + rtol * ref, [tuple(x.shape) for x in inputs],
                       mismatches)


def _export_to(path: str, graph: torch.nn.Module, sample: torch.Tensor, names: List[str],
               dynamic: bool, opset: int, metadata: Dict[str, str],
               external_data: Optional[bool]) -> None:
    """``torch.onnx.export`` (the dynamo exporter) of ``graph`` into ``path``."""
    axes = {0: torch.export.Dim('batch')}
    if dynamic:
        axes.update({2: torch.export.Dim('height'), 3: torch.export.Dim('width')})
    try:
        # The exporter would freeze UPerHead's adaptive pooling at the sample size.
        with exportable_adaptive_pools(graph), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            program = torch.onnx.export(graph, (sample,), dynamo=True, opset_version=opset,
                                        input_names=['inputs'], output_names=names,
                                        dynamic_shapes={'inputs': axes}, verbose=False)
    except Exception as e:  # noqa: BLE001  (report the exporter's reason, write nothing)
        raise ExportFailed(f'torch.onnx.export failed: {type(e).__name__}: '
                           f'{str(e).strip().splitlines()[0]}') from e
    program.model.metadata_props.update(metadata)
    program.save(path, external_data=external_data)  # None: <path>.data if over 1.5 GiB


def _move_into_place(tmp_dir: str, path: str) -> List[str]:
    """Rename the checked files beside ``path`` (external data first, the graph last),
    flushed to disk first so a crash never leaves a renamed but empty file."""
    fsync_tree(tmp_dir)
    name = osp.basename(path)
    written = sorted(os.listdir(tmp_dir), key=lambda f: f == name)
    folder = osp.dirname(osp.abspath(path))
    stale_data = osp.join(folder, name + '.data')
    if name + '.data' not in written and osp.exists(stale_data):
        os.remove(stale_data)  # the replaced export's weights, not referenced any more
    targets = []
    for file_name in written:
        target = osp.join(folder, file_name)
        os.replace(osp.join(tmp_dir, file_name), target)
        targets.append(target)
    return targets


def export_segmentor(config: str, checkpoint: str, out: str,
                     shape: Optional[Sequence[int]] = None, dynamic: bool = False,
                     dtype: Optional[str] = None, output: str = 'logits',
                     backbone_only: bool = False, opset: int = DEFAULT_OPSET,
                     external_data: Optional[bool] = None, atol: Optional[float] = None,
                     rtol: Optional[float] = None, cfg_options: Optional[dict] = None,
                     time_repeats: int = 0, time_threads: Optional[int] = None,
                     overwrite: bool = False,
                     log: Callable[[str], None] = print) -> ExportReport:
    """Export ``config`` + ``checkpoint`` to ``out`` and check it with onnxruntime.

    Args:
        config, checkpoint: As for :class:`~mmseg_internvit.inference.Segmenter`;
            the checkpoint must fit the config exactly.
        out: The ``.onnx`` file to write (``<out>.data`` beside it holds the
            weights when they exceed 1.5 GiB).
        shape: Input ``(H, W)``: the only one, or with ``dynamic`` the one
            traced and checked; default the config's slide crop.
        dynamic: Batch, height and width dynamic (else only the batch is).
        dtype: Backbone dtype, ``'fp32'`` or ``'fp16'`` (heads stay fp32);
            default the config's.
        output: ``'logits'`` or ``'labels'``.
        backbone_only: Export the backbone's feature maps instead.
        opset: ONNX opset, 18..23.
        external_data: Weights in ``<out>.data`` beside ``out``: ``None``
            when they exceed 1.5 GiB (torch's rule), ``True`` always.
        atol, rtol: The check passes when ``max |onnx - torch| <= atol + rtol
            * max |torch|``; defaults per dtype in :data:`TOLERANCES`.
        cfg_options: Config overrides (``{'a.b': value}``).
        time_repeats: If > 0, also time one image at the export size in
            PyTorch and onnxruntime (medians of this many alternating runs
            after a warm-up of each).
        time_threads: CPU threads of both while timing (default: each
            library's own default).
        overwrite: Replace an existing ``out`` (and ``<out>.data``); without
            it an existing one is refused before anything is done.
        log: Receives progress lines.

    Raises:
        ExportError: bad options, an unsupported model part, an unwritable
            output or, without ``overwrite``, an existing one (nothing was
            exported).
        CheckpointMismatchError, FileNotFoundError: the checkpoint does not
            fit the config, or a file is missing.
        ExportFailed: the exporter failed or the graph does not match
            PyTorch; nothing is left at ``out``.
    """
    _check_options(shape, dtype, opset, output, backbone_only,
                   {'--atol': (atol, 0), '--rtol': (rtol, 0), '--time': (time_repeats, 0),
                    '--threads': (time_threads, 1)})
    folder = export_folder(out, overwrite)
    cfg = export_config(config, checkpoint, dtype, cfg_options)
    export_shape = _export_shape(cfg, shape)
    build_pipeline(cfg)  # fails now, not in the runner, if the config has no usable one
    if output == 'labels' and _head_channels(cfg) == 1:
        raise ExportError('--output labels needs a multi-class head; this one has one channel: '
                          'export logits and threshold their sigmoid')
    model = build_segmentor(cfg, checkpoint, dynamic)
    compute_dtype = next(model.backbone.parameters()).dtype
    graph = BackboneGraph(model) if backbone_only else SegmentorGraph(model, output)

    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randn(s, generator=generator) for s in sample_shapes(export_shape, dynamic)]
    logits = None
    if output == 'labels':  # the labels graph is the argmax of the logits: run the model once
        logits = [outs[0] for outs in _run_torch(SegmentorGraph(model), inputs)]
        references = [[sample_logits.argmax(dim=1)] for sample_logits in logits]
    else:
        references = _run_torch(graph, inputs)
    names = output_names(graph, len(references[0]))
    dtype_name = str(compute_dtype).replace('torch.', '')
    metadata = build_metadata(
        cfg, cfg.get('test_pipeline') or cfg.test_dataloader.dataset.pipeline,
        model.dataset_meta, model.decode_head,
        dict(dynamic=dynamic, export_shape=export_shape, outputs=names, opset=opset,
             dtype=dtype_name, config=osp.basename(config), checkpoint=osp.basename(checkpoint)))
    default_atol, default_rtol = TOLERANCES[compute_dtype]
    tolerance = (default_atol if atol is None else atol, default_rtol if rtol is None else rtol)

    log(f'exporting {type(model).__name__} ({"backbone features" if backbone_only else output}, '
        f'{"dynamic" if dynamic else "fixed"} {export_shape[0]}x{export_shape[1]}, '
        f'opset {opset}, {dtype_name} backbone)')
    tmp_dir = tempfile.mkdtemp(prefix=f'.{osp.basename(out)}.', suffix='.partial', dir=folder)
    try:
        tmp_path = osp.join(tmp_dir, osp.basename(out))
        start = time.perf_counter()
        _export_to(tmp_path, graph, inputs[0], names, dynamic, opset, metadata, external_data)
        export_seconds = time.perf_counter() - start
        check = _verify(tmp_path, inputs, references, logits, tolerance)
        log(str(check))
        if not check.passed:
            raise ExportFailed(f'the exported graph does not match PyTorch: {check}; '
                               f'nothing was written to {out}')
        timings = {}
        if time_repeats > 0:
            timings = _time_both(graph, tmp_path, inputs[0][:1], time_repeats, time_threads)
        files = _move_into_place(tmp_dir, out)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return ExportReport(osp.abspath(out), files, sum(osp.getsize(f) for f in files), check,
                        export_seconds, timings)
