"""Checkpoint formats load to identical outputs; every bad case raises clearly."""
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from conftest import (TINY_6B_STYLE, assert_untouched, build_tiny, snapshot, to_hf_keys,
                      write_sharded)
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
        write_sharded(folder, {f'model-0000{i + 1}-of-00002.safetensors': {k: hf[k] for k in part}
                               for i, part in enumerate((keys[:half], keys[half:]))})
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
    assert out.returncode == 2  # a user error: one line, no traceback
    assert 'arch' in out.stderr and not dst.exists()
    assert 'Traceback' not in out.stderr


def test_arch_mismatch_names_blocks_and_arch(tmp_path, reference):
    model, _ = reference
    path = tmp_path / 'four_blocks.safetensors'
    convert_src = tmp_path / 'src.pth'
    torch.save(model.state_dict(), convert_src)
    convert_to_safetensors(str(convert_src), str(path))
    three = dict(TINY_6B_STYLE, num_layers=3)
    target = InternViT(arch=three, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    target.reset_parameters()
    before = snapshot(target)
    with pytest.raises(CheckpointMismatchError) as err:
        target.init_weights()
    msg = str(err.value)
    assert 'Unexpected' in msg and 'blocks.3.attn.qkv.weight' in msg
    assert 'built with 3 blocks' in msg and 'checkpoint has 4 blocks' in msg
    assert "'6b-448': 45 blocks" in msg
    assert_untouched(target, before)


def test_missing_key_and_shape_mismatch(tmp_path, reference):
    model, _ = reference
    state = dict(model.state_dict())
    del state['blocks.1.mlp.fc2.bias']
    # Another square grid would be adopted; 8 x 7 patches is no grid InternViT can hold.
    state['pos_embed'] = torch.randn(1, 1 + 8 * 7, 64)
    state['blocks.2.mlp.fc1.weight'] = torch.randn(128, 64)
    state['blocks.3.mlp.fc1.weight'] = torch.randn(128, 64)
    path = tmp_path / 'bad.pth'
    torch.save(state, path)
    target = build_tiny(seed=3)
    before = snapshot(target)
    with pytest.raises(CheckpointMismatchError) as err:
        load_backbone_weights(target, str(path))
    msg = str(err.value)
    assert 'Missing 1 keys: blocks.1.mlp.fc2.bias' in msg
    assert 'pos_embed has shape (1, 57, 64) in the checkpoint but (1, 17, 64) in the model' in msg
    # Keys that differ only in their block index are listed once, every index named.
    assert ('blocks.{2-3}.mlp.fc1.weight has shape (128, 64) in the checkpoint but '
            '(256, 64) in the model') in msg
    assert 'a position embedding of 56 patch tokens (not a square grid)' in msg
    assert_untouched(target, before)


def test_not_an_internvit_checkpoint(tmp_path):
    path = tmp_path / 'resnet.safetensors'
    save_file({'conv1.weight': torch.randn(2, 3, 1, 1)}, path)
    with pytest.raises(CheckpointMismatchError, match='Is this an InternViT checkpoint'):
        load_backbone_weights(build_tiny(), str(path))


def test_unsafe_pickle_is_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'x': torch.zeros(1)},
                'payload': __import__('argparse').Namespace(a=1)}, path)
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


def _with_grid(model, side):
    """``model``'s weights with pos_embed re-sampled to a side x side grid."""
    from mmseg_internvit.models.layers import resize_pos_embed
    state = {k: v.clone() for k, v in model.state_dict().items()}
    pos = state['pos_embed']
    patches = resize_pos_embed(pos[:, 1:], model.pretrain_grid, (side, side))
    state['pos_embed'] = torch.cat([pos[:, :1], patches + 0.01], dim=1)
    return state


def _grid_reference(state, side):
    model = InternViT(arch=dict(TINY_6B_STYLE), pos_embed_grid=side).eval()
    model.load_state_dict(state)
    return model


