"""The layers of docs/architecture.md, checked on the package's imports.

Every ``import`` under ``minigrad/`` is read with ``ast`` (module level, inside functions
and under ``if TYPE_CHECKING:``) and resolved to a minigrad module. Two rules:

1. No import runs UP the layers (type-only imports included: they are dependencies too).
2. No circle: the modules' imports that run (type-only ones excluded) form no cycle.

The few known exceptions are declared below, each with its reason; an exception that no
longer occurs fails too, so that the list shrinks when the code is fixed.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "minigrad"
ROOT = PACKAGE.parent

# (module prefix, layer); the longest matching prefix wins. Lower layers never import higher.
LAYERS: dict[str, int] = {
    "minigrad.backend": 0,  # the only module that knows CuPy: the NumPy/CuPy switch, dtypes
    "minigrad.devices": 0,  # device strings, copies, current device, streams, TF32, memory
    "minigrad.random": 0,  # the random-number streams, their seeding and checkpoint state
    "minigrad.runtime": 0,  # process-wide settings (op paths, threads, malloc, BLAS)
    "minigrad._philox": 0,  # counter-based random streams (plain integer array code)
    "minigrad.engine": 1,
    "minigrad.tensor": 1,
    "minigrad.creation": 1,
    "minigrad.autograd": 1,
    "minigrad.gradcheck": 1,
    "minigrad.higher_order": 1,  # grad (create_graph), hvp: the engine's walk, as values
    "minigrad.remat": 1,  # recompute: activation checkpointing on the engine
    "minigrad.distributed": 2,  # arrays across processes (MPI, NCCL through backend)
    # the launcher: a command-line tool over the training command (restarts from its run
    # folder's checkpoint), not part of the library layer it is named after
    "minigrad.distributed.run": 4,
    "minigrad.functional": 2,  # every differentiable op, and the array code under them
    "minigrad.nn": 3,
    # DistributedDataParallel: a Module over distributed's collectives (the wrapper only;
    # what the trainer does on N ranks is train.data_parallel, one layer up)
    "minigrad.nn.distributed_data_parallel": 3,
    "minigrad.optim": 3,
    "minigrad.data": 3,
    "minigrad.checkpoint": 3,
    "minigrad.io": 3,  # other frameworks' weight files (torch zip, safetensors) as arrays
    "minigrad.viz": 3,
    "minigrad.testing": 3,
    "minigrad.train": 4,
    "minigrad.train.data_parallel": 4,  # what `train` does on N ranks, on a RankContext value
    "minigrad.study": 4,
    "minigrad": 5,  # the package's facade (minigrad/__init__.py) re-exports from below
}
LAYER_NAMES = (
    "backend",
    "engine/tensor",
    "functional/distributed",
    "nn/optim/data",
    "train/study",
    "facade",
)

# imports that run up the layers on purpose: (importer, imported) -> reason
ALLOWED_UP: dict[tuple[str, str], str] = {
    ("minigrad.tensor", "minigrad.functional"): "Tensor's operators are the functional ops; "
    "imported at the bottom of tensor.py, once Tensor exists (the ops need it)",
    ("minigrad.tensor", "minigrad.functional.shape"): "Tensor.reshape/view call the shape ops "
    "(an import inside the method, for the same reason)",
}
# imports left out of the circle check: (importer, imported) -> reason
ALLOWED_CIRCLES: dict[tuple[str, str], str] = {
    **ALLOWED_UP,
    ("minigrad.tensor", "minigrad.creation"): "tensor.py re-exports the factories "
    "(tensor, zeros, ...) at its bottom; creation builds Tensors",
    ("minigrad.engine", "minigrad.tensor"): "backward wraps gradients in Tensors: an import "
    "inside the function, tensor.py imports the engine",
}
# the rooms of the command line (docs/architecture.md, "The rooms of the command line"):
# module -> its one job; each stays under CLI_MAX_LINES lines
CLI_ROOMS: dict[str, str] = {
    "minigrad.train.cli": "main(argv, spec): picks the command and runs it",
    "minigrad.train.args": "the argparse types of numeric flags (one factory)",
    "minigrad.train.parser": "build_parser: the flags of train, eval, predict",
    "minigrad.train.resolve": "flags to run config, device, datasets (train's and study's)",
    "minigrad.train.cmd_train": "the train command",
    "minigrad.train.cmd_eval": "the eval command",
    "minigrad.train.cmd_predict": "the predict command",
    "minigrad.train.inference": "the model eval and predict run (checkpoint or --weights)",
    "minigrad.train.console": "what rank 0 alone prints",
    "minigrad.train.exit_codes": "an outcome as the exit status",
    "minigrad.study.command": "the study command",
}
CLI_MAX_LINES = 400
# module names that more than one package uses, each for the same role in its package:
# name -> reason. Any other name is one module's: one name per idea (issue 21)
SHARED_MODULE_NAMES: dict[str, str] = {
    "__init__": "a package",
}
# top-level names of the checkout that are not part of the package (the application)
APPLICATION = ("googlenet", "examples", "benchmarks", "tests")


@dataclass(frozen=True)
class Import:
    src: str  # the importing module
    dst: str  # the imported minigrad module (or an application name)
    line: int
    type_only: bool  # under `if TYPE_CHECKING:`


def _module_names() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _module_names()


def _targets(src: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:  # relative import
        pkg = src.split(".") if MODULES[src].name == "__init__.py" else src.split(".")[:-1]
        pkg = pkg[: len(pkg) - (node.level - 1)]
        base = ".".join([*pkg, base] if base else pkg)
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(src: str, path: Path) -> list[Import]:
    out: list[Import] = []

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for dst in _targets(src, node):
                top = dst.split(".")[0]
                if top == "minigrad" or top in APPLICATION:
                    out.append(Import(src, dst, node.lineno, type_only))
        for child in ast.iter_child_nodes(node):
            guarded = isinstance(node, ast.If) and _is_type_checking(node.test)
            visit(child, type_only or (guarded and child in node.body))

    visit(ast.parse(path.read_text()), False)
    return out


IMPORTS = [imp for src, path in sorted(MODULES.items()) for imp in _imports(src, path)]


def layer(module: str) -> int:
    """The layer of a minigrad module: its longest prefix in LAYERS."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise KeyError(f"{module} has no layer: add it to LAYERS and docs/architecture.md")


