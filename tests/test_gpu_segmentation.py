"""GPU lane: AMP training of the smoke segmentors on CUDA, tools/infer.py in bf16 (and
with compiled blocks) on CUDA, and the batched slide segmentor against mmseg's loop.

Measured values (mIoU, time, speed ratio) are attached to the tests with
``record_property`` so the lane's JUnit XML carries them to its summary.
"""
import glob
import json
import os
import subprocess
import sys
import time
from typing import Iterable

import numpy as np
import pytest
from PIL import Image

from test_train_tools import ROOT, SMOKE, UPERNET, losses_in, smoke_options, val_miou

pytestmark = pytest.mark.gpu

ADAPTER = os.path.join(ROOT, 'configs', 'smoke',
                       'upernet_internvit-tiny-adapter_1xb4-300_ade20k-sample-112x112.py')
ITERS = 100
# (config, lowest acceptable validation mIoU after ITERS iterations). The same
# runs in fp32 on a 2-core CPU reached 84.5 (linear), 77.1 (UPerNet) and 89.9
# (adapter) on 2026-11-27; an untrained model scores 0.0 on the sample data.
# The bounds leave room for fp16 AMP and GPU nondeterminism, far above chance.
SMOKE_RUNS = {'linear': (SMOKE, 60.0), 'upernet': (UPERNET, 50.0), 'adapter': (ADAPTER, 50.0)}


def _start_tool(tool: str, *args, log) -> subprocess.Popen:
    """Start ``tools/<tool>`` with its output going to the file ``log``: several such
    runs share one GPU at once (each is mostly process start-up and small kernels)."""
    with open(log, 'w') as out:
        return subprocess.Popen([sys.executable, os.path.join(ROOT, 'tools', tool),
                                 *map(str, args)], stdout=out, stderr=subprocess.STDOUT)


def _finish_tool(proc: subprocess.Popen, log) -> str:
    """Wait for a run of :func:`_start_tool`; its output, or a failure that shows it."""
    returncode = proc.wait()
    with open(log) as out:
        text = out.read()
    assert returncode == 0, f'{log}:\n{text[-3000:]}'
    return text


def _stop(procs: Iterable[subprocess.Popen]) -> None:
    """Kill the runs still going (after a failure, none is left behind)."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope='module')
def amp_run(tmp_path_factory, sample_ade20k):
    """Train the smoke configs with ``--amp`` on the GPU, once per module: all three
    start together on first use, and each test waits for its own."""
    folder = tmp_path_factory.mktemp('amp')
    started, runs = {}, {}
    start = None

    def train(name):
        nonlocal start
        if not started:
            start = time.perf_counter()
            for key, (config, _) in SMOKE_RUNS.items():
                started[key] = _start_tool('train.py', config, '--amp', '--work-dir',
                                           folder / key, *smoke_options(sample_ade20k, ITERS),
                                           log=folder / f'{key}.log')
        if name not in runs:
            out = _finish_tool(started[name], folder / f'{name}.log')
            runs[name] = folder / name, out, time.perf_counter() - start
        return runs[name]
    yield train
    _stop(started.values())


@pytest.mark.parametrize('name', list(SMOKE_RUNS))
def test_amp_smoke_training_on_cuda(name, amp_run, record_property):
    work, out, seconds = amp_run(name)
    dumped = glob.glob(os.path.join(work, '*', 'vis_data', 'config.py'))[0]
    assert "type='AmpOptimWrapper'" in open(dumped).read()  # mixed precision was on
    losses = [v for _, v in losses_in(work)]
    assert len(losses) == ITERS // 5 and np.isfinite(losses).all()
    assert np.mean(losses[-4:]) < np.mean(losses[:4]), losses
    miou = val_miou(out)
    record_property('miou', miou)
    record_property('seconds_three_at_once', round(seconds, 1))
    assert miou >= SMOKE_RUNS[name][1], f'{name}: mIoU {miou} after {ITERS} AMP iterations'


def _labels(folder):
    return {os.path.basename(p)[:-len('_label.png')]: np.asarray(Image.open(p))
            for p in glob.glob(os.path.join(folder, '*_label.png'))}


def test_infer_bf16_and_compiled_on_cuda(amp_run, sample_ade20k, tmp_path, record_property):
    work, _, _ = amp_run('linear')
    checkpoint = os.path.join(work, f'iter_{ITERS}.pth')
    images = os.path.join(sample_ade20k, 'images', 'validation')
    variants = {'fp32': [], 'bf16': ['--dtype', 'bf16'],
                'bf16-compiled': ['--dtype', 'bf16', '--compile']}
    # The three runs at once, as the trainings above.
    runs = {}
    start = time.perf_counter()
    try:
        for tag, extra in variants.items():
            runs[tag] = _start_tool('infer.py', SMOKE, checkpoint, images, '--out-dir',
                                    tmp_path / tag, '--device', 'cuda', '--batch-size', 4,
                                    *extra, log=tmp_path / f'{tag}.log')
        labels = {}
        for tag, proc in runs.items():
            log = _finish_tool(proc, tmp_path / f'{tag}.log')
            assert '12 of 12 images done' in log, f'{tag}: {log[-2000:]}'
            labels[tag] = _labels(tmp_path / tag)
            assert len(labels[tag]) == 12
    finally:
        _stop(runs.values())
    record_property('seconds_three_at_once', round(time.perf_counter() - start, 1))

    def agreement(a, b):
        return np.mean([np.mean(labels[a][k] == labels[b][k]) for k in labels[a]])
    record_property('bf16_vs_fp32_pixels', round(agreement('bf16', 'fp32'), 4))
    record_property('compiled_vs_eager_pixels', round(agreement('bf16-compiled', 'bf16'), 4))
    assert agreement('bf16', 'fp32') >= 0.95
    assert agreement('bf16-compiled', 'bf16') >= 0.99


def test_batched_slide_equals_mmseg_loop_on_cuda(tmp_path, record_property):
    result_file = tmp_path / 'slide.json'
    cmd = [sys.executable, os.path.join(ROOT, 'tools', 'benchmark.py'), '--mode', 'slide',
           '--config', SMOKE, '--device', 'cuda', '--size', '448', '448', '--crop-batch', '1',
           '8', '--warmup', '2', '--repeats', '5', '--json', str(result_file)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    records = {r['name']: r for r in json.loads(result_file.read_text())['slide']}
    assert set(records) == {'mmseg loop', 'batched, 1 crops/forward', 'batched, 8 crops/forward'}
    for name, record in records.items():
        assert record['max_abs_diff'] < 1e-3, (name, record['max_abs_diff'])
        record_property(f'speedup[{name}]', round(record['speedup_median'], 2))
