"""``tools/dataset/make_sample_ade20k.py``: write the synthetic ADE20K-style sample dataset.

It prints the dataset's path.

Usage: python tools/dataset/make_sample_ade20k.py data/ade [--num-train 48]
       [--num-val 12] [--size 128] [--seed 0]
"""
import argparse

# Only numpy and Pillow: the builder runs on any machine, without torch.
from mmseg_internvit.datasets.sample_data import build_sample_ade20k

from .errors import add_debug_flag, check_folder_argument


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='folder to hold ADEChallengeData2016, e.g. data/ade')
    parser.add_argument('--num-train', type=int, default=48)
    parser.add_argument('--num-val', type=int, default=12)
    parser.add_argument('--size', type=int, default=128,
                        help='smallest image side; sides vary up to 1.5x this')
    parser.add_argument('--seed', type=int, default=0)
    add_debug_flag(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build (or reuse) the sample dataset; return the exit code.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.
    """
    args = parse_args(argv)
    check_folder_argument('ROOT', args.root)
    path = build_sample_ade20k(args.root, num_train=args.num_train, num_val=args.num_val,
                               size=args.size, seed=args.seed)
    print(path)
    return 0