def test_pos_embed_grid_is_taken_from_the_checkpoint(tmp_path, reference):
    """An 8 x 8 grid stored for a 4 x 4 preset is adopted, not resized back."""
    model, _ = reference
    state = _with_grid(model, 8)
    expected = _grid_reference(state, 8)(X)[0]
    path = tmp_path / 'grid8.pth'
    torch.save(state, path)
    # Through the backbone loader (init_cfg).
    loaded = _fresh(path).eval()
    assert loaded.pretrain_grid == (8, 8) and loaded.pos_embed.shape == (1, 65, 64)
    torch.testing.assert_close(loaded(X)[0], expected, atol=0, rtol=0)
    # Through plain load_state_dict: same Parameter object, so an optimizer
    # built before loading still updates it.
    plain = build_tiny(seed=4).eval()
    param = plain.pos_embed
    optimizer = torch.optim.SGD(plain.parameters(), lr=0.1)
    plain.load_state_dict(state)
    assert plain.pos_embed is param and plain.pretrain_grid == (8, 8)
    torch.testing.assert_close(plain(X)[0], expected, atol=0, rtol=0)
    plain.train()
    plain(X)[0].sum().backward()
    before = param.detach().clone()
    optimizer.step()
    assert not torch.equal(param.detach(), before)
    # Through mmengine's load_checkpoint (load_from, init_model).
    from mmengine.runner import load_checkpoint
    via_mmengine = build_tiny(seed=5).eval()
    load_checkpoint(via_mmengine, str(path), map_location='cpu')
    torch.testing.assert_close(via_mmengine(X)[0], expected, atol=0, rtol=0)


def test_pos_embed_grid_argument(reference):
    model, _ = reference
    explicit = InternViT(arch=dict(TINY_6B_STYLE), pos_embed_grid=36)
    assert explicit.pos_embed.shape == (1, 1 + 36 * 36, 64) and explicit.pretrain_grid == (36, 36)
    assert InternViT(arch=dict(TINY_6B_STYLE)).pretrain_grid == (4, 4)
    with pytest.raises(ValueError, match='pos_embed_grid must be >= 1, got 0'):
        InternViT(arch=dict(TINY_6B_STYLE), pos_embed_grid=0)
    for bad in ('36', 8.0, True):
        with pytest.raises(ValueError, match=f'pos_embed_grid must be an int .* got {bad!r}'):
            InternViT(arch=dict(TINY_6B_STYLE), pos_embed_grid=bad)
    # Only another square grid of the same width is adopted.
    assert explicit.grid_for_pos_embed((1, 1 + 8 * 8, 64)) == 8
    assert explicit.grid_for_pos_embed((1, 1 + 36 * 36, 64)) is None
    assert explicit.grid_for_pos_embed((1, 1 + 8 * 8, 32)) is None
    assert explicit.grid_for_pos_embed((1, 1 + 8 * 7, 64)) is None


