"""Splitting a token grid into non-overlapping windows and back (ViTDet / SAM layout)."""
from typing import Tuple

import torch
import torch.nn.functional as F

Grid = Tuple[int, int]


def clamp_window(window_size: int, grid: Grid) -> Grid:
    """The window used on ``grid``: ``window_size`` per side, at most the grid.

    A grid smaller than the window in one dimension gets one window spanning
    that dimension instead of a window made mostly of padding.

    Args:
        window_size: Requested window side in tokens.
        grid: Token grid ``(h, w)``.
    """
    return min(window_size, grid[0]), min(window_size, grid[1])


def window_partition(x: torch.Tensor, grid: Grid, window: Grid) -> Tuple[torch.Tensor, Grid]:
    """Pad a token grid to whole windows with zeros and split it into windows.

    Args:
        x: Tokens ``(B, h * w, C)`` in row-major grid order.
        grid: ``(h, w)``.
        window: Window ``(wh, ww)`` in tokens.

    Returns:
        ``(windows, padded_grid)``: windows ``(B * num_windows, wh * ww, C)``
        ordered image-major, then window rows, then window columns; and the
        padded grid ``(hp, wp)`` (multiples of the window).
    """
    B, _, C = x.shape
    (h, w), (wh, ww) = grid, window
    hp, wp = h + -h % wh, w + -w % ww
    x = F.pad(x.reshape(B, h, w, C), (0, 0, 0, wp - w, 0, hp - h))
    x = x.view(B, hp // wh, wh, wp // ww, ww, C).transpose(2, 3)
    return x.reshape(-1, wh * ww, C), (hp, wp)


def window_unpartition(windows: torch.Tensor, grid: Grid, window: Grid,
                       padded_grid: Grid) -> torch.Tensor:
    """Inverse of :func:`window_partition`: reassemble windows and drop the padding.

    Args:
        windows: ``(B * num_windows, wh * ww, C)``.
        grid: The unpadded grid ``(h, w)``.
        window: Window ``(wh, ww)``.
        padded_grid: ``(hp, wp)`` returned by :func:`window_partition`.

    Returns:
        Tokens ``(B, h * w, C)``.
    """
    (h, w), (wh, ww), (hp, wp) = grid, window, padded_grid
    C = windows.shape[-1]
    x = windows.view(-1, hp // wh, wp // ww, wh, ww, C).transpose(2, 3)
    return x.reshape(-1, hp, wp, C)[:, :h, :w].reshape(-1, h * w, C)


def window_padding_mask(grid: Grid, window: Grid, device: torch.device) -> torch.Tensor:
    """Which tokens of each window are real (True) rather than padding (False).

    Args:
        grid: The unpadded grid ``(h, w)``.
        window: Window ``(wh, ww)``.
        device: Where the mask lives.

    Returns:
        Bool ``(num_windows, wh * ww)`` in :func:`window_partition`'s order.
    """
    real = torch.ones(1, grid[0] * grid[1], 1, dtype=torch.bool, device=device)
    return window_partition(real, grid, window)[0][..., 0]
