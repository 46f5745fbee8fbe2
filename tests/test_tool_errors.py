"""Every user error the tools handle: one ``error:`` line naming the culprit, exit status 2.

The table ``CASES`` is the source of docs/errors.md (a test keeps them in
step): each case runs a tool in this process through ``run_tool``, exactly as
``tools/<name>.py`` does, and checks the message, the status, that no
traceback is printed and that nothing is left half-written.
"""
import os
import re
import stat
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
LINEAR = str(ROOT / 'configs/smoke/linear_internvit-tiny_1xb4-300_ade20k-sample-112x112.py')
UPERNET = str(ROOT / 'configs/smoke/upernet_internvit-tiny_1xb4-300_ade20k-sample-112x112.py')
ZERO2 = str(ROOT / 'configs/smoke/linear_internvit-tiny-zero2_2xb2-300_ade20k-sample-112x112.py')
ZERO3 = str(ROOT / 'configs/smoke/linear_internvit-tiny-zero3_2xb2-300_ade20k-sample-112x112.py')
FSDP = str(ROOT / 'configs/smoke/linear_internvit-tiny-fsdp_2xb2-300_ade20k-sample-112x112.py')
DETECTION = str(ROOT / 'configs/detection/smoke/'
                'mask-rcnn_internvit-tiny-simplefpn_1xb2-lsj-12e_coco-format-160x160.py')
DOC = ROOT / 'docs' / 'errors.md'


@dataclass
class Case:
    """A user error: which tool, how to provoke it, what it must say."""
    name: str
    tool: str
    args: Callable[['Files'], List[str]]
    message: str  # a regular expression the error line must match
    status: int = 2
    check: Optional[Callable[['Files'], None]] = None  # nothing half-written, etc.


class Files:
    """The files the cases use, made once per test session in a temporary folder."""

    def __init__(self, root: Path, data: str) -> None:
        from mmengine.runner import save_checkpoint
        from mmseg.apis import init_model

        from mmseg_internvit import register_all_modules
        register_all_modules()
        self.root, self.data = root, data
        torch.manual_seed(0)
        self.linear = str(root / 'linear.pth')
        save_checkpoint(dict(meta={}, state_dict=init_model(LINEAR, device='cpu').state_dict()),
                        self.linear)
        self.upernet = str(root / 'upernet.pth')
        save_checkpoint(dict(meta={}, state_dict=init_model(UPERNET, device='cpu').state_dict()),
                        self.upernet)
        self.truncated = str(root / 'truncated.pth')
        with open(self.linear, 'rb') as f:
            Path(self.truncated).write_bytes(f.read()[:4000])
        self.a_file = str(root / 'a_file.txt')
        Path(self.a_file).write_text('not a folder\n')
        self.empty_zero = root / 'iter_4.pth'
        self.empty_zero.mkdir()
        (self.empty_zero / 'zero_pp_rank_0_mp_rank_00_optim_states.pt').write_bytes(b'')
        self.broken_zero = root / 'broken_zero' / 'iter_4.pth'
        self.broken_zero.mkdir(parents=True)
        (self.broken_zero / 'mp_rank_00_model_states.pt').write_bytes(b'PK\x03\x04 cut short')
        self.image = str(root / 'photo.png')
        Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(self.image)
        # A copy of the sample data with one broken annotation.
        self.broken_data = str(root / 'broken' / 'ADEChallengeData2016')
        shutil.copytree(data, self.broken_data)
        Path(self.broken_data, 'annotations', 'training', 'ADE_train_00000005.png').write_text(
            'not a png\n')
        self.two_metrics = str(root / 'two_metrics.py')
        Path(self.two_metrics).write_text(
            f"_base_ = '{LINEAR}'\n"
            "test_evaluator = [dict(type='IoUMetric', iou_metrics=['mIoU']),\n"
            "                  dict(type='IoUMetric', iou_metrics=['mDice'])]\n")
        self.misspelt = str(root / 'misspelt.py')
        Path(self.misspelt).write_text(f"_base_ = '{LINEAR}'\ntrian_cfg = dict(max_iters=4)\n")
        self.existing = root / 'existing.safetensors'
        self.existing_onnx = root / 'existing.onnx'
        self.existing_onnx.write_bytes(b'keep me')
        self.text_pth = str(root / 'hello.pth')
        Path(self.text_pth).write_text('hello\n')
        self.few_images = root / 'few' / 'ADEChallengeData2016'
        (self.few_images / 'images' / 'training').mkdir(parents=True)
        self.other_lists = root / 'other_lists'
        self.other_lists.mkdir()
        (self.other_lists / 'train_1-16.txt').write_text('ADE_train_99999999\n')
        self.foreign_root = root / 'foreign'
        (self.foreign_root / 'ADEChallengeData2016').mkdir(parents=True)
        (self.foreign_root / 'ADEChallengeData2016' / 'mine.txt').write_text('keep\n')

    def data_options(self, root=None, iters=4):
        root = root or self.data
        return ['--cfg-options', *(f'{s}_dataloader.dataset.data_root={root}'
                                   for s in ('train', 'val', 'test')),
                f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}']

    def work(self, name):
        return str(self.root / 'work' / name)


