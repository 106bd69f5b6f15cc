"""validate: every check names the parameter in a ParameterError, and passes good values through."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnnpool_lite import validate
from rnnpool_lite.validate import ParameterError, ParameterTypeError


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
    (lambda: validate.fraction("momentum", 1.0, include_one=False), "momentum"),
    (lambda: validate.pair("kernel_size", (3, 0)), "kernel_size"),
    (lambda: validate.pair("kernel_size", (3, 3, 3)), "kernel_size"),
    (lambda: validate.pair("padding", -1, minimum=0), "padding"),
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


def test_pair_takes_an_int_or_two() -> None:
    assert validate.pair("kernel_size", 3) == (3, 3)
    assert validate.pair("padding", [0, 2], minimum=0) == (0, 2)
    assert validate.pair("image_size", (np.int64(8), 9), minimum=8) == (8, 9)


@pytest.mark.parametrize("call", [
    lambda: validate.positive_int("epochs", 2.0),
    lambda: validate.positive_int("epochs", True),
    lambda: validate.pair("stride", (2, 2.5)),
    lambda: validate.positive_float("lr", "0.1"),
    lambda: validate.fraction("p", None),
])
def test_a_wrong_type_is_also_a_type_error(call) -> None:
    """The layer and TrainConfig callers see a TypeError, as Python's own checks raise, and chapters
    still catch one ParameterError."""
    with pytest.raises(ParameterTypeError) as error:
        call()
    assert isinstance(error.value, TypeError) and isinstance(error.value, ParameterError)


def test_numpy_integers_pass_as_python_ints() -> None:
    value = validate.positive_int("hidden_size", np.int32(4))
    assert value == 4 and type(value) is int
