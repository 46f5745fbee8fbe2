"""The CheckSegLabels pipeline step names the file of a bad label map."""
import os
import shutil

import numpy as np
import pytest
from PIL import Image


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, 'configs', 'smoke',
                     'linear_internvit-tiny_1xb4-300_ade20k-sample-112x112.py')


def _dataset(root, num_classes=150):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    from mmseg_internvit import register_all_modules
    from mmseg_internvit.apis.launch import sync_label_checks

    register_all_modules()
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', '_base_', 'datasets',
                                       'ade20k_504x504.py'))
    sync_label_checks(cfg, num_classes)  # what the tools do with the model's class count
    init_default_scope('mmseg')
    return DATASETS.build(dict(cfg.val_dataloader.dataset, data_root=root))


@pytest.fixture
def dataset_copy(tmp_path, sample_ade20k):
    root = tmp_path / 'ade'
    shutil.copytree(sample_ade20k, root)
    return root


def test_good_labels_pass(sample_ade20k):
    sample = _dataset(sample_ade20k)[0]
    labels = np.unique(sample['data_samples'].gt_sem_seg.data.numpy())
    assert set(labels.tolist()) <= set(range(150)) | {255}


def test_out_of_range_label_names_the_file(dataset_copy):
    path = dataset_copy / 'annotations' / 'validation' / 'ADE_val_00000001.png'
    label = np.array(Image.open(path))
    label[:4, :4] = 200  # 199 after reduce_zero_label: beyond 150 classes
    Image.fromarray(label).save(path)
    with pytest.raises(ValueError, match=r'ADE_val_00000001\.png has label values \[199\]'):
        _dataset(str(dataset_copy))[0]


def test_size_mismatch_names_both_files(dataset_copy):
    path = dataset_copy / 'annotations' / 'validation' / 'ADE_val_00000002.png'
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(path)
    with pytest.raises(ValueError, match=r'ADE_val_00000002\.png is 12x10 but its image .*'
                                         r'ADE_val_00000002\.jpg is'):
        _dataset(str(dataset_copy))[1]


def test_label_check_follows_the_models_class_count(dataset_copy):
    """--cfg-options model.decode_head.num_classes=10: label 12 is caught by the pipeline,
    not by the loss hours later."""
    from types import SimpleNamespace

    from mmseg_internvit.apis.launch import load_config
    cfg = load_config(SimpleNamespace(config=SMOKE, work_dir=None, launcher='none',
                                      local_rank=0,
                                      cfg_options={'model.decode_head.num_classes': 10}))
    steps = [s for s in cfg.val_dataloader.dataset.pipeline
             if s['type'] == 'mmseg_internvit.CheckSegLabels']
    assert steps and all(s['num_classes'] == 10 for s in steps)
    path = dataset_copy / 'annotations' / 'validation' / 'ADE_val_00000001.png'
    label = np.array(Image.open(path))
    label[:4, :4] = 13  # 12 after reduce_zero_label
    Image.fromarray(label).save(path)
    with pytest.raises(ValueError, match=r'ADE_val_00000001\.png has label values \[12\] '
                                         r'\(stored as \[13\] before reduce_zero_label\) '
                                         r'outside 0\.\.9 .* model of 10 classes'):
        _dataset(str(dataset_copy), num_classes=10)[0]


def test_colour_annotation_is_named(dataset_copy):
    path = dataset_copy / 'annotations' / 'validation' / 'ADE_val_00000003.png'
    label = np.array(Image.open(path))
    Image.fromarray(np.dstack([label] * 3)).save(path)
    with pytest.raises(ValueError, match=r'ADE_val_00000003\.png has 3 channels: an '
                                         r'annotation must be a single-channel map'):
        _dataset(str(dataset_copy))[2]
