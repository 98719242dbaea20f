"""The dtype and device rules of ``minigrad.backend``, and the places that use them."""

from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg
from minigrad import backend, devices, nn


@pytest.mark.parametrize(
    "value, dtype",
    [
        (1.5, np.float32),
        ([[1.0, 2.0]], np.float32),
        (3, np.int64),
        ([True, False], np.bool_),
        (np.float64(1.5), np.float64),  # NumPy scalars and arrays keep their dtype
        (np.zeros(2, np.float16), np.float16),
    ],
)
def test_a_python_float_becomes_float32_in_every_entry_point(value, dtype):
    assert backend.as_array(value).dtype == dtype
    assert backend.default_dtype(value) == dtype
    assert mg.Tensor(value).dtype == dtype  # the Tensor constructor
    assert mg.tensor(value).dtype == dtype  # mg.tensor


def test_a_python_float_next_to_an_integer_tensor_is_float32():
    assert (mg.tensor([1, 2]) * 0.5).dtype == np.float32  # elementwise's constants
    assert (mg.tensor([1, 2]) + np.float64(0.5)).dtype == np.float64  # NumPy keeps its own


def test_tensor_to_and_module_to_read_their_arguments_alike():
    assert devices.parse_to("to", "cuda") == ("cuda:0", None)
    assert devices.parse_to("to", "float64") == (None, np.dtype(np.float64))
    assert devices.parse_to("to", None, "float16") == (None, np.dtype(np.float16))
    t, m = mg.tensor([1.0]), nn.Linear(2, 2)
    assert t.to("float64").dtype == np.float64
    assert m.to("float64").weight.dtype == np.float64
    for call, op in ((t.to, "to"), (m.to, "Module.to")):
        with pytest.raises(ValueError, match=f"{op}: 'gpu' is neither a device"):
            call("gpu")
        with pytest.raises(TypeError, match=f"{op}: unknown dtype 'float99'"):
            call(dtype="float99")


def test_nn_optim_and_data_load_lazily_on_first_access():
    import subprocess
    import sys

    code = (
        "import sys, minigrad as mg\n"
        "lazy = ('minigrad.nn', 'minigrad.optim', 'minigrad.data')\n"
        "assert not any(m in sys.modules for m in lazy), sorted(sys.modules)\n"
        "assert 'optim' in dir(mg)\n"
        "opt = mg.optim.SGD([mg.tensor([1.0], requires_grad=True)], lr=0.1)\n"
        "assert 'minigrad.optim' in sys.modules and 'minigrad.data' not in sys.modules\n"
        "assert mg.nn.Linear(2, 3).weight.shape == (3, 2) and mg.data.DataLoader\n"
        "try:\n"
        "    mg.not_a_module\n"
        "except AttributeError as e:\n"
        "    assert 'not_a_module' in str(e)\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
