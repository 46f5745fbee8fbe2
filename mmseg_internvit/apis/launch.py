"""Start-up of tools/train.py and tools/test.py: config loading, runner building,
CPU/distributed adaptations, what to resume from and how to test a checkpoint."""
import gc
import logging
import os
import os.path as osp
from importlib.util import find_spec
from typing import Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.dist import is_distributed
from mmengine.logging import print_log
from mmengine.registry import RUNNERS

from mmseg_internvit.engine.checkpoint_files import (FSDP_SHARD_NAME, checkpoint_problem,
                                                     find_resume_checkpoint)
from mmseg_internvit.models.backbones.vit_config import drop_pretrained, internvit_config
from .config_checks import check_runner_key_spelling, head_class_count_mismatch
from .errors import add_debug_flag, one_line


def add_common_args(parser) -> None:
    """The flags mmseg's tools/train.py and tools/test.py share."""
    parser.add_argument('--work-dir', help='folder for logs and checkpoints')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. model.backbone.arch=300m')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torchrun sets LOCAL_RANK; older launchers pass --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    add_debug_flag(parser)


def load_config(args) -> Config:
    """Read the config, apply command-line overrides, set launcher and work_dir."""
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'Config file {args.config} does not exist.')
    try:
        cfg = Config.fromfile(args.config)
    except (SyntaxError, KeyError, TypeError, NameError, ImportError) as exc:
        raise ValueError(f'cannot read config {args.config}: {type(exc).__name__}: {exc}') \
            from exc
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    check_runner_key_spelling(cfg, args.config)
    sync_label_checks(cfg)
    mismatch = head_class_count_mismatch(cfg)
    if mismatch:
        print_log(f'{args.config}: {mismatch}', logger='current', level=logging.WARNING)
    check_folder_argument('--work-dir', args.work_dir)
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return cfg


def sync_label_checks(cfg: Config, num_classes: Optional[int] = None) -> None:
    """Give every ``CheckSegLabels`` step the model's class count.

    Pipelines and heads live in different parts of a config; a class count
    changed for the model (``--cfg-options model.decode_head.num_classes=19``)
    must change what the label check accepts too, or bad labels reach the loss.

    Args:
        cfg: The config (changed in place).
        num_classes: The class count; default ``model.decode_head.num_classes``
            (nothing is changed when the config has none).
    """
    if num_classes is None:
        head = (cfg.get('model') or {}).get('decode_head') or {}
        num_classes = head.get('num_classes') if isinstance(head, dict) else None
    if num_classes is None:
        return
    for step in _dicts_in(cfg._cfg_dict if isinstance(cfg, Config) else cfg):
        if step.get('type') in ('CheckSegLabels', 'mmseg_internvit.CheckSegLabels'):
            step['num_classes'] = num_classes


def _dicts_in(node):
    """Every dict inside ``node`` (lists, tuples and dicts walked recursively)."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _dicts_in(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _dicts_in(value)


def check_folder_argument(flag: str, path: Optional[str]) -> None:
    """An output-folder argument must not name an existing file."""
    if path and osp.exists(path) and not osp.isdir(path):
        raise ValueError(f'{flag} {path} is a file; give a folder (it is created if needed)')


def check_fits_before_loading(cfg: Config, runner, checkpoint: Optional[str]) -> None:
    """Refuse a ``load_from`` / resume checkpoint that does not fit the model.

    mmengine loads them non-strictly (a random head would silently remain),
    and so does its FSDP strategy; files and DeepSpeed folders are checked
    here by the strict whole-model loader, shapes only. A FlexibleRunner's
    model does not exist before its strategy builds it: a copy built from the
    config on the meta device (no memory) is checked instead. Folders of
    FSDP local shards are left to an FSDP strategy; any other folder is
    refused here, before anything is built or written.
    """
    if not checkpoint or '://' in checkpoint or not osp.exists(checkpoint):
        return
    from mmseg_internvit.checkpoint import check_checkpoint_fits
    from mmseg_internvit.checkpoint.consolidate import is_deepspeed_checkpoint, unusable_folder
    if osp.isdir(checkpoint) and not is_deepspeed_checkpoint(checkpoint):
        if uses_fsdp(cfg) and any(FSDP_SHARD_NAME.match(name) for name in os.listdir(checkpoint)):
            return
        raise unusable_folder(checkpoint)
    model = unwrapped_model(runner) if runner is not None else None
    check_checkpoint_fits(model if model is not None else shape_model(cfg), checkpoint)


def shape_model(cfg: Config) -> torch.nn.Module:
    """The config's model for a shape check: built on the meta device (no
    memory, a 6B model builds instantly) where its constructor allows."""
    from mmengine.registry import MODELS, DefaultScope
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        try:
            with torch.device('meta'):
                return MODELS.build(cfg.model)
        except (RuntimeError, NotImplementedError):
            # Some constructors read tensor values (mmseg's ViT and Swin take
            # their drop-path rates with .item()), which meta tensors do not
            # have: build those on the CPU.
            return MODELS.build(cfg.model)


def init_cpu_process_group(launcher: str) -> None:
    """Start a gloo process group when launched distributed on a machine without CUDA.

    mmengine 0.10's ``init_dist`` calls ``torch.cuda.set_device`` and dies
    without a GPU; its runners and strategies skip their own initialisation
    when a process group already exists, so starting gloo here first makes
    multi-process CPU runs (and CI) work unchanged.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return
    if not is_distributed():
        torch.distributed.init_process_group(backend='gloo')


