"""arch='auto': the InternViT architecture read from the checkpoint."""
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from conftest import TINY_300M_STYLE, TINY_6B_STYLE, build_tiny, to_hf_keys
from mmseg_internvit.checkpoint import CheckpointMismatchError, CheckpointReadError, read_arch
from mmseg_internvit.models import InternViT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
X = torch.randn(1, 3, 70, 56)


def remote_code_config(arch):
    """config.json of a Hugging Face remote-code InternViT (its field names)."""
    return {'architectures': ['InternVisionModel'], 'model_type': 'intern_vit_6b',
            'hidden_size': arch['embed_dims'], 'num_hidden_layers': arch['num_layers'],
            'num_attention_heads': arch['num_heads'],
            'intermediate_size': arch['feedforward_channels'],
            'qk_normalization': arch['qk_normalization'],
            'norm_type': 'rms_norm' if arch['norm_type'] == 'rms' else 'layer_norm',
            'qkv_bias': arch['qkv_bias'], 'initializer_factor': arch['layer_scale_init'],
            'image_size': arch['pretrain_size'], 'patch_size': 14}


def write_folder(folder, model, config=None, prefix='', extra=None):
    os.makedirs(folder, exist_ok=True)
    save_file({**to_hf_keys(model.state_dict(), prefix), **(extra or {})},
              os.path.join(folder, 'model.safetensors'))
    if config is not None:
        with open(os.path.join(folder, 'config.json'), 'w') as f:
            json.dump(config, f)
    return str(folder)


def auto(path, arch='auto', **kwargs):
    model = InternViT(arch=arch, init_cfg=dict(type='Pretrained', checkpoint=str(path)), **kwargs)
    model.init_weights()
    return model.eval()


@pytest.mark.parametrize('style', ['6b', '300m'])
def test_auto_from_remote_code_and_chat_configs(tmp_path, style):
    arch = TINY_6B_STYLE if style == '6b' else TINY_300M_STYLE
    reference = build_tiny(arch).eval()
    standalone = write_folder(tmp_path / 'vit', reference, remote_code_config(arch))
    chat = write_folder(tmp_path / 'chat', reference,
                        {'architectures': ['InternVLChatModel'],
                         'vision_config': remote_code_config(arch),
                         'llm_config': {'hidden_size': 8}},
                        prefix='vision_model.', extra={'mlp1.1.weight': torch.randn(8, 4)})
    for path in (standalone, chat):
        loaded = auto(path)
        assert loaded.arch_settings == arch
        torch.testing.assert_close(loaded(X)[0], reference(X)[0], atol=0, rtol=0)


def test_auto_without_config_needs_heads_for_unpublished_widths(tmp_path):
    reference = build_tiny().eval()
    timm_file = tmp_path / 'upstream.pth'
    torch.save({'module': reference.state_dict()}, timm_file)
    mmengine_file = tmp_path / 'iter_10.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in reference.state_dict().items()},
                'meta': {}}, mmengine_file)
    for path in (timm_file, mmengine_file):
        with pytest.raises(CheckpointReadError) as err:
            auto(path)
        assert 'width 64, which no published model has' in str(err.value)
        assert 'arch=dict(auto=True, num_heads=N)' in str(err.value)
        loaded = auto(path, arch=dict(auto=True, num_heads=4))
        assert loaded.arch_settings == TINY_6B_STYLE
        torch.testing.assert_close(loaded(X)[0], reference(X)[0], atol=0, rtol=0)


def test_auto_knows_the_published_widths(tmp_path):
    """Without config.json, a 1024-wide LayerNorm tower gets 16 heads (InternViT-300M)."""
    width, hidden = 1024, 16  # one block, a narrow MLP: a small file of the real width
    state = {'cls_token': torch.zeros(1, 1, width), 'pos_embed': torch.zeros(1, 1 + 32 * 32, width),
             'patch_embed.proj.weight': torch.zeros(width, 3, 14, 14),
             'patch_embed.proj.bias': torch.zeros(width),
             'blocks.0.norm1.weight': torch.ones(width), 'blocks.0.norm1.bias': torch.zeros(width),
             'blocks.0.attn.qkv.weight': torch.zeros(3 * width, width),
             'blocks.0.attn.qkv.bias': torch.zeros(3 * width),
             'blocks.0.mlp.fc1.weight': torch.zeros(hidden, width)}
    path = tmp_path / 'wide.safetensors'
    save_file({k: v.bfloat16() for k, v in state.items()}, path)
    assert read_arch(str(path)) == dict(
        embed_dims=1024, num_layers=1, num_heads=16, feedforward_channels=hidden,
        qk_normalization=False, norm_type='ln', qkv_bias=True, layer_scale_init=1.0,
        pretrain_size=448)


def test_config_contradicting_tensors_is_an_error(tmp_path):
    reference = build_tiny()
    config = remote_code_config(dict(TINY_6B_STYLE, num_layers=48))
    path = write_folder(tmp_path / 'vit', reference, config)
    with pytest.raises(CheckpointReadError,
                       match='says num_layers=48 but its tensors have 4'):
        auto(path)


def test_auto_needs_a_checkpoint_and_wrong_arch_still_fails(tmp_path):
    with pytest.raises(ValueError, match="arch='auto' reads the architecture from the checkpoint"):
        InternViT(arch='auto')
    path = write_folder(tmp_path / 'vit', build_tiny(), remote_code_config(TINY_6B_STYLE))
    with pytest.raises(CheckpointMismatchError) as err:
        auto(path, arch='300m')
    assert 'built with 24 blocks of width 1024' in str(err.value)
    assert 'checkpoint has 4 blocks of width 64' in str(err.value)


def test_convert_tool_arch_auto(tmp_path):
    reference = build_tiny(TINY_300M_STYLE).eval()
    path = write_folder(tmp_path / 'vit', reference, remote_code_config(TINY_300M_STYLE))
    dst = tmp_path / 'out.safetensors'
    tool = os.path.join(ROOT, 'tools', 'convert_checkpoint.py')
    # The tool as its script runs it, then which model libraries the run imported:
    # converting builds no mmseg/mmdet model, and importing them would cost seconds.
    report = ('import runpy, sys\n'
              f'sys.argv = {[tool, path, str(dst), "--arch", "auto"]!r}\n'
              'try:\n'
              '    runpy.run_path(sys.argv[0], run_name="__main__")\n'
              'except SystemExit as done:\n'
              '    print("exit", done.code, sorted(m for m in ("mmseg", "mmdet", "deepspeed")\n'
              '                                 if m in sys.modules))\n')
    run = subprocess.run([sys.executable, '-c', report], capture_output=True, text=True)
    assert run.stdout.splitlines()[-1] == 'exit 0 []', run.stdout + run.stderr
    loaded = auto(dst, arch=dict(auto=True, num_heads=4))
    torch.testing.assert_close(loaded(X)[0], reference(X)[0], atol=0, rtol=0)
    # Without config.json the tool says what is missing, and writes nothing.
    os.remove(os.path.join(path, 'config.json'))
    run = subprocess.run([sys.executable, tool, path, str(tmp_path / 'x.safetensors'),
                          '--arch', 'auto'], capture_output=True, text=True)
    assert run.returncode == 2 and 'num_heads' in run.stderr
    assert not (tmp_path / 'x.safetensors').exists()
