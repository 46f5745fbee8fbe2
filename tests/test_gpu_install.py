"""The GPU install path, as far as it runs without a GPU: what install_mmcv.sh
would build and where it keeps the wheel, and the offline bundle's wheel parts."""
import hashlib
import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTALL_MMCV = os.path.join(ROOT, 'tools', 'install', 'install_mmcv.sh')
BUNDLE = os.path.join(ROOT, 'tools', 'install', 'offline_gpu_bundle.sh')
TORCH_VERSION = torch.__version__.split('+')[0]
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU-machine plan')


def plan(cache, **env):
    """Run install_mmcv.sh with MMCV_PLAN_ONLY=1: it builds and installs nothing."""
    base = {k: v for k, v in os.environ.items()
            if k not in ('MMCV_DEVICE', 'TORCH_CUDA_ARCH_LIST', 'MAX_JOBS')}
    return subprocess.run(['bash', INSTALL_MMCV, sys.executable, '2.1.0', str(cache)],
                          capture_output=True, text=True,
                          env=dict(base, MMCV_PLAN_ONLY='1', **env))


@NO_GPU
def test_cpu_machine_keeps_the_cpu_wheel_folder(tmp_path):
    proc = plan(tmp_path, MAX_JOBS='3')
    assert proc.returncode == 0, proc.stderr
    assert f'wheel folder {tmp_path}/mmcv-2.1.0-torch-{TORCH_VERSION}\n' in proc.stdout
    assert 'CPU ops, MAX_JOBS=3; measured: 13 min 14 s on 2 cores' in proc.stdout


def test_cuda_wheel_folder_names_cuda_and_arch(tmp_path):
    proc = plan(tmp_path, MMCV_DEVICE='cuda', TORCH_CUDA_ARCH_LIST='8.0;9.0')
    if torch.version.cuda is None:
        assert proc.returncode == 2 and 'CPU-only build' in proc.stderr
        return
    from torch.utils.cpp_extension import CUDA_HOME
    if not CUDA_HOME or not os.access(os.path.join(CUDA_HOME, 'bin', 'nvcc'), os.X_OK):
        assert proc.returncode == 2 and "mmcv's CUDA ops need nvcc" in proc.stderr
        return
    assert proc.returncode == 0, proc.stderr
    key = f'mmcv-2.1.0-torch-{TORCH_VERSION}-cuda{torch.version.cuda}-sm80_90'
    assert f'wheel folder {tmp_path}/{key}\n' in proc.stdout
    assert 'CUDA ops for compute capability 8.0;9.0' in proc.stdout
    assert 'measured: 259 s for one arch on 16 cores (one H200, 2026-11-27)' in proc.stdout


@NO_GPU
def test_cuda_without_a_gpu_or_arch_list_is_refused(tmp_path):
    proc = plan(tmp_path, MMCV_DEVICE='cuda', PATH='/usr/bin:/bin')  # no nvidia-smi either
    assert proc.returncode == 2
    assert ('no GPU visible to torch or nvidia-smi' in proc.stderr
            or 'CPU-only build' in proc.stderr)


def test_bad_device_is_refused(tmp_path):
    proc = plan(tmp_path, MMCV_DEVICE='gpu')
    assert proc.returncode == 2
    assert "MMCV_DEVICE must be auto, cpu or cuda, got 'gpu'" in proc.stderr


