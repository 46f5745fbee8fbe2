"""tools/benchmark.py: JSON fields, FLOP formula, attention comparison, load check, bad args.

Performance is never asserted here: timings only need to be positive.
"""
import contextlib
import importlib.metadata
import io
import json
import os
import subprocess
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(REPO, 'tools', 'benchmark.py')
TINY = dict(embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=256,
            qk_normalization=True, norm_type='rms', qkv_bias=False, layer_scale_init=0.1,
            pretrain_size=56)
TINY_JSON = json.dumps(TINY)
FAST = ['--warmup', '1', '--repeats', '2', '--threads', '1']


def run_tool(*args, expect_ok=True, pythonpath=REPO):
    env = dict(os.environ, PYTHONPATH=pythonpath)
    proc = subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                          env=env)
    if expect_ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def start_in_process(*args) -> int:
    """The tool's main in this process, as ``tools/benchmark.py`` starts it (its
    command line itself is run by the tests that need a fresh interpreter: hidden
    libraries, compilation, peers). torch's thread count is restored."""
    from mmseg_internvit.apis.errors import run_tool as start
    threads = torch.get_num_threads()
    try:
        return start('benchmark', [str(a) for a in args], register='none')
    except SystemExit as exit_:  # argparse's own errors
        return exit_.code
    finally:
        torch.set_num_threads(threads)


def run_in_process(capsys, *args):
    code = start_in_process(*args)
    return code, capsys.readouterr().err


def run_json(tmp_path, *args, fresh_process=False):
    """The tool's JSON result: in this process unless ``fresh_process`` (a fresh
    interpreter costs ~7 s of imports on a 2-core machine, the tiny runs far less)."""
    path = tmp_path / 'result.json'
    if fresh_process:
        run_tool(*args, '--json', str(path))
    else:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = start_in_process(*args, '--json', path)
        assert code == 0, err.getvalue()
    return json.loads(path.read_text())


def expected_forward_flops(C, layers, tokens, batch):
    # The formula, written out independently of the tool.
    return batch * tokens * layers * (24 * C * C + 4 * tokens * C)


def test_forward_json_fields_and_flops(tmp_path):
    result = run_json(tmp_path, '--mode', 'forward', '--arch', TINY_JSON, '--size', '56', '70',
                      '--batch', '2', *FAST)
    (run,) = result['runs']
    tokens = 4 * 5 + 1
    assert run['tokens'] == tokens
    assert run['flops'] == expected_forward_flops(64, 2, tokens, 2)
    for key in ('median', 'min', 'max', 'q1', 'q3'):
        assert run['time_s'][key] > 0
    assert run['time_s']['min'] <= run['time_s']['median'] <= run['time_s']['max']
    assert len(run['time_s']['times']) == 2
    assert run['images_per_s'] > 0 and run['tokens_per_s'] > 0
    assert run['flops_per_s'] == pytest.approx(run['flops'] / run['time_s']['median'])
    assert run['gemm']['shape'] == [2 * tokens, 64, 256]
    assert run['gemm']['calls_per_repeat'] == 1  # CPU: one product per timed repeat
    assert run['gemm']['flops_per_s'] > 0
    assert run['gemm_ratio'] == pytest.approx(run['flops_per_s'] / run['gemm']['flops_per_s'])
    assert run['peak_memory']['method'].startswith('rss')
    assert run['peak_memory']['peak_bytes'] > 0
    assert result['environment']['torch'] == torch.__version__
    assert result['environment']['timm'] == importlib.metadata.version('timm')
    assert 'transformers' in result['environment']  # its version, or None where absent


@pytest.mark.parametrize('extra,multiplier', [([], 3), (['--with-cp'], 4)])
def test_train_flops_multiplier(tmp_path, extra, multiplier):
    result = run_json(tmp_path, '--mode', 'train', '--arch', TINY_JSON, '--size', '56', '56',
                      *extra, *FAST)
    (run,) = result['runs']
    assert run['with_cp'] == bool(extra)
    assert run['flops'] == multiplier * expected_forward_flops(64, 2, 17, 1)
    assert run['time_s']['median'] > 0


