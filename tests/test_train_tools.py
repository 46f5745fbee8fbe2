"""Real train / resume / test loops through tools/*.py on the sample data."""
import json
import os
import re
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, 'configs', 'smoke',
                     'linear_internvit-tiny_1xb4-300_ade20k-sample-112x112.py')
UPERNET = os.path.join(ROOT, 'configs', 'smoke',
                       'upernet_internvit-tiny_1xb4-300_ade20k-sample-112x112.py')


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


def val_miou(output):
    return float(re.findall(r'Iter\(val\) \[\d+/\d+\]\s+aAcc: [\d.]+\s+mIoU: ([\d.]+)',
                            output)[-1])


def test_train_resume_and_test(tmp_path, sample_ade20k):
    """Probe: loss falls, resume reproduces the uninterrupted run, test reproduces val."""
    work = tmp_path / 'work'
    out = run_tool('train.py', SMOKE, '--work-dir', work, *smoke_options(sample_ade20k, 20))
    assert (work / 'iter_10.pth').exists() and (work / 'iter_20.pth').exists()
    losses = [v for _, v in losses_in(work)]
    assert len(losses) == 4 and all(v == v for v in losses)  # logged every 5, finite
    assert losses[-1] < losses[0], losses
    # Resume from iter 10 in another folder: continues at 11 and ends where the
    # uninterrupted run ended, with the same weights and optimizer state.
    resumed = tmp_path / 'resumed'
    out2 = run_tool('train.py', SMOKE, '--work-dir', resumed, '--resume', work / 'iter_10.pth',
                    *smoke_options(sample_ade20k, 20))
    assert re.search(r'Iter\(train\) \[\s*15/20\]', out2)
    assert not re.search(r'Iter\(train\) \[\s*5/20\]', out2)
    from mmseg_internvit import register_all_modules
    register_all_modules()
    a = torch.load(work / 'iter_20.pth', weights_only=True)
    b = torch.load(resumed / 'iter_20.pth', weights_only=True)
    for key, value in a['state_dict'].items():
        torch.testing.assert_close(b['state_dict'][key], value, msg=key)
    state_a, state_b = a['optimizer']['state'], b['optimizer']['state']
    assert state_a.keys() == state_b.keys()
    for index in state_a:
        torch.testing.assert_close(state_b[index]['exp_avg'], state_a[index]['exp_avg'])
    # tools/test.py reads the checkpoint (torch >= 2.6 safe loading) and reports
    # the mIoU that validation at the end of training reported.
    show = tmp_path / 'show'
    test_out = run_tool('test.py', SMOKE, work / 'iter_20.pth', '--work-dir', tmp_path / 'test',
                        '--show-dir', show, *smoke_options(sample_ade20k, 20)[:4])
    tested = float(re.search(r"'mIoU': ([\d.]+)", test_out).group(1))
    assert tested == pytest.approx(val_miou(out), abs=0.01)
    drawn = [f for _, _, files in os.walk(show) for f in files if f.endswith('.png')]
    assert len(drawn) == 12  # every validation image, not every 50th
    # --out as a rank other than the first sees it: mmseg's IoUMetric makes the
    # folder in the main process only, with no barrier before the other ranks
    # save into it, so test.py makes it in every process.
    preds = tmp_path / 'preds' / 'not_yet_made'
    as_second_rank = ('import sys\n'
                      'import mmseg.evaluation.metrics.iou_metric as iou_metric\n'
                      'iou_metric.is_main_process = lambda: False\n'
                      'from mmseg_internvit.apis.errors import run_tool\n'
                      'sys.exit(run_tool("test"))\n')
    proc = subprocess.run([sys.executable, '-c', as_second_rank, SMOKE, str(work / 'iter_20.pth'),
                           '--out', str(preds), '--work-dir', str(tmp_path / 'test_rank1'),
                           *smoke_options(sample_ade20k, 20)[:4]],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(list(preds.glob('*.png'))) == 12


def test_every_output_dir_of_the_test_evaluator_is_listed():
    """test.py makes each of these in every process (see the --out check above)."""
    from mmseg_internvit.apis.test import evaluator_output_dirs
    assert evaluator_output_dirs(dict(type='IoUMetric', output_dir='a')) == ['a']
    assert evaluator_output_dirs(dict(type='IoUMetric')) == []
    assert evaluator_output_dirs([dict(type='IoUMetric', output_dir='a'), dict(type='IoUMetric'),
                                  dict(type='IoUMetric', output_dir='b')]) == ['a', 'b']
    assert evaluator_output_dirs(dict(type='Evaluator', metrics=[
        dict(type='IoUMetric', output_dir='c')])) == ['c']
    assert evaluator_output_dirs(None) == []


def test_upernet_smoke_trains(tmp_path, sample_ade20k):
    work = tmp_path / 'work'
    run_tool('train.py', UPERNET, '--work-dir', work, *smoke_options(sample_ade20k, 10))
    losses = [v for _, v in losses_in(work)]
    assert len(losses) == 2 and all(v == v for v in losses)
    assert losses[-1] < losses[0], losses
    assert (work / 'iter_10.pth').exists()


def test_few_shot_lists_load(tmp_path, sample_ade20k):
    """The split tool's lists, as the few-shot configs use them, on the sample data."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    out = tmp_path / 'splits'
    run_tool('dataset/make_few_shot_splits.py', '--data-root', sample_ade20k, '--out-dir', out)
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', 'internvit_6b', 'linear_internvit-6b-'
                                       'fewshot-1-16_8xb2-5k_ade20k-504x504.py'))
    init_default_scope('mmseg')
    dataset_cfg = cfg.train_dataloader.dataset
    dataset_cfg.update(data_root=sample_ade20k, ann_file=str(out / 'train_1-16.txt'))
    dataset = DATASETS.build(dataset_cfg)
    names = (out / 'train_1-16.txt').read_text().split()
    assert len(dataset) == len(names) == 48 // 16
    assert {os.path.basename(dataset.get_data_info(i)['img_path'])[:-4]
            for i in range(len(dataset))} == set(names)
    assert set(names) <= set((out / 'train_1-8.txt').read_text().split())  # nested
    assert dataset[0]['inputs'].shape[0] == 3


def split_tool(*args):
    """Run the split tool, which may fail: its CompletedProcess."""
    cmd = [sys.executable, os.path.join(ROOT, 'tools', 'dataset', 'make_few_shot_splits.py'),
           *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True)


def test_few_shot_lists_change_only_with_overwrite(tmp_path, sample_ade20k):
    """The default --out-dir is the shipped lists: writing their own names again is
    allowed, other names need --overwrite, and a refused run writes nothing."""
    import shutil
    out = tmp_path / 'splits'
    shutil.copytree(os.path.join(ROOT, 'configs', '_base_', 'datasets', 'ade20k_few_shot'), out)

    def lists():
        return {p.name: p.read_bytes() for p in out.iterdir()}

    shipped = lists()
    assert sorted(shipped) == [f'train_1-{k}.txt' for k in (16, 2, 4, 8)]
    run_tool('dataset/make_few_shot_splits.py', '--out-dir', out)  # the canonical names
    assert lists() == shipped
    refused = split_tool('--data-root', sample_ade20k, '--out-dir', out)
    assert refused.returncode == 2 and refused.stdout == ''
    assert refused.stderr.splitlines() == [
        f"error: {out / 'train_1-16.txt'} exists with other names; pass --out-dir to write "
        'elsewhere or --overwrite to replace it (nothing was written)']
    assert lists() == shipped
    run_tool('dataset/make_few_shot_splits.py', '--data-root', sample_ade20k, '--out-dir', out,
             '--overwrite')
    assert sorted(lists()) == sorted(shipped)  # no temporary file left beside them
    assert len((out / 'train_1-16.txt').read_text().split()) == 48 // 16


@pytest.mark.parametrize('num_images', [0, 15])
def test_few_shot_lists_need_16_training_images(tmp_path, num_images):
    """Too few images would leave a list empty: one error naming the folder, nothing written."""
    folder = tmp_path / 'ADEChallengeData2016' / 'images' / 'training'
    folder.mkdir(parents=True)
    for i in range(1, num_images + 1):
        (folder / f'ADE_train_{i:08d}.jpg').write_bytes(b'')  # only the names are read
    out = tmp_path / 'splits'
    result = split_tool('--data-root', folder.parents[1], '--out-dir', out)
    assert result.returncode == 2 and result.stdout == ''
    assert result.stderr.splitlines() == [
        f"error: {folder} has {num_images or 'no'} .jpg training images; the 1/16 list needs "
        'at least 16: pass the ADEChallengeData2016 folder as --data-root']
    assert not out.exists()


def test_train_errors_are_clear(tmp_path, capsys):
    # In this process, as tools/*.py start them (the loops above run the commands).
    from mmseg_internvit.apis.errors import run_tool as start
    assert start('train', [str(tmp_path / 'nope.py')]) != 0
    assert 'nope.py does not exist' in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert start('train', [SMOKE, '--amp']) == 2
        assert '--amp needs a GPU' in capsys.readouterr().err
    assert start('test', [SMOKE, str(tmp_path / 'x.pth')]) == 2
    assert 'x.pth does not exist' in capsys.readouterr().err


@pytest.mark.slow
def test_demo_learns(tmp_path):
    """`make demo`: the trained smoke probe beats the untrained one clearly."""
    out = run_tool('demo.py', '--work-dir', tmp_path / 'demo', '--data-root', tmp_path / 'data')
    before = float(re.search(r'untrained mIoU: ([\d.]+)', out).group(1))
    after = float(re.search(r'trained   mIoU: ([\d.]+)', out).group(1))
    assert after > before + 20, out[-2000:]