def bundle(*args, cwd=None):
    return subprocess.run(['bash', BUNDLE, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd)


def _pins(path):
    """``name -> version`` of the ``name==version`` pins in a requirements-style file."""
    pins = {}
    with open(os.path.join(ROOT, path)) as f:
        for line in f:
            for word in line.split('#')[0].split():
                if '==' in word:
                    name, version = word.split('==')
                    pins[name.lower()] = version
    return pins


def test_offline_bundle_pins_equal_the_install_pins():
    bundle_pins = _pins('tools/install/offline_gpu_wheels.txt')
    install_pins = {**_pins('requirements.txt'), **_pins('requirements-deepspeed.txt')}
    for name in ('mmcv', 'mmengine', 'mmsegmentation', 'mmdet', 'deepspeed'):
        assert bundle_pins[name] == install_pins[name], name
    with open(os.path.join(ROOT, 'Makefile')) as f:
        makefile = f.read()
    assert f'MMCV_VERSION := {install_pins["mmcv"]}' in makefile


def test_built_wheel_travels_in_parts_and_is_reassembled(tmp_path):
    key = 'mmcv-2.1.0-torch-2.11.0-cuda13.0-sm90'
    wheel = 'mmcv-2.1.0-cp312-cp312-linux_x86_64.whl'
    built = tmp_path / 'bundle' / 'mmcv-cache' / key
    built.mkdir(parents=True)
    payload = os.urandom(38 * 2**20)  # the size of the real CUDA wheel
    (built / wheel).write_bytes(payload)
    out = tmp_path / 'out'
    proc = bundle('export-mmcv', tmp_path / 'bundle', out)
    assert proc.returncode == 0, proc.stderr
    parts = sorted((out / 'mmcv-parts' / key).iterdir())
    assert [p.name for p in parts] == [f'{wheel}.part-0{i}' for i in range(3)] + \
        [f'{wheel}.sha256']
    assert all(p.stat().st_size < 16 * 2**20 for p in parts)  # each one comes back
    # A second call on the same machine does not send the same wheel back again...
    twice = bundle('export-mmcv', tmp_path / 'bundle', tmp_path / 'out1')
    assert twice.returncode == 0 and 'not exported again' in twice.stdout
    assert not (tmp_path / 'out1' / 'mmcv-parts').exists()
    # ...but a wheel built anew (other bytes) goes back.
    (built / wheel).write_bytes(payload[::-1])
    rebuilt_out = tmp_path / 'out_rebuilt'
    assert bundle('export-mmcv', tmp_path / 'bundle', rebuilt_out).returncode == 0
    assert len(list((rebuilt_out / 'mmcv-parts' / key).iterdir())) == 4
    # Carried to a fresh machine: the parts alone become the wheel again.
    carried = tmp_path / 'carried'
    (carried / 'mmcv-parts').mkdir(parents=True)
    os.rename(out / 'mmcv-parts' / key, carried / 'mmcv-parts' / key)
    # The lane names the bundle by a relative path (.gpu_bundle).
    proc = bundle('reassemble-mmcv', 'carried', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rebuilt = (carried / 'mmcv-cache' / key / wheel).read_bytes()
    assert hashlib.sha256(rebuilt).digest() == hashlib.sha256(payload).digest()
    # A wheel that came as carried parts is not sent back again.
    again = bundle('export-mmcv', 'carried', tmp_path / 'out2', cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert 'carried in or exported already' in again.stdout
    assert 'not exported again' in again.stdout
    assert not (tmp_path / 'out2' / 'mmcv-parts').exists()
    # A missing part is caught by the checksum; nothing half-written is left.
    (carried / 'mmcv-cache' / key / wheel).unlink()
    (carried / 'mmcv-parts' / key / f'{wheel}.part-01').unlink()
    proc = bundle('reassemble-mmcv', carried)
    assert proc.returncode == 2
    assert f'the parts of {wheel}' in proc.stderr and 'do not add up to its sha256' in proc.stderr
    assert list((carried / 'mmcv-cache' / key).iterdir()) == []


def test_bundle_refuses_unknown_modes_and_missing_folders(tmp_path):
    assert bundle('fetch', tmp_path).returncode == 2
    proc = bundle('install-wheels', tmp_path / 'absent')
    assert proc.returncode == 2 and 'is not a folder' in proc.stderr


DOWNLOAD_SDIST = os.path.join(ROOT, 'tools', 'install', 'download_sdist.sh')
# A stand-in interpreter: `-m pip download --help` prints $PIP_HELP; any other
# call records its arguments and the constraints it was given (flag or env).
FAKE_PYTHON = '''#!/usr/bin/env bash
if [[ " $* " == *" --help "* ]]; then echo "$PIP_HELP"; exit 0; fi
echo "$*" > "$RECORD"
while [ $# -gt 0 ]; do
  [ "$1" = --build-constraint ] && echo "flag: $(cat "$2")" >> "$RECORD"
  shift
done
[ -n "${PIP_CONSTRAINT:-}" ] && echo "env: $(cat "$PIP_CONSTRAINT")" >> "$RECORD"
exit 0
'''


@pytest.mark.parametrize('pip_help', ['  --build-constraint <file>  Constrain build deps',
                                      '  -c, --constraint <file>  Constrain versions'])
def test_sdists_download_with_setuptools_below_81_in_the_build_env(tmp_path, pip_help):
    """mmcv 2.1.0's setup.py needs pkg_resources even for `pip download`: every pip
    generation gets setuptools < 81 for the build environment it makes."""
    fake = tmp_path / 'python'
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    record = tmp_path / 'record'
    proc = subprocess.run(['bash', DOWNLOAD_SDIST, str(fake), str(tmp_path / 'dest'),
                           'mmcv==2.1.0'], capture_output=True, text=True,
                          env=dict(os.environ, PIP_HELP=pip_help, RECORD=str(record)))
    assert proc.returncode == 0, proc.stderr
    args, *env = record.read_text().splitlines()
    assert args.startswith('-m pip download') and args.endswith('mmcv==2.1.0')
    assert '--no-binary :all: --use-pep517' in args
    if 'build-constraint' in pip_help:  # newer pips: the flag (the env var no longer reaches)
        assert env == ['flag: setuptools<81']
    else:
        assert env == ['env: setuptools<81']
    usage = subprocess.run(['bash', DOWNLOAD_SDIST, str(fake), str(tmp_path)],
                           capture_output=True, text=True)
    assert usage.returncode == 2 and 'usage: download_sdist.sh' in usage.stderr


def test_install_deepspeed_into_a_folder_of_its_own(tmp_path):
    """--target puts the sdist's package where only processes that name the folder
    see it; a second call finds it there and installs nothing."""
    import tarfile
    folder = tmp_path / 'bundle'
    folder.mkdir()
    pinned = _pins('tools/install/offline_gpu_wheels.txt')['deepspeed']
    # A stand-in sdist under DeepSpeed's name: a real one is 1.7 MB and not in a clone.
    marker = "__version__ = 'stand-in'\n"
    source = tmp_path / f'deepspeed-{pinned}'
    (source / 'deepspeed').mkdir(parents=True)
    (source / 'deepspeed' / '__init__.py').write_text(marker)
    (source / 'setup.py').write_text("from setuptools import setup\n"
                                     f"setup(name='deepspeed', version='{pinned}', "
                                     "packages=['deepspeed'])\n")
    # An old bundle (another version's sdist only) is refused, by name.
    with tarfile.open(folder / 'deepspeed-0.0.1.tar.gz', 'w:gz') as archive:
        archive.add(source, arcname='deepspeed-0.0.1')
    target = tmp_path / 'private'
    stale = bundle('install-deepspeed', folder, '--python', sys.executable, '--target', target)
    assert stale.returncode == 2
    assert f'has deepspeed-0.0.1.tar.gz but not deepspeed-{pinned}.tar.gz' in stale.stderr
    assert not target.exists() or not any(target.iterdir())
    (folder / 'deepspeed-0.0.1.tar.gz').unlink()
    with tarfile.open(folder / f'deepspeed-{pinned}.tar.gz', 'w:gz') as archive:
        archive.add(source, arcname=f'deepspeed-{pinned}')
    # Installed into the folder even where this environment has DeepSpeed itself.
    proc = bundle('install-deepspeed', folder, '--python', sys.executable, '--target', target)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (f'DeepSpeed {pinned} installed from {folder}/deepspeed-{pinned}.tar.gz '
            f'into {target}') in proc.stdout
    assert (target / 'deepspeed' / '__init__.py').read_text() == marker
    # This environment's own packages are untouched.
    own = importlib.util.find_spec('deepspeed')
    assert own is None or not own.origin.startswith(str(target))
    again = bundle('install-deepspeed', folder, '--python', sys.executable, '--target', target)
    assert again.returncode == 0 and f'DeepSpeed {pinned} present already' in again.stdout
    wrong = bundle('install-wheels', folder, '--target', target)
    assert wrong.returncode == 2
    assert 'install-wheels: --target is an option of install-deepspeed' in wrong.stderr
    # A folder that cannot be made: refused by name, nothing installed.
    (tmp_path / 'a_file').write_text('')
    bad = bundle('install-deepspeed', folder, '--python', sys.executable, '--target',
                 tmp_path / 'a_file' / 'x')
    assert bad.returncode == 2
    assert f"install-deepspeed: cannot create --target {tmp_path / 'a_file' / 'x'}" in bad.stderr


LANE = os.path.join(ROOT, 'tools', 'gpu', 'run_gpu_lane.sh')


def lane(*args):
    return subprocess.run(['bash', LANE, *map(str, args)], capture_output=True, text=True,
                          env=dict(os.environ, PYTHON=sys.executable))


@pytest.mark.parametrize('args,message', [
    (['--budget', '30'], "--budget must be whole seconds >= 60, got '30'"),
    (['--only', 'install,deploy'], "--only: unknown phase 'deploy'"),
    (['--bench', 'some'], "--bench must be core, all, upstream or extra, got 'some'"),
    (['--bench', 'upstream', '--bundle', '/no/bundle'], '--bench upstream needs InternVL'),
    (['--tests', 'backbone,cuda'], "--tests: unknown file 'cuda'"),
    (['--device', 'tpu'], "--device must be cuda or cpu, got 'tpu'"),
    (['--upstream-file', '/no/such/intern_vit_6b.py'], 'does not exist'),
    (['--frobnicate'], "unknown argument '--frobnicate'"),
])
def test_lane_refuses_bad_arguments(tmp_path, args, message):
    proc = lane(*args, '--out', tmp_path / 'out')
    assert proc.returncode == 2 and message in proc.stderr
    assert not (tmp_path / 'out').exists()  # refused before anything is written


def test_lane_dry_run_plans_every_phase_within_the_budget(tmp_path):
    # An empty bundle: what a carried one holds (an upstream file) adds rows.
    empty = tmp_path / 'empty'
    empty.mkdir()
    proc = lane('--dry-run', '--bundle', empty, '--out', tmp_path / 'out', '--bench', 'all')
    assert proc.returncode == 0, proc.stderr
    steps = [line.split()[0] for line in proc.stdout.splitlines()]
    tests = ['tests-backbone', 'tests-segmentation', 'install-deepspeed', 'tests-distributed']
    assert steps == ['install', 'build-mmcv', 'bench-fwd-b8', 'bench-train-cp-b2',
                     'bench-fwd-b1', 'bench-train-cp-b1', 'bench-train-cp-b8', 'bench-sweep-b1',
                     'bench-det-train-cp-b1',
                     'check-install', 'tests-at-once', *tests]
    assert '(in the background during bench)' in proc.stdout
    assert '--mode forward --arch 6b --dtype bfloat16 --device cuda --batch 8' in proc.stdout
    assert '-m pytest -q -m gpu tests/test_gpu_backbone.py' in proc.stdout
    assert 'tests-at-once          3 files at the same time' in proc.stdout
    # DeepSpeed in a folder only the distributed file's processes see.
    deepspeed = os.path.join('.gpu_lane_cache', 'run', 'deepspeed')
    assert f'install-deepspeed {empty} --python {sys.executable} --target {deepspeed}' \
        in proc.stdout
    assert f'env PYTHONPATH={deepspeed}:' in proc.stdout
    serial = lane('--dry-run', '--serial-build', '--serial-tests', '--only', 'build,tests',
                  '--bundle', empty, '--out', tmp_path / 'o')
    assert [line.split()[0] for line in serial.stdout.splitlines()] == \
        ['build-mmcv', 'check-install', *tests]
    # A carried wheel has no build to hide: build alone, the tests, then the bench.
    first = lane('--dry-run', '--tests-first', '--bundle', empty, '--out', tmp_path / 'f')
    assert [line.split()[0] for line in first.stdout.splitlines()] == \
        ['install', 'build-mmcv', 'check-install', 'tests-at-once', *tests, 'bench-fwd-b8',
         'bench-train-cp-b2', 'bench-fwd-b1']
    assert 'in the background' not in first.stdout
    # InternVL's file carried in the bundle adds the upstream rows, after the tests.
    bundle = tmp_path / 'bundle'
    (bundle / 'upstream').mkdir(parents=True)
    (bundle / 'upstream' / 'intern_vit_6b.py').write_text('# carried\n')
    carried = lane('--dry-run', '--bundle', bundle, '--only', 'bench,tests',
                   '--out', tmp_path / 'u')
    assert [line.split()[0] for line in carried.stdout.splitlines()][-3:] == \
        ['tests-distributed', 'bench-train-cp-b2-upstream', 'bench-fwd-b8-upstream']
    assert f"--peer upstream --peer-file {bundle / 'upstream' / 'intern_vit_6b.py'}" \
        in carried.stdout
    # A second call for what the budget cut: one test file (DeepSpeed installed first;
    # alone, so not "at once") and the upstream rows alone.
    second = lane('--dry-run', '--only', 'build,tests,bench', '--tests', 'distributed',
                  '--bench', 'upstream', '--bundle', bundle, '--out', tmp_path / 's')
    assert [line.split()[0] for line in second.stdout.splitlines()] == \
        ['build-mmcv', 'check-install', 'install-deepspeed', 'tests-distributed',
         'bench-train-cp-b2-upstream', 'bench-fwd-b8-upstream']
    assert 'in the background' not in second.stdout
    # A third for the rows beyond the core ones (no upstream rows again).
    extra = lane('--dry-run', '--only', 'bench', '--bench', 'extra', '--bundle', bundle,
                 '--out', tmp_path / 'e')
    assert [line.split()[0] for line in extra.stdout.splitlines()] == \
        ['bench-train-cp-b1', 'bench-train-cp-b8', 'bench-sweep-b1', 'bench-det-train-cp-b1']
    # A dry run writes nothing.
    assert not any((tmp_path / d).exists() for d in ('out', 'o', 'f', 'u', 's', 'e'))


@NO_GPU
def test_a_wheel_at_hand_puts_the_tests_first(tmp_path):
    """wheel-ready: an mmcv wheel for this machine in the bundle, as carried parts or
    built; the lane then runs the tests before the benchmarks by itself."""
    folder = tmp_path / 'bundle'
    wheel = 'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl'
    other = folder / 'mmcv-parts' / 'mmcv-2.1.0-torch-0.0.1'  # another torch's wheel
    other.mkdir(parents=True)
    (other / f'{wheel}.sha256').write_text('')
    assert bundle('wheel-ready', folder, '--python', sys.executable).returncode == 1
    for kind, name in (('mmcv-parts', f'{wheel}.sha256'), ('mmcv-cache', wheel)):
        here = folder / kind / f'mmcv-2.1.0-torch-{TORCH_VERSION}'
        here.mkdir(parents=True)
        (here / name).write_text('')
        assert bundle('wheel-ready', folder, '--python', sys.executable).returncode == 0, kind
        (here / name).unlink()
    (folder / 'mmcv-parts' / f'mmcv-2.1.0-torch-{TORCH_VERSION}' / f'{wheel}.sha256') \
        .write_text('')
    proc = lane('--dry-run', '--bundle', folder, '--out', tmp_path / 'out')
    assert proc.returncode == 0, proc.stderr
    assert f'an mmcv wheel for this machine is in {folder}: tests before the benchmarks' \
        in proc.stdout
    steps = [line.split()[0] for line in proc.stdout.splitlines() if not line.startswith('==')]
    assert steps.index('tests-segmentation') < steps.index('bench-fwd-b8')
    assert 'in the background' not in proc.stdout


def test_lane_returns_few_files(tmp_path):
    """Everything but the summaries (and mmcv's parts) travels back in one archive: a
    transfer that returns only a few files, each under 16 MiB, loses nothing."""
    import json
    import tarfile
    empty = tmp_path / 'bundle'
    empty.mkdir()
    out, run = tmp_path / 'out', tmp_path / 'run'
    # Two test files, at the same time (here every GPU test is skipped: no CUDA).
    proc = lane('--only', 'install,tests', '--tests', 'backbone,distributed', '--bundle', empty,
                '--out', out, '--run-dir', run, '--device', 'cpu', '--budget', '300')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '== 2 test files at once' in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == ['lane-files.tar.gz', 'summary.json',
                                                     'summary.txt']
    summary = json.loads((out / 'summary.json').read_text())
    phases = {p['name']: p for p in summary['phases']}
    assert set(phases) == {'install', 'tests-backbone', 'install-deepspeed',
                           'tests-distributed', 'tests-at-once'}
    assert all(p['status'] == 'ok' for p in phases.values()), phases
    # The files overlapped: both had started before either one ended.
    lines = proc.stdout.splitlines()
    first_end = next(i for i, line in enumerate(lines) if 'tail of logs/tests-' in line)
    started = [line.split()[1] for line in lines[:first_end] if line.startswith('== tests-')]
    assert sorted(started) == ['tests-backbone', 'tests-distributed'], proc.stdout
    assert summary['tests']['files'] == ['backbone', 'distributed']
    assert summary['tests']['files_at_once_s'] == phases['tests-at-once']['seconds']
    assert summary['tests']['skipped'] == len(summary['tests']['cases']) > 0
    text = (out / 'summary.txt').read_text()
    assert text.startswith('GPU lane: ') and 'files at once: ' in text
    # The lane's time counts the files once, by the phase that waited for them all.
    at_once = phases['tests-at-once']['seconds']
    assert summary['lane_s']['parts'] == [['install', phases['install']['seconds']],
                                          ['tests-at-once', at_once]]
    assert f"lane, mmcv build excluded: install {phases['install']['seconds']} + " \
           f"tests-at-once {at_once} = " in text
    # No GPU here: the time is pytest's start, and the summary says so.
    assert summary['tests']['passed'] == summary['tests']['FAILED'] == 0
    assert 'every GPU test was skipped, so not a lane time' in text
    assert f'torch {torch.__version__}' in ' '.join(summary['machine'])
    with tarfile.open(out / 'lane-files.tar.gz') as archive:
        names = set(archive.getnames())
    assert {'logs/machine.log', 'logs/install.log', 'phases.tsv', 'tests-backbone.xml',
            'tests-distributed.xml', 'logs/tests-distributed.log'} <= names
    # A folder it cannot create stops it before anything is cleaned or written.
    (tmp_path / 'a_file').write_text('')
    for option in ('--out', '--run-dir'):
        bad = lane('--only', 'install', '--bundle', empty, '--out', out, '--run-dir', run,
                   option, tmp_path / 'a_file' / 'x')
        assert bad.returncode == 2
        assert f"{option} {tmp_path / 'a_file' / 'x'}: cannot create that folder" in bad.stderr


def test_lane_summary_keeps_what_tests_recorded(tmp_path):
    """The summary of a lane's run folder: JUnit files written by a real pytest run,
    whose tests record values (one named like the case's own field, as the GPU
    segmentation tests do), and a real benchmark JSON of a tiny arch."""
    import json
    from test_benchmark import FAST, TINY_JSON, run_json
    run = tmp_path / 'run'
    (run / 'logs').mkdir(parents=True)
    (run / 'bench').mkdir()
    (run / 'logs' / 'machine.log').write_text('Some GPU, 1 MiB\npython 3 torch 2\n')
    (run / 'phases.tsv').write_text('tests-segmentation\tok\t40\ntests-distributed\t'
                                    'skipped (budget)\t0\n')
    (tmp_path / 'test_recording.py').write_text(
        'def test_trains(record_property):\n'
        "    record_property('miou', 71.49)\n"
        "    record_property('seconds', 24.3)\n\n"
        'def test_breaks():\n'
        '    assert 1 == 2\n')
    proc = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                           str(tmp_path / 'test_recording.py'),
                           '--junitxml', str(run / 'tests-segmentation.xml')],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout  # one test fails on purpose
    result = run_json(tmp_path, '--arch', TINY_JSON, '--size', '56', '56', '--profile', *FAST)
    (run / 'bench' / 'fwd-b8.json').write_text(json.dumps(result))
    summary_py = os.path.join(ROOT, 'tools', 'gpu', 'lane_summary.py')

    def summarize():
        proc = subprocess.run([sys.executable, summary_py, str(run), '77'],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout, json.loads((run / 'summary.json').read_text())

    # Refused: bad arguments, and a folder the lane did not write.
    for args, message in (([str(run)], 'usage: lane_summary.py RUN_DIR ELAPSED_SECONDS'),
                          ([str(run), 'soon'], 'usage: lane_summary.py'),
                          ([str(tmp_path / 'logs'), '1'], f"{tmp_path / 'logs'} has no "
                           f"{os.path.join('logs', 'machine.log')} or phases.tsv")):
        refused = subprocess.run([sys.executable, summary_py, *args], capture_output=True,
                                 text=True)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    text, summary = summarize()
    assert text.startswith('GPU lane: 77 s\nmachine: Some GPU, 1 MiB | python 3 torch 2\n')
    assert [(p['name'], p['status']) for p in summary['phases']] == \
        [('tests-segmentation', 'ok'), ('tests-distributed', 'skipped (budget)')]
    tests = summary['tests']
    assert (tests['passed'], tests['FAILED'], tests['skipped']) == (1, 1, 0)
    assert tests['files'] == ['segmentation']
    trains = next(c for c in tests['cases'] if c['name'] == 'test_trains')
    assert trains['measured'] == {'miou': '71.49', 'seconds': '24.3'}
    assert trains['seconds'] != 24.3  # the case's own duration, not the recorded value
    assert 'test_trains miou=71.49 seconds=24.3' in text
    assert 'FAILED' in text and 'test_breaks' in text
    # One file after another: their times add up.
    assert summary['lane_s'] == dict(parts=[['tests-segmentation', 40],
                                            ['tests-distributed', 0]], total=40)
    assert 'lane, mmcv build excluded: tests-segmentation 40 + tests-distributed 0 = 40 s ' \
           '(issue #11: under 360 s on one H100/H200)\n' in text
    # A tiny arch's row is summarised, but the 6B targets are not judged on it.
    [row] = summary['bench']
    assert (row['row'], row['variant'], row['size']) == ('fwd-b8', 'sdpa', '56x56')
    assert row['vs_eager'] == 1.0 and row['vs_gemm'] == result['runs'][0]['gemm_ratio']
    assert summary['targets'] == []
    assert "targets (issue #11): they apply to --arch 6b; these runs used ['custom']" in text
    # The step's profile, by group.
    assert row['profile'] == result['runs'][0]['profile']
    assert 'profile of one step (cpu operators, self time, ms):' in text
    gemm = row['profile']['groups']['gemm']
    assert "  fwd-b8               sdpa          " in text
    assert f"gemm {gemm['ms']:.1f} ({100 * gemm['share']:.0f}%)" in text
    other = next(t for t in row['profile']['top'] if t['group'] == 'other')
    assert f"largest other: {other['name'][:60]} {other['ms']:.1f}" in text
    # Judged as the 6B at 504 px: met or missed by the recorded ratio. A compiled
    # step's largest entry is fused; "largest other" still names the group other.
    for r in result['runs']:
        r.update(arch_name='6b', variant='eager', height=504, width=504)
        r['profile']['top'].insert(0, dict(name='triton_poi_fused_add_mul_0', group='fused',
                                           ms=1e3, calls=48))
    (run / 'bench' / 'fwd-b8.json').write_text(json.dumps(result))
    text, summary = summarize()
    ratio = result['runs'][0]['gemm_ratio']
    assert summary['targets'] == [dict(target='6B fwd b8 eager vs GEMM', value=ratio,
                                       bound='>= 0.75', met=ratio >= 0.75)]
    assert f"6B fwd b8 eager vs GEMM: {ratio:.2f} (target >= 0.75)" in text
    assert f"largest other: {other['name'][:60]}" in text and 'triton_poi' not in text


def load_lane_summary():
    """tools/gpu/lane_summary.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location(
        'lane_summary', os.path.join(ROOT, 'tools', 'gpu', 'lane_summary.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lane_judges_the_upstream_target_on_one_process_where_it_can():
    """The compiled step timed beside upstream (the lane's upstream row has --compile)
    is what the 2.0x target is judged on; a run without it falls back to the core row."""
    lane_summary = load_lane_summary()

    def row(name, variant, ms):
        return dict(row=name, variant=variant, size='504x504', median_ms=ms, vs_gemm=0.88)

    core = [row('train-cp-b2', 'compiled', 227.5), row('train-cp-b2-upstream', 'upstream', 453.7)]
    (across,) = [t for t in lane_summary.check_targets(core) if 'upstream' in t['target']]
    assert across['target'].endswith('(across processes)') and not across['met']
    assert across['value'] == pytest.approx(453.7 / 227.5)
    beside = core + [row('train-cp-b2-upstream', 'compiled', 225.0)]
    (same,) = [t for t in lane_summary.check_targets(beside) if 'upstream' in t['target']]
    assert same['target'].endswith('(same process)') and same['met']
    assert same['value'] == pytest.approx(453.7 / 225.0)


def test_lane_judges_the_detection_shape_on_its_windows_row(tmp_path):
    """The lane's det-train-cp-b1 row (--windows both): windowed against global attention
    in one run, judged on the speed-up and the peak activation memory ratio the
    benchmark's own comparison reports. A tiny arch on the CPU here, in this process."""
    from test_benchmark import TINY_JSON, start_in_process
    lane_summary = load_lane_summary()
    (tmp_path / 'bench').mkdir()
    path = tmp_path / 'bench' / 'det-train-cp-b1.json'
    assert start_in_process('--mode', 'train', '--with-cp', '--windows', 'both',
                            '--arch', TINY_JSON, '--size', '56', '70', '--window-size', '2',
                            '--global-blocks', '1', '--warmup', '1', '--repeats', '2',
                            '--threads', '1', '--json', path) == 0
    (comparison,) = json.loads(path.read_text())['comparisons']
    targets = {t['target']: t for t in lane_summary.check_targets(
        lane_summary.read_bench(str(tmp_path)))}
    speed = targets['6B train+cp 1024 windows speed-up over global']
    assert speed['value'] == pytest.approx(comparison['speedup'])
    assert speed['met'] == (comparison['speedup'] >= 1.5) and speed['bound'] == '>= 1.5x'
    memory = targets['6B train+cp 1024 windows peak activation memory vs global']
    assert memory['value'] == pytest.approx(comparison['peak_memory_ratio'])
    assert memory['met'] == (memory['value'] <= 0.5)
