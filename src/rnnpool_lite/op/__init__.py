"""The operator: recurrent cells, the vectorised ``RNNPool2d`` layer and the slow per-patch reference."""
