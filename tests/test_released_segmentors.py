"""Segmentors released with InternViT-6B (mmseg 0.30 layout) load into our configs.

The released files are written here from the facts of upstream's modules
(the feature pyramid inside the backbone as ``up1..up4``, a channels-first
LayerNorm computed in float32, the linear probe's BatchNorm called ``norm``,
the backbone stored in bfloat16, ``meta.CLASSES/PALETTE``), with reference
modules built in this file, not with the package's own key map.
"""
import copy
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config

from conftest import TINY_6B_STYLE, assert_untouched, snapshot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, 'configs', 'smoke')
LINEAR = os.path.join(SMOKE, 'linear_internvit-tiny_1xb4-300_ade20k-sample-112x112.py')
UPERNET = os.path.join(SMOKE, 'upernet_internvit-tiny_1xb4-300_ade20k-sample-112x112.py')
C = TINY_6B_STYLE['embed_dims']
NUM_CLASSES = 7
CLASSES = tuple(f'thing{i}' for i in range(NUM_CLASSES))
PALETTE = [[10 * i, 20 * i, 30 * i] for i in range(NUM_CLASSES)]
GRID = 8  # the released files store pos_embed at the crop's grid (112 px / 14)


def tiny_config(kind):
    """A smoke config shrunk to the 64-wide tiny arch (the 'shipped config')."""
    from mmseg_internvit import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(LINEAR if kind == 'linear' else UPERNET)
    options = {'model.backbone.arch': dict(TINY_6B_STYLE),
               'model.decode_head.num_classes': NUM_CLASSES}
    if kind == 'linear':
        options['model.decode_head.in_channels'] = C
    else:
        options.update({'model.neck.in_channels': C, 'model.decode_head.in_channels': [C] * 4,
                        'model.auxiliary_head.in_channels': C,
                        'model.auxiliary_head.in_index': 1,
                        'model.auxiliary_head.num_classes': NUM_CLASSES})
    cfg.merge_from_dict(options)
    return cfg


class ChannelsFirstLayerNorm(nn.Module):
    """Upstream's LayerNorm over dim 1 of NCHW maps, eps 1e-6, computed in float32."""

    def __init__(self, channels):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        x = (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, keepdim=True, unbiased=False)
                                                       + 1e-6)
        return (self.weight.float()[:, None, None] * x + self.bias.float()[:, None, None]).to(dtype)


class UpstreamFPN(nn.Module):
    """The pyramid upstream keeps inside its backbone (with_fpn=True, no final norm)."""

    def __init__(self, channels):
        super().__init__()
        self.up1 = nn.Sequential(nn.ConvTranspose2d(channels, channels, 2, 2),
                                 ChannelsFirstLayerNorm(channels), nn.GELU(),
                                 nn.ConvTranspose2d(channels, channels, 2, 2), nn.Identity())
        self.up2 = nn.Sequential(nn.ConvTranspose2d(channels, channels, 2, 2), nn.Identity())
        self.up3 = nn.Sequential(nn.Identity(), nn.Identity())
        self.up4 = nn.Sequential(nn.MaxPool2d(kernel_size=2, stride=2), nn.Identity())

    def forward(self, maps):
        return [up(x) for up, x in zip((self.up1, self.up2, self.up3, self.up4), maps)]


class UpstreamLinearHead(nn.Module):
    """Upstream's FCNHead with num_convs=0, with_norm=True: a BN called norm + conv_seg."""

    def __init__(self, channels, num_classes):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)


