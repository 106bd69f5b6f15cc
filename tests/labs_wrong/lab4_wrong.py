"""Lab 4, question 1 answered wrong: the two models are not paired.

The downsampler is built between the stem and the head from the same seed stream, so the head's
initial weights depend on which downsampler drew its numbers first: the shared layers no longer start
equal for one seed, and the per-seed difference carries initialisation noise. tests/test_labs.py puts
this cell in place of the solution cell that defines ``make_model`` and checks that the grader takes
the marks of question 1, and only those.
"""
import torch
from torch import nn

from rnnpool_lite.op.layer import RNNPool2d

QUESTION = "q1"
REPLACES = "def make_model("


def make_model(downsampler, seed):
    torch.manual_seed(seed)
    stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
    down = RNNPool2d(8, 8, 4, 4) if downsampler == "rnnpool" else nn.Sequential(nn.AvgPool2d(4), nn.Conv2d(8, 32, 1))
    head = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 2))
    return nn.Sequential(stem, down, head)
