"""The model registry: every registered model builds and profiles on its spec's input, the paper's
tables are covered cell by cell, builders take keyword-only options, and bad names fail helpfully."""
from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from rnnpool_lite import RNNPool2d
from rnnpool_lite.accounting import profiler
from rnnpool_lite.accounting.comparison import TABLE2_NETWORKS, model_profile
from rnnpool_lite.accounting.profiler import profile
from rnnpool_lite.models import (
    DOWNSAMPLERS,
    Cell,
    Downsampler,
    LastPool,
    MemoryRule,
    ModelSpec,
    ReNet2d,
    fx_trace,
    get_model,
    get_model_spec,
    list_models,
    mobilenetv2,
    paper_model,
    register_model,
)
from rnnpool_lite.models.registry import MODELS
from rnnpool_lite.paper import paper_table


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Many small kernels: a second thread only spins (measured: 75 s of CPU for the two parametrized
    tests with 2 threads, 11 s with 1)."""
    torch.set_num_threads(1)


@pytest.mark.parametrize("name", list_models())
def test_every_model_profiles_on_its_spec_input(name: str) -> None:
    spec = get_model_spec(name)
    p = model_profile(name)
    with torch.device("meta"):
        params = sum(t.numel() for t in get_model(name).parameters())
    assert p.params == params > 0 and p.madds > 0 and p.peak_ram_bytes > 0
    assert (p.input_size, p.bytes_per_value, p.count_input) == ((1, *spec.input_size), spec.bytes_per_value,
                                                                 spec.frame_in_ram)


def _small_input(spec: ModelSpec) -> tuple[nn.Module, torch.Tensor]:
    """The model at 64x64 (its last RNNPool, if any, sized for that) and a random input."""
    takes_size = "image_size" in inspect.signature(spec.builder).parameters
    model = spec.build(**({"image_size": 64} if takes_size else {}))
    return model.eval(), torch.randn(1, spec.input_size[0], 64, 64)


@pytest.mark.parametrize("name", list_models())
def test_every_model_runs_a_small_input_and_fx_traces(name: str) -> None:
    model, x = _small_input(get_model_spec(name))
    graph = fx_trace(model)
    with torch.no_grad():
        y, traced = model(x), graph(x)
    for ours, theirs in zip(y if isinstance(y, tuple) else (y,), traced if isinstance(traced, tuple) else (traced,)):
        torch.testing.assert_close(theirs, ours)
    recurrent = (RNNPool2d, ReNet2d)  # kept whole by the tracer
    assert [type(m) for m in graph.modules() if isinstance(m, recurrent)] == [
        type(m) for m in model.modules() if isinstance(m, recurrent)]


def test_the_papers_tables_are_covered_cell_by_cell() -> None:
    t1 = paper_table("table1_imagenet10")["model"]
    t8 = paper_table("table8_memory_optimal_ram")["model"]
    cells = [Cell(1, m, c) for m in t1 for c in ("base", "RNNPool")] + [
        Cell(8, m, c) for m in t8 for c in ("base", "RNNPool")]
    cells += [Cell(2, m, n) for m in paper_table("table2_pooling_operators")["method"] for n in TABLE2_NETWORKS]
    cells += [Cell(3, m) for m in paper_table("table3_imagenet1k")["method"]]
    cells += [Cell(4, m) for m in paper_table("table4_face_detection_widerface")["method"] if m.startswith("RNNPool")]
    cells += [Cell(5, "RNNPool-Face-M4")]
    cells += [Cell(16, r) for r in paper_table("table16_ablation_mbv2_imagenet10")["row"]]
    assert len(cells) == 10 + 10 + 24 + 6 + 4 + 1 + 7
    held = {cell: paper_model(*cell).name for cell in cells}
    reported = {name for name in list_models() if get_model_spec(name).cells}
    assert set(held.values()) == reported  # and no other cell
    assert held[Cell(2, "RNNPoolLayer", "MobileNetV2")] == "MobileNetV2-RNNPool"  # the same model, once
    assert sorted(list_models(table=5)) == ["RNNPool-Face-M4"]
    assert len(list_models(table=2)) == 24 and len(list_models(table=16)) == 7


def _classes(model: nn.Module) -> int:
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1].out_features


def test_named_configurations_and_overrides() -> None:
    assert _classes(get_model("MobileNetV2-RNNPool 1K")) == 1000
    assert _classes(get_model("MobileNetV2-RNNPool 1K", num_classes=3)) == 3
    spec = get_model_spec("RNNPool-Face-M4")
    assert (spec.input_size, spec.bytes_per_value, spec.frame_in_ram) == ((1, 240, 320), 1, True)
    with pytest.raises(TypeError):
        spec.config["variant"] = "A"  # type: ignore[index]  # read-only: the check is that it raises


def test_unknown_names_name_the_close_matches() -> None:
    with pytest.raises(ValueError, match="did you mean 'MobileNetV2-RNNPool'"):
        get_model("MobileNetV2-RNNPol")
    with pytest.raises(ValueError, match="choose one of MobileNetV2, MobileNetV2-RNNPool"):
        get_model_spec("ViT-B/16")
    with pytest.raises(ValueError, match="table 3 has"):
        paper_model(3, "ShuffleNet")


def test_register_refuses_a_taken_name_or_cell() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model(ModelSpec("MobileNetV2", mobilenetv2))
    with pytest.raises(ValueError, match="already hold"):
        register_model(ModelSpec("Another MobileNetV2", mobilenetv2, cells=(Cell(3, "MobileNetV2"),)))
    assert "Another MobileNetV2" not in list_models()


BUILDERS = {getattr(spec.builder, "__name__", repr(spec.builder)): spec.builder for spec in MODELS}


@pytest.mark.parametrize("builder", BUILDERS.values(), ids=BUILDERS.keys())
def test_builders_take_keyword_only_options(builder) -> None:
    first, *rest = inspect.signature(builder).parameters.values()
    assert first.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in rest), builder.__name__


def test_vocabularies_fail_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="'renet2' is not a Downsampler; choose one of 'rnnpool', 'avg'"):
        get_model("MobileNetV2-RNNPool", downsampler="renet2")
    with pytest.raises(ValueError, match="is not a LastPool; choose one of 'avg', 'rnnpool'"):
        get_model("MobileNetV2", last_pool="max")
    assert set(DOWNSAMPLERS) == set(Downsampler) and list(LastPool) == ["avg", "rnnpool"]
    assert set(profiler._RAM) == set(MemoryRule)  # every rule has its RAM formula


def test_a_misspelled_memory_rule_fails_naming_the_choices() -> None:
    class Block(nn.Sequential):
        memory_rule = "maxx"

    with pytest.raises(ValueError, match="'maxx' is not a MemoryRule; choose one of 'in\\+out', 'max'"):
        profile(nn.Sequential(Block(nn.Conv2d(1, 1, 1))), (1, 4, 4))