def _train_linear(name: str, option: str) -> Callable[[Files], List[str]]:
    """``tools/train.py`` arguments: the linear smoke config on the sample data, into
    ``f.work(name)``, with one more ``--cfg-options`` entry."""
    return lambda f: [LINEAR, '--work-dir', f.work(name), *f.data_options(), option]


def _not_made(name: str, what: str) -> Callable[[Files], None]:
    """The check that the refused run left no ``f.work(name)`` behind."""
    return lambda f: not os.path.exists(f.work(name)) or pytest.fail(what)


def _not_trained(name: str, checkpoint: str) -> Callable[[Files], None]:
    """The check that the refused run saved no ``checkpoint`` in ``f.work(name)``."""
    return lambda f: (not os.path.exists(os.path.join(f.work(name), checkpoint))
                      or pytest.fail('trained'))


def _unchanged_existing(files: Files) -> None:
    assert files.existing.read_bytes() == b'keep me'


CASES = [
    Case('config does not exist', 'train', lambda f: [str(f.root / 'nope.py')],
         r'nope\.py does not exist'),
    Case('--amp with a DeepSpeed config', 'train',
         lambda f: [ZERO2, '--amp', '--work-dir', f.work('a')],
         r"--amp switches OptimWrapper to AmpOptimWrapper; .*zero2.*'s optim_wrapper is "
         r'mmseg_internvit\.DeepSpeedNoGradStepOptimWrapper.*drop --amp'),
    Case('--work-dir is a file', 'train', lambda f: [LINEAR, '--work-dir', f.a_file],
         r'--work-dir .*a_file\.txt is a file; give a folder'),
    Case('--resume from a truncated checkpoint', 'train',
         lambda f: [LINEAR, '--work-dir', f.work('r'), '--resume', f.truncated],
         r'--resume .*truncated\.pth: cannot resume from it, it is truncated'),
    Case('--resume from a weights-only checkpoint', 'train',
         lambda f: [LINEAR, '--work-dir', f.work('w'), '--resume', f.linear],
         r'--resume .*linear\.pth: cannot resume from it, it holds no optimizer and no '
         r'param_schedulers state .* drop --resume and pass --cfg-options load_from=.*linear\.pth'),
    Case('--resume of a file with a DeepSpeed config', 'train',
         lambda f: [ZERO2, '--work-dir', f.work('z'), '--resume', f.linear],
         r'--resume .*linear\.pth: cannot resume from it, this config trains with DeepSpeed, '
         r'which resumes only the checkpoint folders it wrote'),
    Case('load_from does not exist', 'train',
         lambda f: [LINEAR, '--work-dir', f.work('n'), *f.data_options(),
                    f'load_from={f.root / "nope.pth"}'],
         r'load_from=.*nope\.pth does not exist'),
    Case('misspelt key of the training loop', 'train',
         _train_linear('k', 'train_cfg.max_iterz=4'),
         r"IterBasedTrainLoop.*unexpected keyword argument 'max_iterz': the config gives this "
         r'class an argument it does not take; check the spelling'),
    Case('a value of the wrong type', 'train',
         _train_linear('v', 'train_cfg.max_iters=abc'),
         r"IterBasedTrainLoop \(built from the config\): invalid literal for int\(\) with "
         r"base 10: 'abc'"),
    Case('misspelt model type', 'train',
         _train_linear('t', 'model.decode_head.type=FCNHeadd'),
         r"type 'FCNHeadd' is not in the model registry: no imported package registers a "
         r"class of that name; check its spelling .*; did you mean 'FCNHead'\?",
         check=_not_trained('t', 'iter_4.pth')),
    # mmengine's optimizer constructor fails in inspect.signature(None) on its own.
    Case('misspelt optimizer type', 'train',
         _train_linear('o', 'optim_wrapper.optimizer.type=AdamQ'),
         r"optim_wrapper\.optimizer: type 'AdamQ' is not in the optimizer registry: .*; did you "
         r"mean 'Adam'\?",
         check=_not_trained('o', 'iter_4.pth')),
    Case('--launcher pytorch outside torchrun', 'train',
         lambda f: [LINEAR, '--work-dir', f.work('l'), '--launcher', 'pytorch'],
         r'--launcher pytorch runs one process of a job started by torchrun, but RANK, .* not '
         r'set: start it with tools/dist_train\.sh',
         check=_not_made('l', 'work dir made')),
    Case('config is a folder', 'train', lambda f: [str(f.root), '--work-dir', f.work('f')],
         r'Config file .* is a folder; give the path of a config file \(a \.py in it\)',
         check=_not_made('f', 'work dir made')),
    Case('no training iteration', 'train',
         lambda f: [LINEAR, '--work-dir', f.work('z'), *f.data_options(iters=0)],
         r'linear_internvit-tiny_1xb4-300_ade20k-sample-112x112\.py: train_cfg\.max_iters=0 '
         r'would train no iteration; give a whole number >= 1',
         check=_not_made('z', 'work dir made')),
    Case('validation interval 0', 'train',
         _train_linear('vi', 'train_cfg.val_interval=0'),
         r'train_cfg\.val_interval=0 is what the loop divides by to decide when to validate; '
         r'give a whole number >= 1 .*; for no validation during training give one above',
         check=_not_made('vi', 'work dir made')),
    Case('data root does not exist', 'train',
         lambda f: [LINEAR, '--work-dir', f.work('d'), *f.data_options(str(f.root / 'no_data'))],
         r'ADE20KDataset \(built from the config\): .*No such file or directory: '
         r".*no_data/images/training"),
    Case('misspelt top-level key', 'train', lambda f: [f.misspelt, '--work-dir', f.work('m')],
         r"misspelt\.py: the top-level key 'trian_cfg' is no runner setting and would be "
         r"ignored; did you mean 'train_cfg'\?",
         check=_not_made('m', 'work dir made')),
    Case('misspelt checkpoint hook argument', 'train',
         _train_linear('h', 'default_hooks.checkpoint.intervall=2'),
         r'AtomicCheckpointHook \(default_hooks\.checkpoint\) does not take intervall; check '
         r'the spelling: it takes interval, ',
         check=_not_trained('h', 'iter_2.pth')),
    Case('compiled blocks with DeepSpeed ZeRO-3', 'train',
         lambda f: [ZERO3, '--work-dir', f.work('c3'), *f.data_options(),
                    'model.backbone.compile=True'],
         r'model\.backbone compile=True cannot be combined with DeepSpeed ZeRO-3: .* Set '
         r'compile=False',
         check=_not_made('c3', 'work dir made')),
    Case('compiled blocks under FSDP without use_orig_params', 'train',
         lambda f: [FSDP, '--work-dir', f.work('cf'), *f.data_options(),
                    'model.backbone.compile=True', 'strategy.model_wrapper.use_orig_params=False'],
         r'model\.backbone compile=True under FSDP needs '
         r'strategy\.model_wrapper\.use_orig_params=True',
         check=_not_made('cf', 'work dir made')),
    Case('load_from: checkpoint of another config', 'train',
         lambda f: [UPERNET, '--work-dir', f.work('l'), *f.data_options(),
                    f'load_from={f.linear}'],
         r'does not fit the model\..*This is a linear-probe file .* '
         r'but the config builds a UPerHead'),
    Case('broken annotation file while training', 'train',
         lambda f: [LINEAR, '--work-dir', f.work('b'),
                    *f.data_options(f.broken_data, iters=20)],
         r'LoadAnnotations failed on .*ADE_train_00000005\.png: UnidentifiedImageError'),
    Case('checkpoint does not exist', 'test', lambda f: [LINEAR, str(f.root / 'x.pth')],
         r'checkpoint .*x\.pth does not exist'),
    Case('class count differs from the checkpoint', 'test',
         lambda f: [LINEAR, f.linear, '--work-dir', f.work('t1'), *f.data_options(),
                    'model.decode_head.num_classes=10'],
         r'decode_head\.conv_seg\.weight.*\(150, 96, 1, 1\).*\(10, 96, 1, 1\).*'
         r'predicts 150 classes, the config 10'),
    Case('linear-probe checkpoint with a UPerNet config', 'test',
         lambda f: [UPERNET, f.linear, '--work-dir', f.work('t2'), *f.data_options()],
         r'Missing .*decode_head\.psp_modules.*linear-probe file .* but the config builds'),
    Case('truncated checkpoint', 'test',
         lambda f: [LINEAR, f.truncated, '--work-dir', f.work('t3'), *f.data_options()],
         r'truncated\.pth'),
    Case('ZeRO folder without model states', 'test',
         lambda f: [LINEAR, str(f.empty_zero), '--work-dir', f.work('t4'), *f.data_options()],
         r'iter_4\.pth is a folder but neither a DeepSpeed checkpoint'),
    Case('ZeRO folder with a damaged model-states file', 'test',
         lambda f: [ZERO2, str(f.broken_zero), '--work-dir', f.work('t6'), *f.data_options()],
         r'cannot read .*iter_4\.pth/mp_rank_00_model_states\.pt: .*the DeepSpeed checkpoint '
         r'is incomplete \(a run killed while saving\?\) or damaged'),
    Case('misspelt transform type', 'test',
         lambda f: [LINEAR, f.linear, '--work-dir', f.work('t7'), *f.data_options(),
                    'test_dataloader.dataset.pipeline.0.type=LoadImageFromFil'],
         r"type 'LoadImageFromFil' is not in the transform registry: .*; did you mean "
         r"'LoadImageFromFile'\?"),
    Case('a name the metric does not know', 'test',
         lambda f: [LINEAR, f.linear, '--work-dir', f.work('t8'), *f.data_options(),
                    'test_evaluator.iou_metrics=[mIoUU]'],
         r"test_evaluator\.iou_metrics names \['mIoUU'\], which IoUMetric does not compute "
         r'\(it computes mIoU, mDice, mFscore; mmseg would say so only after the whole '
         r'evaluation ran\)',
         check=_not_made('t8', 'work dir made')),
    Case('--tta with a config without TTA', 'test',
         lambda f: [DETECTION, f.linear, '--tta', '--work-dir', f.work('t5')],
         r'--tta needs tta_model and tta_pipeline .*mask-rcnn.*has no tta_model or tta_pipeline'),
    Case('--out is a file', 'test', lambda f: [LINEAR, f.linear, '--out', f.a_file],
         r'--out .*a_file\.txt is a file; give a folder'),
    Case('--out with several metrics', 'test',
         lambda f: [f.two_metrics, f.linear, '--out', f.work('o1'), '--work-dir', f.work('o2')],
         r'--out sets output_dir of the one metric in test_evaluator; .*two_metrics\.py names '
         r'several: give output_dir to the one that should write',
         check=_not_made('o1', '--out made')),
    Case('truncated checkpoint (inference)', 'infer',
         lambda f: [LINEAR, f.truncated, f.image, '--out-dir', f.work('i1')],
         r'truncated\.pth'),
    Case('--out-dir is a file', 'infer',
         lambda f: [LINEAR, f.linear, f.image, '--out-dir', f.a_file],
         r'output folder .*a_file\.txt exists and is not a folder'),
    Case('no image among the inputs', 'infer',
         lambda f: [LINEAR, f.linear, str(f.root / 'none*.jpg'), '--out-dir', f.work('i2')],
         r'no images found in .*none\*\.jpg'),
    Case('unknown --device', 'infer',
         lambda f: [LINEAR, f.linear, f.image, '--out-dir', f.work('i3'), '--device', 'tpu'],
         r'--device tpu: not a device to run on; use cpu, cuda or cuda:N',
         check=_not_made('i3', '--out-dir made')),
    Case('a detection config', 'infer',
         lambda f: [DETECTION, f.linear, f.image, '--out-dir', f.work('i4')],
         r"model type 'MaskRCNN' in .*mask-rcnn.* is not an mmseg segmentor: only "
         r'EncoderDecoder segmentation configs can be run here'),
    Case('the only image does not exist', 'infer',
         lambda f: [LINEAR, f.linear, str(f.root / 'nope.jpg'), '--out-dir', f.work('i5')],
         r'no such image file: .*nope\.jpg; check the path',
         check=_not_made('i5', '--out-dir made')),
    Case('a DeepSpeed folder', 'convert_checkpoint',
         lambda f: [str(f.broken_zero), str(f.root / 'z.safetensors')],
         r'iter_4\.pth is a DeepSpeed checkpoint folder .*tools/consolidate_checkpoint\.py'),
    Case('a text file named .pth', 'convert_checkpoint',
         lambda f: [f.text_pth, str(f.root / 't.safetensors')],
         r"hello\.pth \(6 bytes\) is not a torch checkpoint: it starts with b'hello\\n'"),
    # torch words this as a weights-only refusal and suggests weights_only=False.
    Case('an image given as the checkpoint', 'infer',
         lambda f: [LINEAR, f.image, f.image, '--out-dir', f.work('i')],
         r"photo\.png \(\d+ bytes\) is not a torch checkpoint: it starts with b'\\x89PNG",
         check=_not_made('i', 'output made')),
    Case('output exists (no --overwrite)', 'export_onnx',
         lambda f: [LINEAR, f.linear, str(f.existing_onnx)],
         r'existing\.onnx exists; pass --overwrite to replace it',
         check=lambda f: f.existing_onnx.read_bytes() == b'keep me' or pytest.fail('changed')),
    Case('output not ending in .onnx', 'export_onnx',
         lambda f: [LINEAR, f.linear, str(f.root / 'model.txt')],
         r'output .*model\.txt must end with \.onnx'),
    Case('output exists (no --overwrite)', 'convert_checkpoint',
         lambda f: [f.linear, str(f.existing)],
         r'existing\.safetensors exists; pass --overwrite', check=_unchanged_existing),
    Case('unknown --arch', 'convert_checkpoint',
         lambda f: [f.linear, str(f.root / 'new.safetensors'), '--arch', '7b'],
         r"Unknown InternViT arch '7b'",
         check=lambda f: not (f.root / 'new.safetensors').exists() or pytest.fail('written')),
    Case('--num-heads 0', 'convert_checkpoint',
         lambda f: [f.linear, str(f.root / 'heads.safetensors'), '--arch', 'auto',
                    '--num-heads', '0'],
         r'--num-heads must be at least 1, got 0',
         check=lambda f: not (f.root / 'heads.safetensors').exists() or pytest.fail('written')),
    Case('wrong --arch onto an existing output', 'convert_checkpoint',
         lambda f: [f.linear, str(f.existing), '--arch', '300m', '--overwrite'],
         r'does not match the model.*24 blocks of width 1024', check=_unchanged_existing),
    Case('output exists (no --overwrite)', 'consolidate_checkpoint',
         lambda f: [f.linear, str(f.existing)],
         r'existing\.safetensors exists; pass --overwrite', check=_unchanged_existing),
    Case('ROOT is a file', 'make_sample_ade20k', lambda f: [f.a_file],
         r'ROOT .*a_file\.txt is a file; give a folder \(it is created if needed\)'),
    Case('a foreign ADEChallengeData2016 folder', 'make_sample_ade20k',
         lambda f: [str(f.foreign_root)],
         r'ADEChallengeData2016 exists but has no readable .* marker.*Nothing was written'),
    Case('crop out of range', 'check_ade20k',
         lambda f: [f.data, '--crop', '0'], r'check_ade20k: crop=0 must be >= 1'),
    Case('data root does not exist', 'check_ade20k', lambda f: [str(f.root / 'no_ade')],
         r'no_ade does not exist; pass the ADEChallengeData2016 folder or its parent'),
    Case('fewer than 16 training images', 'make_few_shot_splits',
         lambda f: ['--data-root', str(f.few_images), '--out-dir', f.work('few')],
         r'images/training has no \.jpg training images; the 1/16 list needs at least 16',
         check=_not_made('few', 'written')),
    Case('existing lists with other names', 'make_few_shot_splits',
         lambda f: ['--data-root', f.data, '--out-dir', str(f.other_lists)],
         r'other_lists/train_1-\d+\.txt exists with other names; pass --out-dir to write '
         r'elsewhere or --overwrite',
         check=lambda f: [(p.name, p.read_text()) for p in f.other_lists.iterdir()]
         == [('train_1-16.txt', 'ADE_train_99999999\n')] or pytest.fail('written')),
    Case('--data-root without training images', 'make_few_shot_splits',
         lambda f: ['--data-root', f.a_file, '--out-dir', f.work('splits')],
         r'a_file\.txt/images/training does not exist; pass the ADEChallengeData2016'),
]


