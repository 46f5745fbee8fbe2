"""Checkpoint formats load to identical outputs; every bad case raises clearly."""
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from conftest import TINY_6B_STYLE, build_tiny, to_hf_keys
from mmseg_internvit.checkpoint import (CheckpointMismatchError, CheckpointReadError,
                                        convert_to_safetensors, load_backbone_weights)
from mmseg_internvit.models import InternViT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
X = torch.randn(1, 3, 70, 56)


def _fresh(path, arch=TINY_6B_STYLE, **kwargs):
    model = InternViT(arch=dict(arch), init_cfg=dict(type='Pretrained', checkpoint=str(path)),
                      **kwargs)
    model.init_weights()
    return model


def _write_hf_folder(folder, state, prefix='', sharded=False, torch_bin=False):
    os.makedirs(folder, exist_ok=True)
    hf = to_hf_keys(state, prefix)
    with open(os.path.join(folder, 'config.json'), 'w') as f:
        json.dump({'architectures': ['InternVisionModel']}, f)
    if torch_bin:
        torch.save(hf, os.path.join(folder, 'pytorch_model.bin'))
    elif sharded:
        keys = sorted(hf)
        half = len(keys) // 2
        weight_map = {}
        for i, part in enumerate((keys[:half], keys[half:])):
            name = f'model-0000{i + 1}-of-00002.safetensors'
            save_file({k: hf[k] for k in part}, os.path.join(folder, name))
            weight_map.update({k: name for k in part})
        with open(os.path.join(folder, 'model.safetensors.index.json'), 'w') as f:
            json.dump({'metadata': {}, 'weight_map': weight_map}, f)
    else:
        save_file(hf, os.path.join(folder, 'model.safetensors'))
    return folder


@pytest.fixture
def reference():
    model = build_tiny().eval()
    return model, model(X)[0]


@pytest.mark.parametrize('layout', ['safetensors', 'sharded', 'bin', 'chat'])
def test_hf_formats(tmp_path, reference, layout):
    model, expected = reference
    state = model.state_dict()
    if layout == 'chat':
        state = dict(state)
        folder = _write_hf_folder(tmp_path / 'chat', state, prefix='vision_model.')
        extra = {'mlp1.0.weight': torch.randn(4), 'language_model.lm_head.weight': torch.randn(2)}
        from safetensors.torch import load_file
        merged = {**load_file(os.path.join(folder, 'model.safetensors')), **extra}
        save_file(merged, os.path.join(folder, 'model.safetensors'))
    else:
        folder = _write_hf_folder(tmp_path / layout, state, sharded=layout == 'sharded',
                                  torch_bin=layout == 'bin')
    loaded = _fresh(folder).eval()
    torch.testing.assert_close(loaded(X)[0], expected, atol=0, rtol=0)


def test_hf_file_passed_directly(tmp_path, reference):
    model, expected = reference
    folder = _write_hf_folder(tmp_path / 'hf', model.state_dict())
    loaded = _fresh(os.path.join(folder, 'model.safetensors')).eval()
    torch.testing.assert_close(loaded(X)[0], expected, atol=0, rtol=0)


def test_upstream_pth_wrapped_in_module(tmp_path, reference):
    model, expected = reference
    state = dict(model.state_dict())
    state['clip_projector.weight'] = torch.randn(3, 3)
    path = tmp_path / 'upstream.pth'
    torch.save({'module': state}, path)
    torch.testing.assert_close(_fresh(path).eval()(X)[0], expected, atol=0, rtol=0)


