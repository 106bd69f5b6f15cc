"""Seeding that makes every epoch's randomness a function of ``(seed, epoch, rank)`` alone.

Reseeding at the start of each epoch (instead of saving and restoring generator states mid-run)
is what makes a resumed run identical to an uninterrupted one: shuffling, augmentation and dropout
of epoch ``e`` never depend on how many epochs ran in this process before. DataLoader workers get
their own seeds from the loader's generator (PyTorch's recipe, "Reproducibility" notes), and
``seed_worker`` passes that seed on to NumPy and ``random`` inside each worker.
"""
from __future__ import annotations

import random

import numpy as np
import torch

_MASK = (1 << 63) - 1


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A 63-bit seed for one (run seed, epoch, rank); distinct inputs give distinct streams."""
    mixed = np.random.SeedSequence([int(seed) & _MASK, int(epoch), int(rank)]).generate_state(2, np.uint32)
    return (int(mixed[0]) << 31 ^ int(mixed[1])) & _MASK


def seed_everything(seed: int) -> None:
    """Seed PyTorch (CPU and CUDA), NumPy's global generator and ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn`` for DataLoader: NumPy / ``random`` follow the worker's torch seed."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)
