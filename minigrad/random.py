"""The random-number streams: every random op's generator, its seeding, and its state for
checkpoints.

The CPU's generator is NumPy's PCG64 (initial weights, shuffling, augmentation on the host);
everything drawn on a GPU, and every dropout mask on any device, comes from counter-based
Philox streams whose whole state is (seed, offset) (see minigrad._philox), so a checkpoint
holds the exact position of every stream. One dropout stream serves all devices: the same
masks come out on the CPU and on any GPU, and a run resumed on another device continues it.

``manual_seed`` (also ``minigrad.manual_seed``) seeds them all; :func:`get_rng_state` /
:func:`set_rng_state` are what a checkpoint keeps of them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from minigrad import devices
from minigrad._philox import CounterGenerator

_seed: int | None = None
_key: int | None = None  # the Philox seed: _seed, or entropy drawn once when unseeded
_generators: dict[str, Any] = {}
_streams: dict[str, CounterGenerator] = {}  # "dropout" and "cuda:N" -> their (seed, offset)
_STREAM_IDS = {"dropout": 0}  # every GPU's draws stream: id 1 (one seed, like torch.cuda)


def manual_seed(seed: int) -> None:
    """Seed every random op (dropout, init, shuffling) on every device."""
    global _seed, _key
    _seed = _key = int(seed)
    _generators.clear()
    _streams.clear()


def _stream(name: str) -> CounterGenerator:
    global _key
    if _key is None:
        _key = int(np.random.SeedSequence().entropy) % 2**64
    if name not in _streams:
        _streams[name] = CounterGenerator(_key, stream=_STREAM_IDS.get(name, 1))
    return _streams[name]


class _DeviceGenerator:
    """The draws of a GPU (``generator("cuda:N")``), made on that device: NumPy's method names."""

    def __init__(self, device: str) -> None:
        self.device, self.xp = device, devices.require_cuda(device)

    def random(self, size: Any = None, dtype: Any = np.float64) -> Any:
        with devices.device_context(self.device):
            return _stream(self.device).random(self.xp, size, dtype)

    def standard_normal(self, size: Any = None, dtype: Any = np.float64) -> Any:
        with devices.device_context(self.device):
            return _stream(self.device).standard_normal(self.xp, size, dtype)


def generator(device: str = "cpu") -> Any:
    """The random generator of ``device``: ``numpy.random.Generator`` on the CPU, on a GPU an
    object with its ``random`` and ``standard_normal`` over a Philox stream (``(seed, offset)``)."""
    device = devices.normalize_device(device)
    g = _generators.get(device)
    if g is None:
        g = np.random.default_rng(_seed) if device == "cpu" else _DeviceGenerator(device)
        _generators[device] = g
    return g


def dropout_bits(shape: tuple[int, ...], device: str) -> Any:
    """Random uint32 words of ``shape`` on ``device`` from the one dropout stream: the words
    depend on the seed and the stream's offset only, never on the device."""
    device = devices.normalize_device(device)
    xp = np if device == "cpu" else devices.require_cuda(device)
    with devices.device_context(device):
        return _stream("dropout").bits(xp, math.prod(shape)).reshape(shape)


def dropout_offset() -> int:
    """The dropout stream's position (its Philox offset): what :func:`set_dropout_offset`
    rewinds to, so a recomputed forward (``minigrad.recompute``) draws the same masks."""
    return _stream("dropout").offset


def set_dropout_offset(offset: int) -> None:
    """Move the dropout stream to ``offset`` (from :func:`dropout_offset`)."""
    _stream("dropout").offset = int(offset)


def get_rng_state() -> dict[str, Any]:
    """Host-side snapshot of every generator (for checkpoints): the seed, the CPU generator's
    state, and the Philox seed with the offset of each stream (dropout and every GPU)."""
    _stream("dropout")  # makes sure the Philox seed exists
    return {
        "seed": _seed,
        "cpu": generator("cpu").bit_generator.state,
        "philox": {"seed": _key, "offsets": {n: g.offset for n, g in _streams.items()}},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned (a state without ``"philox"``, from before
    the counter streams, restarts them at offset 0)."""
    global _key
    manual_seed(state["seed"]) if state.get("seed") is not None else _generators.clear()
    generator("cpu").bit_generator.state = state["cpu"]
    _streams.clear()
    philox = state.get("philox")
    if philox is not None:
        _key = int(philox["seed"])
        for name, offset in philox["offsets"].items():
            _stream(name).offset = int(offset)
