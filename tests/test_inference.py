"""tools/infer.py, the Segmenter API and MMSegInferencer on the smoke model."""
import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, 'configs', 'smoke',
                     'linear_internvit-tiny_1xb4-300_ade20k-sample-112x112.py')
ADAPTER = os.path.join(os.path.dirname(SMOKE),
                       'upernet_internvit-tiny-adapter_1xb4-300_ade20k-sample-112x112.py')
NUM_CLASSES = 150


@pytest.fixture(scope='session')
def smoke_checkpoint(tmp_path_factory):
    """An untrained smoke model saved the way mmengine's Runner saves (meta + message hub)."""
    from mmseg_internvit import register_all_modules
    register_all_modules()
    from mmengine.logging import MessageHub
    from mmengine.runner import save_checkpoint
    from mmseg.apis import init_model
    from mmseg.datasets import ADE20KDataset
    torch.manual_seed(0)
    model = init_model(SMOKE, device='cpu')
    hub = MessageHub.get_instance('test_inference')
    hub.update_scalar('train/loss', 0.5)  # pickles a HistoryBuffer, like real checkpoints
    path = str(tmp_path_factory.mktemp('ckpt') / 'smoke.pth')
    save_checkpoint(dict(meta=dict(dataset_meta=dict(ADE20KDataset.METAINFO), iter=20),
                         state_dict=model.state_dict(), message_hub=hub.state_dict()), path)
    return path


