"""ResNetV2 hybrid backbone of MAED (the R50 trunk of ViT-B/16-R50, stages [3, 4, 9]).

Not pre-activation: v1.5 bottlenecks (stride on the 3x3 conv), weight-standardised
convolutions with TensorFlow "SAME" padding and GroupNorm(32). Module names follow the
official checkpoint (`stem.conv`, `stages.{s}.blocks.{b}.conv1`, ...), so its keys load as-is.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF 'SAME' padding for one axis as (before, after); the larger half goes after."""
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: int, stride: int, dilation: int = 1,
             value: float = 0.0) -> torch.Tensor:
    """Pad (B, C, H, W) so a conv/pool with these settings gives ceil(size / stride)."""
    top, bottom = same_padding(x.shape[-2], kernel, stride, dilation)
    left, right = same_padding(x.shape[-1], kernel, stride, dilation)
    if top or bottom or left or right:
        x = F.pad(x, (left, right, top, bottom), value=value)
    return x


class StdConv2dSame(nn.Conv2d):
    """Conv2d with weight standardisation `(W - mean) / (std + eps)` and dynamic SAME padding.

    mean and the biased std are taken per output channel over (in, kh, kw). This is the
    formula the MAED checkpoint was trained with (current timm uses sqrt(var + eps) instead).

    Inference never recomputes it per forward:
    - in eval mode under no-grad the standardised weight is cached and reused until the raw
      weight changes (its version counter moves);
    - `freeze_standardization()` (called by `model.inference.prepare_for_inference`) stores
      it once in a non-persistent buffer, which follows `.to(device/dtype/memory_format)` and
      has no Python-side checks when compiled, so `torch.compile` sees a plain convolution.
      It is dropped by `train()` and by loading a state_dict; the checkpoint keeps the raw
      weight.

    Neither can reach training: both serve only eval mode without autograd (under grad, even
    in eval mode, the weight is standardised again so gradients reach it), and in eager mode
    a frozen weight whose raw weight changed since (an optimiser step, an in-place copy) is
    dropped rather than used.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 eps: float = 1e-5):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0,
                         bias=False)
        self.eps = eps
        self._cache: tuple[int, int, torch.device, torch.dtype, torch.Tensor] | None = None
        self.register_buffer("frozen_weight", None, persistent=False)
        self._frozen_from: tuple[int, int] | None = None  # (id, version) of the raw weight
        # stride 2 only: compute as `conv_stride2_as_space_to_depth` (set for the RGB stem
        # by `prepare_for_inference` on GPUs)
        self.space_to_depth = False

    def _standardize(self, w: torch.Tensor) -> torch.Tensor:
        mean = w.mean(dim=(1, 2, 3), keepdim=True)
        std = w.std(dim=(1, 2, 3), keepdim=True, unbiased=False)
        return (w - mean) / (std + self.eps)

    def standardized_weight(self) -> torch.Tensor:
        w = self.weight
        cacheable = not self.training and not torch.is_grad_enabled()
        if self.frozen_weight is not None and cacheable:
            if torch.compiler.is_compiling() or self._frozen_from == (id(w), w._version):
                return self.frozen_weight
            self.unfreeze_standardization()  # the raw weight changed: stale
        if cacheable and self._cache is not None:
            ptr, version, device, dtype, cached = self._cache
            if (ptr == w.data_ptr() and version == w._version and device == w.device
                    and dtype == w.dtype):
                return cached
        standardized = self._standardize(w)
        if cacheable:
            self._cache = (w.data_ptr(), w._version, w.device, w.dtype, standardized.detach())
        else:
            self._cache = None
        return standardized

    @torch.no_grad()
    def freeze_standardization(self) -> None:
        """Compute the standardised weight once (in the raw weight's dtype, layout, device)."""
        w = self.weight
        frozen = self._standardize(w.float()).to(w.dtype)
        if w.is_contiguous(memory_format=torch.channels_last):
            frozen = frozen.contiguous(memory_format=torch.channels_last)
        self.frozen_weight = frozen
        self._frozen_from = (id(w), w._version)
        self._cache = None

    def unfreeze_standardization(self) -> None:
        self.frozen_weight = None
        self._frozen_from = None

    def clear_standardization_cache(self) -> None:
        """Forget the eval-mode cache (not the frozen weight); it is rebuilt when needed."""
        self._cache = None

    def train(self, mode: bool = True):
        self._cache = None
        if mode:
            self.unfreeze_standardization()
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs):
        self._cache = None
        self.unfreeze_standardization()
        super()._load_from_state_dict(*args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel, stride, dilation = self.kernel_size[0], self.stride[0], self.dilation[0]
        top, bottom = same_padding(x.shape[-2], kernel, stride, dilation)
        left, right = same_padding(x.shape[-1], kernel, stride, dilation)
        if self.space_to_depth:
            return conv_stride2_as_space_to_depth(x, self.standardized_weight(), top, bottom,
                                                  left, right)
        if top == bottom and left == right:
            # Symmetric (every stride-1 conv): let the conv pad, no padded copy of x.
            padding: tuple[int, int] = (top, left)
        else:
            x = F.pad(x, (left, right, top, bottom))
            padding = (0, 0)
        return F.conv2d(x, self.standardized_weight(), None, self.stride, padding,
                        self.dilation, self.groups)


class MaxPool2dSame(nn.Module):
    """Max pooling with SAME padding filled with -inf (padding never wins the max)."""

    def __init__(self, kernel_size: int = 3, stride: int = 2):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = same_padding(x.shape[-2], self.kernel_size, self.stride)
        left, right = same_padding(x.shape[-1], self.kernel_size, self.stride)
        if top == left == 0 and bottom < self.stride and right < self.stride:
            # Padding only after, less than a stride (e.g. 112 -> 56): ceil_mode's last,
            # partial windows are exactly that, with no padded copy of x.
            return F.max_pool2d(x, self.kernel_size, self.stride, ceil_mode=True)
        x = pad_same(x, self.kernel_size, self.stride, value=float("-inf"))
        return F.max_pool2d(x, self.kernel_size, self.stride)


class GroupNormAct(nn.GroupNorm):
    """GroupNorm(32 groups, eps 1e-5, affine) optionally followed by ReLU."""

    def __init__(self, num_channels: int, num_groups: int = 32, eps: float = 1e-5,
                 apply_act: bool = True):
        super().__init__(num_groups, num_channels, eps=eps, affine=True)
        self.apply_act = apply_act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
        return F.relu(x, inplace=True) if self.apply_act else x


class DownsampleConv(nn.Module):
    """Projection shortcut: 1x1 StdConv (with the block's stride) + GroupNorm, no activation."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv = StdConv2dSame(in_channels, out_channels, 1, stride=stride)
        self.norm = GroupNormAct(out_channels, apply_act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 bottleneck, post-activation, residual add then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        mid = out_channels // 4
        needs_projection = stride != 1 or in_channels != out_channels
        self.downsample = (DownsampleConv(in_channels, out_channels, stride)
                           if needs_projection else None)
        self.conv1 = StdConv2dSame(in_channels, mid, 1)
        self.norm1 = GroupNormAct(mid)
        self.conv2 = StdConv2dSame(mid, mid, 3, stride=stride)
        self.norm2 = GroupNormAct(mid)
        self.conv3 = StdConv2dSame(mid, out_channels, 1)
        self.norm3 = GroupNormAct(out_channels, apply_act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.norm1(self.conv1(x))
        x = self.norm2(self.conv2(x))
        x = self.norm3(self.conv3(x))
        # In place: GroupNorm's backward needs its input, not its output, so this is safe
        # under autograd too, and it spares a large allocation per block.
        return F.relu(x.add_(shortcut), inplace=True)


class ResNetStage(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, depth: int, stride: int):
        super().__init__()
        self.blocks = nn.Sequential(*[
            Bottleneck(in_channels if i == 0 else out_channels, out_channels,
                       stride=stride if i == 0 else 1)
            for i in range(depth)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


def conv_stride2_as_space_to_depth(x: torch.Tensor, weight: torch.Tensor, top: int,
                                   bottom: int, left: int, right: int) -> torch.Tensor:
    """`F.conv2d(F.pad(x, (left, right, top, bottom)), weight, stride=2)` computed as a
    stride-1 convolution over 2x2 space-to-depth blocks; the same sums.

    (B, C, H, W), weight (O, C, k, k) -> (B, O, H', W'). Zeros make the shapes fit: the
    input channels up to a multiple of 4 (RGB: 3 -> 4, i.e. 16 channels after the 2x2 blocks,
    a size tensor-core kernels take without padding), the kernel a row/column up to an even
    size (7 -> 8, i.e. 4x4 over blocks), and the padded input a row/column when its padded
    size is odd (no kept output reads it). RGB stems have 3 input channels, which GPU
    convolution kernels pad and run far below their rate; this one has 16, at 31 % more MACs
    (8x8 against 7x7).
    """
    channels = x.shape[1]
    extra = (-channels) % 4
    pad_h = x.shape[-2] + top + bottom
    pad_w = x.shape[-1] + left + right
    x = F.pad(x, (left, right + pad_w % 2, top, bottom + pad_h % 2, 0, extra))
    x = F.pixel_unshuffle(x, 2)  # (B, 4C', H/2, W/2), channel c*4 + 2i + j
    out_ch, _, kernel_h, kernel_w = weight.shape
    w = F.pad(weight, (0, kernel_w % 2, 0, kernel_h % 2, 0, extra))  # (O, C', 2a, 2b)
    kh, kw = w.shape[-2] // 2, w.shape[-1] // 2
    w = w.reshape(out_ch, channels + extra, kh, 2, kw, 2).permute(0, 1, 3, 5, 2, 4)
    out = F.conv2d(x, w.reshape(out_ch, -1, kh, kw))
    # an odd padded size with an even kernel leaves one output too many
    return out[..., :(pad_h - kernel_h) // 2 + 1, :(pad_w - kernel_w) // 2 + 1]


class Stem(nn.Module):
    """7x7/2 StdConv 3->64, GroupNorm+ReLU, 3x3/2 SAME max-pool: (B,3,224,224) -> (B,64,56,56)."""

    def __init__(self, in_channels: int = 3, out_channels: int = 64):
        super().__init__()
        self.conv = StdConv2dSame(in_channels, out_channels, 7, stride=2)
        self.norm = GroupNormAct(out_channels)
        self.pool = MaxPool2dSame(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.norm(self.conv(x)))


class ResNetV2(nn.Module):
    """The hybrid trunk: (B, 3, 224, 224) -> (B, 1024, 14, 14) for the default layers (3, 4, 9)."""

    def __init__(self, layers: tuple[int, ...] = (3, 4, 9), in_channels: int = 3,
                 stem_channels: int = 64):
        super().__init__()
        self.stem = Stem(in_channels, stem_channels)
        stages = []
        prev = stem_channels
        for index, depth in enumerate(layers):
            out = 256 * 2 ** index
            stages.append(ResNetStage(prev, out, depth, stride=1 if index == 0 else 2))
            prev = out
        self.stages = nn.Sequential(*stages)
        self.num_features = prev

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))
