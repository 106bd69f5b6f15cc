"""The integer ops a quantized model is made of, one module per op.

Each module holds one op class and its PyTorch converter. The class owns every backend of the
op: ``run`` (numpy), ``out_shapes``, ``macs``, ``flash_bytes``, ``cycles`` (the Cortex-M4 cycle
model of :mod:`rnnpool_lite.m4.cost`) and ``emit_c`` (its step in the generated ``model.c``,
calling its kernel in ``m4/c/rnn_kernels.c``). The converter is listed in the table of
:mod:`rnnpool_lite.m4.quantize`. The interface is :class:`rnnpool_lite.m4.ops.base.Op`.
"""
