"""Propositions 1/2 and the row-by-row schedule of Claim 4 (Table 8)."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from rnnpool_lite.accounting.bounds import proposition1_lower_bound, proposition2_lower_bound, row_schedule_ram
from rnnpool_lite.models import ConvBNAct, resnet18


@settings(max_examples=25, deadline=None)
@given(channels=st.lists(st.integers(1, 64), min_size=2, max_size=5), m=st.integers(2, 40), n=st.integers(2, 40))
def test_proposition2_with_unit_strides_is_proposition1(channels, m, n):
    kernels = [3] * len(channels)
    # layer q's receptive field: 1 + 2 * (number of 3x3 layers after it)
    fields = [1 + 2 * (len(channels) - 1 - q) for q in range(len(channels) - 1)]
    layers = [(c, f, 1) for c, f in zip(channels[:-1], fields)]
    assert proposition2_lower_bound(layers, (m, n), 1) == proposition1_lower_bound(channels, kernels, (m, n), 1)


def test_proposition2_counts_rows_shared_by_consecutive_strided_outputs():
    # a map 3 rows tall per output row, stride 2: consecutive output rows share 1 row of it
    assert proposition2_lower_bound([(10, 3, 2)], (5, 7), 1) == 10 * 1 * (2 * 5 - 1)
    assert proposition2_lower_bound([(10, 2, 2)], (5, 7), 4) == 0  # non-overlapping: nothing kept
    with pytest.raises(ValueError):
        proposition2_lower_bound([], (5, 5))
    with pytest.raises(ValueError):
        proposition2_lower_bound([(0, 3, 1)], (5, 5))


def test_row_schedule_of_a_stride1_stack_adds_proposition1_to_input_and_output():
    c_in, c, c_out, size = 2, 8, 4, 12
    block = nn.Sequential(nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c_out, 3, padding=1))
    result = row_schedule_ram(block, (c_in, size, size), 1)
    assert result.ram_bytes - result.input_output_bytes == proposition1_lower_bound([c, c_out], [3, 3],
                                                                                    (size, size), 1)
    # Claim 4: an output row sees 5 input rows, consecutive ones share k''_0 = 5 - 1 = 4
    assert result.input_output_bytes == max(size * size * c_in + 4 * size * c_out,
                                            size * size * c_out + 4 * size * c_in)


def test_row_schedule_resnet18_stem_is_the_papers_081_mb():
    # Appendix E.1.2: 112 x (3-2) x 64 + O (56 x 56 x 64) + 224 x (11-4) x 3 = 0.81 MB
    result = row_schedule_ram(resnet18(10).features[0:2], (3, 224, 224))
    assert result.layers[["channels", "field", "stride"]].values.tolist() == [[64, 3, 2]]
    assert result.ram_bytes == (64 * 1 * (2 * 56 - 1) + 56 * 56 * 64 + 7 * 224 * 3) * 4
    assert result.ram_mb == pytest.approx(0.81, rel=0.01)


def test_row_schedule_takes_the_widest_field_over_branches():
    class TwoPaths(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = ConvBNAct(4, 4, 1)
            self.b = ConvBNAct(4, 4, 3)
            self.c = ConvBNAct(4, 4, 3)

        def forward(self, x):
            y = self.a(x)
            return self.c(self.b(y)) + y

    table = row_schedule_ram(TwoPaths(), (4, 10, 10), 1).layers.set_index("map")
    assert table.loc["a.0", "field"] == 5 and table.loc["b.0", "field"] == 3