@pytest.fixture(scope='module')
def files(tmp_path_factory, sample_ade20k):
    return Files(tmp_path_factory.mktemp('errors'), sample_ade20k)


@pytest.mark.parametrize('case', CASES, ids=lambda c: f'{c.tool}: {c.name}')
def test_user_error(case, files, capsys):
    from mmseg_internvit.apis.errors import run_tool
    files.existing.write_bytes(b'keep me')
    status = run_tool(case.tool, case.args(files))
    err = capsys.readouterr().err
    assert status == case.status, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith('error: ')]
    assert len(lines) == 1, err[-3000:]
    assert re.search(case.message, lines[0]), lines[0]
    assert 'Traceback' not in err
    if case.check is not None:
        case.check(files)


def test_debug_shows_the_traceback(files):
    from mmseg_internvit.apis.errors import run_tool
    from mmseg_internvit.checkpoint import CheckpointReadError
    with pytest.raises(CheckpointReadError):
        run_tool('infer', [LINEAR, files.truncated, files.image, '--out-dir',
                           files.work('d'), '--debug'])


def test_a_glob_matching_nothing_is_reported(files, capsys):
    from mmseg_internvit.apis.errors import run_tool
    status = run_tool('infer', [LINEAR, files.linear, files.image, str(files.root / 'no*.jpg'),
                                '--out-dir', files.work('g')])
    err = capsys.readouterr().err
    assert status == 0, err[-3000:]
    assert re.search(r'warning: .*no\*\.jpg matched no image files', err)