def test_backbone_modes_need_no_mm_library(tmp_path):
    """As on a bare GPU machine: mmseg, mmdet and mmcv that fail to import change nothing."""
    for name in ('mmseg', 'mmdet', 'mmcv'):
        (tmp_path / name).mkdir()
        (tmp_path / name / '__init__.py').write_text(
            f'raise ImportError("the backbone benchmark imported {name}")\n')
    proc = run_tool('--arch', TINY_JSON, '--size', '56', '56', *FAST,
                    pythonpath=f'{tmp_path}{os.pathsep}{REPO}')
    assert 'imported' not in proc.stderr


def test_slide_mode_compares_with_mmseg(tmp_path):
    config = os.path.join(REPO, 'configs', 'smoke',
                          'linear_internvit-tiny_1xb4-300_ade20k-sample-112x112.py')
    result = run_json(tmp_path, '--mode', 'slide', '--config', config, '--size', '150', '130',
                      '--crop-batch', '3', *FAST)
    reference, batched = result['slide']
    assert reference['name'] == 'mmseg loop' and batched['name'] == 'batched, 3 crops/forward'
    assert reference['speedup_min'] == 1.0 and batched['min_s'] > 0
    assert batched['max_abs_diff'] < 1e-4  # the same logits as mmseg's loop


def test_slide_models_get_random_weights_where_the_config_names_a_checkpoint(tmp_path):
    """An adapter's ViT keeps its checkpoint in backbone.vit: cleared too, so the
    timed models hold the random init, never unwritten memory."""
    import torch

    from mmseg_internvit.benchmark.slide import build_slide_segmentors
    config = tmp_path / 'adapter_with_checkpoint.py'
    base = os.path.join(REPO, 'configs', 'smoke',
                        'upernet_internvit-tiny-adapter_1xb4-300_ade20k-sample-112x112.py')
    config.write_text(f'_base_ = {base!r}\n'
                      "model = dict(backbone=dict(vit=dict(init_cfg=dict(\n"
                      "    _delete_=True, type='Pretrained', checkpoint='not_there.pth'))))\n")
    models = build_slide_segmentors(str(config), [2], 'cpu')
    vit = next(iter(models.values())).backbone.vit
    assert torch.isfinite(vit.blocks[0].attn.qkv.weight).all()
    assert 0.01 < vit.blocks[0].attn.qkv.weight.std() < 0.03  # trunc_normal std 0.02


def test_probe_step_runs(tmp_path):
    result = run_json(tmp_path, '--mode', 'probe', '--arch', TINY_JSON, '--size', '56', '56',
                      '--num-classes', '5', *FAST)
    (run,) = result['runs']
    head = 2 * 2 * 64 * 5 * 16  # forward + weight gradient of the 1x1 conv, 16 pixels
    assert run['flops'] == expected_forward_flops(64, 2, 17, 1) + head
    assert run['time_s']['median'] > 0


def test_attn_both_reports_ratios_and_sizes(tmp_path):
    result = run_json(tmp_path, '--arch', TINY_JSON, '--sizes', '56', '42x70', '--attn', 'both',
                      *FAST)
    impls = [(r['attn_impl'], r['height'], r['width']) for r in result['runs']]
    assert impls == [('naive', 56, 56), ('sdpa', 56, 56), ('naive', 42, 70), ('sdpa', 42, 70)]
    assert len(result['comparisons']) == 2
    for comp in result['comparisons']:
        assert comp['time_ratio'] > 0 and comp['speedup'] == pytest.approx(1 / comp['time_ratio'])
        assert (comp['reference'], comp['variant']) == ('naive', 'sdpa')
        assert comp['variant_time_s'] / comp['reference_time_s'] == \
            pytest.approx(comp['time_ratio'])
        assert 'peak_memory_ratio' in comp and 'variant_peak_memory_bytes' in comp


