"""Start-up checks of tools/train.py and tools/test.py: bad strategy configs
fail before any model is built, with what to change."""
import os

import pytest
import torch
from mmengine.config import Config

from mmseg_internvit.apis import launch, resume, strategy_checks

SMOKE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                     'configs', 'smoke')


def _cfg(**kwargs):
    base = dict(launcher='none', work_dir='/tmp/unused',
                model=dict(type='EncoderDecoder',
                           decode_head=dict(norm_cfg=dict(type='SyncBN'))),
                optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4)))
    base.update(kwargs)
    return Config(base)


def test_strategy_without_flexible_runner():
    with pytest.raises(ValueError, match="only used by runner_type='FlexibleRunner'"):
        strategy_checks.check_strategy(_cfg(strategy=dict(type='DeepSpeedStrategy')))


def test_deepspeed_needs_its_optim_wrapper():
    cfg = _cfg(runner_type='FlexibleRunner', strategy=dict(type='DeepSpeedStrategy'))
    with pytest.raises(ValueError, match="DeepSpeedNoGradStepOptimWrapper"):
        strategy_checks.check_strategy(cfg)


def test_missing_deepspeed_is_named(monkeypatch):
    monkeypatch.setattr(strategy_checks, 'find_spec', lambda name: None)
    cfg = _cfg(runner_type='FlexibleRunner', strategy=dict(type='DeepSpeedStrategy'))
    with pytest.raises(ImportError, match='DeepSpeed, which is not installed'):
        strategy_checks.check_strategy(cfg)


@pytest.mark.skipif(torch.cuda.is_available(), reason='the check is for CPU machines')
def test_fsdp_with_amp_on_cpu():
    cfg = _cfg(runner_type='FlexibleRunner', strategy=dict(type='FSDPStrategy'),
               optim_wrapper=dict(type='AmpOptimWrapper'))
    with pytest.raises(ValueError, match='AmpOptimWrapper needs a GPU'):
        strategy_checks.check_strategy(cfg)


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU adaptations only')
def test_cpu_multi_process_adaptations(tmp_path):
    cfg = _cfg(launcher='pytorch')
    launch.adapt_to_cpu(cfg)
    assert cfg.model.decode_head.norm_cfg.type == 'BN'
    assert cfg.model_wrapper_cfg == dict(type='MMDistributedDataParallel', device_ids=None)
    fsdp = _cfg(launcher='pytorch', runner_type='FlexibleRunner',
                strategy=dict(type='mmseg_internvit.TorchCompatFSDPStrategy',
                              state_dict_cfg='full'))
    launch.adapt_to_cpu(fsdp)
    assert fsdp.strategy.model_wrapper.device_id == 'cpu'
    assert 'model_wrapper_cfg' not in fsdp
    # Full state dicts stay on the CPU they are on (no offload to the same CPU).
    full = fsdp.strategy.state_dict_cfg
    assert full.state_dict_type == 'FULL_STATE_DICT'
    for key in ('state_dict_config', 'optim_state_dict_config'):
        assert full[key].rank0_only is True and full[key].offload_to_cpu is False
    from mmengine.registry import STRATEGIES
    from torch.distributed.fsdp import FullStateDictConfig, StateDictType
    built = STRATEGIES.build(dict(fsdp.strategy, model_wrapper=None, work_dir=str(tmp_path)))
    assert built.state_dict_type == StateDictType.FULL_STATE_DICT
    assert isinstance(built.state_dict_config, FullStateDictConfig)
    assert built.state_dict_config.offload_to_cpu is False
    # A config's own dict is kept, with only the offload turned off.
    own = _cfg(launcher='pytorch', runner_type='FlexibleRunner', strategy=dict(
        type='FSDPStrategy', state_dict_cfg=dict(
            state_dict_type='FULL_STATE_DICT',
            state_dict_config=dict(type='FullStateDictConfig', rank0_only=False,
                                   offload_to_cpu=True),
            optim_state_dict_config=dict(type='FullOptimStateDictConfig', rank0_only=False))))
    launch.adapt_to_cpu(own)
    kept = own.strategy.state_dict_cfg
    assert kept.state_dict_config == dict(type='FullStateDictConfig', rank0_only=False,
                                          offload_to_cpu=False)
    assert kept.optim_state_dict_config == dict(type='FullOptimStateDictConfig',
                                                rank0_only=False)
    built = STRATEGIES.build(dict(own.strategy, model_wrapper=None, work_dir=str(tmp_path)))
    assert built.state_dict_config.offload_to_cpu is False
    assert built.state_dict_config.rank0_only is False
    # Local state dicts have nothing to offload: unchanged.
    local = _cfg(launcher='pytorch', runner_type='FlexibleRunner',
                 strategy=dict(type='FSDPStrategy', state_dict_cfg='local'))
    launch.adapt_to_cpu(local)
    assert local.strategy.state_dict_cfg == 'local'


