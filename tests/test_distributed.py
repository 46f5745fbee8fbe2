"""Two-process CPU runs (torchrun + gloo) of DeepSpeed ZeRO-2/3 and FSDP."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, 'configs', 'smoke')
CONFIGS = {
    'zero2': 'linear_internvit-tiny-zero2_2xb2-300_ade20k-sample-112x112.py',
    'zero3': 'linear_internvit-tiny-zero3_2xb2-300_ade20k-sample-112x112.py',
    'fsdp': 'linear_internvit-tiny-fsdp_2xb2-300_ade20k-sample-112x112.py',
    'single': 'linear_internvit-tiny-full_1xb4-300_ade20k-sample-112x112.py',
}

pytest.importorskip('deepspeed')


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _run(cmd):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    # A throwaway working directory: mmengine's distributed result collection
    # leaves an empty ./.dist_test behind, which must not land in the checkout.
    with tempfile.TemporaryDirectory() as cwd:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    return out.stdout + out.stderr


def torchrun(tool, *args, nproc=2):
    return _run([sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}',
                 f'--master_port={_free_port()}', os.path.join(ROOT, 'tools', tool),
                 *map(str, args), '--launcher', 'pytorch'])


def tool(name, *args):
    return _run([sys.executable, os.path.join(ROOT, 'tools', name), *map(str, args)])


def options(data_root, iters, extra=()):
    return ['--cfg-options', *(f'{k}_dataloader.dataset.data_root={data_root}'
                               for k in ('train', 'val', 'test')),
            f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
            'param_scheduler.0.start_factor=1.0', 'optim_wrapper.optimizer.lr=0.001', *extra]


def train_losses(work_dir):
    losses = {}
    for root, _, files in os.walk(work_dir):
        for name in files:
            if name.endswith('.json') and 'vis_data' in root and name != 'scalars.json':
                with open(os.path.join(root, name)) as f:
                    for line in f:
                        record = json.loads(line)
                        if 'loss' in record:
                            losses[record['iter']] = record['loss']
    return [losses[i] for i in sorted(losses)]


def predictions(out_dir):
    files = sorted(f for f in os.listdir(out_dir) if f.endswith('.png'))
    from PIL import Image
    return {f: np.array(Image.open(os.path.join(out_dir, f))) for f in files}


def assert_same_predictions(got, expected):
    """The same images predicted, with identical label maps."""
    assert got.keys() == expected.keys()
    for k in got:
        np.testing.assert_array_equal(got[k], expected[k], err_msg=k)


def assert_folder_checked_without_reassembly(config, folder, merged):
    """A ZeRO folder's names and shapes come from its model states alone."""
    from mmengine.config import Config
    from safetensors.torch import load_file

    from mmseg_internvit import register_all_modules
    from mmseg_internvit.apis.resume import check_fits_before_loading
    from mmseg_internvit.checkpoint import consolidate
    from mmseg_internvit.checkpoint.model_loader import open_model_checkpoint
    register_all_modules()
    source = open_model_checkpoint(str(folder))
    saved = load_file(merged)
    assert {k: source.shape(k) for k in source.keys()} == {k: tuple(v.shape)
                                                           for k, v in saved.items()}
    assert source.meta['dataset_meta']['classes'][0] == 'wall'
    reassemble = consolidate._deepspeed_state
    consolidate._deepspeed_state = None  # any reassembly would fail
    try:
        check_fits_before_loading(Config.fromfile(str(config)), None, str(folder))
    finally:
        consolidate._deepspeed_state = reassemble
    torch.testing.assert_close(source['backbone.cls_token'], saved['backbone.cls_token'])


def assert_weights_cross_over(config, folder, merged, data_root, tmp_path):
    """``load_from`` across formats: the ZeRO folder in the config without DeepSpeed
    (mmengine's loader reassembles it), the consolidated file in the DeepSpeed config
    (whose engine reads only folders: the file becomes the model's Pretrained init).
    At lr 0 a step changes no weight: each run saves what it loaded."""
    from safetensors.torch import load_file
    expected = load_file(merged)
    start = ['optim_wrapper.optimizer.lr=0']

    def assert_loaded(state):
        # BatchNorm statistics move in the training step; everything else must not.
        kept = [k for k in expected if not k.endswith(('running_mean', 'running_var',
                                                       'num_batches_tracked'))]
        assert set(state) == set(expected)
        for key in kept:
            torch.testing.assert_close(state[key].float(), expected[key].float(), msg=key)

    plain = tmp_path / 'plain_from_folder'
    out = tool('train.py', os.path.join(SMOKE, CONFIGS['single']), '--work-dir', plain,
               *options(data_root, 1, [f'load_from={folder}', *start]))
    assert f'Load checkpoint from {folder}' in out
    assert_loaded(torch.load(plain / 'iter_1.pth', weights_only=True)['state_dict'])
    sharded = tmp_path / 'zero2_from_file'
    torchrun('train.py', config, '--work-dir', sharded,
             *options(data_root, 1, [f'load_from={merged}', *start]))
    tool('consolidate_checkpoint.py', sharded / 'iter_1.pth', tmp_path / 'from_file.safetensors')
    assert_loaded(load_file(tmp_path / 'from_file.safetensors'))