def test_windows_both_compares_global_and_windowed(tmp_path):
    result = run_json(tmp_path, '--arch', TINY_JSON, '--size', '56', '70', '--windows', 'both',
                      '--window-size', '2', '--global-blocks', '1', *FAST)
    glob, win = result['runs']
    assert (glob['variant'], glob['window_size']) == ('global', None)
    assert (win['variant'], win['window_size'], win['global_attn_indexes']) == \
        ('window2', 2, [1])
    # 4 x 5 grid + cls = 21 tokens. Block 0 is windowed: 2 x 2 windows over the
    # grid padded to 4 x 6, each query sees its window and cls (24 x 5 pairs),
    # plus the cls query over all 21 tokens; block 1 is global (21 x 21).
    assert glob['flops'] == expected_forward_flops(64, 2, 21, 1)
    assert win['flops'] == expected_forward_flops(64, 2, 21, 1) - 4 * 64 * (21 * 21 - 24 * 5 - 21)
    (comp,) = result['comparisons']
    assert (comp['reference'], comp['variant']) == ('global', 'window2')
    assert comp['speedup'] == pytest.approx(glob['time_s']['median'] / win['time_s']['median'])


def test_windows_default_to_the_detection_shape(tmp_path):
    result = run_json(tmp_path, '--arch', TINY_JSON, '--windows', 'on', '--global-blocks', '1',
                      '--warmup', '0', '--repeats', '1', '--threads', '1')
    (run,) = result['runs']
    assert (run['height'], run['width'], run['tokens']) == (1024, 1024, 74 * 74 + 1)
    assert (run['variant'], run['window_size'], run['global_attn_indexes']) == ('sdpa', 14, [1])


def test_plot_written(tmp_path):
    pytest.importorskip('matplotlib')
    png = tmp_path / 'plot.png'
    assert start_in_process('--arch', TINY_JSON, '--sizes', '28', '56', '--plot', png,
                            *FAST) == 0
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_plot_without_matplotlib_is_refused(tmp_path):
    fake = tmp_path / 'matplotlib'
    fake.mkdir()
    (fake / '__init__.py').write_text("raise ImportError('No module named matplotlib')\n")
    proc = run_tool('--arch', TINY_JSON, '--sizes', '28', '56', '--plot', 'x.png',
                    expect_ok=False, pythonpath=f'{tmp_path}{os.pathsep}{REPO}')
    assert proc.returncode != 0
    assert '--plot needs the matplotlib package' in proc.stderr


def test_load6b_on_tiny_arch(tmp_path):
    result = run_json(tmp_path, '--mode', 'load6b', '--arch', TINY_JSON, '--size', '56', '56',
                      '--workdir', str(tmp_path), '--threads', '1')
    load = result['load']
    # 2 blocks of 12·C² + norms/biases, plus embeddings, in bf16.
    from mmseg_internvit.models import InternViT
    model = InternViT(arch=TINY, dtype='bfloat16')
    assert load['weight_bytes'] == sum(p.numel() * 2 for p in model.state_dict().values())
    assert load['checkpoint_bytes'] == load['weight_bytes']
    assert load['shards'] == 1 + TINY['num_layers']
    assert load['peak_rss_bytes'] >= load['rss_after_imports_bytes'] > 0
    assert load['peak_rss_ratio'] == pytest.approx(load['peak_rss_bytes'] / load['weight_bytes'])
    assert load['output_shape'] == [1, 64, 4, 4] and load['output_finite']
    assert load['load_s'] > 0 and load['forward_s'] > 0
    # The temporary checkpoint is removed.
    assert [p.name for p in tmp_path.iterdir()] == ['result.json']