def test_zero3_folder_with_several_processes_is_refused(tmp_path):
    folder = tmp_path / 'iter_4.pth'
    folder.mkdir()
    cfg = _cfg(launcher='pytorch', runner_type='FlexibleRunner',
               strategy=dict(type='DeepSpeedStrategy', zero_optimization=dict(stage=3)))
    with pytest.raises(ValueError, match='ZeRO-3 folder: test it with one process'):
        launch.adapt_for_testing(cfg, str(folder))


def test_testing_adaptations(tmp_path):
    folder = tmp_path / 'iter_4.pth'
    folder.mkdir()
    # Several processes on a ZeRO-2 folder: DeepSpeed at stage 0 loads it.
    zero2 = _cfg(launcher='pytorch', runner_type='FlexibleRunner',
                 strategy=dict(type='DeepSpeedStrategy', zero_optimization=dict(stage=2)))
    assert launch.adapt_for_testing(zero2, str(folder)) is False
    assert zero2.strategy.zero_optimization.stage == 0 and zero2.load_from == str(folder)
    # One process on the same folder (no MPI, no DeepSpeed engine): the plain
    # Runner, weights reassembled and loaded by the tool.
    alone = _cfg(runner_type='FlexibleRunner',
                 strategy=dict(type='DeepSpeedStrategy', zero_optimization=dict(stage=2)))
    assert launch.adapt_for_testing(alone, str(folder)) is True
    assert 'runner_type' not in alone and 'strategy' not in alone and alone.load_from is None
    single = tmp_path / 'model.safetensors'
    single.write_bytes(b'')
    fsdp = _cfg(runner_type='FlexibleRunner', strategy=dict(type='FSDPStrategy'))
    assert launch.adapt_for_testing(fsdp, str(single)) is True
    assert 'runner_type' not in fsdp and 'strategy' not in fsdp
    assert fsdp.optim_wrapper.type == 'OptimWrapper'


def test_flexible_runner_checkpoint_checked_on_a_meta_copy(tmp_path):
    """A FlexibleRunner's strategy builds the model only when it runs, then
    loads non-strictly (FSDP): the fit is checked on a meta-device copy."""
    from mmseg.apis import init_model

    from mmseg_internvit import register_all_modules
    from mmseg_internvit.checkpoint import CheckpointMismatchError
    register_all_modules()
    cfg = Config.fromfile(os.path.join(SMOKE, 'linear_internvit-tiny-fsdp_2xb2-300_ade20k-'
                                       'sample-112x112.py'))
    copy = resume.shape_model(cfg)
    assert all(p.is_meta for p in copy.parameters())
    state = init_model(cfg, None, device='cpu').state_dict()
    fits = tmp_path / 'fits.pth'
    torch.save({'state_dict': state}, fits)
    resume.check_fits_before_loading(cfg, None, str(fits))
    state['decode_head.conv_seg.weight'] = state['decode_head.conv_seg.weight'][:10]
    misfit = tmp_path / 'misfit.pth'
    torch.save({'state_dict': state}, misfit)
    with pytest.raises(CheckpointMismatchError, match=r'decode_head\.conv_seg\.weight has shape '
                       r'\(10, 96, 1, 1\) in the checkpoint but \(150, 96, 1, 1\)'):
        resume.check_fits_before_loading(cfg, None, str(misfit))
    # Folders of FSDP local shards are the strategy's to load.
    shards = tmp_path / 'iter_2.pth'
    shards.mkdir()
    (shards / 'rank0.pth').write_bytes(b'')
    resume.check_fits_before_loading(cfg, None, str(shards))
    # Any other folder, or those shards for a config without FSDP (tools/test.py
    # drops the strategy), is refused before a runner writes into the work dir.
    from mmseg_internvit.checkpoint import CheckpointReadError
    cfg.pop('strategy')
    with pytest.raises(CheckpointReadError, match=r'iter_2\.pth is an FSDP checkpoint with '
                       r"per-rank local shards; train with strategy\.state_dict_cfg='full'"):
        resume.check_fits_before_loading(cfg, None, str(shards))
    with pytest.raises(CheckpointReadError, match=r'is a folder but neither a DeepSpeed '
                       r'checkpoint \(no \*model_states\.pt\) nor a model folder'):
        resume.check_fits_before_loading(cfg, None, str(tmp_path))


