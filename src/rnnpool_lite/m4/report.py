"""What the emulator measured for one model, input size and schedule, and a plot of the arena."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from rnnpool_lite.m4.plan import Schedule, check_schedule

KIB = 1024
M4_SRAM_BYTES = 256 * KIB


@dataclass
class Report:
    """Measured peak arena, flash, MACs, estimated cycles and the buffer timeline.

    ``peak_ram_bytes`` is the arena's largest end offset (the input image is included only when
    ``count_input``); ``macs`` are the MACs the schedule executes (the patch schedule recomputes
    overlaps), ``network_macs`` those of the network computed once; ``ops`` has one row per op.
    """

    schedule: Schedule
    input_size: tuple[int, ...]
    count_input: bool
    count_output: bool
    peak_ram_bytes: int
    flash_bytes: int
    macs: int
    network_macs: int
    cycles: float
    timeline: pd.DataFrame
    ops: pd.DataFrame
    clock_hz: float = 80e6

    def __post_init__(self) -> None:
        self.schedule = check_schedule(self.schedule)

    def latency_ms(self, clock_hz: float | None = None) -> float:
        """Estimated latency at ``clock_hz`` (default: the report's clock): cycles / clock."""
        clock_hz = self.clock_hz if clock_hz is None else clock_hz
        if not clock_hz > 0:
            raise ValueError(f"clock_hz must be positive, got {clock_hz!r}")
        return 1000.0 * self.cycles / clock_hz

    def summary(self, clock_hz: float | None = None) -> dict[str, float | str]:
        """One row of numbers (KiB, millions, ms) for a comparison table."""
        clock_hz = self.clock_hz if clock_hz is None else clock_hz
        return {"schedule": self.schedule, "peak RAM (KB)": round(self.peak_ram_bytes / KIB, 1),
                "flash (KB)": round(self.flash_bytes / KIB, 1), "network MAdds (M)": round(self.network_macs / 1e6, 2),
                "executed MACs (M)": round(self.macs / 1e6, 2), "cycles (M)": round(self.cycles / 1e6, 2),
                f"latency @ {clock_hz / 1e6:g} MHz (ms)": round(self.latency_ms(clock_hz), 1)}


def buffer_lifetimes(timeline: pd.DataFrame) -> pd.DataFrame:
    """One row per allocation: ``buffer, offset, bytes, start, end, op`` (``end``: step after the free)."""
    last = int(timeline.step.max()) + 1 if len(timeline) else 1
    open_: dict[str, dict] = {}
    rows = []
    for ev in timeline.itertuples(index=False):
        if ev.event == "alloc":
            open_[ev.buffer] = dict(buffer=ev.buffer, offset=ev.offset, bytes=ev.bytes, start=ev.step, op=ev.op)
        else:
            row = open_.pop(ev.buffer)
            rows.append({**row, "end": ev.step + 1})
    rows += [{**row, "end": last} for row in open_.values()]
    return pd.DataFrame(rows, columns=["buffer", "offset", "bytes", "start", "end", "op"])


def plot_arena(report: Report, ax: Any = None, limit_bytes: int | None = M4_SRAM_BYTES,
               title: str | None = None) -> Any:
    """Draw the arena over time: each buffer a rectangle (offset vs step), the SRAM limit a line."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    spans = buffer_lifetimes(report.timeline)
    cmap = plt.get_cmap("tab20")
    for k, row in spans.iterrows():
        ax.add_patch(Rectangle((row.start, row.offset / KIB), max(row.end - row.start, 0.3), row.bytes / KIB,
                               facecolor=cmap(k % 20), edgecolor="black", linewidth=0.3, alpha=0.85))
    xmax = max(float(spans.end.max()) if len(spans) else 1.0, 1.0)
    top = max(report.peak_ram_bytes, limit_bytes or 0) / KIB
    if limit_bytes:
        ax.axhline(limit_bytes / KIB, color="red", linestyle="--", label=f"{limit_bytes // KIB} KB SRAM")
    ax.axhline(report.peak_ram_bytes / KIB, color="black", linestyle=":",
               label=f"peak {report.peak_ram_bytes / KIB:.0f} KB")
    ax.set(xlim=(0, xmax), ylim=(0, top * 1.08), xlabel="step", ylabel="arena offset (KB)",
           title=title or f"arena, {report.schedule} schedule")
    ax.legend(loc="upper right", fontsize=8)
    return ax


__all__ = ["KIB", "M4_SRAM_BYTES", "Report", "buffer_lifetimes", "plot_arena"]