def test_mmengine_checkpoint_with_message_hub(tmp_path, reference):
    """A runner checkpoint: backbone. prefix, heads, and pickled HistoryBuffers."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
    model, expected = reference
    state = {f'backbone.{k}': v for k, v in model.state_dict().items()}
    state['decode_head.conv_seg.weight'] = torch.randn(2, 64, 1, 1)
    buffer = HistoryBuffer()
    buffer.update(np.float64(1.5))
    path = tmp_path / 'iter_10.pth'
    torch.save({'meta': {'iter': 10}, 'state_dict': state,
                'message_hub': {'log_scalars': {'loss': buffer}}}, path)
    torch.testing.assert_close(_fresh(path).eval()(X)[0], expected, atol=0, rtol=0)


def test_convert_tool_roundtrip_bf16(tmp_path, reference):
    model, expected = reference
    folder = _write_hf_folder(tmp_path / 'hf', model.state_dict(), sharded=True)
    dst = tmp_path / 'converted.safetensors'
    cmd = [sys.executable, os.path.join(ROOT, 'tools', 'convert_checkpoint.py'), str(folder),
           str(dst)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "source format: 'hf'" in out.stdout or 'source format: hf' in out.stdout
    torch.testing.assert_close(_fresh(dst).eval()(X)[0], expected, atol=0, rtol=0)
    # Streaming into a bf16 model casts per tensor.
    bf16 = _fresh(dst, dtype='bfloat16')
    assert bf16.blocks[0].attn.qkv.weight.dtype == torch.bfloat16


def test_convert_tool_rejects_wrong_arch(tmp_path, reference):
    model, _ = reference
    src = tmp_path / 'tiny.pth'
    torch.save(model.state_dict(), src)
    dst = tmp_path / 'out.safetensors'
    cmd = [sys.executable, os.path.join(ROOT, 'tools', 'convert_checkpoint.py'), str(src),
           str(dst), '--arch', '300m']
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 1
    assert 'arch' in out.stderr and not dst.exists()


def _assert_untouched(model, before):
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f'{k} was modified by a failed load'


def test_arch_mismatch_names_blocks_and_arch(tmp_path, reference):
    model, _ = reference
    path = tmp_path / 'four_blocks.safetensors'
    convert_src = tmp_path / 'src.pth'
    torch.save(model.state_dict(), convert_src)
    convert_to_safetensors(str(convert_src), str(path))
    three = dict(TINY_6B_STYLE, num_layers=3)
    target = InternViT(arch=three, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    target.reset_parameters()
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as err:
        target.init_weights()
    msg = str(err.value)
    assert 'Unexpected' in msg and 'blocks.3.attn.qkv.weight' in msg
    assert 'built with 3 blocks' in msg and 'checkpoint has 4 blocks' in msg
    assert "'6b-448': 45 blocks" in msg
    _assert_untouched(target, before)


def test_missing_key_and_shape_mismatch(tmp_path, reference):
    model, _ = reference
    state = dict(model.state_dict())
    del state['blocks.1.mlp.fc2.bias']
    state['pos_embed'] = torch.randn(1, 1 + 8 * 8, 64)
    path = tmp_path / 'bad.pth'
    torch.save(state, path)
    target = build_tiny(seed=3)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as err:
        load_backbone_weights(target, str(path))
    msg = str(err.value)
    assert 'Missing 1 keys: blocks.1.mlp.fc2.bias' in msg
    assert 'pos_embed: checkpoint (1, 65, 64) vs model (1, 17, 64)' in msg
    assert 'position grid 8x8' in msg
    _assert_untouched(target, before)


def test_not_an_internvit_checkpoint(tmp_path):
    path = tmp_path / 'resnet.safetensors'
    save_file({'conv1.weight': torch.randn(2, 3, 1, 1)}, path)
    with pytest.raises(CheckpointMismatchError, match='Is this an InternViT checkpoint'):
        load_backbone_weights(build_tiny(), str(path))


def test_unsafe_pickle_is_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'x': torch.zeros(1)}, 'payload': __import__('argparse').Namespace(a=1)}, path)
    with pytest.raises(CheckpointReadError, match='weights_only=True'):
        load_backbone_weights(build_tiny(), str(path))


@pytest.mark.parametrize('case', ['missing_file', 'empty_dir', 'bad_index', 'missing_shard',
                                  'garbage_safetensors'])
def test_unreadable_checkpoints(tmp_path, case):
    if case == 'missing_file':
        path, exc, match = tmp_path / 'nope.pth', FileNotFoundError, 'nope.pth does not exist'
    elif case == 'empty_dir':
        path, exc, match = tmp_path, CheckpointReadError, 'No checkpoint file in folder'
    elif case == 'bad_index':
        path = tmp_path / 'model.safetensors.index.json'
        path.write_text('{"nothing": 1}')
        exc, match = CheckpointReadError, "weight_map"
    elif case == 'missing_shard':
        path = tmp_path / 'model.safetensors.index.json'
        path.write_text(json.dumps({'weight_map': {'cls_token': 'shard-1.safetensors'}}))
        exc, match = CheckpointReadError, 'shard-1.safetensors listed in'
    else:
        path = tmp_path / 'broken.safetensors'
        path.write_bytes(b'not a safetensors file')
        exc, match = CheckpointReadError, 'Cannot read safetensors file'
    with pytest.raises(exc, match=match):
        load_backbone_weights(build_tiny(), str(path))


@pytest.mark.parametrize('dst,exc,match', [
    ('out.pth', ValueError, 'must end with .safetensors'),
    ('missing_dir/out.safetensors', FileNotFoundError, 'does not exist; create it first'),
])
def test_bad_output_path_fails_before_reading(tmp_path, dst, exc, match):
    from mmseg_internvit.checkpoint.consolidate import consolidate_to_safetensors
    # The source does not exist either: the output is checked first, before
    # any (for a 6B, minutes-long) read.
    for convert in (convert_to_safetensors, consolidate_to_safetensors):
        with pytest.raises(exc, match=match):
            convert(str(tmp_path / 'nope.pth'), str(tmp_path / dst))
