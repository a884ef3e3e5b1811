"""STE: the spatial-temporal encoder of MAED (a ViT-B/16-R50 hybrid with temporal attention).

Per frame: ResNetV2 features (1024x14x14) -> 1x1 projection to 768 -> 196 tokens + cls token,
+ `pos_embed`, + `temp_embed[t]` (temporal modes only), -> `num_blocks` pre-norm blocks whose
attention mixes tokens within a frame (spatial) and across the T frames of a clip (temporal),
-> LayerNorm -> cls token -> `pre_logits` (Linear + Tanh): one 768-d feature per frame.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .backbone import ResNetV2

StMode = Literal["parallel", "series", "coupling", "vanilla"]
ST_MODES: tuple[str, ...] = ("parallel", "series", "coupling", "vanilla")
MAX_FRAMES = 16  # temp_embed has 16 positions: the hard limit on clip length


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """softmax(q k^T * scale) v over the second-to-last axis; (..., L, d) -> (..., L, d).

    Uses the fused kernel; it is the same math as the explicit product (covered by the parity
    test) and is counted exactly by torch's flop counter.
    """
    return F.scaled_dot_product_attention(q, k, v, scale=scale)


def attend_short(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float
                 ) -> torch.Tensor:
    """`attend` for many very short sequences (MAED's T <= 16 frames); (..., T, d) -> same.

    Fused attention kernels tile 64-128 queries and keys, so with T = 16 almost all of each
    tile is padding: on an H200 the temporal branch took 2.6 ms per block (bf16, 64 clips)
    in the fused kernel against about 0.5 ms as two batched matmuls, and on CPU 4.3 against
    3.5 ms per clip. The matmuls are 3-D on purpose: torch.compile rewrites the 4-D
    `softmax(q @ k^T * s) @ v` pattern back into the fused kernel.
    """
    shape = q.shape
    q, k, v = (t.reshape(-1, *shape[-2:]) for t in (q, k, v))  # (batch, T, d)
    weights = (torch.bmm(q, k.transpose(1, 2)) * scale).softmax(dim=-1)  # (batch, T, T)
    return torch.bmm(weights.to(v.dtype), v).reshape(shape)


class HybridEmbed(nn.Module):
    """CNN feature map -> tokens: (B, 3, 224, 224) -> (B, 196, embed_dim), row-major (h, w)."""

    def __init__(self, backbone: nn.Module, feature_dim: int = 1024, embed_dim: int = 768):
        super().__init__()
        self.backbone = backbone
        self.proj = nn.Conv2d(feature_dim, embed_dim, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.backbone(x)).flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact (erf) GELU, as trained
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SpatioTemporalAttention(nn.Module):
    """Multi-head attention over the tokens of a frame and/or the frames of a clip.

    Input and output (B = N*T, L = 197, C). Modes:
      parallel  shared qkv; spatial (LxL per frame) and temporal (TxT per token position)
                branches fused by a per-frame, per-channel softmax gate `ts_attn` computed
                from the token-mean of [x_s, x_t]; gate index 2c weighs x_s, 2c+1 weighs x_t.
      series    spatial then temporal, the same qkv projection applied twice.
      coupling  joint attention over all T*L tokens of a clip.
      vanilla   spatial only (images).
    One output projection `proj` in every mode.
    """

    def __init__(self, dim: int = 768, num_heads: int = 12, st_mode: StMode = "parallel"):
        super().__init__()
        if st_mode not in ST_MODES:
            raise ValueError(f"st_mode must be one of {ST_MODES}, got {st_mode!r}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.st_mode = st_mode
        # Registration order proj, ts_attn, qkv follows the official state_dict.
        self.proj = nn.Linear(dim, dim)
        self.ts_attn = nn.Linear(2 * dim, 2 * dim) if st_mode == "parallel" else None
        self.qkv = nn.Linear(dim, 3 * dim)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, L, d)
        return q, k, v

    def _spatial(self, q, k, v) -> torch.Tensor:
        batch, heads, tokens, d = q.shape
        out = attend(q, k, v, self.scale)  # (B, H, L, d)
        return out.transpose(1, 2).reshape(batch, tokens, heads * d)

    def _temporal(self, q, k, v, seqlen: int) -> torch.Tensor:
        batch, heads, tokens, d = q.shape
        n = batch // seqlen

        # (B,H,L,d) -> (N, H*L, T, d): a 4-D batch of T-long sequences. Merging H and L costs
        # one copy (the permuted view is not contiguous anyway); in exchange the batched
        # matmuls take it as a view, and torch.compile (2.14) gives wrong shapes for strided
        # 5-D input.
        def to_time(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(n, seqlen, heads, tokens, d).permute(0, 2, 3, 1, 4).reshape(
                n, heads * tokens, seqlen, d)

        out = attend_short(to_time(q), to_time(k), to_time(v), self.scale)  # (N, H*L, T, d)
        out = out.reshape(n, heads, tokens, seqlen, d).permute(0, 3, 2, 1, 4)  # (N,T,L,H,d)
        return out.reshape(batch, tokens, heads * d)

    def _coupled(self, q, k, v, seqlen: int) -> torch.Tensor:
        batch, heads, tokens, d = q.shape
        n = batch // seqlen

        def to_clip(t: torch.Tensor) -> torch.Tensor:  # (B,H,L,d) -> (N,H,T*L,d)
            return t.reshape(n, seqlen, heads, tokens, d).transpose(1, 2).reshape(
                n, heads, seqlen * tokens, d)

        out = attend(to_clip(q), to_clip(k), to_clip(v), self.scale)  # (N, H, T*L, d)
        out = out.reshape(n, heads, seqlen, tokens, d).permute(0, 2, 3, 1, 4)
        return out.reshape(batch, tokens, heads * d)

    def forward(self, x: torch.Tensor, seqlen: int, cls_only: bool = False) -> torch.Tensor:
        """(B, L, C) -> (B, L, C), or (B, 1, C) with `cls_only`: every token still attends
        and feeds the gate's token mean, but only the cls token is projected."""
        q, k, v = self._qkv(x)
        if self.st_mode == "vanilla":
            x = self._spatial(q, k, v)
        elif self.st_mode == "parallel":
            x_s = self._spatial(q, k, v)
            x_t = self._temporal(q, k, v, seqlen)
            batch, _, dim = x_s.shape
            # token-mean of [x_s, x_t] without materialising the (B, L, 2C) concatenation
            pooled = torch.cat([x_s.mean(dim=1, keepdim=True), x_t.mean(dim=1, keepdim=True)],
                               dim=-1)  # (B, 1, 2C)
            gate = self.ts_attn(pooled).reshape(batch, 1, dim, 2).softmax(dim=-1)
            x = torch.addcmul(x_s * gate[..., 0], x_t, gate[..., 1])  # x_s g0 + x_t g1
        elif self.st_mode == "series":
            x_s = self._spatial(q, k, v)
            x = self._temporal(*self._qkv(x_s), seqlen)
        else:  # coupling
            x = self._coupled(q, k, v, seqlen)
        return self.proj(x[:, :1] if cls_only else x)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + mlp(LN(x))."""

    def __init__(self, dim: int = 768, num_heads: int = 12, mlp_ratio: float = 4.0,
                 st_mode: StMode = "parallel"):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SpatioTemporalAttention(dim, num_heads, st_mode)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, seqlen: int, cls_only: bool = False) -> torch.Tensor:
        """(B, L, C) -> (B, L, C), or the cls token alone (B, 1, C) with `cls_only`."""
        # The residual is added into the fresh Linear outputs (their backward needs only
        # their inputs), which spares one (B, L, C) allocation per branch.
        x = self.attn(self.norm1(x), seqlen, cls_only).add_(x[:, :1] if cls_only else x)
        return self.mlp(self.norm2(x)).add_(x)


class PreLogits(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        self.act = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.fc(x))


class STEncoder(nn.Module):
    """Images of clips -> one feature per frame: (N*T, 3, 224, 224) -> (N*T, 768) in (-1, 1)."""

    def __init__(self, num_blocks: int = 6, num_heads: int = 12, st_mode: StMode = "parallel",
                 embed_dim: int = 768, layers: tuple[int, ...] = (3, 4, 9), img_size: int = 224,
                 max_frames: int = MAX_FRAMES):
        super().__init__()
        if st_mode not in ST_MODES:
            raise ValueError(f"st_mode must be one of {ST_MODES}, got {st_mode!r}")
        self.st_mode = st_mode
        self.embed_dim = embed_dim
        self.max_frames = max_frames
        backbone = ResNetV2(layers)
        self.patch_embed = HybridEmbed(backbone, backbone.num_features, embed_dim)
        grid = img_size // (4 * 2 ** (len(layers) - 1))  # stem /4, every stage after the first /2
        num_tokens = grid * grid + 1
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, embed_dim))
        self.temp_embed = (nn.Parameter(torch.zeros(1, max_frames, 1, embed_dim))
                           if st_mode != "vanilla" else None)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, 4.0, st_mode)
                                     for _ in range(num_blocks)])
        # Only the cls token leaves the encoder, so after the last block's attention (which
        # needs every token) the other 196 tokens are dead: their output projection and MLP
        # are skipped (8 % of MAED-6's arithmetic; the same outputs). True runs them anyway:
        # the architecture as defined, which is what MAC counting (Table 3) traces.
        self.full_last_block = False
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.pre_logits = PreLogits(embed_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        for p in (self.cls_token, self.pos_embed, self.temp_embed):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)
        for m in self.blocks.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, seqlen: int) -> torch.Tensor:
        if self.temp_embed is not None and seqlen > self.max_frames:
            raise InputError(
                f"MAED clips hold at most {self.max_frames} frames (temp_embed has "
                f"{self.max_frames} positions); got {seqlen}. Split the sequence into clips.")
        batch = x.shape[0]
        x = self.patch_embed(x)  # (B, 196, C)
        x = torch.cat([self.cls_token.expand(batch, -1, -1), x], dim=1) + self.pos_embed
        if self.temp_embed is not None:
            n = batch // seqlen
            x = (x.reshape(n, seqlen, -1, self.embed_dim) + self.temp_embed[:, :seqlen])
            x = x.reshape(batch, -1, self.embed_dim)
        last = len(self.blocks) - 1
        for index, block in enumerate(self.blocks):
            x = block(x, seqlen, cls_only=index == last and not self.full_last_block)
        return self.pre_logits(self.norm(x)[:, 0])  # cls token only