def test_shape_model_of_a_backbone_that_cannot_be_built_on_meta(tmp_path):
    """mmseg's ViT reads its drop-path rates with .item(): its shape check is
    built on the CPU, and tools/test.py's fit check still works for it."""
    from mmseg.apis import init_model

    from mmseg_internvit import register_all_modules
    from mmseg_internvit.checkpoint import CheckpointMismatchError
    register_all_modules()
    cfg = Config(dict(default_scope='mmseg', model=dict(
        type='EncoderDecoder', data_preprocessor=dict(type='SegDataPreProcessor'),
        backbone=dict(type='VisionTransformer', img_size=32, patch_size=8, embed_dims=16,
                      num_layers=2, num_heads=2, drop_path_rate=0.1),
        decode_head=dict(type='FCNHead', in_channels=16, channels=8, num_convs=1,
                         num_classes=3, in_index=-1))))
    copy = resume.shape_model(cfg)
    assert copy.backbone.layers[1].ffn.layers[0][0].weight.shape == (64, 16)
    state = init_model(cfg, None, device='cpu').state_dict()
    path = tmp_path / 'vit.pth'
    torch.save({'state_dict': state}, path)
    resume.check_fits_before_loading(cfg, None, str(path))
    cfg.model.decode_head.num_classes = 4
    with pytest.raises(CheckpointMismatchError, match='conv_seg'):
        resume.check_fits_before_loading(cfg, None, str(path))


def test_a_tool_that_succeeds_closes_its_process_group(tmp_path, monkeypatch):
    """Gloo left to interpreter shutdown can abort a finished run (SIGABRT)."""
    import sys
    import types

    import torch.distributed as dist

    from mmseg_internvit.apis.errors import run_tool

    def main(argv):
        # What tools/train.py does under torchrun on a CPU machine.
        dist.init_process_group('gloo', init_method=f'file://{tmp_path / "store"}', rank=0,
                                world_size=1)
        dist.all_reduce(torch.ones(2))
        return 0 if argv == ['ok'] else 3

    tool = types.ModuleType('mmseg_internvit.apis.distributed_stand_in')
    tool.main = main
    monkeypatch.setitem(sys.modules, tool.__name__, tool)
    # Every rank meets the others before any destroys its groups.
    calls = []
    for name in ('barrier', 'destroy_process_group'):
        real = getattr(dist, name)
        monkeypatch.setattr(dist, name, lambda *a, _real=real, _name=name, **k:
                            calls.append(_name) or _real(*a, **k))
    assert not dist.is_initialized()
    assert run_tool('distributed_stand_in', ['ok'], register='none') == 0
    assert not dist.is_initialized()
    assert calls == ['barrier', 'destroy_process_group']
    assert run_tool('distributed_stand_in', ['other'], register='none') == 3  # status kept
    assert not dist.is_initialized()
    # An unknown set-up is a programming error, raised before the tool runs.
    with pytest.raises(ValueError, match="register='checkpoints': use 'all', 'checkpoint_io' "
                                         "or 'none'"):
        run_tool('distributed_stand_in', ['ok'], register='checkpoints')


def test_head_and_dataset_class_counts_are_compared(monkeypatch):
    """mmseg scores the dataset's classes only: a head predicting more (or fewer)
    is named at start-up (a warning: the run itself works)."""
    import argparse

    from mmseg_internvit import register_all_modules
    from mmseg_internvit.apis.config_checks import head_class_count_mismatch
    register_all_modules()
    ade = dict(type='ADE20KDataset')
    cfg = _cfg(train_dataloader=dict(dataset=ade))
    cfg.model.decode_head.num_classes = 150
    assert head_class_count_mismatch(cfg) is None
    cfg.model.decode_head.num_classes = 200
    assert head_class_count_mismatch(cfg) == (
        "model.decode_head.num_classes is 200 but train_dataloader's ADE20KDataset has 150 "
        "classes: mIoU is computed over the dataset's 150; set num_classes (and the auxiliary "
        "head's) to it, or give the dataset metainfo=dict(classes=...)")
    cfg.train_dataloader.dataset.metainfo = dict(classes=[f'c{i}' for i in range(200)])
    assert head_class_count_mismatch(cfg) is None
    cfg.train_dataloader.dataset = dict(type='NoSuchDataset')  # unknown: nothing to compare
    assert head_class_count_mismatch(cfg) is None

    logged = []
    monkeypatch.setattr(launch, 'print_log', lambda msg, **kwargs: logged.append(msg))
    config = os.path.join(SMOKE, 'linear_internvit-tiny_1xb4-300_ade20k-sample-112x112.py')
    args = argparse.Namespace(config=config, cfg_options={'model.decode_head.num_classes': 200},
                              launcher='none', work_dir=None, local_rank=0)
    launch.load_config(args)
    assert logged == [f"{config}: model.decode_head.num_classes is 200 but train_dataloader's "
                      'ADE20KDataset has 150 classes: mIoU is computed over the dataset\'s 150; '
                      "set num_classes (and the auxiliary head's) to it, or give the dataset "
                      'metainfo=dict(classes=...)']
