"""Which checkpoint a training run starts from (``--resume``, ``load_from``), and
the check that a checkpoint fits the model before mmengine loads it non-strictly."""
import logging
import os
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.logging import print_log

from mmseg_internvit.engine.checkpoint_files import (FSDP_SHARD_NAME, checkpoint_problem,
                                                     find_resume_checkpoint)
from mmseg_internvit.models.backbones.vit_config import drop_pretrained
from .errors import one_line
from .launch import unwrapped_model
from .strategy_checks import uses_deepspeed, uses_fsdp


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
