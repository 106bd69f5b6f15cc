"""An int8 Cortex-M4 emulator: quantize a model, run it with integer kernels, measure RAM / flash / cycles.

``quantize(model, calibration)`` -> :class:`QuantizedModel` with ``run`` / ``run_int8`` (schedules
``"layer"`` and ``"patch"``, bit-identical) and ``report(input_size, ...)`` (simulated SRAM arena).

Modules: ``fixed_point`` (TFLite / gemmlowp requantization), ``kernels`` (int8 conv, add, pool,
linear), ``rnnpool_int`` (FastGRNN RNNPool in Q15), ``ops/`` (one module per integer op: the op
class with its numpy run, shapes, MACs, flash, cycles and C emission, and its PyTorch
converter), ``calibrate`` (observers), ``conversion`` (the state converters share),
``quantize`` (tracing and the converter table), ``plan`` (layer / patch execution and the arena
replay), ``arena`` (first-fit SRAM), ``cost`` (the cycle model's constants), ``report``
(results and the arena plot), ``export`` (the model as a C99 project: ``export_c``) with ``c_source`` and ``c_stem``,
``toolchain`` (host ``cc``, Cortex-M4 ``arm-none-eabi-gcc``, QEMU ``mps2-an386``), ``target``
(``run_on_m4``: build, run and measure the C export on the host or on an emulated Cortex-M4;
kernels in ``m4/c/``).
"""
from rnnpool_lite.m4.arena import Arena
from rnnpool_lite.m4.conversion import UnsupportedError
from rnnpool_lite.m4.export import CProject, export_c
from rnnpool_lite.m4.fixed_point import QParams, multiply_by_quantized_multiplier, quantize_multiplier
from rnnpool_lite.m4.model import QuantizedModel
from rnnpool_lite.m4.quantize import SUPPORTED, quantize
from rnnpool_lite.m4.report import KIB, M4_SRAM_BYTES, Report, plot_arena
from rnnpool_lite.m4.target import M4Run, run_on_m4

__all__ = ["Arena", "CProject", "KIB", "M4Run", "M4_SRAM_BYTES", "QParams", "QuantizedModel", "Report", "SUPPORTED",
           "UnsupportedError", "export_c", "multiply_by_quantized_multiplier", "plot_arena", "quantize",
           "quantize_multiplier", "run_on_m4"]
