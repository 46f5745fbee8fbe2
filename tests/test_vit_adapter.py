"""InternViTAdapter: shapes, gradients through a frozen ViT, deformable sampling, training."""
import math
import os

import pytest
import torch
import torch.nn.functional as F

from mmseg_internvit.models.backbones.vit_adapter import InternViTAdapter
from mmseg_internvit.models.layers.deform_attn import (DeformableCrossAttention, grid_centers,
                                                       level_layout, reference_points)

from conftest import TINY_6B_STYLE
from test_train_tools import losses_in, run_tool, smoke_options

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, 'configs', 'smoke',
                     'upernet_internvit-tiny-adapter_1xb4-300_ade20k-sample-112x112.py')


def build_adapter(seed=0, frozen=True, **kwargs):
    torch.manual_seed(seed)
    vit = dict(arch=dict(TINY_6B_STYLE), frozen=frozen, **kwargs.pop('vit', {}))
    kwargs.setdefault('conv_inplanes', 16)
    model = InternViTAdapter(vit=vit, interaction_indexes=[[0, 1], [2, 3]],
                             deform_num_heads=4, **kwargs)
    model.init_weights()
    return model


@pytest.fixture(scope='module')
def adapter():
    return build_adapter()


@pytest.mark.parametrize('size', [(112, 112), (98, 154), (100, 130)])
def test_output_shapes_and_gradients(adapter, size):
    H, W = size
    adapter.train()
    adapter.zero_grad(set_to_none=True)
    outs = adapter(torch.randn(2, 3, H, W))
    assert [tuple(o.shape) for o in outs] == [
        (2, 64, math.ceil(H / s), math.ceil(W / s)) for s in (4, 8, 16, 32)]
    assert all(o.dtype == torch.float32 for o in outs)
    sum(o.square().mean() for o in outs).backward()
    for name, p in adapter.named_parameters():
        if name.startswith('vit.'):
            assert not p.requires_grad and p.grad is None, name
        else:
            assert p.grad is not None, name
    # Gradient reaches the first injector only through the frozen blocks.
    assert adapter.interactions[0].injector.gamma.grad.abs().sum() > 0
    assert adapter.spm.stem[0].weight.grad.abs().sum() > 0


def test_frozen_vit_stays_in_eval_mode(adapter):
    adapter.train()
    assert adapter.training and adapter.spm.training
    assert not adapter.vit.training
    assert not any(m.training for m in adapter.vit.modules())
    assert not any(p.requires_grad for p in adapter.vit.parameters())


def test_trainable_vit_gets_gradients():
    model = build_adapter(frozen=False)
    model.train()
    outs = model(torch.randn(1, 3, 56, 70))
    sum(o.mean() for o in outs).backward()
    assert model.vit.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert model.vit.pos_embed.grad is not None


def test_checkpointing_matches_plain_forward():
    plain = build_adapter()
    ckpt = build_adapter(vit=dict(with_cp=True), with_cp=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 60, 74)
    grads = []
    for model in (plain, ckpt):
        model.train()
        outs = model(x)
        sum(o.square().mean() for o in outs).backward()
        grads.append(model.interactions[0].injector.gamma.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_bfloat16_vit_gives_float32_maps():
    model = build_adapter(vit=dict(dtype='bfloat16'), out_norm_cfg=dict(type='LN'))
    model.eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 70, 90))
    assert [o.dtype for o in outs] == [torch.float32] * 4
    assert all(torch.isfinite(o).all() for o in outs)


def test_bad_arguments_are_reported():
    with pytest.raises(ValueError, match=r'\[2, 1\]'):
        InternViTAdapter(vit=dict(arch=dict(TINY_6B_STYLE)), interaction_indexes=[[0, 1], [2, 1]])
    with pytest.raises(ValueError, match='0..3'):
        InternViTAdapter(vit=dict(arch=dict(TINY_6B_STYLE)), interaction_indexes=[[0, 4]])
    with pytest.raises(ValueError, match='num_heads=5'):
        InternViTAdapter(vit=dict(arch=dict(TINY_6B_STYLE)), interaction_indexes=[[0, 3]],
                         deform_num_heads=5)
    with pytest.raises(ValueError, match=r'drop_path_rate must be in \[0, 1\).*got -0\.1'):
        InternViTAdapter(vit=dict(arch=dict(TINY_6B_STYLE)), interaction_indexes=[[0, 3]],
                         drop_path_rate=-0.1)


