"""ZeRO-1/2 keep every parameter 16-byte aligned when the optimizer comes through
DeepSpeedNoGradStepOptimWrapper (misaligned views broke cuDNN on an H200)."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn as nn

from mmseg_internvit.engine.zero_alignment import split_groups_for_zero_alignment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _model():
    # 150-way classifiers as in ADE20K heads: weights of 450/22500/750 and biases of
    # 150/5 elements, none a multiple of 8; the 16x8 one is.
    return nn.Sequential(nn.Conv2d(3, 150, 1), nn.Conv2d(150, 150, 1), nn.Linear(8, 16),
                         nn.Conv2d(150, 5, 1))


def test_split_keeps_settings_and_puts_one_unaligned_parameter_last():
    model = _model()
    frozen = model[2].bias
    frozen.requires_grad_(False)
    decay = [model[0].weight, model[1].weight, model[2].weight, model[3].weight]
    no_decay = [model[0].bias, frozen, model[1].bias, model[3].bias]
    optimizer = torch.optim.AdamW([dict(params=decay, lr_scale=0.5),
                                   dict(params=no_decay, weight_decay=0.0)], lr=1e-3)
    moved = split_groups_for_zero_alignment(optimizer)
    groups = optimizer.param_groups
    assert [[tuple(p.shape) for p in g['params']] for g in groups] == [
        [(16, 8), (150, 3, 1, 1)], [(150, 150, 1, 1)], [(5, 150, 1, 1)],
        [(16,), (150,)], [(150,)], [(5,)]]
    assert [g.get('lr_scale') for g in groups] == [0.5] * 3 + [None] * 3
    assert [g['weight_decay'] for g in groups] == [0.01] * 3 + [0.0] * 3
    assert moved == ['(150, 150, 1, 1) (22500 elements)', '(5, 150, 1, 1) (750 elements)',
                     '(150,) (150 elements)', '(5,) (5 elements)']
    # Every parameter once; a second call changes nothing.
    assert sorted(id(p) for g in groups for p in g['params']) == sorted(
        id(p) for p in model.parameters())
    assert split_groups_for_zero_alignment(optimizer) == [] and optimizer.param_groups == groups
    # After a step the optimizer has state that belongs to the groups as they are.
    for p in model.parameters():
        p.grad = torch.ones_like(p) if p.requires_grad else None
    optimizer.step()
    with pytest.raises(RuntimeError, match='before the optimizer has state'):
        split_groups_for_zero_alignment(optimizer)


def _run_as_one_process(script: str, *args: str):
    """Run ``script`` as rank 0 of a one-process group (gloo); its last line, as JSON."""
    pytest.importorskip('deepspeed')
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS='1', RANK='0', LOCAL_RANK='0', WORLD_SIZE='1',
               MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    out = subprocess.run([sys.executable, '-c', script, *args], capture_output=True, text=True,
                         cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


ALIGNMENT_SCRIPT = textwrap.dedent('''
    import json, os, sys
    import torch, torch.distributed as dist, torch.nn as nn
    from mmseg_internvit import register_all_modules
    register_all_modules()
    import deepspeed
    from mmseg_internvit.engine import DeepSpeedNoGradStepOptimWrapper
    sys.path.insert(0, 'tests')
    from test_zero_alignment import _model
    dist.init_process_group('gloo')  # one process: RANK, WORLD_SIZE... in the environment
    torch.manual_seed(0)
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    if sys.argv[1] == 'wrapper':
        DeepSpeedNoGradStepOptimWrapper(optimizer)
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=dict(
        train_micro_batch_size_per_gpu=1, bf16=dict(enabled=True),
        zero_optimization=dict(stage=2)))
    offsets = lambda: [p.data_ptr() % 16 for p in model.parameters()]
    before = offsets()
    first = [p.detach().float().clone() for p in model.parameters()]
    x = torch.randn(1, 3, 4, 8, dtype=torch.bfloat16)
    loss = engine(x).float().square().mean()
    engine.backward(loss)
    with torch.no_grad():
        engine.step()
    changed = all(not torch.equal(a, p.detach().float()) for a, p in zip(first, model.parameters()))
    print(json.dumps(dict(before=before, after=offsets(), changed=changed,
                          dtypes=sorted({str(p.dtype) for p in model.parameters()}))))
    dist.destroy_process_group()
''')


@pytest.mark.parametrize('optimizer', ['wrapper', 'plain'])
def test_zero2_parameters_are_16_byte_aligned_through_the_wrapper(optimizer):
    result = _run_as_one_process(ALIGNMENT_SCRIPT, optimizer)
    assert result['dtypes'] == ['torch.bfloat16']  # ZeRO's bf16 views, not the fp32 originals
    assert result['changed'], 'the step did not update every parameter'
    if optimizer == 'wrapper':
        assert result['before'] == result['after'] == [0] * 8
    else:  # what the wrapper prevents: DeepSpeed 0.18 packs the views back to back
        assert any(result['before'])


STRATEGY_SCRIPT = textwrap.dedent('''
    import json
    import torch.distributed as dist
    from mmengine.config import Config
    from mmengine.registry import STRATEGIES, init_default_scope
    from mmseg_internvit import register_all_modules
    register_all_modules()
    init_default_scope('mmseg')
    from mmseg.registry import MODELS
    dist.init_process_group('gloo')
    cfg = Config.fromfile('configs/smoke/linear_internvit-tiny-zero2_2xb2-300_ade20k-sample-112x112.py')
    strategy = STRATEGIES.build(cfg.strategy)
    strategy._setup_distributed = lambda *args, **kwargs: None  # the group above
    strategy.prepare(MODELS.build(cfg.model), optim_wrapper=cfg.optim_wrapper,
                     dispatch_kwargs=dict(max_iters=10))
    print(json.dumps({name: [p.numel(), p.data_ptr() % 16]
                      for name, p in strategy.model.module.named_parameters()}))
    dist.destroy_process_group()
''')


def test_smoke_zero2_config_through_mmengines_strategy_is_aligned():
    """The path tools/train.py takes (the config's wrapper, built by the strategy before
    deepspeed.initialize): what failed on the H200 was this config's first step."""
    params = _run_as_one_process(STRATEGY_SCRIPT)
    # The classifier's 150-element bias is there (the model can misalign)...
    assert params['decode_head.conv_seg.bias'][0] == 150
    # ...and no parameter of the engine's model starts off 16 bytes.
    assert {name: offset for name, (_, offset) in params.items() if offset} == {}
