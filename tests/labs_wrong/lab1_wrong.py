"""Lab 1, question 4 answered wrong: the layer forgets the zero padding.

Every layer without padding still comes out right, so only the checks with ``padding > 0`` can
catch it. tests/test_labs.py puts this cell in place of the solution cell that defines
``rnnpool_layer`` and checks that the grader takes the marks of question 4, and only those.
"""
QUESTION = "q4"
REPLACES = "def rnnpool_layer("


def rnnpool_layer(layer, x):
    (kh, kw), (sh, sw) = layer.kernel_size, layer.stride
    n, c = x.shape[:2]
    windows = x.unfold(2, kh, sh).unfold(3, kw, sw)
    ho, wo = windows.shape[2:4]
    patches = windows.permute(0, 2, 3, 1, 4, 5).reshape(-1, c, kh, kw)
    return rnnpool_patches(layer, patches).view(n, ho, wo, -1).permute(0, 3, 1, 2)  # noqa: F821
