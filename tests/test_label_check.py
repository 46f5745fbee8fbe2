"""The CheckSegLabels pipeline step names the file of a bad label map."""
import os
import shutil

import numpy as np
import pytest
from PIL import Image


def _dataset(root):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    from mmseg_internvit import register_all_modules

    register_all_modules()
    cfg = Config.fromfile(os.path.join(os.path.dirname(os.path.dirname(__file__)), 'configs',
                                       '_base_', 'datasets', 'ade20k_504x504.py'))
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
