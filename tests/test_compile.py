"""InternViT(compile=True): regional compilation gives eager's outputs and gradients.

Inductor on CPU compiles C++ with gcc (tens of seconds per graph here), so the
default run compiles one tiny graph with inductor; graph counting and
checkpointed training use torch's ``eager`` / ``aot_eager`` backends, which
trace exactly as inductor does (same dynamo graphs and guards) but skip code
generation. The inductor training and windowed checks are marked slow.
"""
import os

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from conftest import TINY_6B_STYLE, build_tiny

SIZES = [(56, 56), (70, 84), (98, 42)]


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Each test starts and ends with empty compile caches and counters."""
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()
    counters.clear()


def unique_graphs() -> int:
    return counters['stats']['unique_graphs']


def eager_and_compiled(backend=None, **kwargs):
    """The same weights twice: eager, and with every block compiled."""
    eager = build_tiny(**kwargs)
    compiled = build_tiny(**kwargs)
    compiled.load_state_dict(eager.state_dict())
    if backend is None:
        compiled.compile_blocks()
    else:
        compiled.compile_blocks(backend=backend)
    return eager, compiled


def test_compiled_blocks_match_eager_with_inductor():
    arch = dict(TINY_6B_STYLE, num_layers=2)
    eager, compiled = eager_and_compiled(arch=arch, out_indices=[0, 1])
    x = torch.randn(2, 3, 56, 70)
    with torch.no_grad():
        expected, got = eager.eval()(x), compiled.eval()(x)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)
    # Both blocks ran the one compiled graph.
    assert unique_graphs() == 1


def test_one_graph_serves_every_block_and_image_size():
    eager, compiled = eager_and_compiled('eager', out_indices=[1, 3])
    eager.eval(), compiled.eval()
    with torch.no_grad():
        for size in SIZES:
            x = torch.randn(2, 3, *size)
            for e, g in zip(eager(x), compiled(x)):
                torch.testing.assert_close(g, e, atol=0, rtol=0)
    # 4 blocks x 3 token counts (17, 31, 22 tokens): one graph.
    assert unique_graphs() == 1
    assert 'recompiles' not in counters or not counters['recompiles']


@pytest.mark.parametrize('with_cp', [False, True])
def test_blocks_with_different_drop_path_rates_share_one_graph(with_cp):
    """Stochastic depth differs per block (0 .. 0.4): still one training graph.

    A rate inside the block would be a constant to specialize on: one graph per
    block, and past torch's recompile limit (8) the remaining blocks of a
    48-block 6B would silently run uncompiled.
    """
    _, compiled = eager_and_compiled('aot_eager', arch=dict(TINY_6B_STYLE, num_layers=12),
                                     drop_path_rate=0.4, with_cp=with_cp)
    compiled.train()
    for size in SIZES[:2]:
        compiled(torch.randn(2, 3, *size))[0].sum().backward()
    assert unique_graphs() == 1
    assert 'recompiles' not in counters or not counters['recompiles']


def test_compile_changes_no_parameter_name():
    eager = build_tiny()
    compiled = build_tiny(compile=True)
    assert compiled.blocks_compiled and not eager.blocks_compiled
    assert list(compiled.state_dict()) == list(eager.state_dict())
    compiled.load_state_dict(eager.state_dict())  # strict: same keys both ways


def test_compile_must_be_a_bool():
    from mmseg_internvit.models import InternViT
    with pytest.raises(TypeError, match=r"compile must be True or False, got 'yes' \(str\)"):
        InternViT(arch=TINY_6B_STYLE, compile='yes')


def test_config_builds_a_compiled_backbone():
    from mmseg_internvit.registry import MODELS
    model = MODELS.build(dict(type='InternViT', arch=TINY_6B_STYLE, compile=True))
    assert model.blocks_compiled


def _train_step(model, x):
    outs = model(x)
    sum((o * o).mean() for o in outs).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return [o.detach() for o in outs], grads


def _assert_same_step(eager_step, compiled_step, atol):
    """Outputs and gradients of two ``_train_step`` results agree."""
    (outs_e, grads_e), (outs_c, grads_c) = eager_step, compiled_step
    for e, g in zip(outs_e, outs_c):
        torch.testing.assert_close(g, e, atol=atol, rtol=atol)
    assert grads_c.keys() == grads_e.keys()
    for name, grad in grads_e.items():
        torch.testing.assert_close(grads_c[name], grad, atol=atol, rtol=atol, msg=name)


def _assert_same_training(eager, compiled, sizes, atol):
    for model in (eager, compiled):
        model.train()
        model.set_grad_checkpointing(True)
    for size in sizes:
        x = torch.randn(2, 3, *size)
        _assert_same_step(_train_step(eager, x), _train_step(compiled, x), atol)


def test_checkpointed_training_through_compiled_blocks():
    """run_blocks checkpoints the compiled block; autograd graphs are traced too."""
    eager, compiled = eager_and_compiled('aot_eager', out_indices=[1, 3])
    _assert_same_training(eager, compiled, SIZES[:2], atol=1e-5)
    assert unique_graphs() == 1  # one training graph for both sizes


def recording_aot_eager():
    """A backend that compiles as ``aot_eager`` and keeps each dynamo graph it is given."""
    from torch._dynamo.backends.registry import lookup_backend
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return lookup_backend('aot_eager')(gm, example_inputs)

    return backend, graphs


def holds_traced_checkpoint(graphs) -> bool:
    targets = [node.target for gm in graphs for node in gm.graph.nodes]
    return torch.ops.higher_order.tag_activation_checkpoint in targets


def test_checkpoint_is_traced_inside_the_compiled_graph():
    """With checkpointing the compiled graph holds the checkpoint (the compiler recomputes)."""
    backend, graphs = recording_aot_eager()
    eager, compiled = eager_and_compiled(backend, out_indices=[1, 3])
    _assert_same_training(eager, compiled, SIZES[:1], atol=1e-5)
    assert holds_traced_checkpoint(graphs)


def test_drop_path_masks_survive_the_compiled_recompute():
    """The backward's recomputation uses the forward's drop-path masks (drawn once, outside
    the compiled checkpoint, and passed in)."""
    eager, compiled = eager_and_compiled('aot_eager', out_indices=[1, 3], drop_path_rate=0.5)
    eager.train(), compiled.train()
    compiled.set_grad_checkpointing(True)  # eager: no checkpoint, masks drawn once
    x = torch.randn(4, 3, 56, 56)
    torch.manual_seed(3)
    eager_step = _train_step(eager, x)
    torch.manual_seed(3)
    _assert_same_step(eager_step, _train_step(compiled, x), atol=1e-6)


@pytest.mark.slow
def test_drop_path_gradients_match_finite_differences_with_inductor():
    """Inductor draws its own masks: its gradient must be the derivative of its forward.

    float64 and a large layer scale make a wrong mask in the recomputation
    show (a redrawn mask moves the directional derivative by 0.3-20% here,
    while a consistent one agrees with the central difference to ~1e-7).
    Naive attention: torch 2.11's inductor recomputes the CPU flash kernel in
    float64 with a float32 logsumexp buffer and fails (fp32/bf16 are fine).
    """
    model = build_tiny(arch=dict(TINY_6B_STYLE, layer_scale_init=1.0), out_indices=[3],
                       drop_path_rate=0.5, with_cp=True, attn_impl='naive').double().train()
    model.compile_blocks()
    x = torch.randn(4, 3, 56, 56, dtype=torch.float64, requires_grad=True)
    params = dict(model.named_parameters())
    generator = torch.Generator().manual_seed(7)
    direction = {n: torch.randn(p.shape, generator=generator, dtype=p.dtype)
                 for n, p in params.items()}

    def loss() -> torch.Tensor:
        torch.manual_seed(1)  # the same masks in every evaluation
        return model(x)[0].square().mean()

    loss().backward()
    analytic = sum((p.grad * direction[n]).sum() for n, p in params.items()).item()
    eps = 1e-5
    with torch.no_grad():
        for n, p in params.items():
            p.add_(eps * direction[n])
    plus = loss().item()
    with torch.no_grad():
        for n, p in params.items():
            p.sub_(2 * eps * direction[n])
    minus = loss().item()
    assert analytic == pytest.approx((plus - minus) / (2 * eps), rel=1e-5)


def test_adapter_trains_its_vit_through_compiled_checkpointed_blocks():
    """The adapter runs the ViT's blocks in slices between interactions (run_blocks)."""
    from test_vit_adapter import build_adapter
    eager, compiled = (build_adapter(frozen=False, vit=dict(with_cp=True)) for _ in range(2))
    compiled.load_state_dict(eager.state_dict())
    backend, graphs = recording_aot_eager()
    compiled.vit.compile_blocks(backend=backend)
    x = torch.randn(2, 3, 70, 84)
    eager_step = _train_step(eager.train(), x)
    assert any(name.startswith('vit.blocks.') for name in eager_step[1])  # the ViT is trained
    _assert_same_step(eager_step, _train_step(compiled.train(), x), atol=1e-5)
    assert len(graphs) == 1 and holds_traced_checkpoint(graphs)


