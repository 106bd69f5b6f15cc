"""params: every check names the parameter in a ParameterError, and passes good values through."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from rnnpool_lite import params
from rnnpool_lite.params import ParameterError


@given(st.one_of(st.integers(max_value=0), st.floats(), st.text(), st.booleans(), st.none()))
def test_positive_int_refuses(value) -> None:
    with pytest.raises(ParameterError, match=r"^parameter image_size="):
        params.positive_int("image_size", value)


def test_checks_pass_good_values(tmp_path) -> None:
    assert params.positive_int("epochs", 3) == 3
    assert params.positive_float("lr", 0, allow_zero=True) == 0.0
    assert params.fraction("p", 0.5) == 0.5
    assert params.one_of("model", "a", ["a", "b"]) == "a"
    assert params.all_of("cells", ["a"], ["a", "b"]) == ["a"]
    assert params.seeds("seeds", [0, 1, 2], minimum=3) == [0, 1, 2]
    assert params.existing_dir("data_root", None) is None
    assert params.existing_dir("data_root", str(tmp_path)) == tmp_path
    assert params.device("device", "cpu") == "cpu"
    assert params.device("device", None) is None


@pytest.mark.parametrize("call, name", [
    (lambda: params.positive_float("lr", 0), "lr"),
    (lambda: params.fraction("p", 1.5), "p"),
    (lambda: params.one_of("model", "resnet9000", ["a", "b"]), "model"),
    (lambda: params.all_of("cells", [], ["a"]), "cells"),
    (lambda: params.all_of("cells", "a", ["a"]), "cells"),
    (lambda: params.seeds("seeds", [0, 0, 1]), "seeds"),
    (lambda: params.seeds("seeds", [0, 1], minimum=3), "seeds"),
    (lambda: params.existing_dir("data_root", "/no/such/folder"), "data_root"),
    (lambda: params.device("device", "tpu"), "device"),
    (lambda: params.device("device", 3), "device"),
])
def test_bad_values_name_the_parameter(call, name) -> None:
    with pytest.raises(ParameterError, match=rf"^parameter {name}="):
        call()
