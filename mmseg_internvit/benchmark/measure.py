"""Wall-clock timing and peak-memory meters for CPU and CUDA steps."""
import ctypes
import os
import re
import statistics
import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional

import torch


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels: CUDA timers read before this measure launches only."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


@dataclass
class TimeStats:
    """Summary of repeated wall times in seconds.

    Args:
        median: Median time.
        min: Fastest repeat.
        max: Slowest repeat.
        q1: First quartile.
        q3: Third quartile.
        times: Every repeat, in run order.
    """

    median: float
    min: float
    max: float
    q1: float
    q3: float
    times: List[float]

    @classmethod
    def from_times(cls, times: List[float]) -> 'TimeStats':
        """Summarise ``times`` (seconds, at least one)."""
        if not times:
            raise ValueError('need at least one timed repeat (--repeats >= 1)')
        if len(times) == 1:
            q1 = q3 = times[0]
        else:
            q1, _, q3 = statistics.quantiles(times, n=4, method='inclusive')
        return cls(statistics.median(times), min(times), max(times), q1, q3, list(times))

    def to_dict(self) -> dict:
        return asdict(self)


def time_interleaved(fns: Dict[str, Callable[[], object]], device: torch.device, warmup: int,
                     repeats: int) -> Dict[str, TimeStats]:
    """Time several steps round-robin: ``a b c a b c ...`` after warming each up.

    Interleaving gives every step the same share of slow and fast periods of
    a shared or thermally throttled machine, so their ratios stay fair where
    back-to-back blocks of repeats would drift apart.

    Args:
        fns: Name -> step; called in dict order within each round.
        device: Synchronised before each timer read.
        warmup: Untimed rounds.
        repeats: Timed rounds.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    synchronize(device)
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: TimeStats.from_times(t) for name, t in times.items()}


def _status_kib(field: str) -> int:
    with open('/proc/self/status') as f:
        match = re.search(rf'^{field}:\s+(\d+) kB', f.read(), re.MULTILINE)
    if match is None:
        raise OSError(f'/proc/self/status has no {field} line')
    return int(match.group(1))


def current_rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc)."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def release_free_heap() -> None:
    """Give glibc's freed-but-kept heap pages back to the OS.

    Without this a step can reuse pages an earlier step freed, and its RSS
    delta would understate what it needs on its own. No-op off glibc.
    """
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_rss_high_water_mark() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not allowed."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


class _RssSampler(threading.Thread):
    """Fallback when VmHWM cannot be reset: poll RSS from a thread.

    Torch kernels release the GIL, so polling every 0.5 ms sees the peaks of
    steps that last milliseconds or more; shorter spikes can be missed.
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = current_rss_bytes()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.0005):
            self.peak = max(self.peak, current_rss_bytes())

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return max(self.peak, current_rss_bytes())


@dataclass
class MemoryReading:
    """Peak memory of one measured step.

    Args:
        peak_delta_bytes: Peak above the memory held just before the step
            (activations, workspaces and, for training, gradients).
        peak_bytes: Absolute peak (process RSS on CPU, allocated on CUDA).
        method: How it was measured.
    """

    peak_delta_bytes: int
    peak_bytes: int
    method: str

    def to_dict(self) -> dict:
        return asdict(self)


def measure_peak_memory(fn: Callable[[], object], device: torch.device) -> MemoryReading:
    """Run ``fn`` once and return its peak memory above the memory held before it.

    On CUDA this is ``torch.cuda.max_memory_allocated`` (tensors only, not the
    caching allocator's reserve). On CPU it is the process RSS high-water mark
    (``VmHWM``, reset just before the step), falling back to a polling thread
    where the kernel does not allow the reset.

    Args:
        fn: The step, run once.
        device: Picks the meter (CUDA allocator or process RSS).
    """
    if device.type == 'cuda':
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
        return MemoryReading(peak - before, peak, 'cuda_max_memory_allocated')
    release_free_heap()
    before = current_rss_bytes()
    if _reset_rss_high_water_mark():
        fn()
        peak = _status_kib('VmHWM') * 1024
        method = 'rss_vmhwm'
    else:
        sampler = _RssSampler()
        sampler.start()
        try:
            fn()
        finally:
            peak = sampler.stop()
        method = 'rss_sampled'
    return MemoryReading(peak - before, peak, method)


def available_host_bytes() -> Optional[int]:
    """``MemAvailable`` of /proc/meminfo, or None where it cannot be read."""
    try:
        with open('/proc/meminfo') as f:
            match = re.search(r'^MemAvailable:\s+(\d+) kB', f.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None