# A stand-in for InternVL's segmentation/mmseg_custom/models/backbones/intern_vit_6b.py,
# written from its documented interface: the mmcv 1.x / mmseg 0.x names it imports,
# the InternViT6B constructor arguments, the timm-style parameter names (our blocks
# use the same ones), a fixed position grid of img_size / patch_size added as it is,
# and a list of float NCHW maps of out_indices. It tests the peer plumbing (import by
# path beside mmcv 2 / mmseg 1, shared weights, position grid per size), not
# upstream's arithmetic.
UPSTREAM_STANDIN = """
import torch
import torch.nn as nn
from mmcv.runner import BaseModule
from mmseg.models.builder import BACKBONES
from mmseg.utils import get_root_logger
from mmseg_internvit.models.layers import InternViTBlock


@BACKBONES.register_module()
class InternViT6B(BaseModule):
    def __init__(self, in_chans=3, patch_size=14, img_size=224, pretrain_size=224,
                 qkv_bias=False, drop_path_rate=0.0, embed_dim=3200, num_heads=25,
                 mlp_ratio=4, init_values=0.1, qk_normalization=True, depth=48,
                 use_flash_attn=True, with_cp=True, layerscale_force_fp32=False,
                 out_indices=(7, 11, 15, 23), freeze_vit=False, with_fpn=False,
                 with_final_norm=False, pretrained=None):
        super().__init__()
        grid = img_size // patch_size
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(in_chans, embed_dim, patch_size, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, embed_dim))
        self.blocks = nn.ModuleList(
            InternViTBlock(embed_dim, num_heads, int(embed_dim * mlp_ratio), qkv_bias,
                           qk_normalization, 'rms', init_values) for _ in range(depth))
        self.out_indices = out_indices

    def forward(self, x):
        x = self.patch_embed.proj(x.to(self.pos_embed.dtype))
        B, C, H, W = x.shape
        x = torch.cat([self.cls_token.expand(B, -1, -1), x.flatten(2).transpose(1, 2)], 1)
        x = x + self.pos_embed
        outs = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self.out_indices:
                outs.append(x[:, 1:].transpose(1, 2).reshape(B, C, H, W).float())
        return outs
"""


def test_compiled_and_transformers_on_the_same_weights(tmp_path):
    pytest.importorskip('transformers')
    png = tmp_path / 'sweep.png'
    result = run_json(tmp_path, '--arch', TINY_JSON, '--sizes', '56', '84x70', '--compile',
                      '--peer', 'transformers', '--plot', str(png), *FAST, fresh_process=True)
    names = [(r['variant'], r['height'], r['width']) for r in result['runs']]
    assert names == [(v, *size) for size in ((56, 56), (84, 70))
                     for v in ('eager', 'compiled', 'transformers')]
    for run in result['runs']:
        assert run['first_step_s'] > 0 and run['time_s']['median'] > 0
        assert run['flops'] == expected_forward_flops(64, 2, run['tokens'], 1)
        if run['variant'] == 'eager':
            assert 'agreement' not in run
            continue
        agreement = run['agreement']
        assert agreement['reference'] == 'eager' and agreement['tolerance'] == 1e-3
        assert agreement['relative_diff'] <= 1e-5  # fp32: the same arithmetic
        assert agreement['max_abs_reference'] > 0
        assert ('compile_s' in run) == (run['variant'] == 'compiled')
    comparisons = [(c['reference'], c['variant'], c['height']) for c in result['comparisons']]
    assert comparisons == [('eager', 'compiled', 56), ('eager', 'transformers', 56),
                           ('eager', 'compiled', 84), ('eager', 'transformers', 84)]
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_peers_in_the_checkpointed_training_step(tmp_path):
    pytest.importorskip('transformers')
    upstream = tmp_path / 'intern_vit_6b.py'
    upstream.write_text(UPSTREAM_STANDIN)
    result = run_json(tmp_path, '--mode', 'train', '--with-cp', '--arch', TINY_JSON,
                      '--sizes', '56', '84', '--peer', 'transformers', '--peer', 'upstream',
                      '--peer-file', str(upstream), *FAST, fresh_process=True)
    runs = result['runs']
    assert [r['variant'] for r in runs] == ['eager', 'transformers', 'upstream'] * 2
    for run in runs:
        assert run['flops'] == 4 * expected_forward_flops(64, 2, run['tokens'], 1)
        if run['variant'] != 'eager':
            # Same weights, grid resized per size for the fixed-grid upstream peer.
            assert run['agreement']['relative_diff'] <= 1e-5


def test_upstream_file_gets_its_mm0_names_only_while_it_is_imported(tmp_path):
    import mmseg.utils
    from mmengine.model import BaseModule

    from mmseg_internvit.benchmark.peers import MM0_NAMES, load_upstream_class
    upstream = tmp_path / 'intern_vit_6b.py'
    upstream.write_text(UPSTREAM_STANDIN)
    before = {name: sys.modules.get(name) for name in MM0_NAMES}
    cls = load_upstream_class(str(upstream))
    assert cls.__name__ == 'InternViT6B' and issubclass(cls, BaseModule)
    assert {name: sys.modules.get(name) for name in MM0_NAMES} == before
    assert sys.modules['mmseg.utils'] is mmseg.utils and 'mmcv.runner' not in sys.modules
    from mmseg.registry import MODELS
    assert MODELS.get('InternViT6B') is None  # registered in a registry of its own


