"""Files that are either complete or absent, whatever happens while writing them.

Data goes to a hidden temporary file in the destination folder (same file
system, so the final ``os.replace`` is atomic), is flushed to disk, takes the
permissions the umask gives a new file, and only then gets its name. On any
error, or a kill, nothing appears under the final name.
"""
import os
import os.path as osp
import shutil
import tempfile
from contextlib import contextmanager
from typing import IO, Iterator


def current_umask() -> int:
    """The process umask.

    Read from /proc where it is shown (Linux): setting and restoring it, the
    only portable way, leaves a moment in which files other threads create
    (a data loader, a logger) would get a zero umask.
    """
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """A new, empty, hidden file name beside ``path`` to write to (for writers
    that take a name); on success the finished file is flushed to disk, takes
    the umask's mode and becomes ``path``; on any error it is removed.

    Args:
        path: Final file name; its folder is created if needed.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f'.{osp.basename(path)}.', suffix='.tmp')
    os.close(fd)
    try:
        yield tmp
        fsync_tree(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        remove_path(tmp)
        raise


@contextmanager
def atomic_file(path: str, mode: str = 'wb') -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it becomes ``path``
    (see :func:`atomic_path`).

    Args:
        path: Final file name; its folder is created if needed.
        mode: ``'wb'`` or ``'w'``.
    """
    with atomic_path(path) as tmp:
        with open(tmp, mode) as f:
            yield f


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


def remove_path(path: str) -> None:
    """Delete a file or folder if it exists."""
    if osp.isdir(path) and not osp.islink(path):
        shutil.rmtree(path)
    elif osp.lexists(path):
        os.unlink(path)


def check_writable(folder: str) -> None:
    """Raise ``OSError`` unless a file can be created in ``folder`` (creates none).

    A probe, not ``os.access``: permission bits do not tell about read-only
    mounts or pseudo file systems (``/sys``).
    """
    with tempfile.TemporaryFile(dir=folder):
        pass
