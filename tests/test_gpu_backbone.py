"""GPU lane: the backbone in bf16 and compiled on CUDA, its RMSNorm in bf16, and
mmcv's CUDA deformable attention against its PyTorch path on the adapter's patch-14
shapes."""
import pytest
import torch

from conftest import TINY_6B_STYLE, build_tiny

pytestmark = pytest.mark.gpu

# Wide enough for tensor-core GEMMs, small enough to compile in seconds.
GPU_ARCH = dict(TINY_6B_STYLE, embed_dims=256, num_heads=4, feedforward_channels=1024)


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return ((got.float() - expected.float()).norm() / expected.float().norm()).item()


@pytest.mark.parametrize('mode', ['dtype', 'autocast'])
def test_bf16_backbone_follows_fp32_on_cuda(mode):
    reference = build_tiny(GPU_ARCH, out_indices=[1, 3]).cuda().eval()
    low = build_tiny(GPU_ARCH, out_indices=[1, 3],
                     **({'dtype': 'bfloat16'} if mode == 'dtype'
                        else {'autocast_dtype': 'bfloat16'})).cuda().eval()
    low.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 504, 378, device='cuda')
    with torch.no_grad():
        expected, got = reference(x), low(x)
    for e, g in zip(expected, got):
        assert g.dtype == torch.float32 and g.shape == e.shape == (2, 256, 36, 27)
        # bf16 keeps 8 mantissa bits: ~0.4% per rounding, a few % after 4 blocks.
        assert relative_error(g, e) < 3e-2
    if mode == 'dtype':
        assert next(low.parameters()).dtype == torch.bfloat16


def test_rmsnorm_in_bf16_follows_a_float32_copy_on_cuda(record_property):
    """CUDA's fused rms_norm on bf16 input against normalising a float32 copy (the
    form it replaced): both compute in float32, so the outputs may differ only by the
    rounding of rare ties, at the 6B's width and a batch-8 token count; gradients too."""
    import torch.nn.functional as F
    from mmseg_internvit.models.layers import RMSNorm
    torch.manual_seed(0)
    norm = RMSNorm(3200).cuda().to(torch.bfloat16)
    with torch.no_grad():
        norm.weight.normal_()
    base = torch.randn(8, 1297, 3 * 3200, device='cuda', dtype=torch.bfloat16) * 3
    for what, tokens in (('whole rows', base[..., 2 * 3200:].contiguous()),
                         ('q slice of qkv', base[..., :3200])):
        x = tokens.detach().requires_grad_()
        x_ref = tokens.detach().requires_grad_()
        out = norm(x)
        ref = norm.weight * F.rms_norm(x_ref.float(), (3200,), eps=norm.eps).to(x_ref.dtype)
        differ = (out != ref).float().mean().item()
        record_property(f'differing fraction, {what}', f'{differ:.2e}')
        assert differ < 1e-3, what
        # bf16 spacing is 2**-7 relative: differences stay within one step.
        torch.testing.assert_close(out, ref, atol=0, rtol=2**-7)
        grad = torch.randn_like(out)
        out.backward(grad)
        ref.backward(grad)
        assert relative_error(x.grad, x_ref.grad) < 1e-2, what


