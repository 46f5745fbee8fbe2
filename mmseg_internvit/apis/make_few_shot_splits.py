"""``tools/dataset/make_few_shot_splits.py``: write the fixed few-shot ADE20K training lists.

The lists are the ones shipped with the configs.

The lists are nested (1/16 is inside 1/8, ...): one seeded permutation of the
20,210 ADE20K training names (``ADE_train_00000001`` .. ``ADE_train_00020210``)
is cut at each fraction and each cut is written sorted, one name per line, in
the ``ann_file`` format of mmseg datasets (names without extension).

Usage:
    python tools/dataset/make_few_shot_splits.py [--out-dir DIR] [--seed 0]
        [--data-root data/ade/ADEChallengeData2016]

``--data-root`` reads the names from a real ADE20K folder instead of the
canonical numbering (they are the same for the official release).
"""
import argparse
import os

import numpy as np

from mmseg_internvit.atomic_io import atomic_file

from .errors import add_debug_flag

ADE20K_NUM_TRAIN = 20210
FRACTIONS = (16, 8, 4, 2)
DEFAULT_OUT = os.path.join(os.path.dirname(__file__), '..', '..', 'configs', '_base_',
                           'datasets', 'ade20k_few_shot')


def canonical_train_names() -> list:
    return [f'ADE_train_{i:08d}' for i in range(1, ADE20K_NUM_TRAIN + 1)]


def names_from_folder(data_root: str) -> list:
    folder = os.path.join(data_root, 'images', 'training')
    if not os.path.isdir(folder):
        raise FileNotFoundError(f'{folder} does not exist; pass the ADEChallengeData2016 '
                                'folder as --data-root')
    return sorted(os.path.splitext(n)[0] for n in os.listdir(folder) if n.endswith('.jpg'))


def few_shot_splits(names: list, seed: int = 0) -> dict:
    """Map ``'1-16'`` etc. to the sorted names of that nested fraction."""
    order = np.random.default_rng(seed).permutation(len(names))
    shuffled = [sorted(names)[i] for i in order]
    return {f'1-{k}': sorted(shuffled[:len(names) // k]) for k in FRACTIONS}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out-dir', default=DEFAULT_OUT)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--data-root', help='read names from this ADE20K folder')
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    names = names_from_folder(args.data_root) if args.data_root else canonical_train_names()
    os.makedirs(args.out_dir, exist_ok=True)
    for tag, subset in few_shot_splits(names, args.seed).items():
        path = os.path.join(args.out_dir, f'train_{tag}.txt')
        with atomic_file(path, 'w') as f:
            f.write('\n'.join(subset) + '\n')
        print(f'{path}: {len(subset)} images')
    return 0
