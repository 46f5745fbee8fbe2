"""Window attention: helpers, a per-window reference, global equivalence, training paths and
bad arguments."""
import pytest
import torch

from conftest import TINY_6B_STYLE, build_tiny
from mmseg_internvit.models import InternViT
from mmseg_internvit.models.layers import (Attention, WindowAttention, window_padding_mask,
                                           window_partition, window_unpartition)


def reference_window_attention(attn, x, grid, window_size):
    """Plain loops: each window's patch tokens attend to that window's real tokens and
    the prefix tokens; prefix tokens attend to everything. No padding anywhere."""
    B, N, C = x.shape
    h, w = grid
    prefix = N - h * w
    heads, d = attn.num_heads, C // attn.num_heads
    q, k, v = attn.qkv(x).split(C, dim=-1)
    q, k = attn.q_norm(q), attn.k_norm(k)  # identities without qk-norm

    def attend(qi, ki, vi):
        qi, ki, vi = (t.reshape(B, -1, heads, d).transpose(1, 2) for t in (qi, ki, vi))
        probs = (qi @ ki.transpose(-1, -2) / d**0.5).softmax(-1)
        return (probs @ vi).transpose(1, 2).reshape(B, -1, C)

    out = torch.zeros_like(q)
    out[:, :prefix] = attend(q[:, :prefix], k, v)
    index = torch.arange(h * w).view(h, w) + prefix
    wh, ww = min(window_size, h), min(window_size, w)
    for r in range(0, h, wh):
        for c in range(0, w, ww):
            tokens = index[r:r + wh, c:c + ww].flatten()
            keys = torch.cat([torch.arange(prefix), tokens])
            out[:, tokens] = attend(q[:, tokens], k[:, keys], v[:, keys])
    return attn.proj(out)


@pytest.mark.parametrize('grid,window', [((5, 7), (2, 3)), ((7, 9), (3, 4)), ((4, 4), (4, 4)),
                                         ((1, 6), (1, 4))])