def close_process_group() -> None:
    """Destroy the process groups a distributed run started, before the interpreter exits.

    Left to interpreter shutdown, gloo's worker threads can still hold tensors
    whose release needs the interpreter being torn down: a run that succeeded
    then sometimes ends in SIGABRT ("terminate called without an active
    exception") and torchrun reports it failed. NCCL warns of the same leak.

    Destroying alone still let a two-process FSDP run abort once in a full
    suite run (rank 1 aborted while rank 0 was still running), so first the
    finished runner's objects, which hold the groups (FSDP modules, DeepSpeed
    engines, reference cycles through hooks), are collected while the
    interpreter is whole, and a barrier makes every rank finish what it still
    sends or receives before any rank tears its groups down (torch's own
    distributed tests put a barrier before destroying for the same reason).
    A rank whose peer failed meets no peer there: torchrun stops it.
    """
    if is_distributed():
        gc.collect()
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def check_strategy(cfg: Config) -> None:
    """Fail at start-up, with what to change, for strategies that cannot run."""
    kind = strategy_type(cfg)
    if kind and cfg.get('runner_type') != 'FlexibleRunner':
        raise ValueError(f"strategy={kind!r} is only used by runner_type='FlexibleRunner'; "
                         'add that line to the config')
    if kind == 'DeepSpeedStrategy':
        if find_spec('deepspeed') is None:
            raise ImportError('This config trains with DeepSpeed, which is not installed: '
                              '`pip install --no-build-isolation -r requirements-deepspeed.txt` '
                              '(make install does it), or use an FSDP config.')
        wrapper = cfg.get('optim_wrapper', {}).get('type', 'OptimWrapper')
        if 'DeepSpeed' not in wrapper:
            raise ValueError(f"DeepSpeedStrategy needs optim_wrapper.type="
                             f"'DeepSpeedNoGradStepOptimWrapper' (or 'DeepSpeedOptimWrapper'), "
                             f'got {wrapper!r}')
    check_compile_fits_strategy(cfg)
    if uses_fsdp(cfg):
        wrapper = cfg.get('optim_wrapper', {}).get('type', 'OptimWrapper')
        if wrapper == 'AmpOptimWrapper' and not torch.cuda.is_available():
            raise ValueError('AmpOptimWrapper needs a GPU; on CPU use optim_wrapper.type='
                             "'OptimWrapper' with FSDP's own mixed_precision")