def build_ours(cfg, seed):
    """Our segmentor with random weights, backbone and FPN rounded to bf16 (as released)."""
    from mmseg.apis import init_model
    torch.manual_seed(seed)
    cfg = copy.deepcopy(cfg)
    cfg.model.backbone.pos_embed_grid = GRID
    model = init_model(cfg, None, device='cpu')
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() == 1:
                param.add_(torch.randn_like(param) * 0.1)  # non-trivial norms/scales
        for name, buf in model.named_buffers():
            if name.endswith('running_mean'):
                buf.copy_(torch.randn_like(buf) * 0.1)
            elif name.endswith('running_var'):
                buf.copy_(torch.rand_like(buf) + 0.5)
        # Upstream stores its backbone, FPN included, in bf16.
        fpn = model.neck.parameters() if hasattr(model, 'neck') else []
        for param in [*model.backbone.parameters(), *fpn]:
            param.copy_(param.bfloat16().float())
    return model.eval()


def released_state(model, kind):
    """The model's weights in the released upstream layout, from reference modules."""
    state = {f'backbone.{k}': v.bfloat16() for k, v in model.backbone.state_dict().items()}
    if kind == 'upernet':
        fpn = UpstreamFPN(C)
        scales = model.neck.scales
        fpn.up1[0].load_state_dict(scales[0][0].state_dict())
        fpn.up1[1].load_state_dict(scales[0][1].state_dict())
        fpn.up1[3].load_state_dict(scales[0][3].state_dict())
        fpn.up2[0].load_state_dict(scales[1][0].state_dict())
        state.update({f'backbone.{k}': v.bfloat16() for k, v in fpn.state_dict().items()})
        for head in ('decode_head', 'auxiliary_head'):
            state.update({f'{head}.{k}': v for k, v in getattr(model, head).state_dict().items()})
    else:
        head = UpstreamLinearHead(C, NUM_CLASSES)
        head.norm.load_state_dict(model.decode_head.bn.state_dict())
        head.conv_seg.load_state_dict(model.decode_head.conv_seg.state_dict())
        state.update({f'decode_head.{k}': v for k, v in head.state_dict().items()})
    return {k: v.clone() for k, v in state.items()}


def save_released(path, state, with_meta=True):
    if with_meta:  # an mmcv checkpoint of mmseg 0.30
        torch.save({'meta': {'CLASSES': CLASSES, 'PALETTE': PALETTE, 'mmseg_version': '0.30.0'},
                    'state_dict': state}, path)
    else:  # upstream's release.py: the bare state dict
        torch.save(state, path)
    return str(path)


def save_ours(path, model):
    from mmengine.runner import save_checkpoint
    save_checkpoint({'meta': {'dataset_meta': {'classes': CLASSES, 'palette': PALETTE}},
                     'state_dict': model.state_dict()}, str(path))
    return str(path)


IMAGE = (np.arange(100 * 130 * 3) % 251).astype(np.uint8).reshape(100, 130, 3)


def logits(segmenter):
    return segmenter([IMAGE.copy()])[0].seg_logits.data


@pytest.fixture(scope='module', params=['upernet', 'linear'])
def released(request, tmp_path_factory):
    kind = request.param
    cfg = tiny_config(kind)
    model = build_ours(cfg, seed=1)
    folder = tmp_path_factory.mktemp(kind)
    return dict(kind=kind, cfg=cfg, model=model,
                released=save_released(folder / 'released.pth', released_state(model, kind)),
                bare=save_released(folder / 'bare.pth', released_state(model, kind), False),
                ours=save_ours(folder / 'ours.pth', model))


def test_released_file_gives_our_logits(released):
    from mmseg_internvit.inference import Segmenter
    cfg = released['cfg']  # pretrain grid 4x4: the 8x8 stored grid is adopted
    ours = Segmenter(cfg, released['ours'], device='cpu')
    upstream = Segmenter(cfg, released['released'], device='cpu')
    assert upstream.model.backbone.pretrain_grid == (GRID, GRID)
    expected = logits(ours)
    torch.testing.assert_close(logits(upstream), expected, atol=1e-4, rtol=0)
    assert upstream.classes == CLASSES and upstream.palette == PALETTE
    bare = Segmenter(cfg, released['bare'], device='cpu')
    torch.testing.assert_close(logits(bare), expected, atol=1e-4, rtol=0)