def test_upstream_file_that_needs_more_of_mmseg0_is_refused_by_name(tmp_path, capsys):
    upstream = tmp_path / 'intern_vit_6b.py'
    upstream.write_text('from mmseg.core import add_prefix\n' + UPSTREAM_STANDIN)
    code, err = run_in_process(capsys, '--arch', TINY_JSON, '--size', '56', '56', '--peer',
                               'upstream', '--peer-file', str(upstream), *FAST)
    assert code == 2
    (line,) = err.strip().splitlines()[-1:]
    assert line.startswith(f'error: the upstream InternViT-6B code in {upstream} cannot be '
                           'imported')
    assert "No module named 'mmseg.core'" in line and 'mmcv-full 1.x, mmseg 0.x' in line
    assert 'mmcv.runner.BaseModule, mmseg.models.builder.BACKBONES, ' \
        'mmseg.utils.get_root_logger are provided' in line


SLIDE_CONFIG = os.path.join(REPO, 'configs', 'smoke',
                            'linear_internvit-tiny_1xb4-300_ade20k-sample-112x112.py')


@pytest.mark.parametrize('args,message', [
    (['--mode', 'segmentor', '--arch', '300m'], "invalid choice: 'segmentor'"),
    (['--arch', '{"embed_dims": 64,'], 'is not valid JSON'),
    (['--arch', '{"embed_dims": 64}'], 'missing'),
    (['--arch', '7b'], "unknown --arch '7b'"),
    (['--arch', TINY_JSON, '--sizes', '0'], "bad size '0'"),
    (['--arch', TINY_JSON, '--plot', 'x.png'], 'at least two sizes'),
    (['--arch', TINY_JSON, '--with-cp'], '--with-cp only applies to --mode train'),
    (['--mode', 'train'], '--arch is required'),
    (['--arch', TINY_JSON, '--window-size', '7'], '--window-size / --global-blocks apply with'),
    (['--arch', TINY_JSON, '--windows', 'both', '--attn', 'both'], 'compare one thing per run'),
    (['--arch', TINY_JSON, '--windows', 'on', '--global-blocks', '3'],
     '--global-blocks 3 exceeds the 2 blocks'),
    (['--arch', TINY_JSON, '--windows', 'on', '--window-size', '0'], 'expected an integer >= 1'),
    (['--mode', 'load6b', '--windows', 'on'], 'drop --device/--attn/--with-cp/--windows'),
    (['--arch', TINY_JSON, '--peer', 'upstream'], '--peer upstream needs --peer-file PATH'),
    (['--arch', TINY_JSON, '--peer-file', 'x.py'], '--peer-file is the upstream code for'),
    (['--arch', TINY_JSON, '--peer', 'transformers', '--size', '50', '56'],
     'size 50x56 is not a multiple of the patch size 14'),
    (['--arch', TINY_JSON, '--peer', 'upstream', '--peer-file', 'x.py', '--size', '56', '70'],
     'square images only'),
    (['--mode', 'probe', '--arch', TINY_JSON, '--compile'],
     '--compile compare implementations in --mode forward or train, not probe'),
    (['--arch', TINY_JSON, '--compile', '--attn', 'both'], 'one comparison per run'),
    (['--arch', TINY_JSON, '--peer', 'transformers', '--windows', 'on'],
     '--peer runs global attention only'),
    (['--arch', TINY_JSON, '--peer', 'gpt'], "invalid choice: 'gpt'"),
    (['--mode', 'slide', '--config', SLIDE_CONFIG, '--plot', 'x.png', '--compile'],
     '--compile / --plot do not apply to --mode slide'),
    # Outputs are checked before a run that can take minutes.
    (['--arch', TINY_JSON, '--json', '/no_such_folder/r.json'],
     '--json /no_such_folder/r.json: cannot write in /no_such_folder (No such file or '
     'directory)'),
    (['--arch', TINY_JSON, '--json', REPO], 'is a folder; give a file path'),
])
def test_bad_arguments_exit_nonzero(args, message, capsys):
    code, err = run_in_process(capsys, *args)
    assert code != 0
    assert message in err


