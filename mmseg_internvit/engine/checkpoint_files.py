"""Checkpoint files on disk: which are complete, and which one to resume from.

A training checkpoint is an mmengine ``.pth`` file (a zip archive written by
``torch.save``) or a DeepSpeed folder of such archives. A zip archive keeps its
index at the very end, so a file cut short by a kill fails to open as one:
that is how an incomplete checkpoint is recognised without reading it all.
"""
import os
import os.path as osp
import re
import zipfile
from typing import List, Optional, Tuple

PARTIAL_SUFFIX = '.partial'
# The names mmengine's CheckpointHook gives (filename_tmpl 'iter_{}.pth' / 'epoch_{}.pth').
CHECKPOINT_NAME = re.compile(r'^(iter|epoch)_(\d+)\.pth$')
# A file of an FSDP checkpoint with local (per-rank) state dicts.
FSDP_SHARD_NAME = re.compile(r'^rank\d+\.pth$')


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` is not a complete checkpoint, or None when it is one."""
    if not osp.exists(path):
        return 'it does not exist'
    if osp.isdir(path):
        # DeepSpeed: *model_states.pt (+ optimizer shards); FSDP local: rank{N}.pth.
        archives = [name for name in os.listdir(path) if name.endswith(('.pt', '.pth'))]
        if not any(name.endswith('model_states.pt') or FSDP_SHARD_NAME.match(name)
                   for name in archives):
            return 'the folder holds neither DeepSpeed *model_states.pt nor FSDP rank*.pth'
        for name in sorted(archives):
            if not _is_complete_archive(osp.join(path, name)):
                return f'{name} in it is truncated'
        return None
    if not _is_complete_archive(path):
        return 'it is truncated or not a torch checkpoint'
    return None


def _is_complete_archive(path: str) -> bool:
    try:
        with zipfile.ZipFile(path):
            return True
    except (zipfile.BadZipFile, OSError):
        return False


def find_resume_checkpoint(work_dir: str) -> Tuple[Optional[str], List[str]]:
    """The newest complete checkpoint of ``work_dir`` and the reasons others were skipped.

    ``last_checkpoint`` is trusted first; when it is missing or names an
    incomplete checkpoint, the folder's ``iter_N.pth`` / ``epoch_N.pth`` are
    tried from the newest down.

    Returns:
        ``(checkpoint or None, [warning, ...])``.
    """
    skipped: List[str] = []
    candidates: List[str] = []
    marker = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(marker):
        with open(marker) as f:
            recorded = f.read().strip()
        if recorded:
            candidates.append(recorded)
    if osp.isdir(work_dir):
        numbered = [(int(m.group(2)), name) for name in os.listdir(work_dir)
                    if (m := CHECKPOINT_NAME.match(name))]
        candidates += [osp.join(work_dir, name) for _, name in sorted(numbered, reverse=True)]
    seen = set()
    for path in candidates:
        if path in seen:
            continue
        seen.add(path)
        problem = checkpoint_problem(path)
        if problem is None:
            return path, skipped
        skipped.append(f'skipping checkpoint {path}: {problem}')
    return None, skipped
