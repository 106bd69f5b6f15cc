"""validate: every check names the parameter in a ParameterError, and passes good values through."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnnpool_lite import validate
from rnnpool_lite.validate import ParameterError


@given(st.one_of(st.integers(max_value=0), st.floats(), st.text(), st.booleans(), st.none()))
def test_positive_int_refuses(value) -> None:
    with pytest.raises(ParameterError, match=r"^parameter image_size="):
        validate.positive_int("image_size", value)


def test_checks_pass_good_values(tmp_path) -> None:
    assert validate.positive_int("epochs", 3) == 3
    assert validate.positive_float("lr", 0, allow_zero=True) == 0.0
    assert validate.fraction("p", 0.5) == 0.5
    assert validate.one_of("model", "a", ["a", "b"]) == "a"
    assert validate.all_of("cells", ["a"], ["a", "b"]) == ["a"]
    assert validate.seeds("seeds", [0, 1, 2], minimum=3) == [0, 1, 2]
    assert validate.existing_dir("data_root", None) is None
    assert validate.existing_dir("data_root", str(tmp_path)) == tmp_path
    assert validate.device("device", "cpu") == "cpu"
    assert validate.device("device", None) is None


@pytest.mark.parametrize("call, name", [
    (lambda: validate.positive_float("lr", 0), "lr"),
    (lambda: validate.fraction("p", 1.5), "p"),
    (lambda: validate.one_of("model", "resnet9000", ["a", "b"]), "model"),
    (lambda: validate.all_of("cells", [], ["a"]), "cells"),
    (lambda: validate.all_of("cells", "a", ["a"]), "cells"),
    (lambda: validate.seeds("seeds", [0, 0, 1]), "seeds"),
    (lambda: validate.seeds("seeds", [0, 1], minimum=3), "seeds"),
    (lambda: validate.existing_dir("data_root", "/no/such/folder"), "data_root"),
    (lambda: validate.device("device", "tpu"), "device"),
    (lambda: validate.device("device", 3), "device"),
])
def test_bad_values_name_the_parameter(call, name) -> None:
    with pytest.raises(ParameterError, match=rf"^parameter {name}="):
        call()
