"""ONNX export (tools/export_onnx.py), its onnxruntime check and the ONNX runner."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

ort = pytest.importorskip('onnxruntime')
onnx = pytest.importorskip('onnx')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, 'configs', 'smoke')
LINEAR = os.path.join(SMOKE, 'linear_internvit-tiny_1xb4-300_ade20k-sample-112x112.py')
UPERNET = os.path.join(SMOKE, 'upernet_internvit-tiny_1xb4-300_ade20k-sample-112x112.py')
ADAPTER = os.path.join(SMOKE, 'upernet_internvit-tiny-adapter_1xb4-300_ade20k-sample-112x112.py')
DETECTION = os.path.join(ROOT, 'configs', 'detection',
                         'mask-rcnn_internvit-300m-simplefpn-frozen_8xb2-1x_coco.py')
TOOL = os.path.join(ROOT, 'tools', 'export_onnx.py')
# Export size 112 (the smoke crop); two more sizes, odd and no multiple of 14.
OTHER_SIZES = [(97, 131), (45, 201)]


def _write_checkpoint(config, path, seed=0):
    """Random weights with non-trivial BN statistics, saved as mmengine's Runner does."""
    import mmseg_internvit  # noqa: F401
    from mmengine.runner import save_checkpoint
    from mmseg.apis import init_model
    from mmseg.datasets import ADE20KDataset
    torch.manual_seed(seed)
    model = init_model(config, device='cpu')
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith('running_mean'):
                buf.copy_(torch.randn_like(buf) * 0.1)
            elif name.endswith('running_var'):
                buf.copy_(torch.rand_like(buf) + 0.5)
    save_checkpoint(dict(meta=dict(dataset_meta=dict(ADE20KDataset.METAINFO)),
                         state_dict=model.state_dict()), str(path))
    return str(path)


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp('export_ckpt')
    return {name: _write_checkpoint(config, folder / f'{name}.pth')
            for name, config in (('linear', LINEAR), ('upernet', UPERNET))}


@pytest.fixture(scope='module')
def linear_export(tmp_path_factory, checkpoints):
    """The linear probe exported with --dynamic by the tool itself (a subprocess)."""
    out = tmp_path_factory.mktemp('linear_onnx') / 'linear.onnx'
    run = subprocess.run([sys.executable, TOOL, LINEAR, checkpoints['linear'], str(out),
                          '--dynamic'], capture_output=True, text=True)
    return out, run


def _torch_model(config, checkpoint):
    from mmseg_internvit.inference import Segmenter
    return Segmenter(config, checkpoint, device='cpu').model


def _assert_matches_pytorch(onnx_path, model, sizes, bound=1e-4):
    session = ort.InferenceSession(str(onnx_path), providers=['CPUExecutionProvider'])
    generator = torch.Generator().manual_seed(3)
    for batch, (h, w) in sizes:
        x = torch.randn(batch, 3, h, w, generator=generator)
        with torch.no_grad():
            expected = model.encode_decode(x, [dict(img_shape=x.shape[2:])]).numpy()
        [got] = session.run(None, {'inputs': x.numpy()})
        assert got.shape == expected.shape == (batch, 150, h, w)
        assert np.abs(got - expected).max() <= bound, (h, w)


def test_tool_exports_linear_probe_with_dynamic_size(linear_export, checkpoints):
    out, run = linear_export
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert 'max |onnxruntime - torch| = ' in run.stdout
    assert f'wrote {out} (' in run.stdout
    assert os.listdir(out.parent) == ['linear.onnx']  # no partial folder left behind
    _assert_matches_pytorch(out, _torch_model(LINEAR, checkpoints['linear']),
                            [(2, (112, 112))] + [(1, s) for s in OTHER_SIZES])
    model = onnx.load(str(out))
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ['batch', 3, 'height', 'width']
    from mmseg_internvit.export import read_metadata
    meta = read_metadata({p.key: p.value for p in model.metadata_props})
    assert meta['mean'] == [123.675, 116.28, 103.53] and meta['std'] == [58.395, 57.12, 57.375]
    assert meta['bgr_to_rgb'] is True and meta['size_divisor'] is None
    assert meta['classes'][:2] == ['wall', 'building'] and len(meta['palette']) == 150
    assert meta['test_cfg'] == dict(mode='slide', crop_size=[112, 112], stride=[70, 70])
    assert meta['test_pipeline'][1] == dict(type='mmseg_internvit.ShortSideResize', short_side=128)
    assert meta['dynamic'] is True and meta['export_shape'] == [112, 112]
    assert meta['outputs'] == ['logits'] and meta['opset'] == 18


