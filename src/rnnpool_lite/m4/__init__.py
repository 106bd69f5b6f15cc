"""An int8 Cortex-M4 emulator: quantize a model, run it with integer kernels, measure RAM / flash / cycles.

``quantize(model, calibration)`` -> :class:`QuantizedModel` with ``run`` / ``run_int8`` (schedules
``"layer"`` and ``"patch"``, bit-identical) and ``report(input_size, ...)`` (simulated SRAM arena).
"""
from .arena import Arena
from .fixed_point import QParams, multiply_by_quantized_multiplier, quantize_multiplier
from .model import QuantizedModel
from .quantize import SUPPORTED, UnsupportedError, quantize
from .report import KIB, M4_SRAM_BYTES, Report, plot_arena

__all__ = ["Arena", "KIB", "M4_SRAM_BYTES", "QParams", "QuantizedModel", "Report", "SUPPORTED",
           "UnsupportedError", "multiply_by_quantized_multiplier", "plot_arena", "quantize", "quantize_multiplier"]