def _train_step(model, x):
    outs = model(x)
    sum((o.float() ** 2).mean() for o in outs).backward()
    grads = {n: p.grad.float().clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return [o.detach() for o in outs], grads


@pytest.mark.parametrize('dtype', ['bfloat16'])  # the benchmarks' dtype; fp32 is tested on CPU
def test_compiled_backbone_on_cuda(dtype):
    torch._dynamo.reset()
    eager = build_tiny(GPU_ARCH, out_indices=[1, 3], dtype=dtype).cuda()
    compiled = build_tiny(GPU_ARCH, out_indices=[1, 3], dtype=dtype).cuda()
    compiled.load_state_dict(eager.state_dict())
    compiled.compile_blocks()
    tolerance = 1e-4 if dtype == 'float32' else 3e-2
    with torch.no_grad():
        for size in ((504, 504), (448, 336)):  # a second token count reuses the graph
            x = torch.randn(2, 3, *size, device='cuda')
            for e, g in zip(eager.eval()(x), compiled.eval()(x)):
                assert relative_error(g, e) < tolerance
    # Full tuning with activation checkpointing through the compiled blocks.
    for model in (eager, compiled):
        model.train()
        model.set_grad_checkpointing(True)
    x = torch.randn(2, 3, 252, 252, device='cuda')
    (outs_e, grads_e), (outs_c, grads_c) = _train_step(eager, x), _train_step(compiled, x)
    for e, g in zip(outs_e, outs_c):
        assert relative_error(g, e) < tolerance
    for name, grad in grads_e.items():
        assert relative_error(grads_c[name], grad) < 5 * tolerance, name
    torch._dynamo.reset()


def test_mmcv_cuda_deformable_attention_equals_its_pytorch_path():
    """The injector's and extractor's shapes for a 504 x 378 image: ViT tokens on the
    stride-14 grid (36 x 27), SPM levels at strides 8/16/32 (63 x 48, 32 x 24, 16 x 12)."""
    pytest.importorskip('mmcv.ops')
    from mmseg_internvit.models.layers.deform_attn import (DeformableCrossAttention,
                                                           grid_centers, level_layout,
                                                           reference_points)
    from mmcv.ops.multi_scale_deform_attn import ext_module
    assert hasattr(ext_module, 'ms_deform_attn_forward')
    torch.manual_seed(0)
    C, heads, B = 64, 4, 2
    vit_grid, spm = (36, 27), [((63, 48), 8), ((32, 24), 16), ((16, 12), 32)]
    cases = {
        # Injector: ViT tokens attend to the three SPM levels.
        'injector': (vit_grid, 14, [s for s, _ in spm], [st for _, st in spm]),
        # Extractor: every SPM level attends to the ViT tokens.
        'extractor': (None, None, [vit_grid], [14]),
    }
    for name, (query_grid, query_stride, value_shapes, value_strides) in cases.items():
        attn = DeformableCrossAttention(C, heads, num_levels=len(value_shapes), num_points=4,
                                        value_ratio=0.25)
        attn.init_weights()
        with torch.no_grad():  # non-trivial offsets and weights
            attn.attn.sampling_offsets.weight.normal_(0, 0.02)
            attn.attn.attention_weights.weight.normal_(0, 0.02)
        if query_grid is None:
            centers = torch.cat([grid_centers(s, st, torch.device('cpu')) for s, st in spm])
        else:
            centers = grid_centers(query_grid, query_stride, torch.device('cpu'))
        ref = reference_points(centers, value_shapes, value_strides)[None]
        query = torch.randn(B, centers.shape[0], C)
        value = torch.randn(B, sum(h * w for h, w in value_shapes), C)
        results = {}
        for device in ('cpu', 'cuda'):  # cpu: multi_scale_deformable_attn_pytorch
            module = attn.to(device)
            # detach(): fresh leaves on each device. On the CPU, .to() returns the
            # tensor itself, and marking it would make the CUDA copy a non-leaf
            # whose .grad stays None.
            q = query.to(device).detach().requires_grad_()
            v = value.to(device).detach().requires_grad_()
            spatial, start = level_layout(value_shapes, torch.device(device))
            out = module(q, v, ref.to(device), spatial, start)
            out.square().mean().backward()
            results[device] = (out.detach().cpu(), q.grad.cpu(), v.grad.cpu())
            module.zero_grad(set_to_none=True)
        for what, cpu, cuda in zip(('output', 'query grad', 'value grad'), results['cpu'],
                                   results['cuda']):
            torch.testing.assert_close(cuda, cpu, atol=1e-4, rtol=1e-3,
                                       msg=f'{name} {what}: CUDA kernel vs PyTorch path')
