"""Lab 2, question 1 answered wrong: the input image is counted, as if it were stored in RAM.

The peak of the plain CNN does not move (its largest step is the second convolution), so only the
per-layer check catches it. tests/test_labs.py puts this cell in place of the solution cell that
defines ``convention_ram`` and checks that the grader takes the marks of question 1, and only those.
"""
import numpy as np

QUESTION = "q1"
REPLACES = "def convention_ram("


def convention_ram(units, bytes_per_value=4):
    ram = []
    for k, unit in enumerate(units):
        in_bytes = int(np.prod(unit["input_shape"])) * bytes_per_value
        out_bytes = 0 if k == len(units) - 1 else int(np.prod(unit["output_shape"])) * bytes_per_value
        ram.append(max(in_bytes, out_bytes) if unit["kind"] == "pool" else in_bytes + out_bytes)
    return ram


plain_peak = max(convention_ram(units_of(plain, INPUT), 4))  # noqa: F821
