"""transformers' own InternVL port (the ``*-hf`` repositories) loads into InternViT.

A tiny ``InternVLVisionModel`` with random weights is saved in the layouts the
``-hf`` repositories use (bare vision model, ``vision_tower.`` and
``model.vision_tower.`` prefixes beside projector and language-model keys,
single file and sharded) and must give our backbone's block outputs.
"""
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

transformers = pytest.importorskip('transformers')

from conftest import write_sharded  # noqa: E402
from mmseg_internvit.checkpoint import CheckpointMismatchError  # noqa: E402
from mmseg_internvit.models import InternViT  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STYLES = {
    # InternViT-6B style: RMSNorm, whole-width qk-norm, no q/k/v bias.
    '6b': dict(use_qk_norm=True, norm_type='rms_norm', attention_bias=False,
               layer_scale_init_value=0.1),
    # InternViT-300M style: LayerNorm, no qk-norm, q/k/v biases.
    '300m': dict(use_qk_norm=False, norm_type='layer_norm', attention_bias=True,
                 layer_scale_init_value=1.0),
}
OURS = {'6b': dict(qk_normalization=True, norm_type='rms', qkv_bias=False, layer_scale_init=0.1),
        '300m': dict(qk_normalization=False, norm_type='ln', qkv_bias=True, layer_scale_init=1.0)}
TINY = dict(embed_dims=64, num_layers=3, num_heads=4, feedforward_channels=128, pretrain_size=56)


def hf_vision_model(style, seed=0):
    from transformers import InternVLVisionConfig, InternVLVisionModel
    config = InternVLVisionConfig(hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                                  intermediate_size=128, image_size=56, patch_size=14,
                                  **STYLES[style])
    config._attn_implementation = 'eager'
    torch.manual_seed(seed)
    model = InternVLVisionModel(config).eval()
    with torch.no_grad():  # zeros and constants at init would hide a wrong mapping
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.2)
    return model


def hf_block_outputs(model, x):
    """Patch tokens after each layer, as NCHW maps (transformers keeps the cls token)."""
    with torch.no_grad():
        hidden = model(pixel_values=x, output_hidden_states=True).hidden_states
    layers = model.config.num_hidden_layers
    hidden = hidden[-layers:]  # drop the embedding output where it is included
    h, w = x.shape[2] // 14, x.shape[3] // 14
    return [t[:, 1:].transpose(1, 2).reshape(x.shape[0], -1, h, w) for t in hidden]


def write_layout(folder, model, layout):
    """Save ``model`` as a ``-hf`` repository of the given layout; returns the path to load."""
    os.makedirs(folder, exist_ok=True)
    if layout == 'bare':
        model.save_pretrained(folder)  # transformers' own writer: config.json + safetensors
        return str(folder)
    prefix = 'model.vision_tower.' if layout.startswith('model.') else 'vision_tower.'
    tower = {prefix + k: v.contiguous() for k, v in model.state_dict().items()}
    head = 'model.' if prefix.startswith('model.') else ''
    others = {f'{head}multi_modal_projector.linear_1.weight': torch.randn(8, 256),
              f'{head}multi_modal_projector.layer_norm.weight': torch.randn(256),
              f'{head}language_model.embed_tokens.weight': torch.randn(10, 8),
              'lm_head.weight': torch.randn(10, 8)}
    config = {'architectures': ['InternVLForConditionalGeneration'], 'model_type': 'internvl',
              'vision_config': model.config.to_dict(),
              'text_config': {'model_type': 'qwen2', 'hidden_size': 8}}
    with open(os.path.join(folder, 'config.json'), 'w') as f:
        json.dump(config, f)
    if not layout.endswith('sharded'):
        save_file({**tower, **others}, os.path.join(folder, 'model.safetensors'))
        return str(folder)
    keys = sorted(tower)
    shards = {'model-00001-of-00003.safetensors': {k: tower[k] for k in keys[:len(keys) // 2]},
              'model-00002-of-00003.safetensors': {k: tower[k] for k in keys[len(keys) // 2:]},
              'model-00003-of-00003.safetensors': others}
    write_sharded(folder, shards)
    os.remove(os.path.join(folder, 'model-00003-of-00003.safetensors'))  # not needed
    return str(folder)


LAYOUTS = ['bare', 'vision_tower.', 'model.vision_tower.', 'model.vision_tower.sharded']


@pytest.mark.parametrize('style', ['6b', '300m'])
@pytest.mark.parametrize('layout', LAYOUTS)
def test_hf_port_gives_our_block_outputs(tmp_path, style, layout):
    reference = hf_vision_model(style)
    path = write_layout(tmp_path / 'hf', reference, layout)
    arch = dict(TINY, **OURS[style])
    ours = InternViT(arch=arch, out_indices=[0, 1, 2],
                     init_cfg=dict(type='Pretrained', checkpoint=path))
    ours.init_weights()
    ours.eval()
    for size in ((56, 56), (84, 70)):  # the pretraining grid, and a resized one
        x = torch.randn(2, 3, *size)
        expected = hf_block_outputs(reference, x)
        with torch.no_grad():
            got = ours(x)
        for e, g in zip(expected, got):
            torch.testing.assert_close(g, e, atol=1e-4, rtol=0)


@pytest.mark.parametrize('style', ['6b', '300m'])
def test_auto_arch_from_hf_config(tmp_path, style):
    path = write_layout(tmp_path / 'hf', hf_vision_model(style), 'model.vision_tower.sharded')
    ours = InternViT(arch='auto', init_cfg=dict(type='Pretrained', checkpoint=path))
    assert ours.arch_settings == dict(TINY, **OURS[style])


def test_missing_qkv_piece_names_the_keys(tmp_path):
    path = write_layout(tmp_path / 'hf', hf_vision_model('300m'), 'vision_tower.')
    file = os.path.join(path, 'model.safetensors')
    state = load_file(file)
    del state['vision_tower.encoder.layer.1.attention.k_proj.weight']
    del state['vision_tower.encoder.layer.2.attention.v_proj.bias']
    save_file(state, file)
    target = InternViT(arch=dict(TINY, **OURS['300m']),
                       init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(CheckpointMismatchError) as err:
        target.init_weights()
    msg = str(err.value)
    assert "format 'transformers'" in msg
    assert ('blocks.1.attn.qkv.weight lacks vision_tower.encoder.layer.1.attention.k_proj.weight'
            in msg)
    assert 'blocks.2.attn.qkv.bias lacks vision_tower.encoder.layer.2.attention.v_proj.bias' in msg
    # The converter refuses it the same way, before writing anything.
    dst = tmp_path / 'out.safetensors'
    run = subprocess.run([sys.executable, os.path.join(ROOT, 'tools', 'convert_checkpoint.py'),
                          path, str(dst)], capture_output=True, text=True)
    assert run.returncode == 2 and 'layer.1.attention.k_proj.weight' in run.stderr
    assert not dst.exists()


def test_convert_tool_hf_port_with_auto_arch(tmp_path):
    reference = hf_vision_model('6b', seed=3)
    path = write_layout(tmp_path / 'hf', reference, 'bare')
    dst = tmp_path / 'tower.safetensors'
    run = subprocess.run([sys.executable, os.path.join(ROOT, 'tools', 'convert_checkpoint.py'),
                          path, str(dst), '--arch', 'auto'], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert 'source format: transformers' in run.stdout
    ours = InternViT(arch=dict(TINY, **OURS['6b']), out_indices=[2],
                     init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    ours.init_weights()
    x = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x)[0], hf_block_outputs(reference, x)[2],
                                   atol=1e-4, rtol=0)