@pytest.mark.slow
def test_checkpointed_training_with_inductor():
    eager, compiled = eager_and_compiled(arch=dict(TINY_6B_STYLE, num_layers=2))
    _assert_same_training(eager, compiled, SIZES[:2], atol=1e-4)


@pytest.mark.slow
def test_windowed_and_global_blocks_with_inductor():
    eager, compiled = eager_and_compiled(out_indices=[1, 3], window_size=2,
                                         global_attn_indexes=[1, 3])
    eager.eval(), compiled.eval()
    with torch.no_grad():
        for size in SIZES[:2]:
            x = torch.randn(1, 3, *size)
            for e, g in zip(eager(x), compiled(x)):
                torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)


def _config(name):
    from mmengine.config import Config
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return Config.fromfile(os.path.join(root, 'configs', name))


def test_compile_refused_with_zero3_and_with_fsdp_flat_parameters():
    from mmseg_internvit.apis.strategy_checks import check_compile_fits_strategy
    zero3 = _config('internvit_300m/upernet_internvit-300m-zero3_8xb2-80k_ade20k-504x504.py')
    check_compile_fits_strategy(zero3)  # not compiled: nothing to refuse
    zero3.model.backbone.compile = True
    with pytest.raises(ValueError, match='compile=True cannot be combined with DeepSpeed ZeRO-3'):
        check_compile_fits_strategy(zero3)
    fsdp = _config('internvit_300m/upernet_internvit-300m-fsdp_8xb2-80k_ade20k-504x504.py')
    fsdp.model.backbone.compile = True
    check_compile_fits_strategy(fsdp)  # use_orig_params=True, as the FSDP configs set it
    fsdp.strategy.model_wrapper.use_orig_params = False
    with pytest.raises(ValueError, match='compile=True under FSDP needs '
                                         'strategy.model_wrapper.use_orig_params=True'):
        check_compile_fits_strategy(fsdp)


