"""InternViT backbone: shapes, out_indices, freezing, checkpointing, numerics."""
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from conftest import TINY_300M_STYLE, TINY_6B_STYLE, build_tiny
from mmseg_internvit.models import InternViT, resize_pos_embed
from mmseg_internvit.models.layers import Attention, RMSNorm


@pytest.mark.parametrize('hw', [(56, 56), (70, 42), (234, 345), (15, 29)])
def test_output_shapes_any_size(hw):
    model = build_tiny(out_indices=[0, 2, -1])
    outs = model(torch.randn(2, 3, *hw))
    expected = (2, 64, -(-hw[0] // 14), -(-hw[1] // 14))
    assert len(outs) == 3
    assert all(o.shape == expected and o.dtype == torch.float32 for o in outs)


def test_out_indices_are_block_outputs(tiny_model):
    tiny_model.out_indices = tiny_model._normalize_out_indices([1, -1])
    x = torch.randn(1, 3, 56, 56)  # the pretrain grid: no position resize
    outs = tiny_model(x)
    tokens, grid = tiny_model.patch_embed(x)
    tokens = tokens + tiny_model.pos_embed[:, 1:]
    h = torch.cat([tiny_model.cls_token + tiny_model.pos_embed[:, :1], tokens], 1)
    manual = []
    for block in tiny_model.blocks:
        h = block(h)
        manual.append(h[:, 1:].transpose(1, 2).reshape(1, 64, *grid))
    torch.testing.assert_close(outs[0], manual[1])
    torch.testing.assert_close(outs[1], manual[3])


@pytest.mark.parametrize('bad', [4, -5, [0, 7]])
def test_out_indices_out_of_range(bad):
    with pytest.raises(ValueError, match='out of range for 4 blocks'):
        InternViT(arch=TINY_6B_STYLE, out_indices=bad)


def test_bad_arch_and_dtype():
    with pytest.raises(ValueError, match="Unknown InternViT arch '7b'"):
        InternViT(arch='7b')
    with pytest.raises(ValueError, match="missing \\['pretrain_size'\\]"):
        InternViT(arch={k: v for k, v in TINY_6B_STYLE.items() if k != 'pretrain_size'})
    with pytest.raises(ValueError, match="dtype must be one of"):
        InternViT(arch=TINY_6B_STYLE, dtype='int8')
    # A string for a boolean would count as True: 'Flase' is refused by name.
    with pytest.raises(TypeError, match=r"frozen must be True or False, got 'Flase' \(str\)"):
        InternViT(arch=TINY_6B_STYLE, frozen='Flase')
    with pytest.raises(TypeError, match=r"with_cp must be True or False, got 1 \(int\)"):
        InternViT(arch=TINY_6B_STYLE, with_cp=1)
    # Both dtype spellings, as in every tool.
    assert InternViT(arch=TINY_6B_STYLE, dtype='bf16').dtype == torch.bfloat16
    with pytest.raises(ValueError, match='init_cfg must be None or'):
        InternViT(arch=TINY_6B_STYLE, init_cfg=dict(type='Kaiming'))
    with pytest.raises(ValueError, match=r"drop_path_rate must be in \[0, 1\) .*got 1\.5"):
        InternViT(arch=TINY_6B_STYLE, drop_path_rate=1.5)


@pytest.mark.parametrize('shape', [(3, 56, 56), (1, 1, 56, 56), (1, 56, 56, 3)])
def test_images_must_be_batches_of_rgb(tiny_model, shape):
    # A single image without its batch axis, a grey or a channels-last batch.
    with pytest.raises(ValueError, match=r'expects images \(B, 3, H, W\), got a tensor of '
                                         rf'shape \({", ".join(map(str, shape))}\)'):
        tiny_model(torch.randn(*shape))


def test_presets_have_upstream_shapes():
    from mmseg_internvit.models.backbones.arch_zoo import ARCH_ZOO as arch
    assert arch['6b']['num_layers'] == 48 and arch['6b-448']['num_layers'] == 45
    assert arch['300m']['embed_dims'] == 1024 and arch['300m']['norm_type'] == 'ln'
    # Construction allocates without writing: a 6B on meta costs nothing, and
    # the parameter count matches InternViT-6B (5.9B).
    with torch.device('meta'):
        model = InternViT(arch='6b-448', init_cfg=dict(type='Pretrained', checkpoint='x'))
    count = sum(p.numel() for p in model.parameters())
    assert 5.5e9 < count < 6.0e9
    assert model.pos_embed.shape == (1, 1 + 32 * 32, 3200)


def test_frozen_really_freezes():
    model = build_tiny(frozen=True)
    model.train()
    assert not model.training and not any(m.training for m in model.modules())
    assert not any(p.requires_grad for p in model.parameters())
    x = torch.randn(1, 3, 42, 42, requires_grad=True)
    out = model(x)[0]
    assert not out.requires_grad  # no graph kept: no backbone activations stored


def test_with_cp_same_outputs_and_grads():
    x = torch.randn(2, 3, 42, 56)
    grads = []
    outs = []
    for with_cp in (False, True):
        model = build_tiny(with_cp=with_cp, drop_path_rate=0.0)
        model.train()
        out = model(x)[0]
        out.square().mean().backward()
        outs.append(out.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    torch.testing.assert_close(outs[0], outs[1])
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], msg=name)


def test_drop_path_is_active_in_train_only():
    model = build_tiny(drop_path_rate=0.5)
    x = torch.randn(4, 3, 28, 28)
    model.eval()
    torch.testing.assert_close(model(x)[0], model(x)[0])
    model.train()
    torch.manual_seed(0)
    a = model(x)[0]
    torch.manual_seed(1)
    b = model(x)[0]
    assert not torch.allclose(a, b)


def test_drop_path_scales_are_timm_factors():
    from mmseg_internvit.models.layers import drop_path_scales
    torch.manual_seed(0)
    attn, mlp = drop_path_scales(torch.zeros(4000, 5, 8), 0.25)
    for scale in (attn, mlp):
        assert scale.shape == (4000, 1, 1)
        kept = scale != 0
        torch.testing.assert_close(scale[kept], torch.full_like(scale[kept], 1 / 0.75))
        assert abs(1 - kept.float().mean().item() - 0.25) < 0.05
    assert not torch.equal(attn, mlp)  # two draws
    ones = drop_path_scales(torch.zeros(3, 5, 8), 0.0)
    assert all(torch.equal(s, torch.ones(3, 1, 1)) for s in ones) and ones[0] is not ones[1]


def test_block_scales_its_residual_branches():
    model = build_tiny()
    block = model.blocks[1]
    x = torch.randn(2, 17, TINY_6B_STYLE['embed_dims'])
    ones, zeros = torch.ones(2, 1, 1), torch.zeros(2, 1, 1)
    torch.testing.assert_close(block(x, (4, 4), (zeros, zeros)), x, atol=0, rtol=0)
    torch.testing.assert_close(block(x, (4, 4), (ones, ones)), block(x, (4, 4)))
    # Sample 0 dropped, sample 1 kept (and scaled by 2) in both branches.
    half = torch.tensor([0.0, 2.0]).view(2, 1, 1)
    out = block(x, (4, 4), (half, half))
    torch.testing.assert_close(out[0], x[0], atol=0, rtol=0)
    assert not torch.allclose(out[1], block(x, (4, 4))[1])


def test_bf16_dtype_outputs_fp32():
    model = build_tiny()
    ref = model(torch.randn(1, 3, 56, 56))
    bf16 = InternViT(arch=TINY_6B_STYLE, dtype='bfloat16')
    bf16.load_state_dict(model.state_dict())
    assert all(p.dtype == torch.bfloat16 for p in bf16.parameters())
    torch.manual_seed(0)
    x = torch.randn(1, 3, 56, 56)
    out = bf16(x)[0]
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, model(x)[0], atol=0.1, rtol=0.05)
    del ref


