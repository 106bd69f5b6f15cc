"""An int8 Cortex-M4 emulator: quantize a model, run it with integer kernels, measure RAM / flash / cycles.

``quantize(model, calibration)`` -> :class:`QuantizedModel` with ``run`` / ``run_int8`` (schedules
``"layer"`` and ``"patch"``, bit-identical) and ``report(input_size, ...)`` (simulated SRAM arena).

Modules: ``fixed_point`` (TFLite / gemmlowp requantization), ``kernels`` (int8 conv, add, pool,
linear), ``rnnpool_int`` (FastGRNN RNNPool in Q15), ``calibrate`` (observers), ``quantize``
(graph conversion), ``ops`` (the integer op list), ``schedule`` (layer / patch execution and the
arena replay), ``arena`` (first-fit SRAM), ``cost`` (flash, MACs, Cortex-M4 cycles), ``report``
(results and the arena plot), ``examples`` (a small classifier for tests and the book),
``export`` (the model as a C99 project: ``export_c``), ``toolchain`` (host ``cc``, Cortex-M4
``arm-none-eabi-gcc``, QEMU ``mps2-an386``), ``target`` (``run_on_m4``: build, run and measure the
C export on the host or on an emulated Cortex-M4; kernels in ``m4/c/``).
"""
from rnnpool_lite.m4.arena import Arena
from rnnpool_lite.m4.export import CProject, export_c
from rnnpool_lite.m4.fixed_point import QParams, multiply_by_quantized_multiplier, quantize_multiplier
from rnnpool_lite.m4.model import QuantizedModel
from rnnpool_lite.m4.quantize import SUPPORTED, UnsupportedError, quantize
from rnnpool_lite.m4.report import KIB, M4_SRAM_BYTES, Report, plot_arena
from rnnpool_lite.m4.target import M4Run, run_on_m4

__all__ = ["Arena", "CProject", "KIB", "M4Run", "M4_SRAM_BYTES", "QParams", "QuantizedModel", "Report", "SUPPORTED",
           "UnsupportedError", "export_c", "multiply_by_quantized_multiplier", "plot_arena", "quantize",
           "quantize_multiplier", "run_on_m4"]