def test_images_without_a_batch_axis_are_refused(adapter):
    with pytest.raises(ValueError, match=r'expects images \(B, 3, H, W\), got a tensor of '
                                         r'shape \(3, 112, 112\)'):
        adapter(torch.randn(3, 112, 112))


def test_reference_points_align_pixels_across_strides():
    # 100 px: 8 ViT tokens span 112 px, 7 cells of 16 px span 112, 4 of 32 span 128.
    centers = grid_centers((8, 8), 14, torch.device('cpu'))
    ref = reference_points(centers, [(13, 13), (7, 7), (4, 4)], [8, 16, 32])
    assert ref.shape == (64, 3, 2)
    torch.testing.assert_close(ref[0, :, 0], torch.tensor([7 / 104, 7 / 112, 7 / 128]))
    torch.testing.assert_close(ref[-1, 1], torch.tensor([105 / 112, 105 / 112]))


def _grid_sample_reference(value_maps, locations, weights):
    """Per point: bilinear sample (grid_sample, align_corners=False), weight and sum."""
    B, Nq, heads, L, P, _ = locations.shape
    out = []
    for h in range(heads):
        acc = 0
        for lvl, v in enumerate(value_maps):  # v: (B, heads, d, H, W)
            grid = 2 * locations[:, :, h, lvl] - 1  # (B, Nq, P, 2)
            sampled = F.grid_sample(v[:, h], grid, mode='bilinear', padding_mode='zeros',
                                    align_corners=False)  # (B, d, Nq, P)
            acc = acc + (sampled * weights[:, None, :, h, lvl]).sum(-1)
        out.append(acc.transpose(1, 2))
    return torch.cat(out, dim=-1)


def test_deformable_attention_matches_grid_sample_reference():
    torch.manual_seed(0)
    B, C, heads, P = 2, 16, 2, 3
    shapes = [(5, 7), (3, 4)]
    attn = DeformableCrossAttention(C, heads, num_levels=2, num_points=P, value_ratio=1.0)
    msda = attn.attn
    with torch.no_grad():  # identity projections: the output is the raw sampled values
        for lin in (msda.value_proj, msda.output_proj):
            lin.weight.copy_(torch.eye(C))
            lin.bias.zero_()
        msda.sampling_offsets.weight.normal_(0, 0.5)
        msda.attention_weights.weight.normal_(0, 0.5)
    value = torch.randn(B, sum(h * w for h, w in shapes), C)
    query = torch.randn(B, 6, C)
    ref = torch.rand(B, 6, 2, 2)
    spatial, start = level_layout(shapes, torch.device('cpu'))
    out = attn(query, value, ref, spatial, start)

    offsets = msda.sampling_offsets(query).view(B, 6, heads, 2, P, 2)
    logits = msda.attention_weights(query).view(B, 6, heads, 2 * P)
    weights = logits.softmax(-1).view(B, 6, heads, 2, P)
    norm = torch.tensor([[w, h] for h, w in shapes], dtype=torch.float32)
    locations = ref[:, :, None, :, None] + offsets / norm[None, None, None, :, None]
    maps = [part.reshape(B, h, w, heads, C // heads).permute(0, 3, 4, 1, 2)
            for part, (h, w) in zip(value.split([h * w for h, w in shapes], 1), shapes)]
    expected = _grid_sample_reference(maps, locations, weights)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_sampling_at_cell_centres_reads_the_cell():
    # Zero offsets, one point, one level: each query reads exactly its own cell.
    C, shape = 8, (3, 5)
    attn = DeformableCrossAttention(C, 1, num_levels=1, num_points=1)
    msda = attn.attn
    with torch.no_grad():
        msda.sampling_offsets.weight.zero_()
        msda.sampling_offsets.bias.zero_()
        for lin in (msda.value_proj, msda.output_proj):
            lin.weight.copy_(torch.eye(C))
            lin.bias.zero_()
    value = torch.randn(1, 15, C)
    ref = reference_points(grid_centers(shape, 14, torch.device('cpu')), [shape], [14])
    out = attn(torch.randn(1, 15, C), value, ref[None], *level_layout([shape], value.device))
    torch.testing.assert_close(out, value)


def test_layer_decay_groups_for_a_segmentor():
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from mmseg_internvit import register_all_modules
    from mmseg_internvit.engine.layer_decay_constructor import LayerDecayOptimWrapperConstructor
    register_all_modules()
    init_default_scope('mmseg')
    segmentor = MODELS.build(dict(
        type='EncoderDecoder',
        backbone=dict(type='InternViTAdapter',
                      vit=dict(arch=dict(TINY_6B_STYLE), frozen=False),
                      interaction_indexes=[[0, 1], [2, 3]], deform_num_heads=4,
                      conv_inplanes=16),
        decode_head=dict(type='UPerHead', in_channels=[64] * 4, in_index=[0, 1, 2, 3],
                         channels=16, num_classes=3, norm_cfg=dict(type='BN'))))
    constructor = LayerDecayOptimWrapperConstructor(
        dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1.0, weight_decay=0.05)),
        dict(layer_decay_rate=0.5))
    wrapper = constructor(segmentor)
    scale, wd = {}, {}
    for group in wrapper.optimizer.param_groups:
        for name in group['param_names']:
            scale[name], wd[name] = group['lr_scale'], group['weight_decay']
    num_ids = TINY_6B_STYLE['num_layers'] + 2
    assert scale['backbone.vit.patch_embed.proj.weight'] == 0.5 ** (num_ids - 1)
    assert scale['backbone.vit.blocks.2.attn.qkv.weight'] == 0.5 ** (num_ids - 1 - 3)
    assert scale['backbone.spm.fc1.weight'] == 1.0
    assert scale['backbone.interactions.0.injector.gamma'] == 1.0
    assert scale['decode_head.conv_seg.weight'] == 1.0
    assert wd['backbone.level_embed'] == 0 and wd['backbone.vit.pos_embed'] == 0
    assert wd['backbone.interactions.0.injector.gamma'] == 0
    assert wd['backbone.spm.fc1.weight'] == 0.05