def gradient_rgb(height=60, width=90):
    """A smooth RGB test image (JPEG keeps it close, so orientation is checkable)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.dstack([x * 255 // (width - 1), y * 255 // (height - 1),
                      (x + y) * 255 // (width + height - 2)]).astype(np.uint8)


def make_odd_images(folder):
    """Odd but valid images and broken files; returns {name: path}."""
    os.makedirs(os.path.join(folder, 'deep'), exist_ok=True)
    rgb = gradient_rgb()
    paths = {name: os.path.join(folder, name) for name in (
        'gray.png', 'rgba.png', 'deep/g16.png', 'cmyk.jpg', 'exif.jpg', 'truncated.jpg',
        'text.jpg', 'empty.png')}
    Image.fromarray(rgb[..., 0]).save(paths['gray.png'])
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 40, np.uint8)])).save(paths['rgba.png'])
    Image.fromarray(rgb[..., 1].astype(np.uint16) * 256 + 100).save(paths['deep/g16.png'])
    Image.fromarray(rgb).convert('CMYK').save(paths['cmyk.jpg'], quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    Image.fromarray(rgb).save(paths['exif.jpg'], exif=exif, quality=95)
    Image.fromarray(rgb).save(paths['truncated.jpg'])
    with open(paths['truncated.jpg'], 'rb') as f:
        data = f.read()
    with open(paths['truncated.jpg'], 'wb') as f:
        f.write(data[:len(data) // 2])
    with open(paths['text.jpg'], 'w') as f:
        f.write('not an image\n')
    open(paths['empty.png'], 'wb').close()
    with open(os.path.join(folder, 'notes.txt'), 'w') as f:
        f.write('ignored: not an image extension\n')
    return paths


def test_read_image_normalises_odd_images(tmp_path):
    from mmseg_internvit.inference import ImageReadError, read_image
    paths = make_odd_images(str(tmp_path))
    rgb = gradient_rgb()
    gray = read_image(paths['gray.png'])
    assert gray.shape == (60, 90, 3) and gray.dtype == np.uint8
    assert (gray == rgb[..., :1]).all()
    assert (read_image(paths['rgba.png']) == rgb[..., ::-1]).all()  # BGR, alpha dropped
    g16 = read_image(paths['deep/g16.png'])
    expected = np.rint((rgb[..., 1] * 256.0 + 100) / 257).astype(np.uint8)  # 65535 -> 255
    assert (g16[..., 0] == expected).all()
    cmyk = read_image(paths['cmyk.jpg'])
    assert cmyk.shape == (60, 90, 3) and np.abs(cmyk[..., ::-1].astype(int) - rgb).mean() < 8
    upright = read_image(paths['exif.jpg'])[..., ::-1].astype(int)
    assert upright.shape == (90, 60, 3)
    assert np.abs(upright - np.rot90(rgb, k=-1)).mean() < 4  # clockwise, not counter
    for name, reason in (('truncated.jpg', 'truncated'), ('text.jpg', 'not an image'),
                         ('empty.png', 'empty file'), ('missing.png', 'no such file')):
        with pytest.raises(ImageReadError, match=reason):
            read_image(str(tmp_path / name))


def test_expand_inputs_names_without_collisions(tmp_path):
    from mmseg_internvit.inference import expand_inputs
    for rel in ('a/x.jpg', 'a/x.png', 'a/sub/y.jpg', 'a/.hidden.jpg', 'a/readme.md', 'b/x.jpg'):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b'')
    found = expand_inputs([str(tmp_path / 'a'), str(tmp_path / 'b' / '*.jpg'),
                           str(tmp_path / 'a' / 'x.jpg'), str(tmp_path / 'gone.jpg')])
    names = {os.path.relpath(i.path, tmp_path): i.name for i in found}
    assert names == {'a/sub/y.jpg': 'sub/y', 'a/x.jpg': 'x_jpg', 'a/x.png': 'x_png',
                     'b/x.jpg': 'x_jpg-2', 'gone.jpg': 'gone'}


def test_atomic_writes_leave_nothing_on_failure(tmp_path):
    from mmseg_internvit.inference.writers import atomic_file, write_label_png
    target = tmp_path / 'out.png'
    with pytest.raises(RuntimeError):
        with atomic_file(str(target)) as f:
            f.write(b'half')
            raise RuntimeError('disk gone')
    assert os.listdir(tmp_path) == []
    label = np.arange(300, dtype=np.int64).reshape(15, 20)
    write_label_png(str(target), label, [[0, 0, 0]] * 300)  # > 256 classes: 16-bit PNG
    assert (np.asarray(Image.open(target)) == label).all()
    assert os.listdir(tmp_path) == ['out.png']


def _outputs(out_dir):
    return sorted(os.path.relpath(p, out_dir) for p in glob.glob(f'{out_dir}/**/*', recursive=True)
                  if os.path.isfile(p))


def test_cli_end_to_end_with_bad_inputs(tmp_path, sample_ade20k, smoke_checkpoint):
    val_dir = os.path.join(sample_ade20k, 'images', 'validation')
    odd = make_odd_images(str(tmp_path / 'odd'))
    out_dir = tmp_path / 'out'
    cmd = [sys.executable, os.path.join(ROOT, 'tools', 'infer.py'), SMOKE, smoke_checkpoint,
           val_dir, str(tmp_path / 'odd'), '--out-dir', str(out_dir), '--batch-size', '3',
           '--crop-batch', '4', '--save-areas', '--opacity', '0.5']
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    log = run.stdout + run.stderr
    assert run.returncode == 1, log[-3000:]
    assert '17 of 20 images done, 3 failed' in run.stdout, log[-3000:]
    for name in ('truncated.jpg', 'text.jpg', 'empty.png'):
        assert f'failed: {odd[name]}: ' in run.stdout
    outputs = _outputs(out_dir)
    assert not [o for o in outputs if o.endswith('.tmp') or os.path.basename(o).startswith('.')]
    val_images = sorted(glob.glob(os.path.join(val_dir, '*.jpg')))
    done = {os.path.splitext(os.path.basename(p))[0]: p for p in val_images}
    done.update({'gray': odd['gray.png'], 'rgba': odd['rgba.png'], 'deep/g16': odd['deep/g16.png'],
                 'cmyk': odd['cmyk.jpg'], 'exif': odd['exif.jpg']})
    assert outputs == sorted(f'{name}_{kind}' for name in done
                             for kind in ('areas.json', 'label.png', 'overlay.png'))
    from mmseg.datasets import ADE20KDataset
    palette = np.asarray(ADE20KDataset.METAINFO['palette'], dtype=np.uint8)
    for name, path in done.items():
        label_img = Image.open(out_dir / f'{name}_label.png')
        overlay = Image.open(out_dir / f'{name}_overlay.png')
        shown = Image.open(path)
        size = (shown.height, shown.width) if name == 'exif' else shown.size
        assert label_img.mode == 'P' and label_img.size == overlay.size == size, name
        label = np.asarray(label_img)
        assert label.max() < NUM_CLASSES
        assert (np.asarray(label_img.getpalette()[:3 * NUM_CLASSES]).reshape(-1, 3)
                == palette).all()
        areas = json.loads((out_dir / f'{name}_areas.json').read_text())
        counts = np.bincount(label.ravel(), minlength=NUM_CLASSES)
        assert {c['id']: c['pixels'] for c in areas['classes']} == \
            {i: int(n) for i, n in enumerate(counts) if n}
        assert abs(sum(c['fraction'] for c in areas['classes']) - 1) < 1e-9
        assert areas['classes'][0]['name'] == ADE20KDataset.METAINFO['classes'][
            areas['classes'][0]['id']]
    # The overlay blends the (lossless) input with the class colours.
    label = np.asarray(Image.open(out_dir / 'gray_label.png'))
    gray = np.asarray(Image.open(odd['gray.png'])).astype(np.float32)[..., None]
    expected = np.rint(0.5 * gray + 0.5 * palette[label].astype(np.float32))
    assert np.abs(np.asarray(Image.open(out_dir / 'gray_overlay.png')) - expected).max() <= 1


def _main(argv):
    from mmseg_internvit.apis.errors import run_tool
    return run_tool('infer', [str(a) for a in argv])


def test_cli_tta_bf16_tiles_and_probabilities(tmp_path, smoke_checkpoint, capsys):
    odd = make_odd_images(str(tmp_path / 'odd'))
    out = tmp_path / 'out'
    code = _main([SMOKE, smoke_checkpoint, odd['exif.jpg'], '--out-dir', out, '--tta',
                  '--dtype', 'bf16', '--tile', 84, 84, '--stride', 56, 56, '--save-logits'])
    assert code == 0, capsys.readouterr()
    assert '1 of 1 images done, 0 failed' in capsys.readouterr().out
    saved = np.load(out / 'exif_logits.npz')
    probs = saved['probs']
    assert probs.dtype == np.float16 and probs.shape == (NUM_CLASSES, 90, 60)
    np.testing.assert_allclose(probs.astype(np.float32).sum(0), 1.0, atol=0.05)
    label = np.asarray(Image.open(out / 'exif_label.png'))
    assert (probs.astype(np.float32).argmax(0) == label).mean() > 0.99
    assert list(saved['classes'][:2]) == ['wall', 'building']


def test_segmenter_api(smoke_checkpoint, tmp_path):
    from mmseg_internvit.inference import Segmenter
    seg = Segmenter(SMOKE, smoke_checkpoint, device='cpu', batch_size=2, crop_batch=4)
    assert type(seg.model).__name__ == 'BatchedSlideEncoderDecoder'
    path = tmp_path / 'x.png'
    Image.fromarray(gradient_rgb()).save(path)
    results = seg([path, gradient_rgb(70, 50)[..., ::-1].copy(), str(path)])
    assert [tuple(r.pred_sem_seg.data.shape) for r in results] == [(1, 60, 90), (1, 70, 50),
                                                                   (1, 60, 90)]
    assert torch.equal(results[0].pred_sem_seg.data, results[2].pred_sem_seg.data)
    assert seg.classes[0] == 'wall' and len(seg.palette) == NUM_CLASSES


def test_segmenter_reads_no_pretrained_file_of_an_adapter_vit(tmp_path):
    """An adapter's ViT names a pretrained file that is not here: the whole-model
    checkpoint is all Segmenter reads, and arch='auto' inside the adapter is read from it."""
    from mmengine.config import Config
    from mmseg.apis import init_model

    from mmseg_internvit.inference import Segmenter, prepare_config
    config = Config.fromfile(ADAPTER)
    missing = str(tmp_path / 'absent' / 'InternViT-6B.pth')
    config.model.backbone.vit.init_cfg = dict(type='Pretrained', checkpoint=missing)
    cfg = prepare_config(config)
    assert cfg.model.backbone.vit.init_cfg is None and cfg.model.backbone.get('init_cfg') is None
    torch.manual_seed(0)
    reference = init_model(cfg, None, device='cpu').eval()
    checkpoint = str(tmp_path / 'adapter.pth')
    torch.save({'state_dict': reference.state_dict()}, checkpoint)
    # Published widths have a head count; this tiny one names it.
    config.model.backbone.vit.arch = dict(auto=True, num_heads=4)
    assert prepare_config(config, checkpoint=checkpoint).model.backbone.vit.init_cfg == \
        dict(type='Pretrained', checkpoint=checkpoint)
    seg = Segmenter(config, checkpoint, device='cpu')
    assert seg.model.backbone.vit.embed_dims == 64 and len(seg.model.backbone.vit.blocks) == 4
    image = gradient_rgb()
    expected = Segmenter(ADAPTER, checkpoint, device='cpu')([image])[0]
    assert torch.equal(seg([image])[0].pred_sem_seg.data, expected.pred_sem_seg.data)


def test_checkpoint_head_mismatch_stops_before_processing(tmp_path, smoke_checkpoint, capsys):
    image = tmp_path / 'x.png'
    Image.fromarray(gradient_rgb()).save(image)
    out = tmp_path / 'out'
    code = _main([SMOKE, smoke_checkpoint, image, '--out-dir', out,
                  '--cfg-options', 'model.decode_head.num_classes=10'])
    err = capsys.readouterr().err
    assert code == 2
    assert 'decode_head.conv_seg.weight has shape (150, 96, 1, 1) in the checkpoint but ' \
           '(10, 96, 1, 1) in the model' in err
    assert not out.exists()  # created only once the model has loaded


def test_unusable_out_dir_and_missing_files_stop_early(tmp_path, capsys):
    image = tmp_path / 'x.png'
    Image.fromarray(gradient_rgb()).save(image)
    not_a_dir = tmp_path / 'file.txt'
    not_a_dir.write_text('a file')
    # Tests run as root, so chmod cannot make a folder unwritable: use a file instead.
    assert _main([SMOKE, 'unused.pth', image, '--out-dir', not_a_dir]) == 2
    assert f'output folder {not_a_dir} exists and is not a folder' in capsys.readouterr().err
    assert _main([SMOKE, 'unused.pth', image, '--out-dir', not_a_dir / 'sub']) == 2
    err = capsys.readouterr().err
    assert f'cannot write to output folder {not_a_dir / "sub"}' in err
    assert f'{not_a_dir} is a file' in err
    assert _main([SMOKE, tmp_path / 'nope.pth', image, '--out-dir', tmp_path / 'o' / 'p']) == 2
    assert 'nope.pth does not exist' in capsys.readouterr().err
    assert _main([SMOKE, image, tmp_path / 'none' / '*.jpg', '--out-dir', tmp_path / 'o']) == 2
    assert 'no images found' in capsys.readouterr().err
    assert not (tmp_path / 'o').exists()  # nothing is created before the checks pass


def test_mmseg_inferencer_loads_smoke_checkpoint(tmp_path, sample_ade20k, smoke_checkpoint):
    """mmseg's own API in a fresh interpreter: the config's custom_imports does the rest."""
    image = sorted(glob.glob(os.path.join(sample_ade20k, 'images', 'validation', '*.jpg')))[0]
    code = ('from mmseg.apis import MMSegInferencer\n'
            f'inferencer = MMSegInferencer(model={SMOKE!r}, weights={smoke_checkpoint!r}, '
            "device='cpu')\n"
            f"result = inferencer({image!r}, out_dir='out')\n"
            "print('classes', inferencer.model.dataset_meta['classes'][:2])\n"
            "print('shape', result['predictions'].shape)\n")
    run = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    width, height = Image.open(image).size
    assert f'shape ({height}, {width})' in run.stdout
    assert "classes ('wall', 'building')" in run.stdout
    pred = np.asarray(Image.open(tmp_path / 'out' / 'pred' / '00000000_pred.png'))
    assert pred.shape[:2] == (height, width)


BIG_PHOTO_SCRIPT = '''
import resource, sys
import numpy as np
from PIL import Image
from mmseg_internvit import register_all_modules
register_all_modules()
from mmseg_internvit.inference import Segmenter, expand_inputs, run_inference

config, checkpoint, folder = sys.argv[1:4]
height, width = 2000, 3000  # 6 MP: mmseg's full-size logits would be 3.6 GB
y, x = np.mgrid[0:height, 0:width]
Image.fromarray(np.dstack([x % 256, y % 256, (x + y) % 256]).astype(np.uint8)).save(
    folder + '/big.png')
Image.fromarray(np.full((60, 90, 3), 128, np.uint8)).save(folder + '/small.png')
seg = Segmenter(config, checkpoint, device='cpu', keep_probs=True)
peak_kb = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
summary = run_inference(seg, expand_inputs([folder + '/small.png']), folder + '/out',
                        save_logits=True, save_areas=True)
before = peak_kb()
summary = run_inference(seg, expand_inputs([folder + '/big.png']), folder + '/out',
                        save_logits=True, save_areas=True)
print('done', summary.done, 'growth_mb', (peak_kb() - before) / 1024)
'''


def test_big_photo_memory_grows_with_the_photo_not_the_classes(tmp_path, smoke_checkpoint):
    """A 6 MP photo with --save-logits: peak memory grows by far less than one full-size
    float32 logit map (3.6 GB for 150 classes), and logits are saved at model resolution."""
    script = tmp_path / 'big.py'
    script.write_text(BIG_PHOTO_SCRIPT)
    run = subprocess.run([sys.executable, str(script), SMOKE, smoke_checkpoint, str(tmp_path)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    done, growth = re.search(r'done (\d+) growth_mb ([\d.]+)', run.stdout).groups()
    assert int(done) == 1
    assert float(growth) < 600, run.stdout  # photo, label, overlay, one band: ~150 MB here
    probs = np.load(tmp_path / 'out' / 'big_logits.npz')['probs']
    # The smoke test pipeline: short side 128 (128 x 192), then up to multiples of 14.
    assert probs.dtype == np.float16 and probs.shape == (NUM_CLASSES, 140, 196)
    label = np.asarray(Image.open(tmp_path / 'out' / 'big_label.png'))
    assert label.shape == (2000, 3000)


def test_probabilities_of_a_one_channel_head_are_its_sigmoid_once():
    from types import SimpleNamespace

    from mmseg.models.segmentors import EncoderDecoder

    from mmseg_internvit.inference.segmenter import class_probabilities
    logits = torch.randn(2, 1, 5, 7)
    fake = SimpleNamespace(decode_head=SimpleNamespace(threshold=0.3), align_corners=False)
    samples = EncoderDecoder.postprocess_result(fake, logits)
    for i, sample in enumerate(samples):
        probs = class_probabilities(sample.seg_logits.data)
        assert torch.allclose(probs, logits[i].sigmoid())
    multi = torch.randn(3, 5, 7)
    assert torch.allclose(class_probabilities(multi), multi.softmax(0))


def test_one_pixel_images_get_overlays_and_no_repeated_warnings(
        tmp_path, smoke_checkpoint, capsys):
    """A 1x1 image's overlay band is one pixel (mmseg's visualizer read its mask as an
    integer index); the visualizer is made once, without mmengine's warning per image."""
    import warnings
    folder = tmp_path / 'in'
    folder.mkdir()
    Image.fromarray(np.array([[[200, 30, 60]]], np.uint8)).save(folder / 'a_dot.png')
    Image.fromarray(gradient_rgb()).save(folder / 'b_plain.png')
    Image.fromarray(gradient_rgb(30, 40)).save(folder / 'c_plain.png')
    out = tmp_path / 'out'
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        code = _main([SMOKE, smoke_checkpoint, folder, '--out-dir', out])
    assert code == 0, capsys.readouterr()
    assert not [w for w in caught if 'get_instance' in str(w.message)]
    assert _outputs(out) == sorted(f'{name}_{kind}' for name in ('a_dot', 'b_plain', 'c_plain')
                                   for kind in ('label.png', 'overlay.png'))
    from mmseg.datasets import ADE20KDataset
    [[label]] = np.asarray(Image.open(out / 'a_dot_label.png'))
    colour = np.asarray(ADE20KDataset.METAINFO['palette'][label], np.float32)
    expected = np.rint(0.5 * np.array([200, 30, 60], np.float32) + 0.5 * colour)
    assert np.abs(np.asarray(Image.open(out / 'a_dot_overlay.png'))[0, 0] - expected).max() <= 1


