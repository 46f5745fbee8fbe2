"""Turn command-line inputs (files, folders, globs) into images and output names."""
import glob
import os
import os.path as osp
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable, List, Optional

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp', '.gif',
                    '.ppm', '.pgm', '.pbm', '.jp2')


@dataclass(frozen=True)
class InputImage:
    """One image to segment.

    Attributes:
        path: The file as found (may not exist or not be an image: reading
            reports that).
        name: Output name relative to the output folder, without suffix:
            the file stem, prefixed by its sub-folder when it was found by
            walking a folder (``a/b/x.jpg`` under input ``a`` -> ``b/x``).
    """
    path: str
    name: str


def is_image_file(path: str) -> bool:
    """Whether the name has one of :data:`IMAGE_EXTENSIONS` (any case)."""
    return path.lower().endswith(IMAGE_EXTENSIONS)


def _walk_images(folder: str) -> List[str]:
    """Image files under ``folder``, following links to folders, each folder once.

    Args:
        folder: The folder to search recursively (hidden entries skipped).
    """
    found = []
    # Real paths of the folders met so far: a link back to a parent (or to
    # ``.``) would otherwise be walked forever.
    visited = {osp.realpath(folder)}
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in sorted(dirs)
                   if not d.startswith('.') and _first_visit(osp.join(root, d), visited)]
        found += [osp.join(root, f) for f in sorted(files)
                  if is_image_file(f) and not f.startswith('.')]
    return found


def _first_visit(path: str, visited: set) -> bool:
    """Whether the real folder behind ``path`` is new (then it is added to ``visited``)."""
    real = osp.realpath(path)
    if real in visited:
        return False
    visited.add(real)
    return True


def _has_magic(text: str) -> bool:
    return any(c in text for c in '*?[')


def expand_inputs(inputs: Iterable[str],
                  on_nothing_found: Optional[Callable[[str], None]] = None) -> List[InputImage]:
    """Expand files, folders (recursively) and glob patterns into images.

    Files named explicitly are kept whatever their extension (reading them
    decides); folders and globs contribute files with an image extension. A
    path that does not exist is kept too, so it is reported as failed with
    the others. Duplicates (the same real file twice) are dropped. Names that
    would collide in the output folder get the extension appended
    (``x.jpg`` and ``x.png`` -> ``x_jpg``, ``x_png``) and then, if still
    equal, a counter. ``on_nothing_found(item)`` is called for every folder
    or glob pattern that gives no image (so it is not silently ignored).
    """
    images, seen = [], set()

    def add(path: str, name: str) -> None:
        key = osp.realpath(path)
        if key not in seen:
            seen.add(key)
            images.append((path, name))

    for item in inputs:
        item = str(item)
        if osp.isdir(item):
            found = _walk_images(item)
            for path in found:
                add(path, osp.splitext(osp.relpath(path, item))[0])
        elif not osp.exists(item) and _has_magic(item):
            found = [path for path in sorted(glob.glob(item, recursive=True))
                     if osp.isfile(path) and is_image_file(path)]
            for path in found:
                add(path, osp.splitext(osp.basename(path))[0])
        else:
            found = [item]
            add(item, osp.splitext(osp.basename(item))[0])
        if not found and on_nothing_found is not None:
            on_nothing_found(item)
    return [InputImage(path, name) for path, name in _unique_names(images)]


def _unique_names(images: List[tuple]) -> List[tuple]:
    counts = Counter(name for _, name in images)
    used, result = set(), []
    for path, name in images:
        if counts[name] > 1:
            name = name + '_' + osp.splitext(path)[1].lstrip('.').lower()
        unique, n = name, 1
        while unique in used:
            n += 1
            unique = f'{name}-{n}'
        used.add(unique)
        result.append((path, unique))
    return result
