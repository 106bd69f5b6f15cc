"""Finding and running the compilers and QEMU: the host ``cc`` build, the Cortex-M4 build, the ELF.

The Cortex-M4 build is ``arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -O2 -fno-schedule-insns`` (GCC's
scheduling pass before register allocation raises register pressure in the SMLAD blocks until they
spill; skipping it saves about 2% of the instructions) with ``m4.ld`` (the
STM32F439's 256 KB SRAM and 2 MB flash, on QEMU's ``mps2-an386`` memory map); it runs under
``qemu-system-arm -machine mps2-an386 -icount shift=0`` with semihosting for the files. A
missing tool raises :class:`ToolchainMissing` naming the Debian packages; a model whose static
RAM does not fit raises :class:`RamOverflow` with the linker's figures.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Literal

DEBIAN_PACKAGES = ("gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "qemu-system-arm")
ARM_CFLAGS = ("-std=c99", "-mcpu=cortex-m4", "-mthumb", "-O2", "-fno-schedule-insns", "-ffreestanding", "-nostdlib",
              "-Wall")
HOST_CFLAGS = ("-std=c99", "-O2", "-Wall")
QEMU_ARGS = ("-machine", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none",
             "-semihosting-config", "enable=on,target=native", "-icount", "shift=0,align=off,sleep=off")
RAM_BYTES = 256 * 1024
FLASH_BYTES = 2048 * 1024


class ToolchainMissing(RuntimeError):
    """A compiler or QEMU is not installed."""


class RamOverflow(RuntimeError):
    """The model's static RAM (.data + .bss) does not fit the 256 KB SRAM (with a minimal stack)."""


def find_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolchainMissing(f"{name} was not found on PATH; install the Debian packages "
                               f"{', '.join(DEBIAN_PACKAGES)} (apt-get install -y {' '.join(DEBIAN_PACKAGES)})")
    return path


def m4_toolchain_available() -> bool:
    """True when the Cortex-M4 compiler, its size tool and QEMU are all installed."""
    return all(shutil.which(t) for t in ("arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm"))


def _sources(out_dir: Path, platform: str) -> list[str]:
    srcs = ["model.c", "rnn_kernels.c", platform]
    if (out_dir / "frame.S").exists():
        srcs.append("frame.S")
    return srcs


Kernels = Literal["optimized", "reference"]
KERNELS: tuple[Kernels, ...] = ("optimized", "reference")


def check_kernels(kernels: str) -> Kernels:
    """``kernels`` itself, or a ``ValueError`` naming the choices."""
    if kernels not in KERNELS:
        raise ValueError(f"kernels must be one of {KERNELS}, got {kernels!r}")
    return kernels


def kernel_defines(kernels: Kernels) -> list[str]:
    """The compiler defines of a kernel build: the optimized kernels (CMSIS-NN's techniques: SMLAD on the
    Cortex-M4, the same blocked C on the host) or the reference loops (``-DRNN_KERNELS_REFERENCE``)."""
    return [] if check_kernels(kernels) == "optimized" else ["-DRNN_KERNELS_REFERENCE"]


def _compile(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


def build_host(out_dir: Path, kernels: Kernels = "optimized") -> Path:
    """Compile the project with the host's ``cc`` (the optimized kernels run as portable C here)."""
    cc = shutil.which("cc") or find_tool("gcc")
    cmd = [cc, *HOST_CFLAGS, *kernel_defines(kernels), "-o", "model_host", *_sources(out_dir, "platform_host.c")]
    res = _compile(cmd, out_dir)
    if res.returncode:
        raise RuntimeError(f"host build failed:\n{res.stderr[-4000:]}")
    return out_dir / "model_host"


def build_m4(out_dir: Path, kernels: Kernels = "optimized") -> Path:
    """Compile and link for the Cortex-M4; :class:`RamOverflow` when the static RAM does not fit."""
    gcc = find_tool("arm-none-eabi-gcc")
    cmd = [gcc, *ARM_CFLAGS, *kernel_defines(kernels), "-T", "m4.ld", "-o", "model_m4.elf",
           *_sources(out_dir, "platform_m4.c"), "-lgcc"]
    res = _compile(cmd, out_dir)
    if res.returncode:
        over = re.search(r"region `RAM' overflowed by (\d+) bytes", res.stderr)
        if over or "RNN_MIN_STACK" in res.stderr:
            extra = f" by {over.group(1)} bytes" if over else " (less than 2 KB left for the stack)"
            raise RamOverflow(f"the model does not fit the Cortex-M4's {RAM_BYTES // 1024} KB SRAM: static RAM "
                              f"(.data + .bss, the arena) overflows{extra}; linker said:\n{res.stderr[-1500:]}")
        if "region `FLASH' overflowed" in res.stderr:
            raise RamOverflow(f"the model does not fit the {FLASH_BYTES // 1024} KB flash:\n{res.stderr[-1500:]}")
        raise RuntimeError(f"Cortex-M4 build failed:\n{res.stderr[-4000:]}")
    return out_dir / "model_m4.elf"


def elf_sections(elf: Path) -> dict[str, int]:
    """Section sizes (bytes) from ``arm-none-eabi-size -A``."""
    res = subprocess.run([find_tool("arm-none-eabi-size"), "-A", str(elf)], capture_output=True, text=True, check=True)
    sizes = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return sizes


def run_host(out_dir: Path, timeout: float = 600) -> tuple[bytes, float]:
    """Run the host build in ``out_dir``: ``(output.bin bytes, wall seconds)``."""
    (out_dir / "output.bin").unlink(missing_ok=True)
    t0 = time.perf_counter()
    res = subprocess.run(["./model_host"], cwd=out_dir, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if res.returncode:
        raise RuntimeError(f"the host build exited with {res.returncode}: {res.stderr[-2000:]}")
    return (out_dir / "output.bin").read_bytes(), wall


def run_qemu(out_dir: Path, timeout: float = 600) -> tuple[bytes, float]:
    """Run ``model_m4.elf`` on QEMU's Cortex-M4 board: ``(output.bin bytes, wall seconds)``."""
    qemu = find_tool("qemu-system-arm")
    (out_dir / "output.bin").unlink(missing_ok=True)
    t0 = time.perf_counter()
    res = subprocess.run([qemu, *QEMU_ARGS, "-kernel", "model_m4.elf"], cwd=out_dir, capture_output=True, text=True,
                         timeout=timeout)
    wall = time.perf_counter() - t0
    if res.returncode:
        raise RuntimeError(f"qemu-system-arm exited with {res.returncode} (the program failed or faulted): "
                           f"{res.stderr[-2000:]}")
    return (out_dir / "output.bin").read_bytes(), wall


__all__ = ["ARM_CFLAGS", "DEBIAN_PACKAGES", "FLASH_BYTES", "QEMU_ARGS", "RAM_BYTES", "RamOverflow", "ToolchainMissing",
           "build_host", "build_m4", "elf_sections", "find_tool", "m4_toolchain_available", "run_host", "run_qemu"]