def test_compile_allowed_with_zero2_and_ddp():
    from mmseg_internvit.apis.strategy_checks import (check_compile_fits_strategy,
                                                      strategy_type, zero_stage)
    for name, strategy in (
            ('internvit_300m/upernet_internvit-300m-zero2_8xb2-80k_ade20k-504x504.py',
             ('DeepSpeedStrategy', 2)),
            ('internvit_300m/upernet_internvit-300m_8xb2-80k_ade20k-504x504.py', ('', 0))):
        cfg = _config(name)
        cfg.model.backbone.compile = True
        # The strategies meant: DeepSpeed ZeRO-2, and none (plain DDP).
        assert (strategy_type(cfg), zero_stage(cfg)) == strategy
        check_compile_fits_strategy(cfg)  # a refusal would raise ValueError


def test_inference_compile_reaches_the_vit_of_plain_and_adapter_backbones():
    from mmseg_internvit.inference.segmenter import prepare_config
    plain = prepare_config(_config('smoke/linear_internvit-tiny_1xb4-300_ade20k-sample-112x112.py'),
                           compile=True)
    assert plain.model.backbone.compile is True
    adapter = prepare_config(
        _config('smoke/upernet_internvit-tiny-adapter_1xb4-300_ade20k-sample-112x112.py'),
        compile=True)
    assert adapter.model.backbone.vit.compile is True
    other = _config('smoke/linear_internvit-tiny_1xb4-300_ade20k-sample-112x112.py')
    other.model.backbone = dict(type='mmseg.ResNetV1c', depth=18)
    with pytest.raises(ValueError, match="--compile compiles the blocks of an InternViT backbone, "
                                         "but model.backbone is 'mmseg.ResNetV1c'"):
        prepare_config(other, compile=True)


@pytest.mark.slow
@pytest.mark.parametrize('strategy', ['zero2', 'single'])
def test_distributed_training_with_compiled_checkpointed_blocks(tmp_path, sample_ade20k, strategy):
    """DeepSpeed ZeRO-2, and plain DDP ('single' under torchrun), on 2 CPU processes
    with compile=True and with_cp=True."""
    from test_distributed import CONFIGS, SMOKE, options, torchrun, train_losses
    config = os.path.join(SMOKE, CONFIGS[strategy])
    torchrun('train.py', config, '--work-dir', tmp_path, *options(
        sample_ade20k, 4, ['model.backbone.compile=True', 'model.backbone.with_cp=True']))
    losses = train_losses(tmp_path)
    assert len(losses) == 4 and all(v == v for v in losses), losses
    checkpoint = tmp_path / 'iter_4.pth'
    # DeepSpeed saves a folder, mmengine's runner one file.
    assert checkpoint.is_dir() if strategy == 'zero2' else checkpoint.is_file()


@pytest.mark.slow
@pytest.mark.parametrize('with_cp', ['strategy', 'backbone'])
def test_fsdp_trains_compiled_blocks_like_eager(tmp_path, sample_ade20k, with_cp):
    """FSDP (one unit per block, use_orig_params) on 2 CPU processes: compiled blocks
    train as the eager ones do, with FSDP's activation checkpointing (as the 6B FSDP
    configs) or the backbone's (then checkpointed around each FSDP unit)."""
    from test_distributed import CONFIGS, SMOKE, options, torchrun, train_losses
    config = os.path.join(SMOKE, CONFIGS['fsdp'])
    checkpointing = (
        ['strategy.activation_checkpointing.check_fn=mmseg_internvit.is_internvit_block']
        if with_cp == 'strategy' else ['model.backbone.with_cp=True'])
    losses = {}
    for compiled in (False, True):
        work = tmp_path / f'compile_{compiled}'
        torchrun('train.py', config, '--work-dir', work, *options(
            sample_ade20k, 4, [f'model.backbone.compile={compiled}', 'randomness.seed=0',
                               *checkpointing]))
        losses[compiled] = train_losses(work)
        assert (work / 'iter_4.pth').is_file()
    assert len(losses[True]) == 4
    # Same data, weights and drop-path draws; compiled kernels round differently.
    np.testing.assert_allclose(losses[True], losses[False], rtol=2e-3)
