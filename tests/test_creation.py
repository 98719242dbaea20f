"""``tensor`` from nested lists: ragged rows are a ValueError naming ``tensor`` and where."""

from __future__ import annotations

import pytest

import minigrad as mg


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ([[1.0], [1.0, 2.0]], r"data\[0\] has length 1 but data\[1\] has length 2"),
        ([[1, 2], 3], r"data\[0\] is a list but data\[1\] is a number"),
        ([[[1], [2]], [[1], [2, 3]]], r"data\[0\]\[0\] has length 1 but data\[1\]\[1\] has"),
    ],
)
def test_tensor_ragged_nested_lists_name_tensor_and_where(data, where, device) -> None:
    with pytest.raises(ValueError, match=rf"^tensor: the nested lists are ragged: {where}"):
        mg.tensor(data, device=device)
    with pytest.raises(ValueError, match="^tensor: the nested lists are ragged"):
        mg.tensor(data, dtype="float64", device=device)


def test_tensor_other_value_errors_pass_through() -> None:
    with pytest.raises(ValueError, match="device"):
        mg.tensor([[1.0], [2.0]], device="tpu")
