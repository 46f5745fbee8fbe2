"""Normalisation layers used by InternViT."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    """RMSNorm over the last dimension, computed in float32.

    InternViT-6B normalises in float32 and multiplies by the weight after casting
    back to the input dtype; matching that order keeps bf16 outputs identical to
    the released model's. ``F.rms_norm`` computes in float32 for bf16/fp16 inputs
    and rounds its output once, so it is given the input as it is: an explicit
    ``x.float()`` first would add two passes over the tokens (the upcast copy and
    the cast back), the largest share of the eager backbone's memory traffic
    besides its matrix products.

    Args:
        dim: Size of the normalised (last) dimension.
        eps: Added to the mean square before the reciprocal square root.
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = F.rms_norm(x, (x.shape[-1],), eps=self.eps)
        # .to(): autocast may return float32; the weight multiplies the input dtype.
        return self.weight * normed.to(x.dtype)

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)

    def extra_repr(self) -> str:
        return f'{self.weight.shape[0]}, eps={self.eps}'


NORM_TYPES = ('rms', 'ln')


def build_norm(norm_type: str, dim: int, eps: float = 1e-6) -> nn.Module:
    """Build the block norm named by an InternViT arch ('rms' or 'ln')."""
    if norm_type == 'rms':
        return RMSNorm(dim, eps=eps)
    if norm_type == 'ln':
        return nn.LayerNorm(dim, eps=eps)
    raise ValueError(f"norm_type must be one of {NORM_TYPES}, got {norm_type!r}")