@pytest.mark.parametrize('src,dst', [((4, 4), (3, 7)), ((16, 16), (36, 36)),
                                     ((32, 32), (16, 24))])
def test_pos_embed_resize_is_bicubic_without_antialias(src, dst):
    pos = torch.randn(1, src[0] * src[1], 8)
    out = resize_pos_embed(pos, src, dst)
    ref = F.interpolate(pos.reshape(1, *src, 8).permute(0, 3, 1, 2), size=dst,
                        mode='bicubic', align_corners=False)
    torch.testing.assert_close(out, ref.flatten(2).transpose(1, 2), atol=1e-5, rtol=1e-5)
    assert resize_pos_embed(pos, src, src) is pos


def test_rmsnorm_matches_upstream_formula():
    norm = RMSNorm(16)
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(3, 16, dtype=torch.bfloat16) * 5
    var = x.float().pow(2).mean(-1, keepdim=True)
    ref = norm.weight * (x.float() * torch.rsqrt(var + 1e-6)).to(torch.bfloat16)
    torch.testing.assert_close(norm(x), ref)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize('autocast', [False, True])
def test_rmsnorm_equals_normalising_a_float32_copy(dtype, autocast):
    """Normalising the input in its own dtype gives exactly what upcasting it first
    gives (the norm computes in float32 either way), for whole rows and for the q
    slice of a qkv output (strided), also under autocast."""
    torch.manual_seed(0)
    norm = RMSNorm(96)
    with torch.no_grad():
        norm.weight.normal_()
    norm.to(dtype)
    whole = torch.randn(4, 37, 96) * 7
    qkv = torch.randn(4, 37, 3 * 96) * 0.01
    for x in (whole.to(dtype), qkv.to(dtype)[..., :96]):
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
            out = norm(x)
            ref = norm.weight * F.rms_norm(x.float(), (96,), eps=norm.eps).to(x.dtype)
        assert out.dtype == ref.dtype
        assert torch.equal(out, ref)


