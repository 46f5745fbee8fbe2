"""Adaptive average pooling that stays correct in an ONNX graph with dynamic H/W.

The exporter lowers ``nn.AdaptiveAvgPool2d(s)`` (s > 1; UPerHead's pyramid
pooling uses 2, 3 and 6) to gathers with indices computed for the sample
input, so the graph is silently wrong at every other size (seen with torch
2.14: a 0.4 logit error at 97x131 after a 98x126 export, an invalid-index
failure at 45x200). Writing the pooling as two averaging matrices built from
the input size keeps the bins of ``adaptive_avg_pool2d`` for any size.
"""
from contextlib import contextmanager
from typing import Iterator, Tuple, Union

import torch
import torch.nn as nn


def adaptive_pool_matrix(in_size: int, out_size: int, like: torch.Tensor) -> torch.Tensor:
    """The ``(out_size, in_size)`` matrix averaging torch's adaptive-pooling bins.

    Bin ``i`` covers ``[floor(i * in / out), ceil((i + 1) * in / out))``, as in
    ``torch.nn.functional.adaptive_avg_pool2d``.
    """
    bins = torch.arange(out_size, device=like.device)
    start = bins * in_size // out_size
    end = ((bins + 1) * in_size + out_size - 1) // out_size
    positions = torch.arange(in_size, device=like.device)
    inside = (positions[None] >= start[:, None]) & (positions[None] < end[:, None])
    return inside.to(like.dtype) / (end - start)[:, None].to(like.dtype)


class ExportableAdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d`` as ``Mh @ x @ Mw^T``: same bins, any input size.

    Args:
        output_size: ``s`` or ``(sh, sw)``, as for ``nn.AdaptiveAvgPool2d``
            (``None`` entries are not supported).
    """

    def __init__(self, output_size: Union[int, Tuple[int, int]]) -> None:
        super().__init__()
        size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
        if len(size) != 2 or not all(isinstance(s, int) and s >= 1 for s in size):
            raise ValueError(f'output_size must be an int or two ints >= 1, got {output_size!r}')
        self.output_size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = adaptive_pool_matrix(x.shape[-2], self.output_size[0], x)
        cols = adaptive_pool_matrix(x.shape[-1], self.output_size[1], x)
        return torch.einsum('ih,nchw,jw->ncij', rows, x, cols)


@contextmanager
def exportable_adaptive_pools(model: nn.Module) -> Iterator[int]:
    """Swap every ``nn.AdaptiveAvgPool2d`` in ``model`` for the exportable one
    while the block runs (yields how many), then put the originals back."""
    swapped = []
    for name, module in list(model.named_modules()):
        if type(module) is nn.AdaptiveAvgPool2d:
            parent_name, _, child = name.rpartition('.')
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, ExportableAdaptiveAvgPool2d(module.output_size))
            swapped.append((parent, child, module))
    try:
        yield len(swapped)
    finally:
        for parent, child, module in swapped:
            setattr(parent, child, module)
