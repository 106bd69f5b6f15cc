"""A simulated SRAM arena: buffers placed at byte offsets by a first-fit planner.

``allocate`` puts a buffer at the lowest offset where it fits between the live buffers (first
fit over the gaps, sorted by offset; alignment ``align`` bytes, 4 by default as CMSIS-NN needs for
its 32-bit loads); ``free`` releases it. Nothing is ever moved, so fragmentation is real and
counted. The peak is the largest end offset ever used: the SRAM a static arena of that size
needs for this schedule. Every event is recorded in ``timeline`` (a DataFrame).
"""
from __future__ import annotations

import pandas as pd

TIMELINE_COLUMNS = ["step", "op", "buffer", "offset", "bytes", "event"]


class Arena:
    """First-fit arena with a recorded timeline and peak."""

    def __init__(self, align: int = 4) -> None:
        if align < 1:
            raise ValueError(f"align must be positive, got {align}")
        self.align = align
        self.live: dict[str, tuple[int, int]] = {}  # name -> (offset, bytes)
        self.events: list[dict] = []
        self.peak = 0
        self.step, self.op = 0, ""

    def at(self, step: int, op: str) -> None:
        """Set the step index and op name recorded with the following events."""
        self.step, self.op = step, op

    def allocate(self, name: str, nbytes: int) -> int:
        """Place ``name`` (``nbytes``) at the first gap that fits; return its offset."""
        if name in self.live:
            raise ValueError(f"buffer {name!r} is already allocated")
        if nbytes < 0:
            raise ValueError(f"nbytes must be non-negative, got {nbytes}")
        size = -(-int(nbytes) // self.align) * self.align
        offset = 0
        for start, length in sorted(self.live.values()):
            if start - offset >= size:
                break
            offset = max(offset, -(-(start + length) // self.align) * self.align)
        self.live[name] = (offset, size)
        self.peak = max(self.peak, offset + size)
        self._record(name, offset, int(nbytes), "alloc")
        return offset

    def free(self, name: str) -> None:
        if name not in self.live:
            raise KeyError(f"buffer {name!r} is not allocated")
        offset, size = self.live.pop(name)
        self._record(name, offset, size, "free")

    def _record(self, name: str, offset: int, nbytes: int, event: str) -> None:
        self.events.append(dict(step=self.step, op=self.op, buffer=name, offset=offset, bytes=nbytes, event=event))

    @property
    def in_use(self) -> int:
        return sum(size for _, size in self.live.values())

    @property
    def timeline(self) -> pd.DataFrame:
        return pd.DataFrame(self.events, columns=TIMELINE_COLUMNS)


__all__ = ["Arena", "TIMELINE_COLUMNS"]
