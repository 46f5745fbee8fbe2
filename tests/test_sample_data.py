"""Tests for the synthetic ADE20K-style sample dataset builder."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmseg_internvit.datasets import sample_data
from mmseg_internvit.datasets.sample_data import SAMPLE_CLASSES_USED, build_sample_ade20k

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(num_train=4, num_val=2, size=64)


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob('*') if p.is_file())


def _pairs(root: Path):
    for split in ('training', 'validation'):
        for img in sorted((root / 'images' / split).glob('*.jpg')):
            yield img, root / 'annotations' / split / f'{img.stem}.png'


def test_layout_and_counts(tmp_path):
    path = build_sample_ade20k(str(tmp_path / 'ade'), **SMALL)

    root = tmp_path / 'ade' / 'ADEChallengeData2016'
    assert Path(path) == root
    expected = ['.complete']
    for split, prefix, n in (('training', 'ADE_train', 4), ('validation', 'ADE_val', 2)):
        for i in range(1, n + 1):
            expected += [f'annotations/{split}/{prefix}_{i:08d}.png',
                         f'images/{split}/{prefix}_{i:08d}.jpg']
    assert _files(root) == sorted(expected)
    marker = json.loads((root / '.complete').read_text())
    assert marker['num_train'] == 4 and marker['num_val'] == 2 and marker['seed'] == 0
    # Nothing but the finished folder is left in root.
    assert os.listdir(tmp_path / 'ade') == ['ADEChallengeData2016']


def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path):
    a = Path(build_sample_ade20k(str(tmp_path / 'a'), seed=3, **SMALL))
    b = Path(build_sample_ade20k(str(tmp_path / 'b'), seed=3, **SMALL))
    c = Path(build_sample_ade20k(str(tmp_path / 'c'), seed=4, **SMALL))

    files = [f for f in _files(a) if f != '.complete']
    assert files == [f for f in _files(b) if f != '.complete']
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    pngs = [f for f in files if f.endswith('.png')]
    assert any((a / rel).read_bytes() != (c / rel).read_bytes() for rel in pngs)


def test_samples_do_not_depend_on_split_sizes(tmp_path):
    a = Path(build_sample_ade20k(str(tmp_path / 'a'), num_train=2, num_val=1, size=64))
    b = Path(build_sample_ade20k(str(tmp_path / 'b'), num_train=5, num_val=3, size=64))
    for rel in ('annotations/training/ADE_train_00000002.png',
                'annotations/validation/ADE_val_00000001.png'):
        assert (a / rel).read_bytes() == (b / rel).read_bytes()


def test_labels_images_and_sizes(tmp_path):
    size = 64
    root = Path(build_sample_ade20k(str(tmp_path), num_train=8, num_val=2, size=size))

    allowed = {0, *SAMPLE_CLASSES_USED}
    seen, shapes = set(), set()
    for img_path, ann_path in _pairs(root):
        with Image.open(img_path) as img, Image.open(ann_path) as ann:
            assert img.format == 'JPEG' and img.mode == 'RGB'
            assert ann.format == 'PNG' and ann.mode == 'L'
            assert img.size == ann.size
            labels = np.asarray(ann)
        values = set(np.unique(labels).tolist())
        assert values <= allowed, (ann_path, values)
        assert 0 in values, f'{ann_path} lacks the ignore band'
        assert (labels == 0).mean() < 0.1
        h, w = labels.shape
        assert size <= h <= size * 3 // 2 and size <= w <= size * 3 // 2
        seen |= values
        shapes.add((h, w))
    assert seen == allowed
    assert any(h != w for h, w in shapes)


def test_classes_are_separable_by_colour(tmp_path):
    # A nearest-mean-colour classifier fit on train must do well on val:
    # a cheap proxy for "a tiny model can learn this".
    root = Path(build_sample_ade20k(str(tmp_path), num_train=12, num_val=4, size=64))
    pixels: dict[str, list] = {'training': [], 'validation': []}
    for img_path, ann_path in _pairs(root):
        rgb = np.asarray(Image.open(img_path), dtype=np.float32).reshape(-1, 3)
        lab = np.asarray(Image.open(ann_path)).reshape(-1)
        keep = lab != 0
        pixels[img_path.parent.name].append((rgb[keep], lab[keep]))
    train_rgb = np.concatenate([p[0] for p in pixels['training']])
    train_lab = np.concatenate([p[1] for p in pixels['training']])
    classes = np.array(SAMPLE_CLASSES_USED)
    means = np.stack([train_rgb[train_lab == k].mean(0) for k in classes])
    val_rgb = np.concatenate([p[0] for p in pixels['validation']])
    val_lab = np.concatenate([p[1] for p in pixels['validation']])
    pred = classes[np.argmin(((val_rgb[:, None] - means[None]) ** 2).sum(-1), axis=1)]
    assert (pred == val_lab).mean() > 0.95


def test_second_call_reuses_without_rewriting(tmp_path):
    first = build_sample_ade20k(str(tmp_path), **SMALL)
    root = Path(first)
    before = {p: p.stat().st_mtime_ns for p in root.rglob('*')}

    assert build_sample_ade20k(str(tmp_path), **SMALL) == first
    assert {p: p.stat().st_mtime_ns for p in root.rglob('*')} == before


def test_existing_build_with_other_arguments_is_refused(tmp_path):
    root = Path(build_sample_ade20k(str(tmp_path), **SMALL))
    before = _files(root)
    with pytest.raises(FileExistsError, match='ADEChallengeData2016'):
        build_sample_ade20k(str(tmp_path), seed=1, **SMALL)
    assert _files(root) == before


def test_folder_without_marker_is_not_complete(tmp_path):
    # What a non-atomic writer (or a real ADE20K copy) would leave behind.
    root = tmp_path / 'ADEChallengeData2016'
    (root / 'images' / 'training').mkdir(parents=True)
    (root / 'images' / 'training' / 'ADE_train_00000001.jpg').write_bytes(b'partial')
    with pytest.raises(FileExistsError, match=r'\.complete'):
        build_sample_ade20k(str(tmp_path), **SMALL)
    assert _files(root) == ['images/training/ADE_train_00000001.jpg']


def test_leftover_partial_folder_is_ignored(tmp_path):
    stale = tmp_path / '.ADEChallengeData2016.partial-1-deadbeef'
    (stale / 'images' / 'training').mkdir(parents=True)
    (stale / '.complete').write_text('{}')

    root = Path(build_sample_ade20k(str(tmp_path), **SMALL))
    assert root == tmp_path / 'ADEChallengeData2016'
    assert len(list((root / 'images' / 'training').glob('*.jpg'))) == 4


def test_interrupted_build_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    real_draw = sample_data._draw_sample
    calls = []

    def failing_draw(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_draw(*args, **kwargs)

    monkeypatch.setattr(sample_data, '_draw_sample', failing_draw)
    with pytest.raises(KeyboardInterrupt):
        build_sample_ade20k(str(tmp_path), **SMALL)
    assert os.listdir(tmp_path) == []

    monkeypatch.setattr(sample_data, '_draw_sample', real_draw)
    root = Path(build_sample_ade20k(str(tmp_path), **SMALL))
    assert (root / '.complete').is_file()


@pytest.mark.parametrize('kwargs', [dict(size=32), dict(num_train=0), dict(seed=-1),
                                    dict(num_classes=10), dict(num_classes=255)])
def test_bad_arguments_raise(tmp_path, kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        build_sample_ade20k(str(tmp_path), **kwargs)
    assert not (tmp_path / 'ADEChallengeData2016').exists()


def test_cli_prints_path(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / 'tools/dataset/make_sample_ade20k.py'),
         str(tmp_path / 'ade'), '--num-train', '2', '--num-val', '1', '--size', '64'],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path == tmp_path / 'ade' / 'ADEChallengeData2016'
    assert len(list((path / 'images' / 'training').glob('*.jpg'))) == 2
