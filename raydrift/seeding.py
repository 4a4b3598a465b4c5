"""Every random stream derives from (base seed, step, rank, purpose), so a resumed run replays it exactly."""

from __future__ import annotations

import hashlib

import torch

PURPOSES = ("init", "classes", "alpha", "noise", "queues", "eval", "classifier")


def derive_seed(base: int, *, step: int = 0, rank: int = 0, purpose: str) -> int:
    """A 63-bit seed from the tuple; stable across Python versions and platforms (no ``hash()``)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown seed purpose {purpose!r}; one of {PURPOSES}")
    digest = hashlib.blake2b(f"{base}/{step}/{rank}/{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def generator(base: int, *, step: int = 0, rank: int = 0, purpose: str, device="cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with :func:`derive_seed`."""
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(base, step=step, rank=rank, purpose=purpose))
    return g
