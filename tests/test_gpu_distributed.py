"""GPU lane: DeepSpeed ZeRO-2 and FSDP (also with compiled blocks) through mmengine's
FlexibleRunner with NCCL on one GPU (torchrun, one process): train, save and resume.
(Consolidating and testing the checkpoints is covered on CPU by tests/test_distributed.py.)"""
import os

import numpy as np
import pytest

from test_distributed import CONFIGS, SMOKE, options, torchrun, train_losses

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize('strategy', ['zero2', 'fsdp', 'fsdp-compiled'])
def test_nccl_train_save_resume_on_one_gpu(strategy, tmp_path, sample_ade20k, record_property):
    config = os.path.join(SMOKE, CONFIGS[strategy.split('-')[0]])
    extra = ['model.backbone.compile=True'] if strategy.endswith('-compiled') else []
    work = tmp_path / 'work'
    # The smoke configs' 2 images per process; one process here.
    out = torchrun('train.py', config, '--work-dir', work, *options(sample_ade20k, 4, extra),
                   nproc=1)
    assert 'process group: backend nccl, world size 1' in out
    losses = train_losses(work)
    assert len(losses) == 4 and np.isfinite(losses).all(), losses
    assert losses[-1] < losses[0], losses
    ckpt = work / 'iter_4.pth'
    assert (ckpt / 'mp_rank_00_model_states.pt').exists() if strategy == 'zero2' else ckpt.is_file()

    out = torchrun('train.py', config, '--work-dir', work, '--resume', work / 'iter_2.pth',
                   *options(sample_ade20k, 6, extra), nproc=1)
    assert 'Iter(train) [3/6]' in out and 'Iter(train) [2/6]' not in out
    resumed = train_losses(work)
    assert len(resumed) == 6 and np.isfinite(resumed).all(), resumed
    assert (work / 'iter_6.pth').exists()
    record_property('losses', [round(v, 4) for v in resumed])