@pytest.mark.parametrize('strategy', ['zero2', 'zero3', 'fsdp'])
def test_train_resume_consolidate(strategy, tmp_path, sample_ade20k):
    config = os.path.join(SMOKE, CONFIGS[strategy])
    if strategy == 'zero3':
        # Per-sample GroupNorm: the ranks' BatchNorm statistics would differ
        # (no SyncBN on CPU), and the end-of-training validation below runs
        # sharded across both ranks.
        config = tmp_path / 'zero3_gn.py'
        config.write_text(f"_base_ = '{os.path.join(SMOKE, CONFIGS[strategy])}'\n"
                          "model = dict(decode_head=dict(norm_cfg=dict(type='GN', "
                          "num_groups=8)))\n")
    work = tmp_path / 'work'
    out = torchrun('train.py', config, '--work-dir', work, *options(sample_ade20k, 4))
    # The config's dist_cfg names NCCL; without CUDA the run uses gloo, and says so.
    assert 'process group: backend gloo, world size 2' in out
    losses = train_losses(work)
    assert len(losses) == 4 and all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0], losses
    ckpt = work / 'iter_4.pth'
    assert ckpt.exists()
    if strategy == 'fsdp':
        assert ckpt.is_file()  # state_dict_cfg='full': one whole-model file
    else:
        assert (ckpt / 'mp_rank_00_model_states.pt').exists() or \
            (ckpt / 'zero_pp_rank_0_mp_rank_00_model_states.pt').exists()

    out = torchrun('train.py', config, '--work-dir', work, '--resume', work / 'iter_2.pth',
                   *options(sample_ade20k, 6))
    assert 'Iter(train) [3/6]' in out and 'Iter(train) [2/6]' not in out
    assert (work / 'iter_6.pth').exists()

    merged = tmp_path / 'model.safetensors'
    tool('consolidate_checkpoint.py', work / 'iter_6.pth', merged)
    merged_out = tmp_path / 'pred_merged'
    test_opts = options(sample_ade20k, 6)[:4]
    tool('test.py', config, merged, '--out', merged_out, '--work-dir', tmp_path / 'test_merged',
         *test_opts)
    consolidated = predictions(merged_out)
    assert len(consolidated) == 12
    from mmseg_internvit.checkpoint.readers import read_safetensors_header
    assert read_safetensors_header(str(merged))[1]['dataset_meta']['classes'][0] == 'wall'
    if strategy != 'fsdp':
        assert_folder_checked_without_reassembly(config, work / 'iter_6.pth', merged)
    if strategy == 'zero3':
        # DeepSpeed 0.18 cannot load ZeRO-3 folders for inference: tools/test.py
        # consolidates them itself; compare with the sharded model's own
        # validation at the end of training.
        out_dir = tool('test.py', config, work / 'iter_6.pth', '--work-dir',
                       tmp_path / 'test_dir', *test_opts)
        val = float(re.findall(r'Iter\(val\) \[\d+/\d+\]\s+aAcc: [\d.]+\s+mIoU: ([\d.]+)',
                               out)[-1])
        tested = float(re.search(r"'mIoU': ([\d.]+)", out_dir).group(1))
        assert abs(val - tested) < 0.05, (val, tested)
        return
    if strategy == 'zero2':
        # The README's one-process form on the folder itself: no MPI, no
        # DeepSpeed engine; the weights are reassembled in memory.
        single_out = tmp_path / 'pred_single'
        tool('test.py', config, work / 'iter_6.pth', '--out', single_out,
             '--work-dir', tmp_path / 'test_single', *test_opts)
        assert_same_predictions(predictions(single_out), consolidated)
        # Several processes let DeepSpeed load the folder: a misfit fails first,
        # in every rank, naming the keys.
        with pytest.raises(AssertionError, match=r'decode_head\.conv_seg\.weight has shape '
                           r'\(150, 96, 1, 1\) in the checkpoint but \(10, 96, 1, 1\)'):
            torchrun('test.py', config, work / 'iter_6.pth', '--work-dir', tmp_path / 'misfit',
                     *test_opts, 'model.decode_head.num_classes=10')
        assert_weights_cross_over(config, work / 'iter_6.pth', merged, sample_ade20k, tmp_path)
        # The optimizer wrapper's state records ZeRO's layout as DeepSpeed lists it...
        states_file = work / 'iter_6.pth' / 'mp_rank_00_model_states.pt'
        states = torch.load(states_file, weights_only=False)
        layout = states['optim_wrapper']['zero_param_groups']
        assert layout == [list(group) for group in states['param_shapes']]
        # ...and a resume under another one is refused. Here: the same groups with two
        # parameters swapped, as a model or layout change between save and resume would
        # leave them; DeepSpeed 0.18 itself restores the fp32 master weights and optimizer
        # moments position by position and would say nothing.
        other = tmp_path / 'other_layout'
        shutil.copytree(work / 'iter_6.pth', other / 'iter_6.pth')
        group = next(g for g in layout if len(g) > 1)
        group[0], group[1] = group[1], group[0]
        torch.save(states, other / 'iter_6.pth' / 'mp_rank_00_model_states.pt')
        with pytest.raises(AssertionError, match='error: Cannot resume this DeepSpeed '
                           r'checkpoint: .*\(group \d+: the same parameters in another order\)'):
            torchrun('train.py', config, '--work-dir', other, '--resume',
                     other / 'iter_6.pth', *options(sample_ade20k, 8))
    sharded_out = tmp_path / 'pred_sharded'
    torchrun('test.py', config, work / 'iter_6.pth', '--out', sharded_out,
             '--work-dir', tmp_path / 'test_sharded', *test_opts)
    assert_same_predictions(predictions(sharded_out), consolidated)