def test_smoke_config_trains(tmp_path, sample_ade20k):
    work = tmp_path / 'work'
    # Four iterations, every loss logged, no validation (the seg configs' test covers it).
    options = smoke_options(sample_ade20k, 4)[:-1] + [
        'default_hooks.logger.interval=1', 'val_cfg=None', 'val_dataloader=None',
        'val_evaluator=None']
    run_tool('train.py', SMOKE, '--work-dir', work, *options)
    losses = losses_in(work)
    assert len(losses) == 4 and all(math.isfinite(v) for _, v in losses)


def test_adapter_uses_the_vit_public_forward_pieces(monkeypatch):
    model = build_adapter()
    calls = []
    vit = model.vit
    for name in ('prepare_tokens', 'run_blocks'):
        real = getattr(vit, name)
        monkeypatch.setattr(vit, name, lambda *a, _n=name, _f=real, **k:
                            calls.append((_n, k.get('start'), k.get('end'))) or _f(*a, **k))
    model(torch.randn(1, 3, 56, 70))
    assert calls == [('prepare_tokens', None, None), ('run_blocks', 0, 2), ('run_blocks', 2, 4)]


def test_set_grad_checkpointing_covers_vit_and_interactions():
    model = build_adapter()
    model.set_grad_checkpointing(True)
    layers = [m for m in model.modules() if hasattr(m, 'with_cp')]
    # The ViT, 2 injectors, 1 + 3 extractors (2 extra after the last interaction).
    assert model.vit in layers and len(layers) == 1 + 2 + 4
    assert all(m.with_cp for m in layers)
    model.set_grad_checkpointing(False)
    assert not any(m.with_cp for m in layers)


def test_adapter_with_windowed_vit():
    x = torch.randn(2, 3, 56, 70)  # a 4 x 5 token grid
    plain = build_adapter(frozen=False)
    covering = build_adapter(frozen=False, vit=dict(window_size=14, global_attn_indexes=[3]))
    covering.load_state_dict(plain.state_dict())
    # One window covers the grid: the same model as with global attention.
    for a, b in zip(covering(x), plain(x)):
        assert torch.equal(a, b)
    windowed = build_adapter(frozen=False, vit=dict(window_size=2, global_attn_indexes=[1, 3],
                                                    with_cp=True))
    windowed.load_state_dict(plain.state_dict())
    windowed.train()
    outs = windowed(x)
    assert [tuple(o.shape) for o in outs] == [(2, 64, 14, 18), (2, 64, 7, 9), (2, 64, 4, 5),
                                              (2, 64, 2, 3)]
    assert not torch.allclose(outs[0], plain(x)[0])
    sum(o.square().mean() for o in outs).backward()
    assert windowed.vit.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert windowed.interactions[0].injector.gamma.grad.abs().sum() > 0