def test_overlay_of_a_one_pixel_last_band():
    """An image one pixel wide whose last band of rows has one row (257 = 256 + 1)."""
    from types import SimpleNamespace

    from mmseg_internvit.inference.runner import OVERLAY_ROWS, draw_overlay
    palette = [[255, 0, 0], [0, 0, 255]]
    fake = SimpleNamespace(classes=('a', 'b'), palette=palette)
    rgb = np.zeros((OVERLAY_ROWS + 1, 1, 3), np.uint8)
    label = np.arange(OVERLAY_ROWS + 1).reshape(-1, 1) % 2
    overlay = draw_overlay(fake, rgb, label, 1.0)
    assert (overlay == np.asarray(palette, np.uint8)[label]).all()


def test_an_image_whose_outputs_cannot_be_written_leaves_none(tmp_path, smoke_checkpoint,
                                                              capsys):
    for name in ('x', 'y'):
        Image.fromarray(gradient_rgb()).save(tmp_path / f'{name}.png')
    out = tmp_path / 'out'
    (out / 'x_overlay.png').mkdir(parents=True)  # x's overlay cannot take its name
    code = _main([SMOKE, smoke_checkpoint, tmp_path / 'x.png', tmp_path / 'y.png',
                  '--out-dir', out, '--save-areas'])
    stdout = capsys.readouterr().out
    assert code == 1
    assert f'failed: {tmp_path / "x.png"}: writing outputs failed' in stdout
    assert _outputs(out) == ['y_areas.json', 'y_label.png', 'y_overlay.png']


