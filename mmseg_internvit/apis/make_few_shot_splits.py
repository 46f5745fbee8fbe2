"""``tools/dataset/make_few_shot_splits.py``: write the fixed few-shot ADE20K training lists.

The lists are the ones shipped with the configs.

The lists are nested (1/16 is inside 1/8, ...): one seeded permutation of the
20,210 ADE20K training names (``ADE_train_00000001`` .. ``ADE_train_00020210``)
is cut at each fraction and each cut is written sorted, one name per line, in
the ``ann_file`` format of mmseg datasets (names without extension).

Usage:
    python tools/dataset/make_few_shot_splits.py [--out-dir DIR] [--seed 0]
        [--data-root data/ade/ADEChallengeData2016] [--overwrite]

``--data-root`` reads the names from a real ADE20K folder instead of the
canonical numbering (they are the same for the official release). The default
``--out-dir`` holds the shipped lists: an existing list whose names would
change is replaced only with ``--overwrite`` (all four are checked before any
is written); rewriting the same names needs no flag.
"""
import argparse
import os

import numpy as np

from mmseg_internvit.atomic_io import atomic_file

from .errors import ToolError, add_debug_flag

ADE20K_NUM_TRAIN = 20210
FRACTIONS = (16, 8, 4, 2)
DEFAULT_OUT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..', '..', 'configs',
                                            '_base_', 'datasets', 'ade20k_few_shot'))


def canonical_train_names() -> list:
    return [f'ADE_train_{i:08d}' for i in range(1, ADE20K_NUM_TRAIN + 1)]


def names_from_folder(data_root: str) -> list:
    """The training image names (without ``.jpg``) of an ADE20K folder.

    Args:
        data_root: The ``ADEChallengeData2016`` folder.
    """
    folder = os.path.join(data_root, 'images', 'training')
    if not os.path.isdir(folder):
        raise FileNotFoundError(f'{folder} does not exist; pass the ADEChallengeData2016 '
                                'folder as --data-root')
    names = sorted(os.path.splitext(n)[0] for n in os.listdir(folder) if n.endswith('.jpg'))
    # Fewer names than the largest fraction leave that list empty: a few-shot
    # config would then train on no images.
    if len(names) < max(FRACTIONS):
        fewest = max(FRACTIONS)
        raise ToolError(f'{folder} has {len(names) or "no"} .jpg training images; the 1/{fewest} '
                        f'list needs at least {fewest}: pass the ADEChallengeData2016 folder '
                        'as --data-root')
    return names


def few_shot_splits(names: list, seed: int = 0) -> dict:
    """Map ``'1-16'`` etc. to the sorted names of that nested fraction."""
    order = np.random.default_rng(seed).permutation(len(names))
    shuffled = [sorted(names)[i] for i in order]
    return {f'1-{k}': sorted(shuffled[:len(names) // k]) for k in FRACTIONS}


def check_replaced_lists(contents: dict, overwrite: bool) -> None:
    """Refuse to change an existing list without ``--overwrite``.

    The default ``--out-dir`` is the repository's shipped lists: a run on
    other data must not silently replace them. Rewriting the same names is
    allowed.

    Args:
        contents: Path of each list to write, mapped to its new text.
        overwrite: The ``--overwrite`` flag.
    """
    for path, text in contents.items():
        if not os.path.lexists(path):
            continue
        if not os.path.isfile(path):
            raise ToolError(f'{path} exists and is not a file; pass another --out-dir')
        if overwrite:
            continue
        with open(path, 'rb') as f:
            if f.read() != text.encode():
                raise ToolError(f'{path} exists with other names; pass --out-dir to write '
                                'elsewhere or --overwrite to replace it (nothing was written)')


def main(argv=None) -> int:
    """Write the lists and print each one's size.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.
    """
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out-dir', default=DEFAULT_OUT)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--data-root', help='read names from this ADE20K folder')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace existing lists whose names would change')
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    names = names_from_folder(args.data_root) if args.data_root else canonical_train_names()
    lists = {os.path.join(args.out_dir, f'train_{tag}.txt'): subset
             for tag, subset in few_shot_splits(names, args.seed).items()}
    texts = {path: '\n'.join(subset) + '\n' for path, subset in lists.items()}
    check_replaced_lists(texts, args.overwrite)
    os.makedirs(args.out_dir, exist_ok=True)
    for path, text in texts.items():
        with atomic_file(path, 'w') as f:
            f.write(text)
        print(f'{path}: {len(lists[path])} images')
    return 0