def check_compile_fits_strategy(cfg: Config) -> None:
    """Refuse compiled InternViT blocks where the strategy's parameter handling breaks them.

    DeepSpeed ZeRO-3 gathers each block's parameters in hooks that a compiled
    block would have to trace. FSDP without ``use_orig_params=True`` hands the
    blocks its flat parameters; with it (as this package's FSDP configs do)
    the compiled blocks see the original parameters and train (tested on 2
    CPU processes; the GPU lane has an NCCL case). Plain runs, DDP and
    ZeRO-1/2 keep whole parameters and are fine.
    """
    vit = internvit_config((cfg.get('model') or {}).get('backbone'))
    if not vit or not vit.get('compile'):
        return
    stage = ((cfg.get('strategy') or {}).get('zero_optimization') or {}).get('stage', 0)
    if uses_deepspeed(cfg) and stage == 3:
        raise ValueError('model.backbone compile=True cannot be combined with DeepSpeed ZeRO-3: '
                         'its parameter gathering around each block does not work inside a '
                         'compiled block. Set compile=False (e.g. --cfg-options '
                         'model.backbone.compile=False), or train with DeepSpeed ZeRO-1/2, DDP '
                         'or FSDP.')
    if uses_fsdp(cfg) and not (cfg.strategy.get('model_wrapper') or {}).get('use_orig_params'):
        raise ValueError('model.backbone compile=True under FSDP needs '
                         'strategy.model_wrapper.use_orig_params=True (without it the compiled '
                         "blocks would see FSDP's flat parameters), or set compile=False.")


def adapt_to_cpu(cfg: Config) -> None:
    """Settings that mmengine's strategies assume a GPU for, made CPU-safe."""
    if torch.cuda.is_available():
        return
    if cfg.launcher != 'none':
        # torch's SyncBatchNorm runs on GPUs only; per-process BN on CPU.
        for node in _dicts_in(cfg.model):
            if node.get('type') == 'SyncBN':
                node['type'] = 'BN'
        if 'runner_type' not in cfg:
            # mmengine's Runner gives DDP device_ids=[LOCAL_RANK], a CUDA index.
            cfg.setdefault('model_wrapper_cfg',
                           dict(type='MMDistributedDataParallel', device_ids=None))
    if uses_fsdp(cfg):
        strategy = cfg.strategy
        # mmengine passes LOCAL_RANK as FSDP's device_id, a CUDA index.
        # Assigned back: ConfigDict stores a converted copy of a new plain dict.
        wrapper = dict(strategy.get('model_wrapper') or {})
        wrapper.setdefault('device_id', 'cpu')
        strategy['model_wrapper'] = wrapper
        # offload_to_cpu=True (mmengine's 'full', or a config's own dict) means
        # nothing where the parameters are on the CPU already, and with it
        # torch 2.11's FSDP crashes (SIGSEGV cloning the gathered tensors).
        state_dict_cfg = strategy.get('state_dict_cfg')
        if state_dict_cfg == 'full':
            state_dict_cfg = dict(  # what mmengine makes of 'full'
                state_dict_type='FULL_STATE_DICT',
                state_dict_config=dict(type='FullStateDictConfig', rank0_only=True,
                                       offload_to_cpu=True),
                optim_state_dict_config=dict(type='FullOptimStateDictConfig',
                                             rank0_only=True, offload_to_cpu=True))
        if isinstance(state_dict_cfg, dict):
            state_dict_cfg = dict(state_dict_cfg)
            for key in ('state_dict_config', 'optim_state_dict_config'):
                part = state_dict_cfg.get(key)
                if isinstance(part, dict) and part.get('offload_to_cpu'):
                    state_dict_cfg[key] = dict(part, offload_to_cpu=False)
            strategy['state_dict_cfg'] = state_dict_cfg


def build_runner(cfg: Config):
    """Build ``Runner`` or, where the config names one, its ``runner_type``."""
    # Imported here: mmengine.runner imports mmengine's DeepSpeed strategy,
    # which must come after register_all_modules() has deferred DeepSpeed's
    # import and named its accelerator.
    from mmengine.runner import Runner
    check_strategy(cfg)
    adapt_to_cpu(cfg)
    init_cpu_process_group(cfg.launcher)
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    log_process_group()
    return runner


def log_process_group() -> None:
    """Log the backend of the process group a distributed run uses.

    The environment mmengine logs shows the config's ``dist_cfg`` (NCCL in
    mmseg's defaults), which a run without CUDA replaces with gloo
    (:func:`init_cpu_process_group`); this line says what really runs.
    """
    if is_distributed():
        print_log(f'process group: backend {torch.distributed.get_backend()}, world size '
                  f'{torch.distributed.get_world_size()}', logger='current')