def test_device_checks_name_what_this_machine_has(monkeypatch):
    """A CUDA device is refused where CUDA is missing, and a GPU index beyond the
    machine's count is refused with the indices there are (the count is faked)."""
    from mmseg_internvit.inference.segmenter import check_device
    check_device('cpu')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(ValueError, match=r'^--device cuda: CUDA is not available here; use cpu'):
        check_device('cuda', '--device')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    check_device('cuda:1')
    with pytest.raises(ValueError, match=r'^device cuda:2: this machine has 2 CUDA device\(s\), '
                                         r'cuda:0 to cuda:1$'):
        check_device('cuda:2')


def test_unknown_device_detector_config_and_mistyped_path_stop_early(
        tmp_path, smoke_checkpoint, capsys):
    image = tmp_path / 'x.png'
    Image.fromarray(gradient_rgb()).save(image)
    out = tmp_path / 'out'
    assert _main([SMOKE, smoke_checkpoint, image, '--out-dir', out, '--device', 'tpu']) == 2
    assert 'error: --device tpu: not a device to run on; use cpu, cuda or cuda:N' in \
        capsys.readouterr().err
    detector = os.path.join(
        ROOT, 'configs', 'detection', 'smoke',
        'mask-rcnn_internvit-tiny-simplefpn_1xb2-lsj-12e_coco-format-160x160.py')
    assert _main([detector, smoke_checkpoint, image, '--out-dir', out]) == 2
    assert "model type 'MaskRCNN' in " in capsys.readouterr().err
    missing = tmp_path / 'nope.jpg'
    assert _main([SMOKE, smoke_checkpoint, missing, '--out-dir', out]) == 2
    assert f'error: no such image file: {missing}; check the path' in capsys.readouterr().err
    assert not out.exists()
    # Beside an image that exists, a missing path is one failed input (documented).
    assert _main([SMOKE, smoke_checkpoint, missing, image, '--out-dir', out]) == 1
    assert f'failed: {missing}: no such file' in capsys.readouterr().out


