"""Killed runs keep a usable checkpoint: kill -9 at random points and inside saves, then resume.

Checkpoint writes of the tiny smoke model take milliseconds, so the training
process is started through a small wrapper that writes checkpoint bytes slowly
(mmengine's local file backend, or DeepSpeed's checkpoint engine): the test can
then watch a save in progress and kill the process in the middle of it.
"""
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from test_train_tools import ROOT, SMOKE

from mmseg_internvit.engine.checkpoint_files import (CHECKPOINT_NAME, checkpoint_problem,
                                                     find_resume_checkpoint)

ITERS, INTERVAL = 12, 4

SLOW_SAVE_WRAPPER = '''
import runpy, sys, time
from mmseg_internvit.atomic_io import atomic_file
from mmseg_internvit.engine.atomic_checkpoint_hook import AtomicLocalBackend


def slow_put(self, obj, filepath):
    # Checkpoint bytes in 16 chunks, 0.15 s apart: a save window a test can hit.
    step = max(1, len(obj) // 16)
    with atomic_file(str(filepath)) as f:
        for start in range(0, len(obj), step):
            f.write(obj[start:start + step])
            f.flush()
            time.sleep(0.15)


AtomicLocalBackend.put = slow_put
try:
    from deepspeed.runtime.checkpoint_engine import torch_checkpoint_engine as engine
    original_save = engine.TorchCheckpointEngine.save

    def slow_save(self, state_dict, path):
        original_save(self, state_dict, path)
        time.sleep(1.0)  # the shard is on disk, the checkpoint is not complete yet

    engine.TorchCheckpointEngine.save = slow_save
except ImportError:
    pass
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def train_args(data_root, work_dir, max_keep=None, extra=()):
    options = [f'train_dataloader.dataset.data_root={data_root}',
               f'val_dataloader.dataset.data_root={data_root}',
               f'train_cfg.max_iters={ITERS}', f'train_cfg.val_interval={ITERS * 10}',
               f'default_hooks.checkpoint.interval={INTERVAL}',
               'default_hooks.logger.interval=1']
    if max_keep is not None:
        options.append(f'default_hooks.checkpoint.max_keep_ckpts={max_keep}')
    return ['--work-dir', str(work_dir), *extra, '--cfg-options', *options]


def start(wrapper, tool_args, config=SMOKE, launcher=None):
    """Start training (optionally under torchrun) in its own process group.

    Output goes to a file beside the work dir (``proc.log``): a pipe nobody
    reads while waiting for a kill could fill up and stall the run.
    """
    tool = os.path.join(ROOT, 'tools', 'train.py')
    if launcher is None:
        cmd = [sys.executable, str(wrapper), tool, config, *tool_args]
    else:
        cmd = [sys.executable, '-m', 'torch.distributed.run', *launcher, str(wrapper), tool,
               config, *tool_args, '--launcher', 'pytorch']
    env = dict(os.environ, PYTHONUNBUFFERED='1')  # log lines arrive as they are written
    log = Path(wrapper).with_name(f'run_{time.monotonic_ns()}.log')
    # Run in the test's folder: under torchrun mmengine's result collection leaves
    # an empty ./.dist_test behind, which must not land in the checkout.
    with open(log, 'w') as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True, cwd=Path(wrapper).parent, env=env)
    proc.log = log
    return proc


def output_of(proc):
    return proc.log.read_text()


def kill_when(proc, condition, poll=0.02):
    """kill -9 the whole process group as soon as ``condition()`` holds; False if it ended first."""
    while proc.poll() is None:
        if condition():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(poll)
    return False


def finish(proc):
    proc.wait()
    output = output_of(proc)
    assert proc.returncode == 0, output[-4000:]
    return output


def reached_iteration(proc, iteration):
    """True once the run has logged training iteration ``iteration``."""
    done = re.findall(r'Iter\(train\) \[\s*(\d+)/', output_of(proc))
    return bool(done) and int(done[-1]) >= iteration


def saving(work_dir, name):
    """True while checkpoint ``name`` is being written: its partial folder, or the
    hidden temporary file that becomes ``name.partial``, has content."""
    work_dir = Path(work_dir)
    if not work_dir.is_dir():
        return False
    for entry in work_dir.iterdir():
        if entry.name.startswith((f'{name}.partial', f'.{name}.partial')):
            if entry.is_dir() and any(entry.iterdir()):
                return True
            if entry.is_file() and entry.stat().st_size > 0:
                return True
    return False


def assert_no_broken_checkpoint(work_dir):
    """Every checkpoint under a name --resume would pick is complete."""
    for name in os.listdir(work_dir):
        if CHECKPOINT_NAME.match(name):
            assert checkpoint_problem(os.path.join(work_dir, name)) is None, name
    found, _ = find_resume_checkpoint(str(work_dir))
    assert found is None or checkpoint_problem(found) is None


def final_weights(work_dir, name=f'iter_{ITERS}.pth'):
    from mmseg_internvit import register_all_modules
    register_all_modules()
    return torch.load(Path(work_dir) / name, weights_only=True)['state_dict']


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0, msg=key)


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory, sample_ade20k):
    work = tmp_path_factory.mktemp('uninterrupted')
    cmd = [sys.executable, os.path.join(ROOT, 'tools', 'train.py'), SMOKE,
           *train_args(sample_ade20k, work)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return work


@pytest.fixture
def wrapper(tmp_path):
    path = tmp_path / 'slow_save_train.py'
    path.write_text(SLOW_SAVE_WRAPPER)
    return path


def test_kill_inside_save_keeps_previous_checkpoint(tmp_path, wrapper, sample_ade20k,
                                                    uninterrupted):
    """max_keep_ckpts=1: killed while iter_8 is written, iter_4 survives and resume completes."""
    work = tmp_path / 'work'
    proc = start(wrapper, train_args(sample_ade20k, work, max_keep=1))
    assert kill_when(proc, lambda: saving(work, 'iter_8.pth')), output_of(proc)[-3000:]
    assert (work / 'iter_4.pth').is_file()
    assert (work / 'last_checkpoint').read_text().strip().endswith('iter_4.pth')
    assert_no_broken_checkpoint(work)

    proc = start(wrapper, train_args(sample_ade20k, work, max_keep=1, extra=['--resume']))
    output = finish(proc)
    assert re.search(r'Removing incomplete checkpoint \.?iter_8\.pth\.partial', output)
    assert re.search(r'Iter\(train\) \[\s*5/12\]', output)
    assert not re.search(r'Iter\(train\) \[\s*4/12\]', output)
    assert sorted(n for n in os.listdir(work) if n.endswith('.pth')) == ['iter_12.pth']
    assert_same_weights(final_weights(uninterrupted), final_weights(work))


@pytest.mark.slow
def test_kill_at_random_points_then_resume(tmp_path, wrapper, sample_ade20k, uninterrupted):
    """Default max_keep_ckpts: several kills at random iterations, each followed by --resume."""
    work = tmp_path / 'work'
    rng = random.Random(7)
    resume = []
    for kill_at in sorted(rng.sample(range(2, ITERS), 3)):
        proc = start(wrapper, train_args(sample_ade20k, work, extra=resume))
        killed = kill_when(proc, lambda: reached_iteration(proc, kill_at))
        assert killed or proc.returncode == 0, output_of(proc)[-3000:]
        assert_no_broken_checkpoint(work)
        resume = ['--resume']
    finish(start(wrapper, train_args(sample_ade20k, work, extra=['--resume'])))
    assert_same_weights(final_weights(uninterrupted), final_weights(work))


def test_resume_skips_truncated_newest_checkpoint(tmp_path, sample_ade20k, uninterrupted):
    """A truncated iter_N.pth (what stock mmengine leaves) is skipped with a warning naming it."""
    work = tmp_path / 'work'
    work.mkdir()
    for name in ('iter_4.pth', 'iter_8.pth'):
        (work / name).write_bytes((uninterrupted / name).read_bytes())
    newest = work / 'iter_8.pth'
    newest.write_bytes(newest.read_bytes()[:newest.stat().st_size // 2])
    (work / 'last_checkpoint').write_text(str(newest))
    resumed = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools', 'train.py'), SMOKE,
         *train_args(sample_ade20k, work, extra=['--resume'])],
        capture_output=True, text=True, cwd=ROOT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = resumed.stdout + resumed.stderr
    assert f'skipping checkpoint {newest}: it is truncated' in log
    assert re.search(r'Iter\(train\) \[\s*5/12\]', log)
    assert_same_weights(final_weights(uninterrupted), final_weights(work))


def test_resume_errors_and_empty_work_dir(tmp_path, sample_ade20k):
    broken = tmp_path / 'broken.pth'
    broken.write_bytes(b'PK\x03\x04 not a whole archive')
    cmd = [sys.executable, os.path.join(ROOT, 'tools', 'train.py'), SMOKE, '--resume', str(broken)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        f'error: --resume {broken}: cannot resume from it, it is truncated or not a torch '
        'checkpoint')
    assert 'Traceback' not in out.stderr

    found, skipped = find_resume_checkpoint(str(tmp_path / 'empty'))
    assert found is None and skipped == []


def test_resume_into_other_parameter_groups_is_refused(tmp_path, sample_ade20k, uninterrupted):
    """The frozen probe's checkpoint (its AdamW holds the head alone) resumed by the
    full-tuning config: torch's own error names neither the file nor a way out."""
    checkpoint = uninterrupted / f'iter_{INTERVAL}.pth'
    full = SMOKE.replace('linear_internvit-tiny_', 'linear_internvit-tiny-full_')
    cmd = [sys.executable, os.path.join(ROOT, 'tools', 'train.py'), full, '--resume',
           str(checkpoint), *train_args(sample_ade20k, tmp_path / 'full')]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2, out.stderr[-3000:]
    assert out.stderr.strip().splitlines()[-1] == (
        f'error: --resume {checkpoint}: its optimizer state does not fit the optimizer of this '
        'config (loaded state dict has a different number of parameter groups): it was saved '
        'for other trainable parameters (e.g. a frozen backbone, or other parameter groups); '
        'to start from its weights instead, drop --resume and pass --cfg-options '
        f'load_from={checkpoint}')
    assert 'Traceback' not in out.stderr
    assert not list((tmp_path / 'full').glob('iter_*.pth'))


@pytest.mark.slow
def test_deepspeed_zero2_kill_inside_save(tmp_path, wrapper, sample_ade20k):
    """2 ranks, ZeRO-2, max_keep_ckpts=1: killed while iter_8's folder is written, resume
    completes."""
    pytest.importorskip('deepspeed')
    from test_distributed import CONFIGS, SMOKE as SMOKE_DIR, _free_port
    config = os.path.join(SMOKE_DIR, CONFIGS['zero2'])

    def run(work, extra=(), kill=None):
        args = train_args(sample_ade20k, work, max_keep=1, extra=extra)
        proc = start(wrapper, args, config=config,
                     launcher=['--nproc_per_node=2', f'--master_port={_free_port()}'])
        if kill is not None:
            assert kill_when(proc, kill), output_of(proc)[-3000:]
            return None
        return finish(proc)

    reference = tmp_path / 'reference'
    run(reference)
    work = tmp_path / 'work'
    run(work, kill=lambda: saving(work, 'iter_8.pth'))
    assert checkpoint_problem(str(work / 'iter_4.pth')) is None
    assert_no_broken_checkpoint(work)
    run(work, extra=['--resume'])

    def module_state(folder):
        state = torch.load(folder / f'iter_{ITERS}.pth' / 'mp_rank_00_model_states.pt',
                           weights_only=False)['module']
        return {k: v.float() for k, v in state.items()}

    assert_same_weights(module_state(reference), module_state(work))
