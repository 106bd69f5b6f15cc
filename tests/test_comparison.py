"""paper_tables(): every Table 1-5 and 8 cell within 10% of the paper or explained; acceptance."""
import pytest

from rnnpool_lite.accounting import comparison
from rnnpool_lite.accounting.comparison import table1, table2, table3, table8


def check(table, n_rows):
    assert len(table) == n_rows
    assert list(table.columns) == ["table", "model", "quantity", "paper", "ours", "rel_diff", "note"]
    assert not (table["note"] == "not explained").any(), table[table["note"] == "not explained"]
    assert ((table["rel_diff"].abs() <= 0.10) | (table["note"] != "")).all()


def cell(table, model, quantity):
    row = table[(table["model"] == model) & (table["quantity"] == quantity)]
    assert len(row) == 1, (model, quantity)
    return row.iloc[0]


def test_table1_all_five_models_and_acceptance_bounds():
    t = table1()
    check(t, 5 * 2 * 3)
    bounds = {("MobileNetV2", "params_M"): 0.03, ("MobileNetV2", "madds_G"): 0.05,
              ("MobileNetV2", "peak_ram_MB"): 0.02, ("MobileNetV2-RNNPool", "madds_G"): 0.08,
              ("MobileNetV2-RNNPool", "peak_ram_MB"): 0.03, ("ResNet18", "params_M"): 0.02,
              ("ResNet18", "madds_G"): 0.05, ("ResNet18", "peak_ram_MB"): 0.02}
    for (model, quantity), bound in bounds.items():
        assert abs(cell(t, model, quantity)["rel_diff"]) <= bound, (model, quantity)
    # the one acceptance figure Table 10 as written cannot meet (2.22M vs 2.00M): documented
    assert cell(t, "MobileNetV2-RNNPool", "params_M")["note"].startswith("Table 10 as written")
    for model in ("DenseNet121", "EfficientNet-B0", "GoogLeNet"):
        assert abs(cell(t, model, "params_M")["rel_diff"]) <= 0.01  # the standard architectures


def test_table3_matches_the_imagenet1k_mobilenets():
    t = table3()
    check(t, 6 * 3)
    assert (t["rel_diff"].abs() <= 0.10).all()


def test_table8_row_schedules_within_6_percent():
    t = table8()
    check(t, 10)
    assert (t["rel_diff"].abs() <= 0.06).all()


@pytest.mark.slow
def test_table2_every_cell_within_10_percent_or_explained():
    # Tables 4 and 5 (detectors at VGA) are checked by test_profile and, notes included, by the
    # nbval run of notebooks/02_memory_and_compute.ipynb, which prints paper_tables()
    check(table2(), 8 * 6)


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model 'AlexNet'"):
        comparison.model_profile("AlexNet")