def test_zero3_bf16_trains(tmp_path, sample_ade20k):
    """The 6B configs' precision: ZeRO-3 with bf16 weights, fp32 masters."""
    config = os.path.join(SMOKE, CONFIGS['zero3'])
    torchrun('train.py', config, '--work-dir', tmp_path, *options(
        sample_ade20k, 3, ['strategy.bf16.enabled=True', 'train_cfg.val_interval=100']))
    losses = train_losses(tmp_path)
    assert len(losses) == 3 and all(np.isfinite(losses)), losses
    assert any(f.startswith('bf16_zero_pp_rank_0') for f in os.listdir(tmp_path / 'iter_2.pth'))


DETERMINISTIC = """
_base_ = '{base}'
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='Resize', scale=(112, 112), keep_ratio=False),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=pipeline))
model = dict(backbone=dict(drop_path_rate=0.0),
             decode_head=dict(norm_cfg=dict(type='GN', num_groups=8)))
"""


def test_zero2_matches_single_process(tmp_path, sample_ade20k):
    """3 steps of ZeRO-2 on 2x2 images == 3 plain steps on 4 images."""
    from safetensors.torch import load_file
    weights = {}
    for name in ('zero2', 'single'):
        cfg = tmp_path / f'{name}.py'
        cfg.write_text(DETERMINISTIC.format(base=os.path.join(SMOKE, CONFIGS[name])))
        work = tmp_path / name
        run = torchrun if name == 'zero2' else tool
        run('train.py', cfg, '--work-dir', work, *options(sample_ade20k, 3, [
            'train_cfg.val_interval=100', 'default_hooks.checkpoint.interval=3']))
        merged = tmp_path / f'{name}.safetensors'
        tool('consolidate_checkpoint.py', work / 'iter_3.pth', merged)
        weights[name] = load_file(merged)
    changed = 0
    for key, value in weights['single'].items():
        if not value.is_floating_point():
            continue
        torch.testing.assert_close(weights['zero2'][key], value, atol=2e-5, rtol=1e-4,
                                   msg=key)
        changed += 1
    assert changed > 50


def test_bad_fsdp_wrap_class_fails_at_start(tmp_path, sample_ade20k):
    bad_wrap = tmp_path / 'bad_wrap.py'
    bad_wrap.write_text(f"_base_ = '{os.path.join(SMOKE, CONFIGS['fsdp'])}'\n"
                        "strategy = dict(model_wrapper=dict(auto_wrap_policy=dict(\n"
                        "    layer_cls_names=('NoSuchBlock',))))\n")
    with pytest.raises(AssertionError, match="FSDP wrap class\\(es\\) \\['NoSuchBlock'\\]"):
        torchrun('train.py', bad_wrap, '--work-dir', tmp_path / 'w', *options(sample_ade20k, 2))
