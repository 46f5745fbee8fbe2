"""Readable tables and the throughput/memory plot of benchmark results."""
from typing import List, Sequence

MIB = 2**20


def _table(header: Sequence[str], rows: List[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: '  '.join(str(c).rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return '\n'.join([line(header), line(['-' * w for w in widths])] + [line(r) for r in rows])


def format_runs(runs: List[dict]) -> str:
    """One line per (mode, variant, size): time spread, first step (with
    compilation for the compiled variant), rates, memory, FLOPs.

    Args:
        runs: Run records of :func:`~mmseg_internvit.benchmark.runner.run_benchmark`.
    """
    header = ('mode', 'variant', 'size', 'batch', 'dtype', 'median s', 'min-max s', 'first s',
              'img/s', 'tok/s', 'peak dMiB', 'GFLOP', 'GFLOP/s', 'GEMM GFLOP/s', 'vs GEMM')
    rows = []
    for r in runs:
        t = r['time_s']
        mode = r['mode'] + ('+cp' if r.get('with_cp') else '')
        rows.append((mode, r['variant'], f"{r['height']}x{r['width']}", r['batch'], r['dtype'],
                     f"{t['median']:.4f}", f"{t['min']:.4f}-{t['max']:.4f}",
                     f"{r['first_step_s']:.2f}", f"{r['images_per_s']:.2f}",
                     f"{r['tokens_per_s']:.0f}",
                     f"{r['peak_memory']['peak_delta_bytes'] / MIB:.1f}",
                     f"{r['flops'] / 1e9:.2f}", f"{r['flops_per_s'] / 1e9:.1f}",
                     f"{r['gemm']['flops_per_s'] / 1e9:.1f}", f"{r['gemm_ratio']:.2f}"))
    return _table(header, rows)


def format_comparisons(comparisons: List[dict]) -> str:
    """Each variant against its reference, per size: sdpa vs naive, windows vs
    global, or compiled / peers vs our eager backbone.

    Args:
        comparisons: Records of :func:`~mmseg_internvit.benchmark.runner.compare`.
    """
    header = ('size', 'reference', 'variant', 'ref s', 'variant s', 'speedup', 'time ratio',
              'ref dMiB', 'variant dMiB', 'mem ratio')
    rows = []
    for c in comparisons:
        ratio = c['peak_memory_ratio']
        rows.append((f"{c['height']}x{c['width']}", c['reference'], c['variant'],
                     f"{c['reference_time_s']:.4f}", f"{c['variant_time_s']:.4f}",
                     f"{c['speedup']:.2f}x", f"{c['time_ratio']:.3f}",
                     f"{c['reference_peak_memory_bytes'] / MIB:.1f}",
                     f"{c['variant_peak_memory_bytes'] / MIB:.1f}",
                     'n/a' if ratio is None else f'{ratio:.3f}'))
    return _table(header, rows)


def format_agreement(runs: List[dict]) -> str:
    """How far each compiled twin / peer is from our eager output, per size.

    Args:
        runs: Run records; those with an ``agreement`` entry are listed.
    """
    header = ('size', 'variant', 'vs', 'max |diff|', 'max |ref|', 'relative', 'tolerance',
              'compile s')
    rows = [(f"{r['height']}x{r['width']}", r['variant'], a['reference'],
             f"{a['max_abs_diff']:.3g}", f"{a['max_abs_reference']:.3g}",
             f"{a['relative_diff']:.2e}", f"{a['tolerance']:g}",
             f"{r['compile_s']:.2f}" if 'compile_s' in r else '-')
            for r in runs for a in [r.get('agreement')] if a]
    return _table(header, rows) if rows else ''


def format_profiles(runs: List[dict]) -> str:
    """Where each profiled step's time went: milliseconds and share per group,
    and its three largest kernels (CPU: operators).

    Args:
        runs: Run records; those with a ``profile`` entry are listed.
    """
    from .profile import GROUPS
    header = ('size', 'variant', 'profiled ms', *GROUPS, 'largest')
    rows = []
    for r in runs:
        p = r.get('profile')
        if not p:
            continue
        shares = [f"{p['groups'][g]['ms']:.1f} ({100 * p['groups'][g]['share']:.0f}%)"
                  for g in GROUPS]
        largest = '; '.join(f"{t['name'][:40]} {t['ms']:.1f}" for t in p['top'][:3])
        rows.append((f"{r['height']}x{r['width']}", r['variant'], f"{p['total_ms']:.1f}",
                     *shares, largest))
    if not rows:
        return ''
    return f"profile of one step ({runs[0]['profile']['source']}, self time):\n" + \
        _table(header, rows)


def format_load(record: dict) -> str:
    """Key/value lines of a load6b record.

    Args:
        record: Result of :func:`~mmseg_internvit.benchmark.load_check.run_load_check`.
    """
    gib = 2**30
    lines = [
        ('arch', record['arch_name']),
        ('weights', f"{record['weight_bytes'] / gib:.3f} GiB ({record['dtype']})"),
        ('checkpoint write', f"{record['write_s']:.1f} s, {record['shards']} shards"),
        ('model build', f"{record['build_s']:.2f} s"),
        ('checkpoint load', f"{record['load_s']:.2f} s"),
        (f"forward {record['height']}x{record['width']}", f"{record['forward_s']:.2f} s"),
        ('RSS after imports', f"{record['rss_after_imports_bytes'] / gib:.3f} GiB"),
        ('peak RSS', f"{record['peak_rss_bytes'] / gib:.3f} GiB"),
        ('peak RSS / weights', f"{record['peak_rss_ratio']:.3f}"),
        ('(peak - imports) / weights', f"{record['peak_rss_above_imports_ratio']:.3f}"),
    ]
    width = max(len(k) for k, _ in lines)
    return '\n'.join(f'{k.ljust(width)}  {v}' for k, v in lines)


def require_matplotlib() -> None:
    """Raise a clear error now, before any benchmark runs, if plotting is impossible."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise RuntimeError('--plot needs the matplotlib package, which is not installed in '
                           'this Python: install matplotlib or drop --plot.') from exc


def plot_runs(runs: List[dict], path: str) -> None:
    """Save a PNG of images/s and peak memory against token count, one line per kernel.

    Args:
        runs: Run records (one model, several sizes).
        path: Output PNG path.
    """
    require_matplotlib()
    import matplotlib
    matplotlib.use('Agg')  # files only: no display on benchmark machines
    import matplotlib.pyplot as plt

    fig, (ax_speed, ax_mem) = plt.subplots(1, 2, figsize=(10, 4))
    for name in sorted({r['variant'] for r in runs}):
        sel = sorted((r for r in runs if r['variant'] == name), key=lambda r: r['tokens'])
        tokens = [r['tokens'] for r in sel]
        ax_speed.plot(tokens, [r['images_per_s'] for r in sel], 'o-', label=name)
        ax_mem.plot(tokens, [r['peak_memory']['peak_delta_bytes'] / MIB for r in sel], 'o-',
                    label=name)
    first = runs[0]
    title = (f"{first['mode']} {first['arch_name']} {first['dtype']} {first['device']} "
             f"batch {first['batch']}")
    ax_speed.set(xlabel='tokens per image (incl. cls)', ylabel='images / s', title=title)
    ax_mem.set(xlabel='tokens per image (incl. cls)', ylabel='peak memory above model (MiB)',
               title=f"peak memory ({first['peak_memory']['method']})")
    for ax in (ax_speed, ax_mem):
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