def _write_sharded_chat(folder, state):
    """A remote-code chat checkpoint: vision tower in 2 shards, projector beside
    it, language model in 2 shards of its own."""
    os.makedirs(folder, exist_ok=True)
    vision = to_hf_keys(state, 'vision_model.')
    keys = sorted(vision)
    shards = {
        'model-00001-of-00004.safetensors': {k: vision[k] for k in keys[:len(keys) // 2]},
        'model-00002-of-00004.safetensors': {**{k: vision[k] for k in keys[len(keys) // 2:]},
                                             'mlp1.0.weight': torch.randn(8)},
        'model-00003-of-00004.safetensors': {'language_model.model.embed_tokens.weight':
                                             torch.randn(10, 4)},
        'model-00004-of-00004.safetensors': {'language_model.lm_head.weight': torch.randn(10, 4)},
    }
    write_sharded(folder, shards)
    return folder


def test_chat_vision_tower_loads_without_language_model_shards(tmp_path, reference):
    model, expected = reference
    folder = _write_sharded_chat(tmp_path / 'chat', model.state_dict())
    os.remove(os.path.join(folder, 'model-00003-of-00004.safetensors'))
    os.remove(os.path.join(folder, 'model-00004-of-00004.safetensors'))
    loaded = _fresh(folder).eval()
    torch.testing.assert_close(loaded(X)[0], expected, atol=0, rtol=0)


def test_missing_vision_shard_names_itself_and_its_keys(tmp_path, reference):
    model, _ = reference
    folder = _write_sharded_chat(tmp_path / 'chat', model.state_dict())
    missing = os.path.join(folder, 'model-00002-of-00004.safetensors')
    os.remove(missing)
    target = build_tiny(seed=3)
    before = snapshot(target)
    with pytest.raises(CheckpointReadError) as err:
        load_backbone_weights(target, folder)
    msg = str(err.value)
    assert f'Shard {missing} listed in' in msg and 'is missing' in msg
    assert 'mlp1.0.weight' in msg and 'vision_model.encoder.layers.' in msg
    assert_untouched(target, before)


@pytest.mark.parametrize('arch', ['auto', None])
def test_convert_tool_reads_its_source_once(tmp_path, reference, monkeypatch, arch):
    """A legacy-format .pth is loaded whole: the arch check and the conversion
    share one opening of SRC."""
    from mmseg_internvit.apis import convert_checkpoint
    from mmseg_internvit.checkpoint import readers
    model, expected = reference
    src = tmp_path / 'tiny.pth'
    torch.save(model.state_dict(), src, _use_new_zipfile_serialization=False)
    # The head count of a width no published model has (for --arch auto).
    (tmp_path / 'config.json').write_text('{"hidden_size": 64, "num_attention_heads": 4}')
    opened = []
    real_open = readers._open_torch
    monkeypatch.setattr(readers, '_open_torch', lambda path: opened.append(path) or
                        real_open(path))
    dst = tmp_path / 'out.safetensors'
    argv = [str(src), str(dst)] + (['--arch', arch] if arch else [])
    assert convert_checkpoint.main(argv) == 0
    assert opened == [str(src)]
    torch.testing.assert_close(_fresh(dst).eval()(X)[0], expected, atol=0, rtol=0)


def _tool(capsys, tool, argv):
    """``tools/<tool>.py`` in this process: (exit status, stdout, stderr)."""
    from mmseg_internvit.apis.errors import run_tool
    code = run_tool(tool, [str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _released_linear_probe(backbone, path):
    """A segmentor in the released (mmseg 0.30) layout around ``backbone``: its
    linear probe's BatchNorm is decode_head.norm."""
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    state.update({'decode_head.norm.weight': torch.ones(64),
                  'decode_head.norm.bias': torch.zeros(64),
                  'decode_head.norm.running_mean': torch.zeros(64),
                  'decode_head.norm.running_var': torch.ones(64),
                  'decode_head.conv_seg.weight': torch.randn(3, 64, 1, 1),
                  'decode_head.conv_seg.bias': torch.zeros(3)})
    torch.save({'meta': {'CLASSES': ('a', 'b', 'c'), 'PALETTE': [[0, 0, 0]] * 3},
                'state_dict': state}, path)
    return path


def test_convert_tool_checks_arch_of_a_released_segmentor(tmp_path, reference, capsys):
    """--arch is checked for a segmentor written whole too: an unknown preset, and
    its backbone against the arch, whatever DST's suffix."""
    src = _released_linear_probe(reference[0], tmp_path / 'released.pth')
    for name in ('out.pth', 'out.safetensors'):
        dst = tmp_path / name
        code, _, err = _tool(capsys, 'convert_checkpoint', [src, dst, '--arch', '7b'])
        assert code == 2 and "error: Unknown InternViT arch '7b'" in err
        code, _, err = _tool(capsys, 'convert_checkpoint', [src, dst, '--arch', '300m'])
        assert code == 2 and 'does not match the model' in err
        assert 'built with 24 blocks of width 1024' in err and 'checkpoint has 4 blocks' in err
        assert not dst.exists()
    dst = tmp_path / 'out.pth'
    code, out, err = _tool(capsys, 'convert_checkpoint',
                           [src, dst, '--arch', 'auto', '--num-heads', '4'])
    assert code == 0, err
    assert f'wrote {dst} (' in out and 'source format: upstream-segmentor' in out


def test_convert_tool_takes_the_head_count_it_asks_for(tmp_path, reference, capsys):
    """A width no published model has: the message names the option that gives it."""
    model, expected = reference
    src, dst = tmp_path / 'tiny.pth', tmp_path / 'out.safetensors'
    torch.save(model.state_dict(), src)
    code, _, err = _tool(capsys, 'convert_checkpoint', [src, dst, '--arch', 'auto'])
    assert code == 2 and 'holds an InternViT of width 64, which no published model has' in err
    assert 'give it with --num-heads N' in err and 'arch=dict' not in err
    code, _, err = _tool(capsys, 'convert_checkpoint', [src, dst, '--num-heads', '4'])
    assert code == 2 and 'error: --num-heads 4 goes with --arch auto only' in err
    assert not dst.exists()
    code, _, err = _tool(capsys, 'convert_checkpoint',
                         [src, dst, '--arch', 'auto', '--num-heads', '4'])
    assert code == 0, err
    torch.testing.assert_close(_fresh(dst).eval()(X)[0], expected, atol=0, rtol=0)


def test_convert_tool_says_a_whole_model_loses_its_heads(tmp_path, reference, capsys):
    model, expected = reference
    state = {f'backbone.{k}': v for k, v in model.state_dict().items()}
    state.update({'decode_head.conv_seg.weight': torch.randn(3, 64, 1, 1),
                  'decode_head.conv_seg.bias': torch.zeros(3)})
    src, dst = tmp_path / 'iter_5.pth', tmp_path / 'out.safetensors'
    torch.save({'meta': {}, 'state_dict': state}, src)
    code, out, err = _tool(capsys, 'convert_checkpoint', [src, dst])
    assert code == 0, err
    assert (f'note: {src} is a whole model; only its backbone is written, without '
            'decode_head.* (2 tensors) (tools/consolidate_checkpoint.py writes the whole '
            'model)') in out
    torch.testing.assert_close(_fresh(dst).eval()(X)[0], expected, atol=0, rtol=0)
    # A backbone alone loses nothing: no note.
    torch.save(model.state_dict(), src)
    code, out, err = _tool(capsys, 'convert_checkpoint', [src, dst, '--overwrite'])
    assert code == 0 and 'note:' not in out, err


def test_deepspeed_folder_points_to_consolidation(tmp_path, capsys):
    folder = tmp_path / 'iter_2.pth'
    folder.mkdir()
    (folder / 'mp_rank_00_model_states.pt').write_bytes(b'')
    message = (f'{folder} is a DeepSpeed checkpoint folder (ZeRO partitions), not one file: '
               f'write it as one with tools/consolidate_checkpoint.py {folder} '
               'model.safetensors, then use that file.')
    with pytest.raises(CheckpointReadError) as err:
        load_backbone_weights(build_tiny(), str(folder))
    assert str(err.value) == message
    code, _, err = _tool(capsys, 'convert_checkpoint', [folder, tmp_path / 'out.safetensors'])
    assert code == 2 and err == f'error: {message}\n'


@pytest.mark.parametrize('tool', ['convert_checkpoint', 'consolidate_checkpoint'])
def test_output_folder_is_checked_before_reading(tmp_path, reference, capsys, monkeypatch,
                                                 tool):
    """DST's folder: a file, or a folder nobody can write to (sysfs: not even root,
    whom os.access lets through), is refused before SRC is opened."""
    from mmseg_internvit.checkpoint import readers
    src = tmp_path / 'tiny.pth'
    torch.save(reference[0].state_dict(), src)
    opened = []
    monkeypatch.setattr(readers, '_open_torch', opened.append)
    a_file = tmp_path / 'a_file'
    a_file.write_text('not a folder\n')
    dst = a_file / 'out.safetensors'
    code, _, err = _tool(capsys, tool, [src, dst])
    assert code == 2
    assert err == (f'error: Output folder {a_file} of {dst} is a file, not a folder; give an '
                   'output path in a folder.\n')
    if os.path.isdir('/sys/kernel'):  # Linux sysfs
        code, _, err = _tool(capsys, tool, [src, '/sys/out.safetensors'])
        assert code == 2
        assert err.startswith('error: cannot write DST /sys/out.safetensors: ')
        assert err.endswith(' (/sys); give a DST in a writable folder\n')
    assert opened == []


def test_a_file_that_is_no_torch_checkpoint_is_named_as_such(tmp_path, reference):
    text = tmp_path / 'weights.pth'
    text.write_text('hello\n')
    with pytest.raises(CheckpointReadError) as err:
        load_backbone_weights(build_tiny(), str(text))
    assert str(err.value).startswith(
        f"{text} (6 bytes) is not a torch checkpoint: it starts with b'hello\\n', not the zip "
        'archive or pickle that torch.save writes.')
    # A torch file cut short is still named as truncated, with torch's reason.
    whole = tmp_path / 'whole.pth'
    torch.save(reference[0].state_dict(), whole)
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(whole.read_bytes()[:4000])
    with pytest.raises(CheckpointReadError) as err:
        load_backbone_weights(build_tiny(), str(cut))
    assert str(err.value).startswith(f'Cannot read {cut} (4000 bytes) as a torch checkpoint: '
                                     'PytorchStreamReader failed')
    assert 'The file is truncated' in str(err.value)


def test_own_backbone_file_is_named_by_its_format(tmp_path, reference):
    """Its keys would pass for 'timm': the file's own format tag names it."""
    model, _ = reference
    src, path = tmp_path / 'src.pth', tmp_path / 'backbone.safetensors'
    torch.save(model.state_dict(), src)
    assert convert_to_safetensors(str(src), str(path)) == 'timm'
    target = InternViT(arch=dict(TINY_6B_STYLE, num_layers=3))
    with pytest.raises(CheckpointMismatchError,
                       match=r"backbone\.safetensors \(format 'mmseg_internvit-backbone'\) does "
                             'not match the model'):
        load_backbone_weights(target, str(path))
    again = tmp_path / 'again.safetensors'
    assert convert_to_safetensors(str(path), str(again)) == 'mmseg_internvit-backbone'