def test_upernet_dynamic_export_matches_pytorch(tmp_path, checkpoints):
    """UPerHead's pyramid pooling stays right at sizes other than the sample's;
    weights as external data (what models over 1.5 GiB get) load beside the graph."""
    from mmseg_internvit.export import OnnxSegmenter, export_segmentor
    out = tmp_path / 'upernet.onnx'
    report = export_segmentor(UPERNET, checkpoints['upernet'], str(out), dynamic=True,
                              external_data=True, log=lambda line: None)
    assert report.check.passed and report.check.max_abs_diff <= 1e-4
    assert report.check.shapes == [(2, 3, 112, 112), (1, 3, 85, 141)]
    data = tmp_path / 'upernet.onnx.data'
    assert report.files == [str(data), str(out)] and sorted(os.listdir(tmp_path)) == \
        ['upernet.onnx', 'upernet.onnx.data']
    assert data.stat().st_size > 4 * 10**6 > out.stat().st_size  # the weights are in .data
    assert report.total_bytes == out.stat().st_size + data.stat().st_size
    assert OnnxSegmenter(str(out)).classes[0] == 'wall'  # metadata read without the data
    _assert_matches_pytorch(out, _torch_model(UPERNET, checkpoints['upernet']),
                            [(2, (112, 112))] + [(1, s) for s in OTHER_SIZES])