def test_sdpa_equals_naive_attention():
    torch.manual_seed(0)
    fused = Attention(32, 4, qk_normalization=True)
    naive = Attention(32, 4, qk_normalization=True, attn_impl='naive')
    naive.load_state_dict(fused.state_dict())
    x = torch.randn(2, 10, 32)
    torch.testing.assert_close(fused(x), naive(x), atol=1e-5, rtol=1e-5)


def test_qk_norm_spans_whole_width_before_heads():
    torch.manual_seed(0)
    attn = Attention(32, 4, qk_normalization=True, attn_impl='naive')
    x = torch.randn(1, 5, 32)
    q, k, v = attn.qkv(x).split(32, -1)
    q, k = attn.q_norm(q), attn.k_norm(k)  # over all 32 channels
    heads = [t.view(1, 5, 4, 8).transpose(1, 2) for t in (q, k, v)]
    ref = torch.softmax(heads[0] @ heads[1].transpose(-1, -2) / 8**0.5, -1) @ heads[2]
    ref = attn.proj(ref.transpose(1, 2).reshape(1, 5, 32))
    torch.testing.assert_close(attn(x), ref)


def test_layer_depth_and_no_weight_decay(tiny_model):
    assert tiny_model.get_layer_depth('cls_token') == (0, 6)
    assert tiny_model.get_layer_depth('patch_embed.proj.weight') == (0, 6)
    assert tiny_model.get_layer_depth('blocks.0.attn.qkv.weight') == (1, 6)
    assert tiny_model.get_layer_depth('blocks.3.ls2.gamma') == (4, 6)
    assert tiny_model.get_layer_depth('backbone.pos_embed', prefix='backbone.') == (0, 6)
    assert tiny_model.get_layer_depth('decode_head.conv_seg.weight', 'backbone.') == (5, 6)
    assert tiny_model.no_weight_decay() == {'cls_token', 'pos_embed'}


def test_matches_timm_intern300m_architecture():
    """timm's independent 300M implementation, at tiny width, same weights."""
    from timm.models.vision_transformer import VisionTransformer
    torch.manual_seed(0)
    ref = VisionTransformer(img_size=56, patch_size=14, embed_dim=64, depth=3, num_heads=4,
                            mlp_ratio=4.0, qkv_bias=True, init_values=1.0, final_norm=False,
                            dynamic_img_size=True, num_classes=0).eval()
    model = InternViT(arch=TINY_300M_STYLE, out_indices=[0, 2]).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.load_state_dict(ref.state_dict())  # the same key names, strictly
    x = torch.randn(2, 3, 56, 56)
    expected = ref.forward_intermediates(x, indices=[0, 2], output_fmt='NCHW',
                                         intermediates_only=True)
    for ours, theirs in zip(model(x), expected):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_import_prints_nothing():
    out = subprocess.run([sys.executable, '-c', 'import mmseg_internvit'],
                         capture_output=True, text=True, check=True)
    assert out.stdout == ''


