"""Draw the autograd graph: Graphviz DOT text from any tensor, rendered when ``dot`` exists.

    import minigrad.viz as viz
    with viz.trace_modules(model):          # op nodes get the name of the module that ran them
        loss = F.cross_entropy(model(x), y)
    dot = viz.to_dot(loss, params=model)    # parameters labelled "inception3a.branch1.conv.weight"
    viz.render(dot, "graph.svg")            # needs Graphviz's `dot` program

Nodes: one box per op (its name, the module that produced it, its output shape), one
ellipse per leaf tensor (parameters filled blue and named, other inputs yellow, constants
dashed), and one ``output`` node for the tensor you passed. Edges run forward, from an
op's inputs to the op; an edge out of a multi-output op is labelled with the output index.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from minigrad.engine import topological_order
from minigrad.tensor import Tensor

__all__ = ["module_of", "render", "to_dot", "trace_modules"]

# Function -> dotted name of the module whose forward created it (survives fn.release()).
_op_module: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
# id(parameter) -> (weak reference, dotted name) of parameters of traced modules. Keyed by
# id because Tensor.__eq__ is elementwise, which a WeakKeyDictionary cannot use.
_param_names: dict[int, tuple[weakref.ref[Tensor], str]] = {}


def module_of(fn: Any) -> str | None:
    """The dotted module name recorded for op ``fn`` by :func:`trace_modules` (or None)."""
    return _op_module.get(fn)


def _tensors(value: Any) -> list[Tensor]:
    items = value if isinstance(value, (tuple, list)) else (value,)
    return [t for t in items if isinstance(t, Tensor)]


def _tag_ops(outputs: list[Tensor], inputs: list[Tensor], name: str) -> None:
    """Tag every untagged op between ``inputs`` and ``outputs`` with ``name``.

    Inner modules finish (and tag) first, so each op keeps the innermost module name.
    """
    # an op may keep a data-free stand-in for an input (Function.keeps_inputs), so a module
    # input is also recognised by the (op, output index) that produced it
    stop = {id(t) for t in inputs} | {(id(t._ctx), t._out_idx) for t in inputs if t._ctx}
    stack = [t._ctx for t in outputs if t._ctx is not None and id(t) not in stop]
    seen: set[int] = set()
    while stack:
        fn = stack.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        _op_module.setdefault(fn, name)
        for t in getattr(fn, "inputs", None) or ():
            if t._ctx is not None and id(t) not in stop and (id(t._ctx), t._out_idx) not in stop:
                stack.append(t._ctx)


@contextlib.contextmanager
def trace_modules(model: Any) -> Iterator[Any]:
    """Within this block, ops created by ``model`` remember which sub-module created them.

    Registers a forward hook on every sub-module (removed on exit) that tags the ops of
    that module's forward with its dotted name (the root's ops get the class name), and
    remembers the parameter names so :func:`to_dot` labels them without ``params=``.

    Args:
        model: a ``minigrad.nn.Module``.

    Raises:
        TypeError: ``model`` is not a Module (has no ``named_modules``).
    """
    if not hasattr(model, "named_modules") or not hasattr(model, "register_forward_hook"):
        raise TypeError(f"trace_modules: expected a Module, got {type(model).__name__}")
    for key in [k for k, (ref, _) in _param_names.items() if ref() is None]:
        del _param_names[key]  # parameters of models that no longer exist
    for pname, p in model.named_parameters():
        _param_names[id(p)] = (weakref.ref(p), pname)
    handles = []
    for mname, m in model.named_modules():
        label = mname or type(model).__name__

        def hook(mod: Any, args: tuple[Any, ...], out: Any, label: str = label) -> None:
            _tag_ops(_tensors(out), _tensors(list(args)), label)

        handles.append(m.register_forward_hook(hook))
    try:
        yield model
    finally:
        for h in handles:
            h.remove()


def _param_lookup(params: Any) -> dict[int, str]:
    if params is None:
        return {i: n for i, (r, n) in list(_param_names.items()) if r() is not None}
    if hasattr(params, "named_parameters"):
        named = list(params.named_parameters())
        if hasattr(params, "named_buffers"):
            named += list(params.named_buffers())
        return {id(t): n for n, t in named}
    if isinstance(params, dict):
        out = {}
        for n, t in params.items():
            if not isinstance(t, Tensor):
                raise TypeError(f"to_dot: params[{n!r}] is {type(t).__name__}, not a Tensor")
            out[id(t)] = str(n)
        return out
    raise TypeError(
        f"to_dot: params must be None, a dict name -> Tensor or a Module, "
        f"got {type(params).__name__}"
    )


def _is_parameter(t: Tensor) -> bool:
    from minigrad.nn.module import Parameter  # noqa: PLC0415 - nn imports viz-free tensor code

    return isinstance(t, Parameter)


def _scalar(t: Tensor) -> str:
    from minigrad.backend import as_numpy  # noqa: PLC0415

    return f"{as_numpy(t.data).reshape(()).item():g}"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _shape(shape: tuple[int, ...]) -> str:
    return str(tuple(int(s) for s in shape))


def to_dot(tensor: Tensor, params: Any = None, show_shapes: bool = True) -> str:
    """The autograd graph that produced ``tensor``, as Graphviz DOT text.

    Args:
        tensor: usually the loss; any tensor works (a leaf gives a one-node graph).
        params: names for parameters: a dict ``name -> Tensor``, a Module (its
            ``named_parameters`` and buffers), or None (names remembered by
            :func:`trace_modules`, else ``Tensor.name``).
        show_shapes: put output shapes on op nodes and shapes on tensor nodes.

    Returns:
        DOT text: ``digraph minigrad { ... }`` with node ids ``op0..``, ``t0..``, ``output``.

    Raises:
        TypeError: ``tensor`` is not a Tensor, or ``params`` has the wrong type.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dot: expected a Tensor, got {type(tensor).__name__}")
    names = _param_lookup(params)
    lines = [
        "digraph minigrad {",
        "  rankdir=TB;",
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    op_ids: dict[int, str] = {}
    leaf_ids: dict[int, str] = {}
    edges: list[str] = []

    def leaf_node(t: Tensor) -> str:
        if id(t) in leaf_ids:
            return leaf_ids[id(t)]
        nid = f"t{len(leaf_ids)}"
        leaf_ids[id(t)] = nid
        if id(t) in names or _is_parameter(t):
            label = names.get(id(t)) or t.name or "parameter"
            style = 'style=filled, fillcolor="#cfe2f3"'
        elif t.requires_grad:
            label, style = t.name or "input", 'style=filled, fillcolor="#fff2cc"'
        elif t.data.size == 1 and t.name is None:
            label, style = _scalar(t), "style=dashed"  # e.g. the 2.0 of x * 2.0
        else:
            label, style = t.name or "constant", "style=dashed"
        if show_shapes:
            label += "\n" + _shape(t.shape)
        lines.append(f"  {nid} [label={_quote(label)}, shape=ellipse, {style}];")
        return nid

    def edge(t: Tensor, dst: str) -> str:
        """The edge from ``t``'s node (a leaf, or the op that made it) to node ``dst``."""
        if t._ctx is None:
            return f"{leaf_node(t)} -> {dst};"
        src = op_ids[id(t._ctx)]
        if len(t._ctx.output_meta) > 1:
            return f'{src} -> {dst} [label="[{t._out_idx}]"];'
        return f"{src} -> {dst};"

    root = tensor._ctx
    order = topological_order(root) if root is not None else []
    for fn in order:
        nid = f"op{len(op_ids)}"
        op_ids[id(fn)] = nid
        label = fn.name
        module = _op_module.get(fn)
        if module:
            label += "\n" + module
        if show_shapes:
            label += "\n" + " ".join(_shape(tuple(s)) for s, _ in fn.output_meta)
        lines.append(f"  {nid} [label={_quote(label)}, shape=box, style=rounded];")
        edges += [edge(t, nid) for t in fn.inputs]
    out_label = "output" + ("\n" + _shape(tensor.shape) if show_shapes else "")
    lines.append(f"  output [label={_quote(out_label)}, shape=doubleoctagon];")
    edges.append(edge(tensor, "output"))
    lines += ["  " + e for e in edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(dot: str, path: str | Path, format: str | None = None) -> Path:
    """Render DOT text to an image with Graphviz's ``dot`` program.

    Args:
        dot: DOT text, e.g. from :func:`to_dot`.
        path: output file.
        format: ``"svg"``, ``"png"`` or ``"pdf"``; None takes it from the file suffix.

    Returns:
        The written path.

    Raises:
        ValueError: unknown format.
        RuntimeError: ``dot`` is not installed (the message says how to install it), or
            it failed (its error output is included).
    """
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".")).lower()
    if fmt not in ("svg", "png", "pdf"):
        raise ValueError(f"render: format must be 'svg', 'png' or 'pdf', got {fmt!r} ({path})")
    exe = shutil.which("dot")
    if exe is None:
        raise RuntimeError(
            "render: Graphviz's 'dot' program is not on PATH; install Graphviz "
            "(apt-get install graphviz / brew install graphviz / conda install graphviz) "
            "or paste the DOT text into any Graphviz viewer"
        )
    proc = subprocess.run(
        [exe, f"-T{fmt}", "-o", str(path)], input=dot.encode(), capture_output=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"render: dot exited with status {proc.returncode} writing {path}: "
            f"{proc.stderr.decode(errors='replace').strip()}"
        )
    return path
