"""A CheckpointHook whose saves survive being killed at any moment.

mmengine 0.10.7's ``CheckpointHook`` first deletes the oldest checkpoint, then
writes the new one in place under its final name, then points
``last_checkpoint`` at it; a new best checkpoint likewise replaces the old
one only after deleting it. A kill during the write leaves a truncated file
under a name ``--resume`` picks and, with ``max_keep_ckpts=1``, no complete
checkpoint at all. Here:

- every interval save goes to ``<name>.partial`` in the same folder (every
  rank's DeepSpeed shards included), is flushed to disk, renamed to its final
  name in one step, and only then recorded in ``last_checkpoint`` (itself
  replaced atomically); outdated checkpoints are deleted last;
- best-score checkpoints are written through :class:`AtomicLocalBackend`
  (temporary file, flush, rename) and the previous best is deleted only once
  the new one exists.
"""
import inspect
import os
import os.path as osp
from typing import Optional, Union

import torch.distributed as dist
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log

from mmseg_internvit.atomic_io import atomic_file, fsync_tree, remove_path
from mmseg_internvit.registry import HOOKS
from .checkpoint_files import PARTIAL_SUFFIX

ATOMIC_BACKEND = 'local_atomic'


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose ``put`` never leaves a partial file."""

    def put(self, obj: bytes, filepath: Union[str, os.PathLike]) -> None:
        with atomic_file(os.fspath(filepath)) as f:
            f.write(obj)


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` with crash-safe saving (same arguments).

    Only the local file system can rename atomically: for a remote ``out_dir``
    (``s3://...``) or a user-chosen storage backend the stock behaviour is
    kept and a warning says so.
    """

    def __init__(self, *args, backend_args: Optional[dict] = None, **kwargs) -> None:
        _refuse_unknown_arguments(kwargs)
        self._user_backend = backend_args is not None or 'file_client_args' in kwargs
        super().__init__(*args, backend_args=backend_args, **kwargs)

    def before_train(self, runner) -> None:
        local = '://' not in str(self.out_dir or runner.work_dir)
        if local and not self._user_backend:
            self.backend_args = {'backend': ATOMIC_BACKEND}
        super().before_train(runner)
        self._atomic = isinstance(self.file_backend, LocalBackend)
        if not self._atomic:
            print_log(f'{type(self).__name__}: {self.out_dir} is not on the local file system; '
                      'checkpoints are written in place (not crash-safe).',
                      logger='current', level='WARNING')
        elif is_main_process():
            self._remove_leftover_partials(runner)

    def _remove_leftover_partials(self, runner) -> None:
        # Left by a run killed while saving; never a complete checkpoint.
        if not osp.isdir(self.out_dir):
            return
        for name in sorted(os.listdir(self.out_dir)):
            # `<name>.partial` (ours) or the hidden temporary file of an atomic write.
            hidden_tmp = name.startswith('.') and name.endswith('.tmp') and '.pth' in name
            if name.endswith(PARTIAL_SUFFIX) or hidden_tmp:
                runner.logger.warning(f'Removing incomplete checkpoint {name} left by an '
                                      'interrupted save.')
                remove_path(osp.join(self.out_dir, name))

    def _save_checkpoint_with_step(self, runner, step: int, meta: dict) -> None:
        if not getattr(self, '_atomic', False):
            return super()._save_checkpoint_with_step(runner, step, meta)
        filename = self.filename_tmpl.format(step)
        final = osp.join(self.out_dir, filename)
        partial = final + PARTIAL_SUFFIX
        outdated = self._update_kept_steps(runner, step)
        self.last_ckpt = final
        runner.message_hub.update_info('last_ckpt', final)
        if is_main_process():
            remove_path(partial)
        _barrier()
        runner.save_checkpoint(
            self.out_dir, filename + PARTIAL_SUFFIX, self.file_client_args,
            save_optimizer=self.save_optimizer, save_param_scheduler=self.save_param_scheduler,
            meta=meta, by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
        _barrier()  # every rank's shards are written
        if is_main_process():
            fsync_tree(partial)
            # A checkpoint of the same step (an interval save followed by a
            # best-score save) is replaced; renaming over a folder is not allowed.
            if osp.isdir(final):
                remove_path(final)
            os.replace(partial, final)
            fsync_tree(self.out_dir, recursive=False)
            with atomic_file(osp.join(runner.work_dir, 'last_checkpoint'), 'w') as f:
                f.write(final)
            for old in outdated:
                remove_path(osp.join(self.out_dir, self.filename_tmpl.format(old)))
        _barrier()

    def _update_kept_steps(self, runner, step: int) -> list:
        """Record ``step`` as kept; return the steps to delete after the save."""
        if self.max_keep_ckpts <= 0 or (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            return []
        outdated = []
        while len(self.keep_ckpt_ids) >= self.max_keep_ckpts:  # a bounded deque
            outdated.append(self.keep_ckpt_ids.popleft())
        self.keep_ckpt_ids.append(step)
        # Saved inside this checkpoint: a resumed run deletes what this one kept.
        runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        return outdated

    def _save_best_checkpoint(self, runner, metrics) -> None:
        if not self.save_best or not getattr(self, '_atomic', False):
            return super()._save_best_checkpoint(runner, metrics)
        # The stock hook deletes the previous best before writing the new one:
        # hide the previous paths from it and delete them once the new exist.
        previous = self._best_paths()
        self._set_best_paths({key: None for key in previous})
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            current = self._best_paths()
            self._set_best_paths({key: current[key] or previous[key] for key in previous})
        if is_main_process():
            for key, old in previous.items():
                if old and current[key] and current[key] != old:
                    remove_path(old)
                    runner.logger.info(f'The previous best checkpoint {old} is removed')

    def _best_paths(self) -> dict:
        if len(self.key_indicators) == 1:
            return {None: self.best_ckpt_path}
        return dict(self.best_ckpt_path_dict)

    def _set_best_paths(self, paths: dict) -> None:
        if len(self.key_indicators) == 1:
            self.best_ckpt_path = paths[None]
        else:
            self.best_ckpt_path_dict.update(paths)


def _refuse_unknown_arguments(kwargs: dict) -> None:
    """Stop at start-up on an argument ``CheckpointHook`` does not name.

    mmengine's hook keeps such arguments and hands them to
    ``runner.save_checkpoint``, which takes none beyond what the hook passes
    already: a misspelt ``default_hooks.checkpoint.intervall`` failed only at
    the first save, after the first interval's training was done.
    """
    named = [name for name, param in inspect.signature(CheckpointHook.__init__).parameters.items()
             if name != 'self' and param.kind is not param.VAR_KEYWORD]
    unknown = sorted(set(kwargs) - set(named))
    if unknown:
        raise ValueError(f'AtomicCheckpointHook (default_hooks.checkpoint) does not take '
                         f'{", ".join(unknown)}; check the spelling: it takes '
                         f'{", ".join(named)}')


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