def _cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    graph: dict[str, list[str]] = {}
    for a, b in sorted(edges):
        graph.setdefault(a, []).append(b)
        graph.setdefault(b, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return sorted(found)


def test_every_module_has_a_layer_and_the_reader_sees_function_level_imports() -> None:
    for module in MODULES:
        layer(module)
    # the reader finds imports inside functions and under TYPE_CHECKING, not only at the top
    found = {(i.src, i.dst, i.type_only) for i in IMPORTS}
    assert ("minigrad.engine", "minigrad.tensor", False) in found  # inside backward()
    assert ("minigrad.nn.state", "minigrad.nn.module", True) in found  # type hints only


def test_nothing_in_the_package_imports_the_application() -> None:
    bad = [
        f"{i.src}:{i.line} imports {i.dst}" for i in IMPORTS if i.dst.split(".")[0] != "minigrad"
    ]
    assert not bad, "the package must not know the application:\n" + "\n".join(bad)


def test_no_import_runs_up_the_layers() -> None:
    up = {}
    for i in IMPORTS:
        if i.dst.split(".")[0] == "minigrad" and layer(i.dst) > layer(i.src):
            up.setdefault((i.src, i.dst), []).append(i.line)
    bad = [
        f"{src} ({LAYER_NAMES[layer(src)]}) imports {dst} ({LAYER_NAMES[layer(dst)]}), line "
        f"{', '.join(map(str, lines))}"
        for (src, dst), lines in sorted(up.items())
        if (src, dst) not in ALLOWED_UP
    ]
    assert not bad, "imports up the layers:\n" + "\n".join(bad)
    stale = sorted(set(ALLOWED_UP) - set(up))
    assert not stale, f"declared exceptions that no longer occur (remove them): {stale}"


def test_only_the_backend_imports_cupy() -> None:
    """CuPy (and cupyx) is imported by ``minigrad/backend.py`` alone, wherever the import sits
    (module level, inside a function); the others reach it through ``backend.import_cupy``."""
    found = []
    for src, path in sorted(MODULES.items()):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            if any(n.split(".")[0] in ("cupy", "cupyx") for n in names):
                found.append((src, node.lineno))
    assert found, "the reader finds backend's own CuPy imports"
    bad = [f"{src}:{line}" for src, line in found if src != "minigrad.backend"]
    assert not bad, "CuPy imported outside minigrad/backend.py: " + ", ".join(bad)


def test_the_imports_form_no_circle() -> None:
    edges = {
        (i.src, i.dst)
        for i in IMPORTS
        if not i.type_only and i.dst.split(".")[0] == "minigrad" and i.src != i.dst
    }
    stale = sorted(set(ALLOWED_CIRCLES) - edges)
    assert not stale, f"declared exceptions that no longer occur (remove them): {stale}"
    cycles = _cycles(edges - set(ALLOWED_CIRCLES))
    assert not cycles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({("a", "b"), ("b", "c")}, []),
        ({("a", "b"), ("b", "a"), ("b", "c")}, [["a", "b"]]),
        ({("a", "b"), ("b", "c"), ("c", "a"), ("d", "d")}, [["a", "b", "c"], ["d"]]),
    ],
)
def test_the_circle_finder_finds_circles(edges: set, expected: list) -> None:
    assert _cycles(edges) == expected