def test_mmengine_path_reads_released_file(released):
    """init_model (mmseg's, as MMSegInferencer and load_from use) converts on read."""
    from mmseg.apis import inference_model, init_model
    cfg = copy.deepcopy(released['cfg'])
    cfg.model.backbone.init_cfg = None
    model = init_model(cfg, released['released'], device='cpu')
    assert model.dataset_meta['classes'] == CLASSES
    state = released['model'].state_dict()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key], atol=0, rtol=0, msg=key)
    result = inference_model(model, IMAGE.copy())
    assert tuple(result.pred_sem_seg.data.shape) == (1, 100, 130)


def test_upstream_fpn_maps_onto_simple_fpn(tmp_path):
    from mmseg_internvit.checkpoint import load_model_weights
    cfg = tiny_config('upernet')
    model = build_ours(cfg, seed=2)
    path = save_released(tmp_path / 'r.pth', released_state(model, 'upernet'))
    torch.manual_seed(5)
    fpn = UpstreamFPN(C)
    for p in fpn.parameters():  # other values than the model's: the loader must copy them
        p.data.normal_(0, 0.3)
    state = torch.load(path, weights_only=True)['state_dict']
    state.update({f'backbone.{k}': v for k, v in fpn.state_dict().items()})
    torch.save(state, path)
    target = build_ours(cfg, seed=3)
    load_model_weights(target, path)
    maps = [torch.randn(2, C, 5, 7) for _ in range(4)]
    expected = fpn(maps)
    got = target.neck(maps)
    for e, g in zip(expected, got):
        assert e.shape == g.shape
        torch.testing.assert_close(g, e, atol=1e-5, rtol=0)


def test_linear_file_with_upernet_config_names_the_head(tmp_path):
    from mmseg_internvit.checkpoint import CheckpointMismatchError
    from mmseg_internvit.inference import Segmenter
    model = build_ours(tiny_config('linear'), seed=1)
    path = save_released(tmp_path / 'linear.pth', released_state(model, 'linear'))
    with pytest.raises(CheckpointMismatchError) as err:
        Segmenter(tiny_config('upernet'), path, device='cpu')
    msg = str(err.value)
    assert 'linear.pth' in msg and "format 'upstream-segmentor'" in msg
    assert 'This is a linear-probe file' in msg and 'the config builds a UPerHead' in msg
    assert 'Unexpected 5 keys: decode_head.norm.bias, decode_head.norm.num_batches_tracked' in msg
    assert 'neck.scales.{0-1}.0.weight' in msg  # missing, every block index named
    assert 'decode_head.psp_modules.{0-3}.1.conv.weight' in msg


def test_class_count_and_aux_channels_hints(released, tmp_path):
    from mmseg_internvit.checkpoint import CheckpointMismatchError
    from mmseg_internvit.inference import Segmenter
    options = {'model.decode_head.num_classes': 150}
    if released['kind'] == 'upernet':
        options.update({'model.auxiliary_head.channels': 48})
    with pytest.raises(CheckpointMismatchError) as err:
        Segmenter(released['cfg'], released['released'], device='cpu', cfg_options=options)
    msg = str(err.value)
    assert (f'decode_head.conv_seg.weight has shape ({NUM_CLASSES}, ' in msg
            and 'in the checkpoint but (150, ' in msg)
    assert (f'The checkpoint predicts {NUM_CLASSES} classes, the config 150: set '
            f'model.decode_head.num_classes={NUM_CLASSES}') in msg
    if released['kind'] == 'upernet':
        assert 'auxiliary head has 32 channels, the config\'s 48' in msg


