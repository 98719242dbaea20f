"""An op's family is readable from its own file (docs/architecture.md, "Why an op's CUDA
kernels sit in the op's module").

- An op with a ``forward_cuda`` launches only kernels whose CUDA source is written in its
  own module (registered with ``_cuda.register``), and that module launches every kernel
  it defines; ``_cuda`` itself defines none.
- An op with a fast path says in a ``Paths:`` block of its docstring where each of its
  paths lives.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
from types import ModuleType

import pytest

import minigrad.functional
from minigrad.autograd import FAST_PATHS, Function
from minigrad.functional import _cuda

_LAUNCH = re.compile(r'_cuda\.launch\(\s*"(\w+)"')


def _modules() -> list[ModuleType]:
    names = [m.name for m in pkgutil.iter_modules(minigrad.functional.__path__)]
    return [importlib.import_module(f"minigrad.functional.{n}") for n in sorted(names)]


def _ops(module: ModuleType) -> list[type]:
    """The Function subclasses defined in ``module``."""
    return [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Function) and obj.__module__ == module.__name__
    ]


def _fast_paths(cls: type) -> list[str]:
    """The fast paths ``cls`` itself defines (not those it inherits)."""
    return [p for p in FAST_PATHS if f"forward_{p}" in vars(cls)]


def family_problems(module: ModuleType) -> list[str]:
    """What keeps ``module``'s CUDA kernels from being read in ``module`` itself."""
    text = inspect.getsource(module)
    launched = set(_LAUNCH.findall(text))
    has_cuda = [c.__name__ for c in _ops(module) if "cuda" in _fast_paths(c)]
    template = _cuda.FAMILIES.get(module.__name__)
    if template is None:
        if has_cuda or launched:
            return [f"{module.__name__}: {has_cuda or sorted(launched)} but no registered kernels"]
        return []
    problems = []
    if template not in text:
        problems.append(f"{module.__name__}: its registered kernel source is not written there")
    defined = {name.removesuffix("_$S") for name in _cuda.kernel_names(template)}
    if launched - defined:
        problems.append(f"{module.__name__} launches kernels of another file: {launched - defined}")
    if defined - launched:
        problems.append(
            f"{module.__name__} defines kernels it never launches: {defined - launched}"
        )
    if not has_cuda:
        problems.append(f"{module.__name__} registers kernels but has no op with forward_cuda")
    return problems


MODULES = _modules()


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_an_ops_cuda_kernels_are_written_in_its_own_module(module: ModuleType) -> None:
    assert family_problems(module) == []


def test_every_registered_family_is_a_functional_module_and_cuda_defines_no_kernel() -> None:
    assert set(_cuda.FAMILIES) <= {m.__name__ for m in MODULES}
    assert {m.__name__.rsplit(".", 1)[-1] for m in MODULES if m.__name__ in _cuda.FAMILIES} == {
        "conv",
        "pool",
        "batchnorm",
        "loss",
    }
    assert "__global__" not in _cuda.PRELUDE
    # the compiled source is the prelude and the families' kernels, each once per dtype
    per_dtype = sum(len(_cuda.kernel_names(t)) for t in _cuda.FAMILIES.values())
    names = _cuda.kernel_names(_cuda.source())
    assert len(names) == len(set(names)) == 2 * per_dtype


def test_a_second_family_cannot_define_a_kernel_of_the_first() -> None:
    with pytest.raises(ValueError, match=r"minigrad\.functional\.fake redefines.*im2col_\$S"):
        _cuda.register("minigrad.functional.fake", _cuda.FAMILIES["minigrad.functional.conv"])
    assert "minigrad.functional.fake" not in _cuda.FAMILIES


@pytest.mark.parametrize(
    "op",
    [op for m in MODULES for op in _ops(m) if _fast_paths(op)],
    ids=lambda op: op.__name__,
)
def test_an_op_with_fast_paths_names_where_each_path_lives(op: type) -> None:
    doc = inspect.getdoc(op) or ""
    assert "\nPaths" in doc, f"{op.__name__}: no 'Paths:' block in its docstring"
    block = doc.split("\nPaths", 1)[1]
    for path in ("reference", *_fast_paths(op)):
        assert f"{path}:" in block, f"{op.__name__}: its Paths block does not name {path!r}"


def test_the_check_catches_a_kernel_launched_from_another_file(tmp_path, monkeypatch) -> None:
    (tmp_path / "stray_op.py").write_text(
        "from minigrad.autograd import Function\n"
        "from minigrad.functional import _cuda\n\n\n"
        "class Stray(Function):\n"
        "    def forward_cuda(self, x):\n"
        '        _cuda.launch("im2col", x.dtype, 0)\n\n'
        "    def backward_cuda(self, gy):\n"
        "        return gy\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    stray = importlib.import_module("stray_op")
    try:
        assert family_problems(stray) == ["stray_op: ['Stray'] but no registered kernels"]
    finally:
        sys.modules.pop("stray_op", None)