def adapt_for_testing(cfg: Config, checkpoint: str) -> bool:
    """Make a training config evaluate ``checkpoint``; say who loads the weights.

    Evaluation needs no sharding: one process, or several under plain DDP, run
    the plain Runner, and the tool loads the weights itself with the strict
    whole-model loader (any file, a DeepSpeed ZeRO-1/2/3 folder reassembled
    in memory, a released upstream segmentor), so a checkpoint that does not
    fit fails before any data is read. Only a ZeRO-1/2 folder tested by
    several processes keeps DeepSpeed (at stage 0: it refuses ZeRO without an
    optimizer) and lets it load; ZeRO-3 folders cannot be loaded that way by
    DeepSpeed 0.18 (it ignores the tag, then fails in its offload engine).

    Returns:
        True when the caller must load the weights (``cfg.load_from`` is then
        None), False when the runner loads them from ``cfg.load_from``.
    """
    strategy = cfg.get('strategy') or {}
    zero = strategy.get('zero_optimization') or {}
    if strategy and osp.isdir(checkpoint) and cfg.launcher != 'none':
        if zero.get('stage', 0) == 3:
            raise ValueError(f'{checkpoint} is a ZeRO-3 folder: test it with one process '
                             '(tools/test.py reassembles it), or run '
                             'tools/consolidate_checkpoint.py first and test the file.')
        if zero.get('stage', 0) in (1, 2):
            zero['stage'] = 0
            cfg.load_from = checkpoint
            return False
    if strategy:
        cfg.pop('runner_type', None)
        cfg.pop('strategy', None)
        cfg.optim_wrapper = dict(type='OptimWrapper', optimizer=cfg.optim_wrapper.optimizer)
    cfg.load_from = None
    return True


def unwrapped_model(runner):
    """The model a runner holds, without its DDP wrapper; None while a
    FlexibleRunner still holds only its config (its strategy builds it later)."""
    from mmengine.model import is_model_wrapper
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    return model if isinstance(model, torch.nn.Module) else None


def enable_visualization(cfg: Config, show_dir: str) -> None:
    """Make mmseg's visualization hook draw every test image into ``show_dir``."""
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise ValueError('--show-dir needs default_hooks.visualization in the config '
                         "(mmseg's default_runtime has one)")
    hook.draw = True
    # mmseg draws every `interval`-th image (50 by default): all of them here.
    hook.interval = 1
    cfg.visualizer.save_dir = show_dir


def resolve_resume(cfg: Config, resume: Optional[str]) -> None:
    """Set ``cfg.resume`` / ``cfg.load_from`` for ``--resume [CKPT]``.

    Without a path, the newest complete checkpoint of the work dir is used;
    incomplete ones (a run killed while saving) are skipped with a warning
    naming them, and with none at all training starts from scratch, saying so.
    An explicit path must be a complete checkpoint.
    """
    if resume is None:
        return
    if resume != 'auto':
        problem = checkpoint_problem(resume) or resume_problem(cfg, resume)
        if problem is not None:
            raise ValueError(f'--resume {resume}: cannot resume from it, {problem}')
        cfg.resume, cfg.load_from = True, resume
        return
    found, skipped = find_resume_checkpoint(cfg.work_dir)
    for warning in skipped:
        print_log(warning, logger='current', level=logging.WARNING)
    if found is None:
        print_log(f'--resume: no complete checkpoint in {cfg.work_dir}; training starts '
                  'from scratch.', logger='current', level=logging.WARNING)
        return
    problem = resume_problem(cfg, found)
    if problem is not None:
        raise ValueError(f'--resume: the newest checkpoint of {cfg.work_dir}, {found}, cannot '
                         f'be resumed: {problem}')
    cfg.resume, cfg.load_from = True, found