def test_converted_files_follow_the_umask(files):
    from mmseg_internvit.apis.errors import run_tool
    old = os.umask(0o022)
    try:
        out = files.root / 'mode.safetensors'
        assert run_tool('convert_checkpoint', [files.linear, str(out)]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_docs_table_lists_every_case():
    """docs/errors.md is kept beside this table: every case, tool and status is there."""
    text = DOC.read_text()
    for case in CASES:
        row = f'| `{case.tool}` | {case.name} |'
        assert row in text, f'docs/errors.md lacks the row starting {row!r}'


def test_a_bug_inside_a_pipeline_step_keeps_its_traceback():
    """A bad file is named; a programming error in a step is not blamed on the file."""
    from mmseg_internvit.apis.errors import _user_message

    class Step:
        def __init__(self, error):
            self.error = error

        def transform(self, results):
            raise self.error

    def raised(error):
        try:
            Step(error).transform({'img_path': 'a.jpg', 'seg_map_path': 'a.png'})
        except Exception as exc:  # noqa: BLE001
            return exc

    message = _user_message(raised(OSError('cannot identify image file')))
    assert message.startswith('Step failed on a.jpg / a.png: OSError: cannot identify')
    assert _user_message(raised(AttributeError("'NoneType' object has no attribute 'shape'"))) \
        is None
