"""Shared fixtures: tiny InternViT archs and checkpoint writers in HF/upstream layout."""
import json
import os
import re

import pytest
import torch

TINY_6B_STYLE = dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=256,
                     qk_normalization=True, norm_type='rms', qkv_bias=False,
                     layer_scale_init=0.1, pretrain_size=56)
TINY_300M_STYLE = dict(embed_dims=64, num_layers=3, num_heads=4, feedforward_channels=256,
                       qk_normalization=False, norm_type='ln', qkv_bias=True,
                       layer_scale_init=1.0, pretrain_size=56)


def pytest_addoption(parser):
    parser.addoption('--runslow', action='store_true', help='also run tests marked slow')


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: takes minutes; run with --runslow')
    config.addinivalue_line('markers', 'gpu: needs a CUDA GPU, skipped without one '
                                       '(make test-gpu runs only these: pytest -m gpu)')
    share_cores_between_workers()
    # What every tool and every config's custom_imports does first; tests of
    # the bare import (nothing registered) run in subprocesses.
    from mmseg_internvit import register_all_modules
    register_all_modules()


def share_cores_between_workers() -> None:
    """Give each pytest-xdist worker its share of torch's threads (``make test`` runs two).

    Each worker's torch would otherwise start as many threads as one process
    would (one per core, or ``OMP_NUM_THREADS``), and so would every tool a test
    launches (they inherit ``OMP_NUM_THREADS``): two workers on two cores would
    run four OpenMP threads on two cores.
    """
    workers = os.environ.get('PYTEST_XDIST_WORKER_COUNT')
    if not workers:
        return
    threads = max(1, torch.get_num_threads() // int(workers))
    os.environ['OMP_NUM_THREADS'] = str(threads)
    torch.set_num_threads(threads)


# Files whose tests take minutes (two-process training runs): collected first,
# so that `make test`'s workers (one file at a time each, in collection order:
# --no-loadscope-reorder) start them at once instead of leaving one worker
# alone with them at the end.
LONGEST_FILES = ('test_distributed.py',)


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.path.name not in LONGEST_FILES)  # stable: order kept
    if not torch.cuda.is_available():
        no_gpu = pytest.mark.skip(reason='gpu: needs a CUDA GPU (torch.cuda.is_available() is '
                                         'False here); run make test-gpu on a GPU machine')
        for item in items:
            if item.get_closest_marker('gpu'):
                item.add_marker(no_gpu)
    if config.getoption('--runslow'):
        return
    skip = pytest.mark.skip(reason='slow: run with --runslow (make test-all)')
    for item in items:
        if 'slow' in item.keywords:
            item.add_marker(skip)


REPO_WORK_DIRS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              'work_dirs')


def _repo_work_dirs() -> set:
    return set(os.listdir(REPO_WORK_DIRS)) if os.path.isdir(REPO_WORK_DIRS) else set()


def pytest_sessionstart(session):
    if not hasattr(session.config, 'workerinput'):  # the run itself, not an xdist worker
        session.config.stash[_WORK_DIRS_BEFORE] = _repo_work_dirs()


def pytest_sessionfinish(session, exitstatus):
    """Fail the run where a test wrote into the repository's work_dirs/.

    Tests write into their temporary folders; mmengine writes into
    ``./work_dirs`` wherever a runner or strategy is built without a
    ``work_dir`` (its default), which would leave logs in a user's checkout.
    """
    before = session.config.stash.get(_WORK_DIRS_BEFORE, None)
    if before is None:
        return
    new = sorted(_repo_work_dirs() - before)
    if new:
        reporter = session.config.pluginmanager.get_plugin('terminalreporter')
        if reporter is not None:
            reporter.write_line('')
            reporter.write_line(f'error: the tests wrote into {REPO_WORK_DIRS}: {new} '
                                '(give the runner or strategy a temporary work_dir)', red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_WORK_DIRS_BEFORE = pytest.StashKey[set]()


@pytest.fixture(autouse=True)
def _forget_mm_loggers():
    """Drop mmengine's logger instances after each test.

    A Runner names its logger after the config and the current second, so two
    tools run in-process within one second would share the first one's logger,
    whose stream handler still writes to that test's (closed) captured stdout.
    """
    yield
    from mmengine.logging import MMLogger
    MMLogger._instance_dict.clear()


def build_tiny(arch=None, seed=0, **kwargs):
    """A tiny InternViT with random, non-trivial weights (seeded)."""
    from mmseg_internvit.models import InternViT
    torch.manual_seed(seed)
    model = InternViT(arch=dict(arch or TINY_6B_STYLE), **kwargs)
    model.init_weights()
    # Perturb norms and layer scales so a wrong key mapping shows in outputs.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    return model


def to_hf_keys(state, prefix=''):
    """Our key names -> Hugging Face remote-code InternViT names (test inverse map)."""
    out = {}
    for key, value in state.items():
        if key == 'cls_token':
            new = 'embeddings.class_embedding'
        elif key == 'pos_embed':
            new = 'embeddings.position_embedding'
        elif key.startswith('patch_embed.proj.'):
            new = 'embeddings.patch_embedding.' + key.rsplit('.', 1)[1]
        else:
            new = re.sub(r'^blocks\.(\d+)\.ls([12])\.gamma$', r'encoder.layers.\1.ls\2', key)
            new = re.sub(r'^blocks\.', 'encoder.layers.', new)
        out[prefix + new] = value.clone()
    return out


def snapshot(model):
    """Copies of every tensor of ``model``'s state, to check a failed load changed nothing."""
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_untouched(model, before):
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f'{k} was modified by a failed load'


def write_sharded(folder, shards):
    """Write ``{shard file name: {key: tensor}}`` as safetensors shards plus a
    ``model.safetensors.index.json`` mapping every key to its shard."""
    from safetensors.torch import save_file
    weight_map = {}
    for name, tensors in shards.items():
        save_file(tensors, os.path.join(folder, name))
        weight_map.update({k: name for k in tensors})
    index = os.path.join(folder, 'model.safetensors.index.json')
    with open(index, 'w') as f:
        json.dump({'metadata': {}, 'weight_map': weight_map}, f)
    return index


@pytest.fixture
def tiny_model():
    return build_tiny()


@pytest.fixture(scope='session')
def sample_ade20k(tmp_path_factory):
    """The generated sample ADE20K dataset (built once per test session)."""
    from mmseg_internvit.datasets.sample_data import build_sample_ade20k
    return build_sample_ade20k(str(tmp_path_factory.mktemp('data')))
