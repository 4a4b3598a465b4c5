"""One-step generators: an MLP for 2-D toys and a small DiT after the drifting paper's recipe.

Both map noise of the output's shape (MLP: a noise vector) plus conditioning to a sample in one forward
pass. Conditioning is a class label, the CFG strength ``alpha`` the generator is trained for (training-time
CFG: sampling is one pass at the chosen alpha), and for the DiT 32 random "style" indices into
codebooks of 64 entries each, whose embeddings add extra noise to the adaLN conditioning of every block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from raydrift.config.schema import ModelConfig


@dataclass(frozen=True)
class GeneratorInputs:
    """One batch of inputs: ``noise [B, *noise_shape]``, ``labels [B]``, ``alpha [B]``, ``style [B, K]``."""

    noise: torch.Tensor
    labels: torch.Tensor
    alpha: torch.Tensor
    style: torch.Tensor


class Generator(nn.Module):
    """Common interface: ``forward(noise, labels, alpha, style) -> samples [B, *sample_shape]``."""

    sample_shape: tuple[int, ...]
    noise_shape: tuple[int, ...]
    num_classes: int
    style_codebooks: int
    codebook_size: int

    def draw_inputs(
        self,
        labels: torch.Tensor,
        alpha: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> GeneratorInputs:
        """Noise and style indices for ``labels`` [B], drawn from ``generator`` on the labels' device."""
        B, dev = labels.shape[0], labels.device
        noise = torch.randn((B, *self.noise_shape), generator=generator, device=dev)
        style = torch.randint(0, max(self.codebook_size, 1), (B, self.style_codebooks), generator=generator, device=dev)
        if alpha is None:
            alpha = torch.ones(B, device=dev)
        return GeneratorInputs(noise, labels, alpha, style)


def _fourier(t: torch.Tensor, dim: int, max_period: float = 100.0) -> torch.Tensor:
    """Sinusoidal embedding ``[B, dim]`` of a scalar per sample (used for the CFG strength alpha)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class _Conditioning(nn.Module):
    """Class embedding + alpha embedding + sum of style-codebook embeddings -> ``c [B, dim]``."""

    def __init__(self, dim: int, num_classes: int, style_codebooks: int, codebook_size: int):
        super().__init__()
        self.class_emb = nn.Embedding(num_classes, dim)
        self.alpha_mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.style_codebooks, self.codebook_size = style_codebooks, codebook_size
        self.style_emb = nn.Embedding(max(style_codebooks * codebook_size, 1), dim)
        nn.init.normal_(self.class_emb.weight, std=0.02)
        nn.init.normal_(self.style_emb.weight, std=0.02)
        self.dim = dim

    def forward(self, labels: torch.Tensor, alpha: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        c = self.class_emb(labels) + self.alpha_mlp(_fourier(alpha, self.dim))
        if self.style_codebooks:
            offsets = torch.arange(self.style_codebooks, device=style.device) * self.codebook_size
            c = c + self.style_emb(style + offsets).sum(1)
        return c


class MLPGenerator(Generator):
    """Residual MLP: ``[noise, c] -> sample`` for 2-D toys (and small flat data)."""

    def __init__(
        self,
        sample_shape: tuple[int, ...],
        num_classes: int,
        *,
        noise_dim: int = 16,
        hidden: int = 256,
        depth: int = 3,
        style_codebooks: int = 0,
        codebook_size: int = 64,
    ):
        super().__init__()
        self.sample_shape, self.noise_shape = tuple(sample_shape), (noise_dim,)
        self.num_classes, self.style_codebooks, self.codebook_size = (
            num_classes,
            style_codebooks,
            codebook_size,
        )
        self.cond = _Conditioning(hidden, num_classes, style_codebooks, codebook_size)
        self.inp = nn.Linear(noise_dim, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
            for _ in range(depth)
        )
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, math.prod(sample_shape)))

    def forward(self, noise, labels, alpha, style):
        h = self.inp(noise) + self.cond(labels, alpha, style)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h).view(-1, *self.sample_shape)


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class _DiTBlock(nn.Module):
    """Pre-norm transformer block with adaLN-zero modulation (gates start at zero: identity at init)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c).chunk(6, dim=-1)
        B, L, D = x.shape
        q, k, v = self.qkv(_modulate(self.norm1(x), shift1, scale1)).view(B, L, 3, self.heads, -1).unbind(2)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        x = x + gate1[:, None] * self.proj(a.transpose(1, 2).reshape(B, L, D))
        return x + gate2[:, None] * self.mlp(_modulate(self.norm2(x), shift2, scale2))