@pytest.mark.skipif(torch.cuda.is_available(), reason='CUDA is available here')
def test_cuda_without_cuda_is_refused(capsys):
    for args in (['--arch', TINY_JSON], ['--mode', 'slide', '--config', SLIDE_CONFIG]):
        code, err = run_in_process(capsys, *args, '--device', 'cuda')
        assert code != 0
        assert '--device cuda requested but CUDA is not available' in err


@pytest.mark.parametrize('name,group', [
    # CUDA kernels as the profiler names them (cuBLAS on Hopper and Ampere, PyTorch's
    # flash and memory-efficient attention, Inductor's Triton kernels, ATen's own).
    ('nvjet_tst_192x192_64x4_2x1_v_bz_coopA_NNT', 'gemm'),
    ('sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x256x64', 'gemm'),
    ('ampere_bf16_s16816gemm_bf16_128x128_ldg8_f2f_stages_64x3_tn', 'gemm'),
    ('void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128>>', 'attention'),
    ('fmha_cutlassF_bf16_aligned_64x64_rf_sm80', 'attention'),
    ('void (anonymous namespace)::cunn_SoftMaxForward<4, float>', 'attention'),
    ('triton_red_fused__to_copy_mean_mul_pow_rsqrt_0', 'fused'),
    ('void at::native::vectorized_elementwise_kernel<4, at::native::GeluCUDAKernelImpl>',
     'other'),
    # CPU operators.
    ('aten::addmm', 'gemm'), ('aten::mm', 'gemm'), ('aten::bmm', 'gemm'),
    ('aten::_scaled_dot_product_flash_attention_for_cpu', 'attention'),
    ('Torch-Compiled Region: 0/0', 'fused'), ('aten::mul', 'other'), ('aten::_to_copy', 'other'),
    ('aten::mmx', 'other'),
])
def test_profile_groups_kernels_and_operators(name, group):
    from mmseg_internvit.benchmark.profile import categorize
    assert categorize(name) == group


def test_profile_attributes_one_step(tmp_path, capsys):
    path = tmp_path / 'result.json'
    proc = run_tool('--arch', TINY_JSON, '--size', '56', '56', '--attn', 'both', '--profile',
                    *FAST, '--json', str(path))
    assert 'profile of one step (cpu operators, self time):' in proc.stdout
    result = json.loads(path.read_text())
    for run in result['runs']:
        profile = run['profile']
        assert profile['source'] == 'cpu operators'
        groups = profile['groups']
        assert set(groups) == {'attention', 'gemm', 'fused', 'other'}
        assert sum(g['ms'] for g in groups.values()) == pytest.approx(profile['total_ms'])
        assert sum(g['share'] for g in groups.values()) == pytest.approx(1.0)
        assert groups['gemm']['ms'] > 0 and groups['other']['ms'] > 0  # Linear layers, norms
        assert groups['fused']['ms'] == 0  # nothing compiled
        top = profile['top']
        assert 0 < len(top) <= 8 and [t['ms'] for t in top] == sorted(
            (t['ms'] for t in top), reverse=True)
    by_variant = {r['variant']: r['profile']['groups'] for r in result['runs']}
    # sdpa's fused kernel is attention; the reference's scores are batched products
    # (gemm) with a softmax (attention).
    assert by_variant['sdpa']['attention']['ms'] > 0 and by_variant['naive']['attention']['ms'] > 0
    config = os.path.join(REPO, 'configs', 'smoke',
                          'linear_internvit-tiny_1xb4-300_ade20k-sample-112x112.py')
    code, err = run_in_process(capsys, '--mode', 'slide', '--config', config, '--profile')
    assert code == 2 and '--profile do not apply to --mode slide' in err
    code, err = run_in_process(capsys, '--mode', 'load6b', '--profile')
    assert code == 2 and 'drop --device/--attn/--with-cp/--windows/--profile' in err