def test_stride_from_the_config_larger_than_the_tile_suggests_stride():
    from mmseg_internvit.inference import prepare_config
    with pytest.raises(ValueError, match=r"the config's sliding-window stride \(70, 70\) is "
                                         r'larger than tile \(56, 56\).*give --stride H W'):
        prepare_config(SMOKE, tile=(56, 56))
    with pytest.raises(ValueError, match=r'stride \(60, 60\) is larger than tile \(56, 56\)'):
        prepare_config(SMOKE, tile=(56, 56), stride=(60, 60))


def test_segmenter_refuses_arrays_that_are_not_uint8_bgr(smoke_checkpoint):
    from mmseg_internvit.inference import Segmenter
    seg = Segmenter(SMOKE, smoke_checkpoint, device='cpu')
    image = gradient_rgb()[..., ::-1]
    for index, bad, shown in (
            (1, image.astype(np.uint16) * 257, r'uint16 array of shape \(60, 90, 3\)'),
            (1, np.dstack([image, image[..., :1]]), r'uint8 array of shape \(60, 90, 4\)'),
            (1, np.zeros((0, 0, 3), np.uint8), r'uint8 array of shape \(0, 0, 3\)'),
            (1, image[..., 0], r'uint8 array of shape \(60, 90\)')):
        with pytest.raises(ValueError, match=rf'images\[{index}\]: got a {shown}; Segmenter '
                                             r'takes \(H, W, 3\) uint8 BGR arrays'):
            seg([image.copy(), bad])