def test_the_layer_check_would_catch_an_upward_import(tmp_path: Path) -> None:
    src = "from minigrad.train.spec import ModelSpec\nif TYPE_CHECKING:\n    import googlenet\n"
    path = tmp_path / "m.py"
    path.write_text(src)
    MODULES["minigrad.nn.fake"] = path
    try:
        found = _imports("minigrad.nn.fake", path)
    finally:
        del MODULES["minigrad.nn.fake"]
    assert [(i.dst, i.type_only) for i in found] == [
        ("minigrad.train.spec", False),
        ("googlenet", True),
    ]
    assert layer("minigrad.train.spec") > layer("minigrad.nn.fake")


def test_the_command_line_is_split_into_rooms_each_named_in_the_docs() -> None:
    long = {
        m: n for m in CLI_ROOMS if (n := len(MODULES[m].read_text().splitlines())) > CLI_MAX_LINES
    }
    assert not long, f"command-line modules over {CLI_MAX_LINES} lines (split them): {long}"
    doc = (ROOT / "docs" / "architecture.md").read_text()
    section = doc.split("## The rooms of the command line")[1].split("\n## ")[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    named = {f"minigrad.{p.replace('/', '.')}" for r in rows for p in re.findall(r"`(\S+)\.py`", r)}
    assert named == set(CLI_ROOMS), "docs/architecture.md's rooms table and CLI_ROOMS differ"
    # the commands share code through the rooms below them, never through each other
    commands = {m for m in CLI_ROOMS if m.rsplit(".", 1)[1].startswith("cmd_")}
    crossing = [
        f"{i.src} imports {i.dst}" for i in IMPORTS if i.src in commands and i.dst in commands
    ]
    assert not crossing, crossing
    # study resolves its config and device with train's code, not a copy of it
    assert ("minigrad.study.command", "minigrad.train.resolve") in {(i.src, i.dst) for i in IMPORTS}


def test_the_train_command_prints_only_through_its_console() -> None:
    tree = ast.parse(MODULES["minigrad.train.cmd_train"].read_text())
    prints = [
        n.lineno
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"
    ]
    assert not prints, f"cmd_train.py prints outside Console (lines {prints})"
    # the rank checks left decide work (which rank writes the run folder), not output
    checks = [
        n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "is_main"
    ]
    assert len(checks) <= 3, f"world.is_main checks in cmd_train.py: lines {checks}"


def test_each_module_name_names_one_idea() -> None:
    # two modules called the same (nn/parallel.py and train/parallel.py were DDP and the
    # trainer's rank setup) make a reader open the wrong one
    by_name: dict[str, list[str]] = {}
    for module, path in MODULES.items():
        by_name.setdefault(path.stem, []).append(module)
    twins = {
        name: sorted(mods)
        for name, mods in by_name.items()
        if len(mods) > 1 and name not in SHARED_MODULE_NAMES
    }
    assert not twins, f"module names used twice (rename one, or declare the role): {twins}"
    unused = sorted(n for n in SHARED_MODULE_NAMES if len(by_name.get(n, [])) < 2)
    assert not unused, f"declared shared names that no longer repeat (remove them): {unused}"
