"""rnnpool_lite: RNNPool, the paper's models, RAM accounting and an int8 Cortex-M4 emulator."""
from rnnpool_lite.op.cells import FastGRNNCell, GRUCell, LSTMCell, quant_sigmoid, quant_tanh
from rnnpool_lite.op.layer import RNNPool2d

__version__ = "0.1.0"
__all__ = ["RNNPool2d", "FastGRNNCell", "GRUCell", "LSTMCell", "quant_sigmoid", "quant_tanh"]
