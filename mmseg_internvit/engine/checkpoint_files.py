"""Checkpoint files on disk: completeness, durable writes, and what to resume from.

A training checkpoint is an mmengine ``.pth`` file (a zip archive written by
``torch.save``) or a DeepSpeed folder of such archives. A zip archive keeps its
index at the very end, so a file cut short by a kill fails to open as one:
that is how an incomplete checkpoint is recognised without reading it all.
"""
import os
import os.path as osp
import re
import shutil
import tempfile
import zipfile
from typing import List, Optional, Tuple

PARTIAL_SUFFIX = '.partial'
# The names mmengine's CheckpointHook gives (filename_tmpl 'iter_{}.pth' / 'epoch_{}.pth').
CHECKPOINT_NAME = re.compile(r'^(iter|epoch)_(\d+)\.pth$')


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` is not a complete checkpoint, or None when it is one."""
    if not osp.exists(path):
        return 'it does not exist'
    if osp.isdir(path):
        # DeepSpeed: *model_states.pt (+ optimizer shards); FSDP local: rank{N}.pth.
        archives = [name for name in os.listdir(path) if name.endswith(('.pt', '.pth'))]
        if not any(name.endswith('model_states.pt') or re.match(r'rank\d+\.pth$', name)
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


def fsync_tree(path: str, recursive: bool = True) -> None:
    """Flush a file, or a folder's entries (and with ``recursive`` its files), to disk."""
    if osp.isdir(path):
        if recursive:
            for root, _, files in os.walk(path):
                for name in files:
                    _fsync(osp.join(root, name), os.O_RDONLY)
        _fsync(path, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
    elif osp.exists(path):
        _fsync(path, os.O_RDONLY)


def _fsync(path: str, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomically(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` in one step (temp file in the same folder, rename)."""
    folder = osp.dirname(osp.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=osp.basename(path) + '.', suffix='.tmp', dir=folder)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; follow the umask
        with os.fdopen(fd, 'w') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_path(path: str) -> None:
    """Delete a file or folder if it exists."""
    if osp.isdir(path) and not osp.islink(path):
        shutil.rmtree(path)
    elif osp.lexists(path):
        os.unlink(path)
