"""InternViT (6B and 300M) as a dense-prediction backbone."""
import math
from contextlib import nullcontext
from typing import ContextManager, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from timm.layers import LayerScale, trunc_normal_

from mmseg_internvit.dtypes import to_torch_dtype
from mmseg_internvit.registry import MODELS
from ..layers import (InternViTBlock, PatchEmbed, RMSNorm, checkpoint_block, drop_path_scales,
                      resize_pos_embed)
from .arch_zoo import resolve_arch
from .intern_vit_args import (block_window_sizes, check_drop_path_rate, check_images,
                              check_init_cfg, low_precision_dtype, normalize_block_indexes)


@MODELS.register_module()
class InternViT(BaseModule):
    """InternViT backbone returning NCHW feature maps of chosen blocks.

    Parameters are allocated without being written at construction; the random
    init (or the checkpoint, when ``init_cfg`` names one) is applied by
    :meth:`init_weights`, so a 6B model never holds a throw-away fp32 copy.
    Inputs of any size are padded right/bottom to a multiple of the patch size,
    so every output map is ``(B, C, ceil(H / 14), ceil(W / 14))``.

    The forward is two public pieces that other modules (the ViT-Adapter)
    call too, so position handling and checkpointing live in one place:
    :meth:`prepare_tokens` (patch embedding, resized position embedding, cls)
    and :meth:`run_blocks` (any range of blocks, checkpointed when
    :meth:`set_grad_checkpointing` is on). Tokens carry ``num_prefix_tokens``
    (1: the cls token) ahead of the ``h * w`` patch tokens.

    Args:
        arch: ``'6b'`` (224px, 48 layers), ``'6b-448'`` (448px, 45 layers),
            ``'300m'``, a dict with the keys of :data:`ARCH_KEYS`, or
            ``'auto'``: read from the ``init_cfg`` checkpoint (its
            ``config.json`` and tensor shapes; ``dict(auto=True, num_heads=N)``
            states what the checkpoint cannot tell).
        patch_size: Patch side in pixels.
        in_channels: Image channels.
        out_indices: Blocks whose outputs are returned (0-based, negative counts
            from the end).
        drop_path_rate: Stochastic depth of the last block (linear from 0).
        frozen: Freeze all parameters, keep eval mode (re-applied by
            :meth:`train`) and run forward without autograd.
        with_cp: Activation checkpointing per block whenever autograd records
            the blocks (see :meth:`set_grad_checkpointing`).
        dtype: ``'float32'``, ``'bfloat16'`` or ``'float16'`` (or ``'fp32'``,
            ``'bf16'``, ``'fp16'``): the parameters' and computation dtype.
            Outputs are always float32 so heads run fp32.
        autocast_dtype: ``'bfloat16'`` or ``'float16'`` runs the backbone's
            own computations (:meth:`prepare_tokens`, :meth:`run_blocks`) under
            ``torch.autocast`` while the parameters stay in ``dtype``: full
            tuning with float32 master weights and low-precision compute in
            the backbone only, for heads that must stay float32 (mmcv's
            RoIAlign has no bfloat16 kernel, and bfloat16 anchors lose whole
            pixels). Outputs are float32. None: no autocast.
        attn_impl: ``'sdpa'`` (fused) or ``'naive'`` (N x N reference).
        pos_embed_grid: Side of the stored position-embedding grid (default:
            the arch's pretraining grid, ``pretrain_size // patch_size``). A
            checkpoint whose ``pos_embed`` holds another square grid replaces
            it on loading (the released segmentors store 36 for 504 px crops),
            so this matters where the model is wrapped before it is loaded
            (FSDP) or trained from scratch.
        window_size: Window side in tokens for window attention (ViTDet):
            every block not in ``global_attn_indexes`` attends within
            non-overlapping ``window_size`` x ``window_size`` windows of the
            patch grid, padded to whole windows and cropped back. The cls
            token stays global: it attends to every token and every window
            attends to it (:class:`WindowAttention`), so the dense outputs are
            the patch tokens as without windows. None: all blocks global.
        global_attn_indexes: Blocks (0-based, negative from the end) that keep
            global attention when ``window_size`` is set.
        compile: Compile every block with ``torch.compile`` (regional
            compilation, see :meth:`compile_blocks`): blocks of the same
            structure share one compiled graph, and the token count is
            marked dynamic so a new image size reuses it. Same outputs as
            eager; the first forward (and the first backward) pays the
            compilation. Not for DeepSpeed ZeRO-3, nor for FSDP without
            ``use_orig_params=True`` (the tools refuse those combinations,
            see the README's "Compiled blocks").
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH)`` loads any
            supported checkpoint format (see ``mmseg_internvit.checkpoint``).
    """

    def __init__(self,
                 arch: Union[str, dict] = '6b',
                 patch_size: int = 14,
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = -1,
                 drop_path_rate: float = 0.0,
                 frozen: bool = False,
                 with_cp: bool = False,
                 dtype: str = 'float32',
                 autocast_dtype: Optional[str] = None,
                 attn_impl: str = 'sdpa',
                 pos_embed_grid: Optional[int] = None,
                 window_size: Optional[int] = None,
                 global_attn_indexes: Sequence[int] = (),
                 compile: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=None)
        self.pretrained_cfg = check_init_cfg(init_cfg)
        self.arch_settings = resolve_arch(
            arch, (self.pretrained_cfg or {}).get('checkpoint'), patch_size)
        s = self.arch_settings
        for name, value in (('frozen', frozen), ('with_cp', with_cp), ('compile', compile)):
            # A string such as 'False' (or a typo like 'Flase') would silently
            # count as True.
            if not isinstance(value, bool):
                raise TypeError(f'InternViT {name} must be True or False, got {value!r} '
                                f'({type(value).__name__})')
        check_drop_path_rate(drop_path_rate)
        self.embed_dims = s['embed_dims']
        self.num_layers = s['num_layers']
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.frozen = frozen
        self.with_cp = with_cp
        self.drop_path_rate = drop_path_rate
        self.dtype = to_torch_dtype(dtype)
        self.autocast_dtype = low_precision_dtype(autocast_dtype)
        self.out_indices = self._normalize_out_indices(out_indices)
        if pos_embed_grid is not None:
            if isinstance(pos_embed_grid, bool) or not isinstance(pos_embed_grid, int):
                raise ValueError('pos_embed_grid must be an int (patches per side of the stored '
                                 f'grid) or None, got {pos_embed_grid!r}')
            if pos_embed_grid < 1:
                raise ValueError(f'pos_embed_grid must be >= 1, got {pos_embed_grid}')
        self.window_size = window_size
        self.global_attn_indexes = normalize_block_indexes(
            global_attn_indexes, self.num_layers, 'global_attn_indexes')
        windows = block_window_sizes(window_size, self.global_attn_indexes, self.num_layers)
        # The grid pos_embed is stored at (changes when a checkpoint brings another).
        pretrain_grid = pos_embed_grid or s['pretrain_size'] // patch_size
        self.pretrain_grid = (pretrain_grid, pretrain_grid)
        self.num_prefix_tokens = 1  # the cls token, ahead of the patch tokens

        dpr = torch.linspace(0, drop_path_rate, self.num_layers, device='cpu').tolist()
        # Built on the meta device, then given real (unwritten) storage in the
        # target dtype on the current default device (so `with torch.device(
        # 'cuda')` builds straight on the GPU): construction costs no time and
        # touches no memory.
        device = torch.empty(0).device
        with torch.device('meta'):
            self.patch_embed = PatchEmbed(patch_size, in_channels, self.embed_dims)
            self.cls_token = nn.Parameter(torch.empty(1, 1, self.embed_dims))
            self.pos_embed = nn.Parameter(torch.empty(1, 1 + pretrain_grid**2, self.embed_dims))
            self.blocks = nn.ModuleList(
                InternViTBlock(self.embed_dims, s['num_heads'], s['feedforward_channels'],
                               s['qkv_bias'], s['qk_normalization'], s['norm_type'],
                               s['layer_scale_init'], dpr[i], attn_impl, windows[i])
                for i in range(self.num_layers))
        self.to(self.dtype)
        self.to_empty(device=device)
        if self.pretrained_cfg is None:
            self.reset_parameters()
        if frozen:
            self._freeze()
        # Not `self.compile`: that would hide nn.Module.compile.
        self.blocks_compiled = False
        if compile:
            self.compile_blocks()

    def compile_blocks(self, **compile_kwargs) -> None:
        """Compile each block in place with ``torch.compile`` (regional compilation).

        The blocks are compiled one by one (``nn.Module.compile``, torch's
        recipe for repeated layers), not the whole backbone: the code traced
        is one block's, and every block of the same structure (all global
        ones; all windowed ones) reuses the same compiled graph, so compiling
        a 48-block model costs what compiling one block costs. Parameter
        names, checkpoints and hooks are unchanged. :meth:`run_blocks` marks
        the token dimension dynamic, so other image sizes reuse the graph of
        global blocks instead of recompiling (windowed blocks, whose window
        layout depends on the grid, may compile a few more graphs: padded
        and unpadded grids). Gradient mode, autocast and a change of batch
        size each give one more graph.

        With activation checkpointing the checkpoint is inside the compiled
        region (one more compiled function, shared by all blocks the same
        way), not around the compiled block: the compiler then recomputes the
        block's forward within its backward graph, fusing the recomputed
        elementwise work with the backward's and sparing one Python-driven
        forward per block. Measured on CPU (docs/benchmarks.md) it is faster
        than checkpointing the compiled block, and at widths 256-768 holds
        less memory.

        Args:
            **compile_kwargs: Passed to ``torch.compile`` (e.g. ``mode`` or
                ``backend``; the default is inductor).
        """
        for block in self.blocks:
            block.compile(**compile_kwargs)
        # An instance attribute, not a module: no parameter name changes.
        self._compiled_checkpoint = torch.compile(checkpoint_block, **compile_kwargs)
        self.blocks_compiled = True

    def _normalize_out_indices(self, out_indices: Union[int, Sequence[int]]) -> List[int]:
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        return normalize_block_indexes(out_indices, self.num_layers, 'out_indices')

    def reset_parameters(self) -> None:
        """Random init: truncated normal (std 0.02) weights, zero biases."""
        trunc_normal_(self.pos_embed, std=0.02)
        trunc_normal_(self.cls_token, std=0.02)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.LayerNorm, RMSNorm)):
                module.reset_parameters()
            elif isinstance(module, LayerScale):
                nn.init.constant_(module.gamma, self.arch_settings['layer_scale_init'])

    def grid_for_pos_embed(self, shape: Sequence[int]) -> Optional[int]:
        """Side of the square grid a stored ``pos_embed`` of ``shape`` holds, if it
        differs from ours and can be adopted (same width, cls + a square grid)."""
        if len(shape) != 3 or shape[0] != 1 or shape[2] != self.embed_dims:
            return None
        side = math.isqrt(max(shape[1] - 1, 0))
        if side < 1 or side * side != shape[1] - 1 or (side, side) == self.pretrain_grid:
            return None
        return side

    def set_pos_embed_grid(self, side: int) -> None:
        """Store the position embedding for a ``side`` x ``side`` grid (+ cls).

        The tensor is re-allocated in place (same Parameter object, so an
        optimizer built already still holds it) with unwritten values: a
        checkpoint is about to fill it. The forward resizes from this grid to
        the input's, so a checkpoint's own grid is used as is, never resized
        back and forth.
        """
        if (side, side) == self.pretrain_grid:
            return
        old = self.pos_embed
        old.data = torch.empty((1, 1 + side * side, self.embed_dims), dtype=old.dtype,
                               device=old.device)
        self.pretrain_grid = (side, side)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        # Plain load_state_dict / mmengine's load_checkpoint: adopt the stored grid.
        stored = state_dict.get(prefix + 'pos_embed')
        if isinstance(stored, torch.Tensor):
            side = self.grid_for_pos_embed(tuple(stored.shape))
            if side is not None:
                self.set_pos_embed_grid(side)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def init_weights(self) -> None:
        """Load the configured checkpoint, or apply the random init."""
        if self.pretrained_cfg is not None:
            from mmseg_internvit.checkpoint import load_backbone_weights
            load_backbone_weights(self, self.pretrained_cfg['checkpoint'])
        else:
            self.reset_parameters()
        self._is_init = True

    def _freeze(self) -> None:
        super().train(False)
        for param in self.parameters():
            param.requires_grad = False

    def train(self, mode: bool = True) -> 'InternViT':
        super().train(mode)
        if self.frozen:
            self._freeze()
        return self

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """Layer id of a parameter for layer-wise lr decay.

        Embeddings get 0, block ``i`` gets ``i + 1``, anything else (not part of
        this backbone) gets ``num_layers + 1`` so its decay scale is 1.

        Returns:
            ``(layer_id, num_layer_ids)`` with ``num_layer_ids = num_layers + 2``.
        """
        num_ids = self.num_layers + 2
        if not param_name.startswith(prefix):
            return num_ids - 1, num_ids
        name = param_name[len(prefix):]
        if name in ('cls_token', 'pos_embed') or name.startswith('patch_embed.'):
            return 0, num_ids
        if name.startswith('blocks.'):
            return int(name.split('.')[1]) + 1, num_ids
        return num_ids - 1, num_ids

    def no_weight_decay(self) -> set:
        """Parameter names (relative to this module) kept free of weight decay."""
        return {'cls_token', 'pos_embed'}

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Turn activation checkpointing of every block on or off (timm's name).

        The switch behind the ``with_cp`` argument: while it is on, each block
        run by :meth:`run_blocks` keeps only its input and recomputes its
        activations in the backward pass. It applies wherever autograd records
        the blocks, so it also covers an adapter driving the blocks of a frozen
        ViT (gradients then flow through the blocks to the adapter's layers).

        Args:
            enable: New value of ``with_cp``.
        """
        self.with_cp = enable

    def prepare_tokens(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """Images to the tokens the first block reads.

        Patch embedding (after padding H and W up to the patch size), plus the
        position embedding resized to the token grid, with the cls token
        (plus its position) prepended. A frozen backbone builds no autograd
        graph here: the tokens depend on the image and frozen weights only.

        Args:
            x: Images ``(B, 3, H, W)``; cast to the parameters' dtype.

        Returns:
            ``(tokens, grid)``: tokens ``(B, num_prefix_tokens + h * w, C)``
            and the patch grid ``(h, w) = (ceil(H / 14), ceil(W / 14))``.
        """
        check_images(x, self.in_channels)
        with self._autocast(x.device), \
                torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            # The parameters' dtype, not self.dtype: DeepSpeed bf16 and FSDP
            # mixed precision recast parameters behind the module's back.
            tokens, grid = self.patch_embed(x.to(self.pos_embed.dtype))
            pos = self.pos_embed
            tokens = tokens + resize_pos_embed(pos[:, 1:], self.pretrain_grid, grid)
            cls = (self.cls_token + pos[:, :1]).expand(x.shape[0], -1, -1)
            return torch.cat([cls, tokens], dim=1), grid

    def run_blocks(self, x: torch.Tensor, grid: Tuple[int, int], start: int = 0,
                   end: Optional[int] = None) -> torch.Tensor:
        """Run blocks ``start .. end - 1`` (Python slice bounds) on tokens.

        Each block is checkpointed when :meth:`set_grad_checkpointing` is on
        and autograd records it (its input requires grad). In training with
        ``drop_path_rate > 0`` the blocks' stochastic-depth factors are drawn
        here (:func:`drop_path_scales`), outside the blocks, so compiled
        blocks of different rates share one graph.

        Args:
            x: Tokens ``(B, num_prefix_tokens + h * w, C)`` from
                :meth:`prepare_tokens` or an earlier call.
            grid: The patch grid ``(h, w)`` of ``x``.
            start: First block.
            end: One past the last block (None: to the last block).

        Returns:
            The tokens after the blocks, same shape.
        """
        compiled = self.blocks_compiled and not torch.compiler.is_compiling()
        with self._autocast(x.device):
            for block in self.blocks[start:end]:
                if compiled:
                    # One graph for every token count, not one per image size.
                    torch._dynamo.maybe_mark_dynamic(x, 1)
                # Every block gets factors when any block drops (the first one's
                # are ones): one graph for all, whatever their rates.
                scales = (drop_path_scales(x, block.drop_path_rate)
                          if block.training and self.drop_path_rate > 0 else None)
                if self.with_cp and torch.is_grad_enabled() and x.requires_grad:
                    # The compiled checkpoint for a bare block only: around one
                    # wrapped by FSDP it would trace FSDP's hooks.
                    checkpoint = (self._compiled_checkpoint
                                  if compiled and isinstance(block, InternViTBlock)
                                  else checkpoint_block)
                    x = checkpoint(block, x, grid, scales)
                else:
                    x = block(x, grid, scales)
        return x

    def _autocast(self, device: torch.device) -> ContextManager:
        if self.autocast_dtype is None:
            # Not autocast(enabled=False): that would switch off a caller's AMP.
            return nullcontext()
        # No weight-cast cache: it would hold a low-precision copy of every
        # block's weights until the forward ends, defeating ZeRO-3 / FSDP
        # sharding; each cast is redone where a weight is used.
        return torch.autocast(device.type, dtype=self.autocast_dtype, cache_enabled=False)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        tokens, grid = self.prepare_tokens(x)
        outs, start = {}, 0
        for index in sorted(set(self.out_indices)):
            tokens = self.run_blocks(tokens, grid, start, index + 1)
            outs[index], start = tokens, index + 1
        return tuple(self._feature_map(outs[i], grid) for i in self.out_indices)

    def _feature_map(self, tokens: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
        # With dtype='bfloat16'/'float16' or autocast the heads stay float32:
        # cast once here, not with per-module hooks. When a wrapper (DeepSpeed,
        # FSDP) owns the precision of the whole model, the heads share the
        # parameters' dtype.
        out_dtype = torch.float32 if self.dtype != torch.float32 else self.pos_embed.dtype
        patches = tokens[:, self.num_prefix_tokens:]
        # shape[0], not len(): an exported graph keeps the batch dynamic.
        return patches.transpose(1, 2).reshape(tokens.shape[0], -1, *grid).to(out_dtype)


def num_tokens(height: int, width: int, patch_size: int = 14) -> int:
    """Tokens InternViT attends over for an image (patches plus the cls token)."""
    return math.ceil(height / patch_size) * math.ceil(width / patch_size) + 1