def test_importing_the_backbone_needs_no_mm_library():
    """A bare GPU machine (torch, timm, mmengine) can import and run the backbone:
    neither importing the package nor the backbone pulls in mmseg, mmdet or mmcv,
    and nothing is registered or changed until register_all_modules()."""
    code = ('import os, sys\n'
            'import mmseg_internvit.models.backbones.intern_vit as m\n'
            'import mmseg_internvit.datasets.ade20k_check\n'
            'print(sorted(k for k in ("mmseg", "mmdet", "mmcv", "deepspeed")\n'
            '             if k in sys.modules))\n'
            'print(os.environ.get("DS_ACCELERATOR"))\n'
            'from mmseg_internvit import register_all_modules\n'
            'register_all_modules()\n'
            'register_all_modules()  # idempotent\n'
            'from mmseg.registry import MODELS\n'
            'print(MODELS.get("InternViT") is m.InternViT)\n')
    env = {k: v for k, v in os.environ.items() if k != 'DS_ACCELERATOR'}
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True, env=env)
    lines = out.stdout.splitlines()
    assert lines[0] == '[]'
    assert lines[1] == 'None'
    assert lines[2] == 'True'
    assert len(lines) == 3  # register_all_modules prints nothing either
    if not torch.cuda.is_available():
        assert 'Setting accelerator' not in out.stderr


def test_forward_is_prepare_tokens_then_run_blocks(tiny_model):
    tiny_model.out_indices = tiny_model._normalize_out_indices([1, -1])
    x = torch.randn(2, 3, 70, 42)
    tokens, grid = tiny_model.prepare_tokens(x)
    assert grid == (5, 3) and tokens.shape == (2, 1 + 15, 64)
    assert tiny_model.num_prefix_tokens == 1
    middle = tiny_model.run_blocks(tokens, grid, 0, 2)
    last = tiny_model.run_blocks(middle, grid, 2)
    torch.testing.assert_close(last, tiny_model.run_blocks(tokens, grid))
    outs = tiny_model(x)
    for out, t in zip(outs, (middle, last)):
        torch.testing.assert_close(out, t[:, 1:].transpose(1, 2).reshape(2, 64, *grid))


def test_set_grad_checkpointing_switches_run_blocks(tiny_model, monkeypatch):
    calls = []
    real = torch.utils.checkpoint.checkpoint
    monkeypatch.setattr(torch.utils.checkpoint, 'checkpoint',
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    tokens, grid = tiny_model.prepare_tokens(torch.randn(1, 3, 28, 28))
    tiny_model.set_grad_checkpointing()
    assert tiny_model.with_cp
    tiny_model.run_blocks(tokens, grid, 1, 3).sum().backward()
    assert len(calls) == 2
    with torch.no_grad():  # nothing to recompute without autograd
        tiny_model.run_blocks(tokens, grid)
    tiny_model.set_grad_checkpointing(False)
    tiny_model.run_blocks(tokens, grid)
    assert len(calls) == 2


def test_autocast_dtype_keeps_float32_weights_and_outputs():
    reference = build_tiny()
    model = InternViT(arch=TINY_6B_STYLE, autocast_dtype='bfloat16', window_size=2,
                      global_attn_indexes=[3], with_cp=True)
    model.load_state_dict(reference.state_dict())
    model.train()
    seen = []
    model.blocks[0].mlp.fc1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    out = model(torch.randn(1, 3, 56, 70))[0]
    assert out.dtype == torch.float32 and seen[0] == torch.bfloat16
    out.square().mean().backward()
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32
               for p in model.parameters())
    with pytest.raises(ValueError, match="autocast_dtype must be None, 'bfloat16' or 'float16', "
                                         "got 'bf16x'"):
        InternViT(arch=TINY_6B_STYLE, autocast_dtype='bf16x')
    with pytest.raises(ValueError, match="autocast_dtype must be None, 'bfloat16' or 'float16', "
                                         "got 'fp32'"):
        InternViT(arch=TINY_6B_STYLE, autocast_dtype='fp32')
    assert InternViT(arch=TINY_6B_STYLE, autocast_dtype='bf16').autocast_dtype == torch.bfloat16


def test_a_callers_autocast_reaches_the_blocks(tiny_model):
    seen = []
    tiny_model.blocks[0].mlp.fc1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        tiny_model(torch.randn(1, 3, 28, 28))
    assert seen == [torch.bfloat16]
