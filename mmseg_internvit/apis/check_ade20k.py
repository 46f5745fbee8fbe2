"""``tools/dataset/check_ade20k.py``: check an ADE20K folder before training.

The folder is ADEChallengeData2016 or its parent.

Usage: python tools/dataset/check_ade20k.py data/ade [--max-files N]
       [--num-classes 150] [--crop 504]
Exits 1 if there are errors, 0 otherwise (warnings alone do not fail); a path
that is not a folder is a user error (one ``error:`` line, exit status 2).
"""
import argparse
import os

# Only numpy and Pillow: the check runs on any machine, without torch.
from mmseg_internvit.datasets.ade20k_check import ADE20KReport, check_ade20k

from .errors import ToolError, add_debug_flag


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('data_root', help='ADEChallengeData2016 or its parent, e.g. data/ade')
    parser.add_argument('--max-files', type=int, default=None,
                        help='decode at most N image/annotation pairs per split '
                        '(default: all; pairing is always checked for all files)')
    parser.add_argument('--num-classes', type=int, default=150,
                        help='largest valid label id (0 is "other", 255 ignore)')
    parser.add_argument('--crop', type=int, default=504,
                        help='training crop side; smaller images get a warning')
    parser.add_argument('--max-messages', type=int, default=50,
                        help='print at most this many errors and warnings each')
    add_debug_flag(parser)
    return parser.parse_args(argv)


def format_report(report: ADE20KReport, max_messages: int) -> str:
    """Render the report as a summary for the terminal.

    Args:
        report: What :func:`check_ade20k` returned.
        max_messages: Show at most this many errors and warnings each.
    """
    lines = [f'ADE20K root: {report.root}']
    for split, counts in report.counts.items():
        lines.append(f'  {split}: {counts.images} images, {counts.annotations} '
                     f'annotations, {counts.pairs} pairs, {counts.checked} decoded')
    for title, messages in (('ERROR', report.errors), ('WARNING', report.warnings)):
        for message in messages[:max_messages]:
            lines.append(f'{title}: {message}')
        if len(messages) > max_messages:
            lines.append(f'... and {len(messages) - max_messages} more '
                         f'{title.lower()}s (raise --max-messages to see them)')
    verdict = 'OK' if report.ok else 'FAILED'
    lines.append(f'{verdict}: {len(report.errors)} errors, {len(report.warnings)} warnings')
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    """Check the folder, print a summary and return the exit code.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.
    """
    args = parse_args(argv)
    # A mistyped path is not a dataset with problems: say so in one line
    # instead of a report with the expected layout.
    if not os.path.isdir(args.data_root):
        state = 'is not a folder' if os.path.exists(args.data_root) else 'does not exist'
        raise ToolError(f'{args.data_root} {state}; pass the ADEChallengeData2016 folder or '
                        'its parent (e.g. data/ade)')
    report = check_ade20k(args.data_root, num_classes=args.num_classes, crop=args.crop,
                          max_files=args.max_files)
    print(format_report(report, args.max_messages))
    return 0 if report.ok else 1
