"""Real train / resume / test loops through tools/*.py on the sample data."""
import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, 'configs', 'smoke',
                     'linear_internvit-tiny_1xb4-300_ade20k-sample-112x112.py')


def run_tool(tool, *args, cwd=None):
    cmd = [sys.executable, os.path.join(ROOT, 'tools', tool), *map(str, args)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def smoke_options(data_root, iters):
    return ['--cfg-options', f'train_dataloader.dataset.data_root={data_root}',
            f'val_dataloader.dataset.data_root={data_root}',
            f'test_dataloader.dataset.data_root={data_root}',
            f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'default_hooks.checkpoint.interval={iters // 2}',
            'default_hooks.logger.interval=5']


def losses_in(work_dir):
    logs = []
    for root, _, files in os.walk(work_dir):
        logs += [os.path.join(root, f) for f in files if f.endswith('.json') and
                 f != 'scalars.json' and 'vis_data' in root]
    values = []
    for path in logs:
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                if 'loss' in record:
                    values.append((record['iter'], record['loss']))
    return sorted(values)


def test_train_resume_and_test(tmp_path, sample_ade20k):
    work = tmp_path / 'work'
    out = run_tool('train.py', SMOKE, '--work-dir', work, *smoke_options(sample_ade20k, 20))
    assert (work / 'iter_10.pth').exists() and (work / 'iter_20.pth').exists()
    assert 'mIoU' in out
    losses = losses_in(work)
    assert losses and all(v == v for _, v in losses)  # finite (not NaN)
    # Resume from iter 10 continues at 11 and ends at 30.
    out = run_tool('train.py', SMOKE, '--work-dir', work, '--resume', work / 'iter_10.pth',
                   *smoke_options(sample_ade20k, 30))
    assert re.search(r'resumed .*iter_10\.pth|Resumed|Load checkpoint', out, re.IGNORECASE)
    assert (work / 'iter_30.pth').exists()
    assert 'Iter(train) [ 15/30]' in out or 'Iter(train) [15/30]' in out
    # tools/test.py reads the checkpoint (torch >= 2.6 safe loading) and reports mIoU.
    show = tmp_path / 'show'
    out = run_tool('test.py', SMOKE, work / 'iter_30.pth', '--work-dir', tmp_path / 'test',
                   '--show-dir', show, *smoke_options(sample_ade20k, 30)[:4])
    assert "'mIoU'" in out
    drawn = [f for _, _, files in os.walk(show) for f in files if f.endswith('.png')]
    assert len(drawn) == 12  # every validation image, not every 50th


def test_train_errors_are_clear(tmp_path):
    cmd = [sys.executable, os.path.join(ROOT, 'tools', 'train.py'), str(tmp_path / 'nope.py')]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode != 0 and 'nope.py does not exist' in out.stderr
    cmd = [sys.executable, os.path.join(ROOT, 'tools', 'test.py'), SMOKE, str(tmp_path / 'x.pth')]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 2 and 'x.pth does not exist' in out.stderr


@pytest.mark.slow
def test_demo_learns(tmp_path):
    """`make demo`: the trained smoke probe beats the untrained one clearly."""
    out = run_tool('demo.py', '--work-dir', tmp_path / 'demo', '--data-root', tmp_path / 'data')
    before = float(re.search(r'untrained mIoU: ([\d.]+)', out).group(1))
    after = float(re.search(r'trained   mIoU: ([\d.]+)', out).group(1))
    assert after > before + 20, out[-2000:]
