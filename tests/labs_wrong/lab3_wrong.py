"""Lab 3, question 4 answered wrong: the shift rounds ties up (``(x + 2^(e-1)) >> e``), not away from zero.

It agrees with ``RoundingDivideByPOT`` everywhere but on negative ties (-5 / 2 gives -2, not -3).
tests/test_labs.py puts this cell in place of the solution cell that defines
``rounding_divide_by_pot`` and checks that the grader takes the marks of question 4.
"""
import numpy as np

QUESTION = "q4"
REPLACES = "def rounding_divide_by_pot("


def rounding_divide_by_pot(x, exponent):
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    return (x + ((np.int64(1) << exponent) >> 1)) >> exponent
