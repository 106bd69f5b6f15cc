"""A small RNNPool classifier trained here for seconds keeps its predictions in int8."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rnnpool_lite.data import OneLineDataset
from rnnpool_lite.m4 import quantize
from rnnpool_lite.models.small import small_rnnpool_classifier


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    train, val = OneLineDataset(900, 32, seed=0), OneLineDataset(200, 32, seed=1)
    x, y = train.images.float() / 255, train.targets
    model = small_rnnpool_classifier(num_classes=len(train.classes))
    opt = torch.optim.Adam(model.parameters(), 0.003)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small batches: one thread is faster than two fighting on a shared machine
    for _ in range(5):
        for idx in torch.randperm(len(x)).split(32):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    torch.set_num_threads(threads)
    return model.eval(), x, val.images.float() / 255, val.targets


# min/max calibration meets the acceptance bar; percentile clipping (99.99th) costs this small
# model a little more (it clips the rare large ReLU outputs that carry the decision).
@pytest.mark.parametrize("method, agreement, drop", [("minmax", 0.98, 0.01), ("percentile", 0.95, 0.03)])
def test_int8_agrees_with_float_on_validation(trained, method, agreement, drop):
    model, x_train, x_val, y_val = trained
    with torch.no_grad():
        float_pred = model(x_val).argmax(1)
    int8_pred = quantize(model, x_train[:256], method).run(x_val, "patch").argmax(1)
    float_acc = (float_pred == y_val).float().mean().item()
    int8_acc = (int8_pred == y_val).float().mean().item()
    assert float_acc > 0.6  # the model did learn, so agreement is not trivial
    assert (int8_pred == float_pred).float().mean().item() >= agreement
    assert int8_acc >= float_acc - drop