def test_partition_round_trip_and_padding_mask(grid, window):
    x = torch.randn(2, grid[0] * grid[1], 3)
    windows, padded = window_partition(x, grid, window)
    assert padded == (-(-grid[0] // window[0]) * window[0], -(-grid[1] // window[1]) * window[1])
    assert windows.shape == (2 * padded[0] * padded[1] // (window[0] * window[1]),
                             window[0] * window[1], 3)
    torch.testing.assert_close(window_unpartition(windows, grid, window, padded), x,
                               rtol=0, atol=0)
    mask = window_padding_mask(grid, window, x.device)
    assert mask.shape == (windows.shape[0] // 2, window[0] * window[1])
    assert int(mask.sum()) == grid[0] * grid[1]
    # Padding tokens are zeros, real ones are not.
    assert torch.all(windows[:len(mask)][~mask] == 0)


@pytest.mark.parametrize('attn_impl', ['sdpa', 'naive'])
@pytest.mark.parametrize('prefix', [0, 1])
@pytest.mark.parametrize('grid,window_size', [((5, 7), 2), ((5, 7), 3), ((9, 9), 4),
                                              ((4, 11), 3), ((3, 13), 5), ((6, 4), 6)])
def test_matches_per_window_reference(grid, window_size, prefix, attn_impl):
    torch.manual_seed(0)
    attn = WindowAttention(32, 4, window_size, qk_normalization=True, attn_impl=attn_impl)
    x = torch.randn(2, prefix + grid[0] * grid[1], 32)
    expected = reference_window_attention(attn, x, grid, window_size)
    torch.testing.assert_close(attn(x, grid), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('prefix', [0, 1])
@pytest.mark.parametrize('grid,window_size', [((5, 7), 7), ((5, 7), 14), ((3, 3), 3)])
def test_window_covering_the_grid_is_global_attention(grid, window_size, prefix):
    torch.manual_seed(0)
    windowed = WindowAttention(32, 4, window_size, qkv_bias=True)
    plain = Attention(32, 4, qkv_bias=True)
    plain.load_state_dict(windowed.state_dict())
    x = torch.randn(2, prefix + grid[0] * grid[1], 32)
    assert torch.equal(windowed(x, grid), plain(x))


def test_model_with_one_window_equals_the_global_model():
    torch.manual_seed(0)
    plain = build_tiny(out_indices=[1, 3])
    # 56 x 70 px is a 4 x 5 grid: one 14-token window covers it.
    windowed = InternViT(arch=dict(TINY_6B_STYLE), out_indices=[1, 3], window_size=14,
                         global_attn_indexes=[1])
    windowed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 56, 70)
    for ours, theirs in zip(windowed(x), plain(x)):
        assert torch.equal(ours, theirs)
    # Smaller windows do change the result.
    windowed_small = InternViT(arch=dict(TINY_6B_STYLE), out_indices=[1, 3], window_size=2)
    windowed_small.load_state_dict(plain.state_dict())
    assert not torch.allclose(windowed_small(x)[1], plain(x)[1])


def test_blocks_are_windowed_except_the_global_ones():
    model = InternViT(arch=dict(TINY_6B_STYLE), window_size=3, global_attn_indexes=[1, -1])
    kinds = [type(block.attn) for block in model.blocks]
    assert kinds == [WindowAttention, Attention, WindowAttention, Attention]
    assert model.blocks[0].attn.window_size == 3
    # Same parameters as the global model: checkpoints and layer decay are unaffected.
    assert model.state_dict().keys() == InternViT(arch=dict(TINY_6B_STYLE)).state_dict().keys()
    assert model.get_layer_depth('blocks.2.attn.qkv.weight') == (3, 6)


def test_windowed_model_matches_blockwise_reference():
    model = build_tiny(out_indices=[-1], window_size=3, global_attn_indexes=[2])
    x = torch.randn(1, 3, 98, 84)  # 7 x 6 grid: padded to 9 x 6 for 3 x 3 windows
    tokens, grid = model.prepare_tokens(x)
    for i, block in enumerate(model.blocks):
        attn = block.attn
        if i == 2:
            mixed = attn(block.norm1(tokens))
        else:
            mixed = reference_window_attention(attn, block.norm1(tokens), grid, 3)
        tokens = tokens + block.ls1(mixed)
        tokens = tokens + block.ls2(block.mlp(block.norm2(tokens)))
    expected = tokens[:, 1:].transpose(1, 2).reshape(1, 64, *grid)
    torch.testing.assert_close(model(x)[0], expected, atol=1e-5, rtol=1e-5)


def test_gradients_reach_every_parameter():
    model = build_tiny(window_size=2, global_attn_indexes=[3])
    model.train()
    out = model(torch.randn(2, 3, 70, 84))[0]
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_checkpointing_gives_equal_outputs_and_gradients():
    x = torch.randn(2, 3, 70, 56)
    outs, grads = [], []
    for with_cp in (False, True):
        model = build_tiny(window_size=2, global_attn_indexes=[1], with_cp=with_cp)
        model.train()
        out = model(x)[0]
        out.square().mean().backward()
        outs.append(out.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], msg=name)


def test_frozen_and_bfloat16_windowed():
    reference = build_tiny(window_size=3)
    x = torch.randn(1, 3, 84, 98)
    frozen = InternViT(arch=dict(TINY_6B_STYLE), window_size=3, frozen=True)
    frozen.load_state_dict(reference.state_dict())
    frozen.train()
    out = frozen(x.requires_grad_())[0]
    assert not out.requires_grad
    torch.testing.assert_close(out, reference(x)[0])
    bf16 = InternViT(arch=dict(TINY_6B_STYLE), window_size=3, dtype='bfloat16')
    bf16.load_state_dict(reference.state_dict())
    out = bf16(x)[0]
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, reference(x)[0], atol=0.1, rtol=0.05)


@pytest.mark.parametrize('kwargs,message', [
    (dict(window_size=0), 'window_size must be a positive int.*got 0'),
    (dict(window_size=-3), 'got -3'),
    (dict(window_size=2.5), 'got 2.5'),
    (dict(window_size=True), 'got True'),
    (dict(window_size='14'), "got '14'"),
    (dict(window_size=2, global_attn_indexes=[4]), 'global_attn_indexes entry 4 is out of range '
                                                   'for 4 blocks'),
    (dict(window_size=2, global_attn_indexes=[1, -5]), 'entry -5 is out of range'),
    (dict(window_size=2, global_attn_indexes=[1.0]), 'entry 1.0 is out of range'),
    (dict(global_attn_indexes=[1]), r'global_attn_indexes=\[1\] needs window_size'),
])
def test_bad_window_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InternViT(arch=dict(TINY_6B_STYLE), **kwargs)


def test_window_attention_needs_the_grid():
    attn = WindowAttention(32, 4, 2)
    with pytest.raises(ValueError, match='needs the patch grid'):
        attn(torch.randn(1, 10, 32))
