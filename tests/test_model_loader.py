"""The whole-model loader on this project's own layouts, and its strictness."""
import json

import pytest
import torch
from safetensors.torch import save_file

from conftest import assert_untouched, snapshot
from test_released_segmentors import CLASSES, build_ours, tiny_config


@pytest.fixture(scope='module')
def linear_model():
    return build_ours(tiny_config('linear'), seed=7)


def _empty_model():
    from mmseg.apis import init_model
    cfg = tiny_config('linear')
    return init_model(cfg, None, device='cpu')


@pytest.mark.parametrize('layout', ['ddp-prefix', 'deepspeed-file', 'safetensors', 'mmengine'])
def test_own_layouts_load_exactly(tmp_path, linear_model, layout):
    from mmseg_internvit.checkpoint import load_model_weights
    state = linear_model.state_dict()
    meta = {'dataset_meta': {'classes': CLASSES}}
    if layout == 'ddp-prefix':  # a state dict saved from a DDP-wrapped model
        path = tmp_path / 'ddp.pth'
        torch.save({'state_dict': {f'module.{k}': v for k, v in state.items()}, 'meta': meta},
                   path)
    elif layout == 'deepspeed-file':  # mp_rank_00_model_states.pt keeps the model under 'module'
        path = tmp_path / 'mp_rank_00_model_states.pt'
        torch.save({'module': dict(state), 'ds_version': '0.18.9', 'global_steps': 3,
                    'param_shapes': [{'backbone.cls_token': torch.Size([1, 1, 64])}]}, path)
        meta = {}
    elif layout == 'safetensors':
        path = tmp_path / 'model.safetensors'
        save_file({k: v.contiguous() for k, v in state.items()}, path,
                  metadata={'dataset_meta': json.dumps(meta['dataset_meta'])})
    else:
        path = tmp_path / 'iter_5.pth'
        torch.save({'state_dict': dict(state), 'meta': meta}, path)
    model = _empty_model()
    found = load_model_weights(model, str(path))
    assert found['format'] == 'mmengine'
    if layout == 'deepspeed-file':
        assert 'dataset_meta' not in found
    else:
        assert tuple(found['dataset_meta']['classes']) == CLASSES
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_an_unrelated_config_json_beside_the_file_is_ignored(tmp_path, linear_model):
    """Only arch='auto' reads config.json: a stray one never blocks a load."""
    from mmseg_internvit.checkpoint import CheckpointReadError, load_model_weights
    from mmseg_internvit.checkpoint.arch_detect import read_arch
    state = linear_model.state_dict()
    path = tmp_path / 'iter_5.pth'
    torch.save({'state_dict': dict(state)}, path)
    (tmp_path / 'config.json').write_text('[1]')
    model = _empty_model()
    load_model_weights(model, str(path))
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    with pytest.raises(CheckpointReadError, match=r'config\.json holds a list'):
        read_arch(str(path))


def test_consolidation_keeps_classes_and_casts(tmp_path, linear_model):
    from safetensors import safe_open

    from mmseg_internvit.checkpoint import load_model_weights
    from mmseg_internvit.checkpoint.consolidate import consolidate_to_safetensors
    state = linear_model.state_dict()
    src = tmp_path / 'iter_5.pth'
    torch.save({'state_dict': dict(state), 'meta': {'dataset_meta': {'classes': CLASSES}}}, src)
    dst = tmp_path / 'model.safetensors'
    assert consolidate_to_safetensors(str(src), str(dst), torch.bfloat16) == len(state)
    with safe_open(str(dst), framework='pt') as f:
        assert f.metadata()['format'] == 'mmseg_internvit-model'
        assert f.get_tensor('backbone.cls_token').dtype == torch.bfloat16
    found = load_model_weights(_empty_model(), str(dst))
    assert tuple(found['dataset_meta']['classes']) == CLASSES


def test_extra_and_missing_keys_are_listed_and_nothing_loads(tmp_path, linear_model):
    from mmseg_internvit.checkpoint import CheckpointMismatchError, load_model_weights
    state = dict(linear_model.state_dict())
    state['ema.decode_head.conv_seg.weight'] = torch.zeros(1)
    del state['backbone.blocks.0.attn.proj.bias']
    path = tmp_path / 'extra.pth'
    torch.save({'state_dict': state}, path)
    model = _empty_model()
    before = snapshot(model)
    with pytest.raises(CheckpointMismatchError) as err:
        load_model_weights(model, str(path))
    msg = str(err.value)
    assert 'Missing 1 keys: backbone.blocks.0.attn.proj.bias.' in msg
    assert 'Unexpected 1 keys: ema.decode_head.conv_seg.weight.' in msg
    assert 'The model was built with 4 blocks of width 64' in msg  # a backbone key is involved
    assert_untouched(model, before)


def test_mmengine_loader_names_a_broken_safetensors_file(tmp_path):
    """init_model / MMSegInferencer read .safetensors through mmengine's loader."""
    from mmengine.runner import CheckpointLoader

    from mmseg_internvit.checkpoint import CheckpointReadError
    broken = tmp_path / 'broken.safetensors'
    broken.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a": not json}')
    with pytest.raises(CheckpointReadError, match=r'Cannot read safetensors file .*broken'):
        CheckpointLoader.load_checkpoint(str(broken), map_location='cpu')
    bad_meta = tmp_path / 'bad_meta.safetensors'
    save_file({'w': torch.zeros(2)}, bad_meta, metadata={'dataset_meta': '{classes'})
    with pytest.raises(CheckpointReadError,
                       match=r"bad_meta\.safetensors: metadata 'dataset_meta'"):
        CheckpointLoader.load_checkpoint(str(bad_meta), map_location='cpu')


@pytest.mark.parametrize('kind', ['converted', 'upstream'])
def test_a_backbone_file_given_as_the_whole_model_says_so(tmp_path, linear_model, kind):
    """tools/test.py / tools/infer.py given a backbone file: not 'Is this an InternViT
    checkpoint?' but what the file is and where it goes."""
    from mmseg_internvit.checkpoint import (CheckpointMismatchError, check_checkpoint_fits,
                                            convert_to_safetensors)
    state = linear_model.state_dict()
    src = tmp_path / 'iter_5.pth'
    torch.save({'state_dict': dict(state)}, src)
    if kind == 'converted':  # tools/convert_checkpoint.py's backbone file
        path, fmt = tmp_path / 'backbone.safetensors', 'mmseg_internvit-backbone'
        convert_to_safetensors(str(src), str(path))
    else:  # an upstream InternViT .pth: bare timm names
        path, fmt = tmp_path / 'intern_vit.pth', 'timm'
        torch.save({k[len('backbone.'):]: v for k, v in state.items()
                    if k.startswith('backbone.')}, path)
    with pytest.raises(CheckpointMismatchError) as err:
        check_checkpoint_fits(_empty_model(), str(path))
    msg = str(err.value)
    assert f"Checkpoint {path} (format '{fmt}') does not fit the model." in msg
    assert ('This file holds an InternViT backbone only (4 blocks of width 64, position grid '
            '8x8 (112px pretraining at patch 14)), not a whole segmentor: start training from '
            "it as the backbone's init_cfg (model.backbone.init_cfg=dict(type='Pretrained', "
            f"checkpoint='{path}')), or pass a checkpoint of the whole model.") in msg
    assert 'Is this an InternViT checkpoint' not in msg
