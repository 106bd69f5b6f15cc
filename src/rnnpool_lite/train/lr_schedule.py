"""Learning-rate schedule of the paper (Appendix G): linear warm-up, then cosine decay to zero.

The rate is a pure function of the optimisation step, not a stateful scheduler object: a run
resumed from a checkpoint recomputes exactly the rate the uninterrupted run used, with nothing to
save or restore.
"""
from __future__ import annotations

import math


def cosine_lr(step: int, total_steps: int, base_lr: float, warmup_steps: int = 0) -> float:
    """Rate for optimisation ``step`` (0-based) of ``total_steps``.

    Warm-up rises linearly from ``base_lr / warmup_steps`` to ``base_lr`` over the first
    ``warmup_steps`` steps (the detection runs use 5 epochs); the rest follows
    ``base_lr * (1 + cos(pi * t)) / 2`` with ``t`` going from 0 to 1 over the remaining steps.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    if not 0 <= step < total_steps:
        raise ValueError(f"step must be in [0, {total_steps}), got {step}")
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}), got {warmup_steps}")
    if not base_lr >= 0:  # 0 is a control run: nothing is updated
        raise ValueError(f"base_lr must be >= 0, got {base_lr}")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    decay_steps = total_steps - warmup_steps
    t = (step - warmup_steps) / decay_steps
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * t))
