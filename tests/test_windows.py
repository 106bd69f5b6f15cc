"""Sliding-window spans: the one kernel / stride rule that receptive fields and row schedules share."""
from __future__ import annotations

import pytest
from torch import nn

from rnnpool_lite import RNNPool2d
from rnnpool_lite.accounting.bounds import row_schedule_ram
from rnnpool_lite.accounting.receptive_field import theoretical_receptive_field
from rnnpool_lite.accounting.windows import IDENTITY, Span, layer_spans


def test_layer_spans_read_kernel_stride_padding_and_dilation():
    conv = nn.Conv2d(1, 1, (3, 5), stride=(1, 2), padding=(1, 2), dilation=(2, 1))
    assert layer_spans(conv) == (Span(-1, 3, 1), Span(-2, 2, 2))
    assert layer_spans(RNNPool2d(4, 2, 6, 4, padding=2)) == (Span(-2, 3, 4),) * 2
    assert layer_spans(nn.AvgPool2d(2)) == (Span(0, 1, 2),) * 2  # stride defaults to the kernel
    assert layer_spans(nn.ReLU()) is None
    with pytest.raises(ValueError, match="string padding"):
        layer_spans(nn.Conv2d(1, 1, 3, padding="same"))


def test_composing_spans_is_associative_with_identity():
    a, b, c = Span(-1, 1, 2), Span(0, 2, 1), Span(-2, 3, 4)
    assert a.then(b).then(c) == a.then(b.then(c))
    assert IDENTITY.then(a) == a == a.then(IDENTITY)
    assert a.then(b).size == (b.size - 1) * a.jump + a.size  # the row-schedule rule, (f - 1) s + k


def test_row_schedule_fields_are_receptive_field_sizes():
    # the field of the output on each map of a stack is the receptive field of the layers after it
    layers = [nn.Conv2d(2, 4, 3, 2, 1), nn.Conv2d(4, 4, 5, 1, 2), nn.MaxPool2d(2), nn.Conv2d(4, 3, 3, 1, 1)]
    fields = row_schedule_ram(nn.Sequential(*layers), (2, 32, 32), 1).layers.set_index("map")["field"]
    for q in range(1, len(layers) - 1):
        assert fields[str(q - 1)] == theoretical_receptive_field(layers[q:]).size[0]