def _sincos_2d(dim: int, h: int, w: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding ``[h * w, dim]``."""
    gy, gx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    parts = [f(g.reshape(-1, 1) * omega) for g in (gy, gx) for f in (torch.sin, torch.cos)]
    emb = torch.cat(parts, dim=1)
    return F.pad(emb, (0, dim - emb.shape[1]))


class DiTGenerator(Generator):
    """DiT-style one-step generator (the official drifting recipe, scaled down for CPUs where needed).

    noise ``[B, C, H, W]`` -> patchify (images padded to a multiple of the patch) -> adaLN-zero blocks
    conditioned on class + alpha + style codebooks -> zero-initialised linear head -> unpatchify.
    """

    def __init__(
        self,
        sample_shape: tuple[int, int, int],
        num_classes: int,
        *,
        patch_size: int = 2,
        dim: int = 128,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        style_codebooks: int = 32,
        codebook_size: int = 64,
    ):
        super().__init__()
        if dim % heads:
            raise ValueError(f"model.dim ({dim}) must be divisible by model.heads ({heads})")
        C, H, W = sample_shape
        self.sample_shape = self.noise_shape = (C, H, W)
        self.num_classes, self.style_codebooks, self.codebook_size = (
            num_classes,
            style_codebooks,
            codebook_size,
        )
        self.p = patch_size
        self.hp, self.wp = -(-H // patch_size), -(-W // patch_size)
        self.embed = nn.Linear(C * patch_size**2, dim)
        self.register_buffer("pos", _sincos_2d(dim, self.hp, self.wp)[None], persistent=False)
        self.cond = _Conditioning(dim, num_classes, style_codebooks, codebook_size)
        self.blocks = nn.ModuleList(_DiTBlock(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.head = nn.Linear(dim, C * patch_size**2)
        for m in (self.ada_out[1], self.head):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, noise, labels, alpha, style):
        B, C, H, W = noise.shape
        p = self.p
        x = F.pad(noise, (0, self.wp * p - W, 0, self.hp * p - H))
        x = x.view(B, C, self.hp, p, self.wp, p).permute(0, 2, 4, 1, 3, 5).reshape(B, self.hp * self.wp, -1)
        x = self.embed(x) + self.pos
        c = self.cond(labels, alpha, style)
        for block in self.blocks:
            x = block(x, c)
        shift, scale = self.ada_out(c).chunk(2, dim=-1)
        x = self.head(_modulate(self.norm(x), shift, scale))
        x = x.view(B, self.hp, self.wp, C, p, p).permute(0, 3, 1, 4, 2, 5).reshape(B, C, self.hp * p, self.wp * p)
        return x[:, :, :H, :W]


def build_generator(m: ModelConfig, sample_shape: tuple[int, ...], num_classes: int) -> Generator:
    """The generator a config's ``model`` section describes, for samples of ``sample_shape``."""
    if m.arch == "mlp":
        return MLPGenerator(
            sample_shape,
            num_classes,
            noise_dim=m.noise_dim,
            hidden=m.dim,
            depth=m.depth,
            style_codebooks=m.style_codebooks,
            codebook_size=m.codebook_size,
        )
    if len(sample_shape) != 3:
        raise ValueError(f"model.arch=dit needs image data [C, H, W], got samples of shape {sample_shape}")
    return DiTGenerator(
        sample_shape,
        num_classes,
        patch_size=m.patch_size,
        dim=m.dim,
        depth=m.depth,
        heads=m.heads,
        mlp_ratio=m.mlp_ratio,
        style_codebooks=m.style_codebooks,
        codebook_size=m.codebook_size,
    )
