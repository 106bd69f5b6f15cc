"""The authors' reference trace, shipped so that the book can check the layer against it.

``edgeml_data/edgeml_vww_rnnpool_trace.json`` holds one RNNPool patch traced from a trained
Visual Wake Words model of Microsoft's EdgeML project (MIT licence, (c) Microsoft Corporation;
``c_reference/tests/rnnpool``), converted to JSON: the weights under EdgeML's C names, a 6x6x8
input patch and the C reference's 32 outputs. Its ``layout`` field documents the conventions.
"""
from __future__ import annotations

import json
from importlib import resources
from typing import Any

import torch

from rnnpool_lite.op.layer import RNNPool2d


def load_vww_trace() -> dict[str, Any]:
    """The trace as a dict (``params``, ``input`` [rows][cols][channels], ``expected_output``...)."""
    path = resources.files("rnnpool_lite.repro.edgeml_data").joinpath("edgeml_vww_rnnpool_trace.json")
    return json.loads(path.read_text())


def trace_layer_and_input(
    trace: dict[str, Any], dtype: torch.dtype = torch.float32
) -> tuple[RNNPool2d, torch.Tensor, torch.Tensor]:
    """``(layer, x, expected)``: the traced layer, its input as (1, C, k, k) and the C output."""
    layer = RNNPool2d.from_edgeml(trace["params"], trace["kernel_size"], dtype=dtype)
    x = torch.tensor(trace["input"], dtype=dtype).permute(2, 0, 1)[None]
    return layer, x, torch.tensor(trace["expected_output"], dtype=dtype)