def test_truncated_and_incomplete_released_files(released, tmp_path):
    from mmseg_internvit.checkpoint import CheckpointMismatchError, CheckpointReadError
    from mmseg_internvit.inference import Segmenter
    data = open(released['released'], 'rb').read()
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointReadError, match=r'(?s)cut\.pth .*truncated'):
        Segmenter(released['cfg'], str(cut), device='cpu')
    state = torch.load(released['released'], weights_only=True)['state_dict']
    del state['backbone.blocks.2.mlp.fc1.weight'], state['backbone.blocks.3.mlp.fc1.weight']
    del state['decode_head.conv_seg.bias']
    partial = save_released(tmp_path / 'partial.pth', state)
    with pytest.raises(CheckpointMismatchError) as err:
        Segmenter(released['cfg'], partial, device='cpu')
    assert ('Missing 3 keys: backbone.blocks.{2-3}.mlp.fc1.weight, decode_head.conv_seg.bias'
            in str(err.value))


def test_check_checkpoint_fits_reads_no_weights(released):
    from mmseg.apis import init_model
    from mmseg_internvit.checkpoint import check_checkpoint_fits
    cfg = copy.deepcopy(released['cfg'])
    cfg.model.backbone.init_cfg = None
    model = init_model(cfg, None, device='cpu')
    before = snapshot(model)
    meta = check_checkpoint_fits(model, released['released'])
    assert meta['format'] == 'upstream-segmentor' and meta['dataset_meta']['classes'] == CLASSES
    assert_untouched(model, before)


@pytest.mark.parametrize('suffix', ['.safetensors', '.pth'])
def test_convert_tool_writes_released_segmentor_in_our_layout(released, tmp_path, suffix):
    from mmseg_internvit.inference import Segmenter
    dst = tmp_path / f'converted{suffix}'
    cmd = [sys.executable, os.path.join(ROOT, 'tools', 'convert_checkpoint.py'),
           released['released'], str(dst)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert 'source format: upstream-segmentor' in run.stdout
    converted = Segmenter(released['cfg'], str(dst), device='cpu')
    assert converted.classes == CLASSES
    expected = logits(Segmenter(released['cfg'], released['ours'], device='cpu'))
    torch.testing.assert_close(logits(converted), expected, atol=1e-4, rtol=0)
    from mmseg_internvit.checkpoint import open_checkpoint
    keys = open_checkpoint(str(dst)).keys()
    assert not [k for k in keys if k.startswith(('backbone.up', 'decode_head.norm.'))]
    assert ('neck.scales.0.1.weight' if released['kind'] == 'upernet'
            else 'decode_head.bn.running_var') in keys


def test_pos_embed_grid_matches_upstream_resize():
    """At the stored grid the embedding is used as is; elsewhere resized bicubically."""
    from mmseg_internvit.models import InternViT
    model = InternViT(arch=dict(TINY_6B_STYLE), pos_embed_grid=GRID)
    assert model.pos_embed.shape == (1, 1 + GRID * GRID, C)
    stored = model.pos_embed.detach()[:, 1:].reshape(1, GRID, GRID, C).permute(0, 3, 1, 2)
    expected = F.interpolate(stored, size=(5, 6), mode='bicubic', align_corners=False)
    from mmseg_internvit.models.layers import resize_pos_embed
    got = resize_pos_embed(model.pos_embed.detach()[:, 1:], model.pretrain_grid, (5, 6))
    torch.testing.assert_close(got, expected.flatten(2).transpose(1, 2), atol=1e-5, rtol=0)


def test_segmenter_reads_auto_arch_from_the_checkpoint(released):
    from mmseg_internvit.inference import Segmenter
    cfg = copy.deepcopy(released['cfg'])
    cfg.model.backbone.arch = dict(auto=True, num_heads=TINY_6B_STYLE['num_heads'])
    seg = Segmenter(cfg, released['released'], device='cpu')
    assert seg.model.backbone.arch_settings == dict(TINY_6B_STYLE, pretrain_size=GRID * 14)
    expected = logits(Segmenter(released['cfg'], released['ours'], device='cpu'))
    torch.testing.assert_close(logits(seg), expected, atol=1e-4, rtol=0)