def test_folder_links_back_to_a_parent_are_walked_once(tmp_path):
    from mmseg_internvit.inference import expand_inputs
    from mmseg_internvit.inference.inputs import _walk_images
    (tmp_path / 'sub').mkdir()
    (tmp_path / 'a.jpg').write_bytes(b'')
    (tmp_path / 'sub' / 'b.png').write_bytes(b'')
    os.symlink('.', tmp_path / 'again')
    assert _walk_images(str(tmp_path)) == [str(tmp_path / 'a.jpg'), str(tmp_path / 'sub' / 'b.png')]
    # Two links to '.' and one to '..' below: 2^depth paths if links were followed blindly.
    os.symlink('.', tmp_path / 'more')
    os.symlink('..', tmp_path / 'sub' / 'up')
    assert [(i.path, i.name) for i in expand_inputs([str(tmp_path)])] == \
        [(str(tmp_path / 'a.jpg'), 'a'), (str(tmp_path / 'sub' / 'b.png'), 'sub/b')]


@pytest.fixture(scope='module')
def fixed_size_export(tmp_path_factory, smoke_checkpoint):
    """The smoke model exported for 112 x 112 inputs, weights in ``m.onnx.data``."""
    from mmseg_internvit.export import export_segmentor
    out = tmp_path_factory.mktemp('onnx') / 'm.onnx'
    export_segmentor(SMOKE, smoke_checkpoint, str(out), external_data=True, log=lambda s: None)
    assert os.path.isfile(str(out) + '.data')
    return out


def test_onnx_missing_weights_file_and_unusable_tile_stop_early(
        fixed_size_export, tmp_path, capsys):
    import shutil
    image = tmp_path / 'x.png'
    Image.fromarray(gradient_rgb()).save(image)
    out = tmp_path / 'out'
    alone = tmp_path / 'alone' / 'm.onnx'
    alone.parent.mkdir()
    shutil.copy(fixed_size_export, alone)  # without m.onnx.data
    assert _main(['--onnx', alone, image, '--out-dir', out]) == 2
    assert f'error: {alone} keeps its weights in m.onnx.data, which is not beside it: keep ' \
           'the .data file in the same folder as the .onnx file' in capsys.readouterr().err
    assert _main(['--onnx', fixed_size_export, image, '--out-dir', out,
                  '--tile', 84, 84, '--stride', 56, 56]) == 2
    assert f'error: {fixed_size_export} was exported for 112x112 inputs only, but the sliding ' \
           'window is 84x84: use --tile 112 112' in capsys.readouterr().err
    assert not out.exists()
    assert _main(['--onnx', fixed_size_export, image, '--out-dir', out]) == 0
    assert _outputs(out) == ['x_label.png', 'x_overlay.png']
