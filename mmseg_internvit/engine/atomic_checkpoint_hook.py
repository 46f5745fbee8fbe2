"""A CheckpointHook whose saves survive being killed at any moment.

mmengine 0.10.7's ``CheckpointHook`` first deletes the oldest checkpoint, then
writes the new one in place under its final name, then points
``last_checkpoint`` at it. A kill during the write leaves a truncated file under
a name ``--resume`` picks and, with ``max_keep_ckpts=1``, no complete checkpoint
at all. Here every save goes to ``<name>.partial`` in the same folder (every
rank's DeepSpeed shards included), is flushed to disk, renamed to its final
name in one step, and only then recorded in ``last_checkpoint`` (itself
replaced atomically); outdated checkpoints are deleted last.
"""
import os
import os.path as osp
from typing import Optional

import torch.distributed as dist
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log

from mmseg_internvit.registry import HOOKS
from .checkpoint_files import PARTIAL_SUFFIX, fsync_tree, remove_path, write_text_atomically


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` with crash-safe saving (same arguments).

    Only the local file system can rename atomically; for other storage
    backends the stock behaviour is kept and a warning says so.
    """

    def before_train(self, runner) -> None:
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
            if name.endswith(PARTIAL_SUFFIX):
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
            write_text_atomically(osp.join(runner.work_dir, 'last_checkpoint'), final)
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


def _barrier(group: Optional[object] = None) -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier(group)
