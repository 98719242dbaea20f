"""Shared fixtures: the device under test, the array module, hypothesis profiles.

Run the suite on a GPU with ``pytest --device cuda`` or ``MINIGRAD_TEST_DEVICE=cuda pytest``.
Without CuPy or a GPU those runs skip (they never fail on a missing cupy).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from _host import is_standin
from hypothesis import HealthCheck, settings

from minigrad import backend, devices

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=12,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device",
        default=os.environ.get("MINIGRAD_TEST_DEVICE", "cpu"),
        help="device the op tests run on: cpu (default) or cuda[:N]",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if is_standin():  # NumPy behind a CuPy front: its kernels run one thread at a time
        slow = pytest.mark.skip(reason="too slow under the CuPy stand-in's emulated kernels")
        for item in items:
            if item.get_closest_marker("emulated_slow") is not None:
                item.add_marker(slow)
    if devices.cuda_available():
        return
    skip = pytest.mark.skip(reason="needs CuPy and a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu") is not None:  # (keywords would match a folder "gpu")
            item.add_marker(skip)


@pytest.fixture
def device(request: pytest.FixtureRequest) -> str:
    """The device the test runs on ('cpu' unless --device/MINIGRAD_TEST_DEVICE says cuda)."""
    d = devices.normalize_device(request.config.getoption("--device"))
    if d != "cpu" and not devices.cuda_available():
        pytest.skip(f"--device {d} requested but CUDA is not available (needs CuPy and a GPU)")
    return d


@pytest.fixture
def xp(device: str):
    """numpy on the CPU, cupy on a GPU."""
    return np if device == "cpu" else backend.import_cupy()


@pytest.fixture(autouse=True)
def _process_settings_do_not_leak():
    """A test that runs a command (which calls ``runtime.configure_cpu_training``: BLAS on one
    thread, ``--threads``) gives the process settings back, so no later test's float32
    rounding depends on which commands ran before it."""
    from minigrad import runtime

    host, blas = runtime._settings["host_threads"], runtime.blas_threads()
    yield
    runtime.set_host_threads(host)
    if blas is not None and runtime.blas_threads() != blas:
        runtime.set_blas_threads(blas)
