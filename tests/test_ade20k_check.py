"""Tests for the ADE20K folder checker and its CLI."""
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmseg_internvit.datasets.ade20k_check import check_ade20k
from mmseg_internvit.datasets.sample_data import build_sample_ade20k

REPO = Path(__file__).resolve().parents[1]
TRAIN_IMG = 'images/training/ADE_train_00000001.jpg'
TRAIN_ANN = 'annotations/training/ADE_train_00000001.png'


@pytest.fixture
def ade(tmp_path) -> Path:
    """A small valid dataset: 3 train and 2 val pairs, sides 64..96 px."""
    return Path(build_sample_ade20k(str(tmp_path / 'ade'), num_train=3, num_val=2, size=64))


def _check(root: Path, **kwargs):
    # crop=64 so the sample's small images do not add crop warnings.
    kwargs.setdefault('crop', 64)
    return check_ade20k(root, **kwargs)


def _only(messages: list[str], needle: str) -> str:
    hits = [m for m in messages if needle in m]
    assert len(hits) == 1, messages
    return hits[0]


def _write_png_rgb16(path: Path, width: int, height: int) -> None:
    # Pillow cannot write 16-bit RGB PNGs, so build one by hand.
    raw = b''.join(b'\x00' + b'\x12\x34' * 3 * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack('>I', len(data)) + kind + data
                + struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack('>IIBBBBB', width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr)
                     + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))


def test_sample_dataset_passes_from_either_folder(ade):
    for data_root in (ade, ade.parent):
        report = _check(data_root)
        assert report.ok and report.errors == [] and report.warnings == []
        assert report.root == str(ade)
        assert report.counts['training'].images == 3
        assert report.counts['training'].annotations == 3
        assert report.counts['training'].checked == 3
        assert report.counts['validation'].pairs == 2


def test_default_crop_warns_once_per_split(ade):
    report = check_ade20k(ade)
    assert report.ok
    assert len(report.warnings) == 2
    assert all('smaller than the 504x504 crop' in w for w in report.warnings)
    assert str(ade / TRAIN_IMG) in report.warnings[0]


def test_max_files_limits_decoding_not_pairing(ade):
    (ade / 'annotations/training/ADE_train_00000003.png').unlink()
    report = _check(ade, max_files=1)
    assert report.counts['training'].checked == 1
    assert report.counts['training'].pairs == 2
    _only(report.errors, 'ADE_train_00000003.jpg')


def test_missing_dataset_explains_layout(tmp_path):
    report = _check(tmp_path / 'nowhere')
    assert not report.ok
    message = _only(report.errors, str(tmp_path / 'nowhere'))
    assert 'ADEChallengeData2016' in message and 'annotations/training' in message


def test_missing_split_folder(ade):
    shutil.rmtree(ade / 'annotations' / 'validation')
    report = _check(ade)
    _only(report.errors, f"{ade / 'annotations' / 'validation'}: folder is missing")
    assert report.counts['training'].checked == 3


def test_image_without_annotation_and_annotation_without_image(ade):
    (ade / TRAIN_ANN).unlink()
    (ade / 'images/validation/ADE_val_00000002.jpg').unlink()
    report = _check(ade)
    message = _only(report.errors, str(ade / TRAIN_IMG))
    assert 'has no annotation' in message
    message = _only(report.errors, str(ade / 'annotations/validation/ADE_val_00000002.png'))
    assert 'has no image' in message


def test_label_value_outside_range(ade):
    labels = np.array(Image.open(ade / TRAIN_ANN))
    labels[0, 0] = 200
    Image.fromarray(labels).save(ade / TRAIN_ANN)
    report = _check(ade)
    message = _only(report.errors, str(ade / TRAIN_ANN))
    assert 'label values 200 ' in message
    # 255 is ignore and 150 the last ADE class: both allowed.
    labels[0, 0], labels[0, 1] = 255, 150
    Image.fromarray(labels).save(ade / TRAIN_ANN)
    assert _check(ade).ok
    # With fewer classes, 150 is out of range.
    _only(_check(ade, num_classes=13).errors, 'label values 150 ')