def resume_problem(cfg: Config, checkpoint: str) -> Optional[str]:
    """Why this config cannot resume the complete checkpoint ``checkpoint``, or None.

    mmengine resumes whatever a file holds and skips, without a word, the
    optimizer and scheduler states it lacks (a ``best_*.pth``, a file saved
    with ``save_optimizer=False``, a consolidated or released file): training
    would go on with fresh AdamW moments and the warm-up started again. And
    only a DeepSpeed config reads DeepSpeed's folders, whose optimizer states
    are DeepSpeed's; a DeepSpeed config reads nothing else.
    """
    from mmseg_internvit.checkpoint.consolidate import is_deepspeed_checkpoint
    start_from_weights = (f'to start from its weights instead, drop --resume and pass '
                          f'--cfg-options load_from={checkpoint}')
    if uses_deepspeed(cfg):
        if is_deepspeed_checkpoint(checkpoint):
            return None
        return ('this config trains with DeepSpeed, which resumes only the checkpoint folders '
                f'it wrote (iter_N.pth/ holding *model_states.pt); {start_from_weights}')
    if is_deepspeed_checkpoint(checkpoint):
        return ('it is a DeepSpeed checkpoint folder, which only a DeepSpeed config '
                '(FlexibleRunner + DeepSpeedStrategy) resumes; ' + start_from_weights)
    if osp.isdir(checkpoint):  # FSDP local shards: the strategy reads them
        return None
    held = checkpoint_top_level_keys(checkpoint)
    missing = [key for key in training_state_keys(cfg) if key not in held]
    if missing:
        return (f'it holds no {" and no ".join(missing)} state (weights only: a best_*.pth, a '
                'checkpoint saved with save_optimizer=False, a converted or released file), '
                'and mmengine would resume without them, with fresh optimizer moments and the '
                f'schedule started again; {start_from_weights}')
    return None


def training_state_keys(cfg: Config) -> list:
    """The checkpoint entries a resume of ``cfg`` needs besides the weights."""
    keys = ['optimizer']
    if cfg.get('param_scheduler'):
        keys.append('param_schedulers')
    return keys


def checkpoint_top_level_keys(path: str) -> set:
    """The top-level keys of an mmengine checkpoint file (memory-mapped: no tensor is read)."""
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
    except Exception as exc:  # torch raises many types for an unreadable pickle
        raise ValueError(f'cannot read the checkpoint {path}: {type(exc).__name__}: '
                         f'{one_line(exc)}') from exc
    return set(checkpoint) if isinstance(checkpoint, dict) else set()


def strategy_type(cfg: Config) -> str:
    """The ``type`` of the config's FlexibleRunner strategy; '' without one."""
    return (cfg.get('strategy') or {}).get('type', '')


def uses_deepspeed(cfg: Config) -> bool:
    """Whether ``cfg`` trains through mmengine's DeepSpeed strategy."""
    return strategy_type(cfg) == 'DeepSpeedStrategy'


def uses_fsdp(cfg: Config) -> bool:
    """Whether ``cfg`` trains through an FSDP strategy (mmengine's or a subclass
    named ``*FSDPStrategy``)."""
    return strategy_type(cfg).endswith('FSDPStrategy')


def check_load_from(cfg: Config) -> None:
    """Stop at start-up when ``load_from`` names a local path that does not exist.

    mmengine would say "can not be found" after the model and the data are
    built, without naming the setting.
    """
    path = cfg.get('load_from')
    if path and not cfg.get('resume') and '://' not in str(path) and not osp.exists(path):
        raise FileNotFoundError(f'load_from={path} does not exist; give the path of a '
                                'checkpoint file or folder (or drop load_from)')


def load_file_at_model_init(cfg: Config) -> None:
    """Under DeepSpeed, start from the weights of a checkpoint file: load them as the
    whole model's ``Pretrained`` init, before DeepSpeed wraps the model.

    mmengine's DeepSpeed strategy hands ``load_from`` to DeepSpeed's engine,
    which reads only its own checkpoint folders: any file (an mmengine
    ``.pth``, a consolidated ``.safetensors``, a released segmentor) failed
    inside DeepSpeed with a bare AssertionError. mmengine's ``init_weights``
    applies a module's ``Pretrained`` init after every submodule's own init,
    through mmengine's loader (which reads those files), and the strategy runs
    it before the ZeRO engine copies or partitions anything: the same weights
    at every stage. The backbone's own pretrained checkpoint would be read and
    then overwritten, so it is not read (:func:`drop_pretrained`). The file is
    checked against the model first (the Pretrained init loads non-strictly).
    """
    path = cfg.get('load_from')
    if (not path or cfg.get('resume') or not uses_deepspeed(cfg) or '://' in str(path)
            or osp.isdir(path)):
        return
    check_fits_before_loading(cfg, None, path)
    drop_pretrained(cfg.model.get('backbone'), path)
    cfg.model['init_cfg'] = dict(type='Pretrained', checkpoint=path)
    cfg.load_from = None


def latest_checkpoint(work_dir: str) -> Optional[str]:
    """The newest complete checkpoint in ``work_dir``, if any."""
    return find_resume_checkpoint(work_dir)[0]