@pytest.mark.slow
def test_fixed_size_label_export(tmp_path, checkpoints):
    from mmseg_internvit.export import OnnxSegmenter, export_segmentor
    out = tmp_path / 'labels.onnx'
    export_segmentor(LINEAR, checkpoints['linear'], str(out), shape=(98, 126), output='labels',
                     log=lambda line: None)
    session = ort.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    dims = [d.dim_param or d.dim_value for d in
            onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == ['batch', 3, 98, 126]
    x = torch.randn(3, 3, 98, 126, generator=torch.Generator().manual_seed(5))
    [labels] = session.run(None, {'inputs': x.numpy()})
    model = _torch_model(LINEAR, checkpoints['linear'])
    with torch.no_grad():
        logits = model.encode_decode(x, [dict(img_shape=x.shape[2:])])
    assert labels.dtype == np.int64 and labels.shape == (3, 98, 126)
    assert (labels == logits.argmax(1).numpy()).all()
    with pytest.raises(Exception, match='Got invalid dimensions'):
        session.run(None, {'inputs': np.zeros((1, 3, 97, 131), np.float32)})
    with pytest.raises(ValueError, match='the runner needs class logits'):
        OnnxSegmenter(str(out))


def _images(folder):
    """Smooth random photos smaller than, equal to and larger than the slide crop."""
    import cv2
    rng = np.random.RandomState(0)
    paths = []
    for i, (h, w) in enumerate([(60, 90), (301, 157), (112, 112), (150, 400), (60, 90)]):
        rgb = cv2.GaussianBlur(rng.randint(0, 256, (h, w, 3)).astype(np.uint8), (0, 0), 4)
        paths.append(str(folder / f'img{i}.png'))
        Image.fromarray(rgb).save(paths[-1])
    return paths


def test_onnx_runner_gives_segmenters_labels(linear_export, checkpoints, tmp_path, capsys):
    from mmseg_internvit.export import OnnxSegmenter
    from mmseg_internvit.inference import Segmenter
    from mmseg_internvit.apis.errors import run_tool

    def infer_main(argv):
        return run_tool('infer', argv)
    out, _ = linear_export
    paths = _images(tmp_path)
    expected = Segmenter(LINEAR, checkpoints['linear'], device='cpu', batch_size=2,
                         crop_batch=3)(paths)
    runner = OnnxSegmenter(str(out), batch_size=2, crop_batch=3, keep_probs=True)
    got = runner(paths)
    assert runner.classes[0] == 'wall' and len(runner.palette) == 150
    for e, g in zip(expected, got):
        assert torch.equal(e.pred_sem_seg.data, g.pred_sem_seg.data)
        assert (e.seg_logits.data - g.seg_logits.data).abs().max() <= 1e-4
        assert g.seg_probs.data.shape == g.seg_logits.data.shape
    assert tuple(got[1].pred_sem_seg.data.shape) == (1, 301, 157)
    # The same through tools/infer.py --onnx.
    code = infer_main(['--onnx', str(out), paths[1], paths[3], '--out-dir', str(tmp_path / 'o'),
                       '--batch-size', '2'])
    assert code == 0, capsys.readouterr()
    for i in (1, 3):
        label = np.asarray(Image.open(tmp_path / 'o' / f'img{i}_label.png'))
        assert (label == expected[i].pred_sem_seg.data[0].numpy()).all()
    assert infer_main(['--onnx', str(tmp_path / 'none.onnx'), paths[0],
                       '--out-dir', str(tmp_path / 'o')]) == 2
    assert 'ONNX model' in capsys.readouterr().err


def test_infer_onnx_in_a_fresh_process(linear_export, tmp_path):
    """tools/infer.py --onnx with nothing set up before it (no Segmenter, no runner)."""
    from mmseg_internvit.export import OnnxSegmenter
    out, _ = linear_export
    paths = _images(tmp_path)[:2]
    run = subprocess.run([sys.executable, os.path.join(ROOT, 'tools', 'infer.py'), '--onnx',
                          str(out), *paths, '--out-dir', str(tmp_path / 'o')],
                         capture_output=True, text=True)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    expected = OnnxSegmenter(str(out))(paths)
    for i, result in enumerate(expected):
        label = np.asarray(Image.open(tmp_path / 'o' / f'img{i}_label.png'))
        assert (label == result.pred_sem_seg.data[0].numpy()).all()


def _run_export(argv):
    """tools/export_onnx.py in this process."""
    from mmseg_internvit.apis.errors import run_tool
    return run_tool('export_onnx', [str(a) for a in argv])


def _refused(capsys, argv, folder):
    """Run the tool in-process; it must exit 2 with one ``error:`` line, writing nothing."""
    before = sorted(os.listdir(folder))
    assert _run_export(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and err.count('error: ') == 1, err
    assert sorted(os.listdir(folder)) == before
    return err


def test_unsupported_parts_are_named(tmp_path, checkpoints, capsys, monkeypatch):
    adapter_ckpt = _write_checkpoint(ADAPTER, tmp_path / 'adapter.pth')
    out = tmp_path / 'out.onnx'
    err = _refused(capsys, [ADAPTER, adapter_ckpt, out, '--dynamic'], tmp_path)
    assert 'backbone.interactions.0.injector.attn.attn (mmcv MultiScaleDeformableAttention' \
        in err and '--shape H W instead of --dynamic' in err
    from mmseg_internvit.export import exporter
    with monkeypatch.context() as patch:  # refused from the config, before any model is built
        patch.setattr(exporter, 'init_model', None)
        err = _refused(capsys, [LINEAR, checkpoints['linear'], out,
                                '--cfg-options', 'model.backbone.dtype=bfloat16'], tmp_path)
        assert 'a bfloat16 backbone' in err and 'use --dtype fp16' in err
        err = _refused(capsys, [ADAPTER, adapter_ckpt, out, '--cfg-options',
                                'model.backbone.vit.dtype=bf16'], tmp_path)
        assert 'a bfloat16 backbone' in err
    err = _refused(capsys, [DETECTION, checkpoints['linear'], out], tmp_path)
    assert "model type 'MaskRCNN'" in err and 'is not an mmseg segmentor: only EncoderDecoder ' \
        'segmentation configs can be exported' in err
    err = _refused(capsys, [LINEAR, checkpoints['linear'], out, '--opset', '12'], tmp_path)
    assert '--opset 12 is not supported: use 18..23' in err
    err = _refused(capsys, [LINEAR, checkpoints['linear'], out, '--output', 'labels',
                            '--cfg-options', 'model.decode_head.out_channels=1'], tmp_path)
    assert '--output labels needs a multi-class head' in err


def test_unwritable_output_and_misfit_checkpoint(tmp_path, checkpoints, capsys):
    a_file = tmp_path / 'file.txt'
    a_file.write_text('a file')
    # Tests run as root, so chmod cannot make a folder unwritable: put it under a file.
    err = _refused(capsys, [LINEAR, checkpoints['linear'], a_file / 'out.onnx'], tmp_path)
    assert f'cannot write {a_file / "out.onnx"}' in err
    err = _refused(capsys, [LINEAR, checkpoints['linear'], tmp_path], tmp_path)
    assert 'is a folder' in err
    err = _refused(capsys, [LINEAR, checkpoints['upernet'], tmp_path / 'out.onnx'], tmp_path)
    assert 'neck.' in err and 'decode_head.' in err
    err = _refused(capsys, [LINEAR, tmp_path / 'gone.pth', tmp_path / 'out.onnx'], tmp_path)
    assert 'gone.pth does not exist' in err


def test_existing_output_is_kept_unless_overwrite(tmp_path, checkpoints, capsys):
    out, data = tmp_path / 'model.onnx', tmp_path / 'model.onnx.data'
    out.write_bytes(b'an earlier export')
    data.write_bytes(b'its weights')
    err = _refused(capsys, [LINEAR, checkpoints['linear'], out, '--shape', '56', '56'], tmp_path)
    assert f'error: {out} exists; pass --overwrite to replace it' in err
    out.unlink()  # weights left by an earlier export would be removed too
    err = _refused(capsys, [LINEAR, checkpoints['linear'], out, '--shape', '56', '56'], tmp_path)
    assert f'error: {data} exists; pass --overwrite to replace it' in err
    assert data.read_bytes() == b'its weights'
    err = _refused(capsys, [LINEAR, checkpoints['linear'], tmp_path / 'model.txt'], tmp_path)
    assert 'model.txt must end with .onnx' in err
    out.write_bytes(b'an earlier export')
    assert _run_export([LINEAR, checkpoints['linear'], out, '--shape', '56', '56',
                        '--overwrite']) == 0, capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ['model.onnx']  # the stale weights went with it
    assert onnx.load(str(out)).graph.input[0].name == 'inputs'


def test_failed_check_writes_nothing(tmp_path, checkpoints, capsys, monkeypatch):
    from mmseg_internvit.export import exporter
    monkeypatch.setattr(exporter, 'compare_outputs', lambda *args: (0.5, 1.0, 0))
    assert _run_export([LINEAR, checkpoints['linear'], str(tmp_path / 'out.onnx'),
                        '--shape', '56', '56']) == 1
    err = capsys.readouterr().err
    assert 'error: the exported graph does not match PyTorch: max |onnxruntime - torch| = 0.5' \
        in err and 'nothing was written' in err
    assert os.listdir(tmp_path) == []


def test_exportable_adaptive_pool_equals_torchs():
    from mmseg_internvit.export import ExportableAdaptiveAvgPool2d, exportable_adaptive_pools
    x = torch.randn(2, 5, 23, 38)
    for size in (1, 2, 3, 6, (4, 7), 23):
        expected = nn.AdaptiveAvgPool2d(size)(x)
        torch.testing.assert_close(ExportableAdaptiveAvgPool2d(size)(x), expected,
                                   rtol=1e-6, atol=1e-6)
    pool = nn.AdaptiveAvgPool2d(3)
    model = nn.Sequential(nn.Conv2d(5, 5, 1), nn.Sequential(pool))
    with exportable_adaptive_pools(model) as swapped:
        assert swapped == 1 and isinstance(model[1][0], ExportableAdaptiveAvgPool2d)
    assert model[1][0] is pool  # put back for PyTorch inference


def test_position_embedding_resize_exports_bicubic_without_antialias(tmp_path):
    """Dynamic grids: ONNX Resize(cubic, a=-0.75, half_pixel, no antialias) as torch's."""
    from mmseg_internvit.models.layers import resize_pos_embed

    class Resize(nn.Module):
        def __init__(self):
            super().__init__()
            self.pos = nn.Parameter(torch.randn(1, 16 * 16, 8, generator=torch.Generator()
                                                .manual_seed(0)))

        def forward(self, grid_carrier):  # (1, 1, h, w): only its shape is used
            return resize_pos_embed(self.pos, (16, 16), grid_carrier.shape[2:])

    module, path = Resize(), str(tmp_path / 'resize.onnx')
    dims = {2: torch.export.Dim('h'), 3: torch.export.Dim('w')}
    torch.onnx.export(module, (torch.zeros(1, 1, 5, 7),), path, dynamo=True, opset_version=18,
                      input_names=['grid'], dynamic_shapes={'grid_carrier': dims},
                      verbose=False)
    [node] = [n for n in onnx.load(path).graph.node if n.op_type == 'Resize'][:1]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs['mode'] == b'cubic' and attrs['cubic_coeff_a'] == -0.75
    assert attrs['coordinate_transformation_mode'] == b'half_pixel' and attrs['antialias'] == 0
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    for h, w in [(16, 16), (3, 5), (17, 15), (37, 23), (36, 36)]:
        expected = module(torch.zeros(1, 1, h, w)).detach().numpy()
        [got] = session.run(None, {'grid': np.zeros((1, 1, h, w), np.float32)})
        # Unit-variance grid: only float rounding of the scale h/16 differs.
        assert np.abs(got - expected).max() <= (0 if (h, w) == (16, 16) else 5e-5), (h, w)


@pytest.mark.slow
def test_adapter_exports_at_a_fixed_size(tmp_path):
    """mmcv's deformable attention exports through its PyTorch path (GridSample)."""
    from mmseg_internvit.export import export_segmentor
    checkpoint = _write_checkpoint(ADAPTER, tmp_path / 'adapter.pth')
    out = tmp_path / 'adapter.onnx'
    report = export_segmentor(ADAPTER, checkpoint, str(out), shape=(98, 126),
                              log=lambda line: None)
    assert report.check.max_abs_diff <= 1e-4
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert 'GridSample' in ops
    session = ort.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    x = torch.randn(1, 3, 98, 126, generator=torch.Generator().manual_seed(2))
    model = _torch_model(ADAPTER, checkpoint)
    with torch.no_grad():
        expected = model.encode_decode(x, [dict(img_shape=x.shape[2:])]).numpy()
    assert np.abs(session.run(None, {'inputs': x.numpy()})[0] - expected).max() <= 1e-4