@pytest.mark.parametrize('content', ['truncated', 'garbage', 'empty'])
def test_undecodable_image(ade, content):
    path = ade / TRAIN_IMG
    data = path.read_bytes()
    path.write_bytes({'truncated': data[:len(data) // 2], 'garbage': b'not a jpeg' * 50,
                      'empty': b''}[content])
    report = _check(ade)
    message = _only(report.errors, str(path))
    assert 'cannot decode image' in message


def test_rgb_annotation(ade):
    labels = np.array(Image.open(ade / TRAIN_ANN))
    Image.fromarray(np.stack([labels] * 3, axis=-1)).save(ade / TRAIN_ANN)
    message = _only(_check(ade).errors, str(ade / TRAIN_ANN))
    assert "mode 'RGB'" in message and 'single-channel' in message


def test_16bit_annotation(ade):
    labels = np.array(Image.open(ade / TRAIN_ANN)).astype(np.uint16)
    Image.fromarray(labels).save(ade / TRAIN_ANN)
    message = _only(_check(ade).errors, str(ade / TRAIN_ANN))
    assert "mode 'I;16'" in message


def test_size_mismatch(ade):
    labels = Image.open(ade / TRAIN_ANN)
    w, h = labels.size
    labels.resize((w + 1, h), Image.NEAREST).save(ade / TRAIN_ANN)
    message = _only(_check(ade).errors, str(ade / TRAIN_ANN))
    assert str(ade / TRAIN_IMG) in message
    assert f'{w + 1}x{h}' in message and f'{w}x{h}' in message


def test_16bit_images_warn(ade):
    # The bytes are PNG under a .jpg name: mmseg's loaders decode by content.
    size = Image.open(ade / TRAIN_IMG).size
    gray16 = ade / TRAIN_IMG
    Image.fromarray(np.full(size[::-1], 1000, np.uint16)).save(gray16, format='PNG')
    rgb16 = ade / 'images/validation/ADE_val_00000001.jpg'
    _write_png_rgb16(rgb16, *Image.open(rgb16).size)
    report = _check(ade)
    assert report.ok, report.errors
    assert '16-bit' in _only(report.warnings, str(gray16))
    assert '16-bit' in _only(report.warnings, str(rgb16))


def test_grayscale_and_rgba_images_warn(ade):
    gray = ade / TRAIN_IMG
    Image.open(gray).convert('L').save(gray, format='JPEG', quality=95)
    rgba = ade / 'images/validation/ADE_val_00000001.jpg'
    Image.open(rgba).convert('RGBA').save(rgba, format='PNG')
    report = _check(ade)
    assert report.ok, report.errors
    assert 'grayscale' in _only(report.warnings, str(gray))
    assert 'alpha' in _only(report.warnings, str(rgba))


def test_exif_rotation_is_an_error(ade):
    path = ade / TRAIN_IMG
    img = Image.open(path)
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(path, format='JPEG', quality=95, exif=exif)
    assert 'EXIF orientation 6' in _only(_check(ade).errors, str(path))


def test_files_mmseg_ignores_warn(ade):
    upper = ade / 'images/training/extra.JPG'
    shutil.copy(ade / TRAIN_IMG, upper)
    (ade / 'images/training/.DS_Store').write_bytes(b'x')
    # mmengine skips hidden files but enters hidden folders.
    hidden = ade / 'images/training/.cache'
    hidden.mkdir()
    shutil.copy(ade / TRAIN_IMG, hidden / 'extra.jpg')
    report = _check(ade)
    assert 'mmseg ignores it' in _only(report.warnings, str(upper))
    assert '.DS_Store' not in ' '.join(report.warnings + report.errors)
    assert report.counts['training'].images == 4
    assert 'has no annotation' in _only(report.errors, str(hidden / 'extra.jpg'))


def test_already_reduced_labels_warn(ade):
    for ann in (ade / 'annotations' / 'validation').glob('*.png'):
        labels = np.array(Image.open(ann))
        Image.fromarray(np.where(labels == 0, 255, labels - 1).astype(np.uint8)).save(ann)
    report = _check(ade)
    assert report.ok
    assert 'already reduced' in _only(report.warnings, str(ade / 'annotations' / 'validation'))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / 'tools/dataset/check_ade20k.py'), *args],
                          capture_output=True, text=True)


def test_cli_exit_codes(ade, tmp_path):
    good = _cli(str(ade.parent))
    assert good.returncode == 0, good.stdout + good.stderr
    assert 'training: 3 images' in good.stdout and 'OK: 0 errors, 2 warnings' in good.stdout

    labels = np.array(Image.open(ade / TRAIN_ANN))
    labels[0, 0] = 200
    Image.fromarray(labels).save(ade / TRAIN_ANN)
    bad = _cli(str(ade), '--crop', '64', '--max-files', '2')
    assert bad.returncode == 1
    assert f'ERROR: {ade / TRAIN_ANN}' in bad.stdout and 'FAILED: 1 errors' in bad.stdout

    # An existing folder without ADE20K is a report that explains the layout.
    (tmp_path / 'empty').mkdir()
    empty = _cli(str(tmp_path / 'empty'))
    assert empty.returncode == 1
    assert f"ERROR: {tmp_path / 'empty'}: no ADE20K dataset here" in empty.stdout
    assert 'ADEChallengeData2016' in empty.stdout


@pytest.mark.parametrize('kind', ['missing', 'file'])
def test_cli_path_that_is_not_a_folder(tmp_path, kind):
    """A mistyped path is a user error: one line naming it, exit status 2, no report."""
    path = tmp_path / 'nowhere'
    if kind == 'file':
        path.write_text('not a dataset\n')
    out = _cli(str(path))
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stdout == ''
    state = 'is not a folder' if kind == 'file' else 'does not exist'
    assert out.stderr.splitlines() == [
        f'error: {path} {state}; pass the ADEChallengeData2016 folder or its parent '
        '(e.g. data/ade)']
