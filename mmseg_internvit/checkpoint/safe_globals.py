"""Keep torch's safe ``weights_only`` loading working for mmengine checkpoints.

torch >= 2.6 loads with ``weights_only=True`` by default. mmengine 0.10.7 calls
``torch.load`` without the argument, and its own checkpoints pickle a message
hub (``HistoryBuffer`` holding numpy arrays), so resume, ``load_from`` and
testing fail with "Unsupported global". Rather than turning safe loading off
process-wide, the exact globals those checkpoints contain are allow-listed.
"""
import builtins

import numpy as np
import torch

_DTYPE_NAMES = ('Float64DType', 'Float32DType', 'Float16DType', 'Int64DType',
                'Int32DType', 'BoolDType')


def mmengine_checkpoint_globals() -> list:
    """The globals that mmengine's checkpoints (meta, message hub) pickle."""
    from mmengine.logging.history_buffer import HistoryBuffer
    core = getattr(np, '_core', None) or np.core
    found = [HistoryBuffer, core.multiarray._reconstruct, core.multiarray.scalar,
             np.ndarray, np.dtype, builtins.getattr]
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        found += [getattr(dtypes, name) for name in _DTYPE_NAMES if hasattr(dtypes, name)]
    return found


def allow_mmengine_checkpoint_globals() -> None:
    """Allow-list mmengine's checkpoint globals for ``torch.load(weights_only=True)``."""
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is not None:  # torch < 2.4 has no allow-list and no weights_only default
        add(mmengine_checkpoint_globals())
