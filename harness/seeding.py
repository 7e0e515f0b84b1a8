"""Seed derivation: one master seed drives every random stream of a run.

Each stream (model initialisation, data order, regularizer, evaluation, ...) gets its own
seed from a hash of (master seed, stream name), so streams are independent and adding a
new stream never changes the numbers of the existing ones.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a generator is made: the sweep planner needs only derive_seed
    import torch


def derive_seed(master: int, *names: object) -> int:
    """A 63-bit seed for the stream named by ``names`` under the ``master`` seed."""
    key = ":".join([str(master), *map(str, names)]).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") & ((1 << 63) - 1)


def make_generator(master: int, *names: object, device: str = "cpu") -> "torch.Generator":
    import torch

    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(master, *names))
    return g
