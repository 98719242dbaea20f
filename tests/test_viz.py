"""minigrad.viz: DOT text of autograd graphs (every op, no dangling edges, names) and render."""

from __future__ import annotations

import re
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
import minigrad.viz as viz
from minigrad import nn
from minigrad.engine import topological_order

NODE = re.compile(r"^\s*(\w+) \[label=\"((?:[^\"\\]|\\.)*)\"")
EDGE = re.compile(r"^\s*(\w+) -> (\w+)")


def parse(dot: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Node id -> label, and the edges, of to_dot's output (one statement a line)."""
    assert dot.startswith("digraph minigrad {") and dot.rstrip().endswith("}")
    nodes, edges = {}, []
    for line in dot.splitlines():
        if m := EDGE.match(line):
            edges.append((m[1], m[2]))
        elif m := NODE.match(line):
            assert m[1] not in nodes, f"node {m[1]} declared twice"
            nodes[m[1]] = m[2]
    return nodes, edges


def small_graph() -> tuple[mg.Tensor, list]:
    rng = np.random.default_rng(0)
    x = mg.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    w = mg.tensor(rng.standard_normal((3, 5)), requires_grad=True)
    a, b = F.split(F.relu(x @ w), [2, 3], dim=1)
    loss = (a.sum() * 2.0 + b.exp().mean()) / 3.0
    return loss, topological_order(loss._ctx)


def test_every_op_is_a_node_and_every_edge_endpoint_is_declared() -> None:
    loss, ops = small_graph()
    nodes, edges = parse(viz.to_dot(loss))
    op_labels = [lab for nid, lab in nodes.items() if nid.startswith("op")]
    assert len(op_labels) == len(ops)
    for name in {fn.name for fn in ops}:
        assert sum(lab.split("\\n")[0] == name for lab in op_labels) == sum(
            fn.name == name for fn in ops
        ), name
    for src, dst in edges:
        assert src in nodes and dst in nodes, (src, dst)
    # one edge per op input, plus the one into "output"
    assert len(edges) == sum(len(fn.inputs) for fn in ops) + 1
    assert ("output" in nodes) and any(dst == "output" for _, dst in edges)
    # leaves: x and w (inputs requiring grad, with their shapes) and the scalar constants
    leaves = [lab for nid, lab in nodes.items() if nid.startswith("t")]
    assert sorted(leaves) == ["2\\n()", "3\\n()", "input\\n(3, 5)", "input\\n(4, 3)"]


def test_multi_output_edges_carry_the_output_index() -> None:
    loss, _ = small_graph()
    dot = viz.to_dot(loss)
    assert '[label="[0]"]' in dot and '[label="[1]"]' in dot


def test_parameters_are_labelled_with_dotted_names() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    y = model(mg.randn(5, 3))
    nodes, _ = parse(viz.to_dot(F.cross_entropy(y, mg.tensor([0, 1, 0, 1, 1])), params=model))
    labels = [lab.split("\\n")[0] for lab in nodes.values()]
    for name, _ in model.named_parameters():
        assert name in labels, name
    dot = viz.to_dot(y, params={"W0": model[0].weight})
    assert '"W0\\n(4, 3)"' in dot


def test_parameters_without_names_are_still_marked() -> None:
    lin = nn.Linear(3, 2)
    dot = viz.to_dot(lin(mg.randn(2, 3)))
    assert dot.count('fillcolor="#cfe2f3"') == 2  # weight and bias
    assert '"parameter\\n(2, 3)"' in dot


def test_trace_modules_puts_module_names_on_ops_and_names_params() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 2)))
    with viz.trace_modules(model):
        y = model(mg.randn(5, 3))
    nodes, _ = parse(viz.to_dot(y))
    ops = [lab.split("\\n") for nid, lab in nodes.items() if nid.startswith("op")]
    assert [o[:2] for o in ops] == [["Linear", "0"], ["ReLU", "1"], ["Linear", "2.0"]]
    labels = [lab.split("\\n")[0] for lab in nodes.values()]
    assert "2.0.weight" in labels and "0.bias" in labels
    assert not model[0]._forward_hooks  # hooks removed on exit
    with pytest.raises(TypeError, match="trace_modules: expected a Module"):
        with viz.trace_modules(object()):
            pass


def test_leaf_and_deep_chain() -> None:
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    nodes, edges = parse(viz.to_dot(x))
    assert len(nodes) == 2 and edges == [("t0", "output")]
    y = x
    for _ in range(3000):  # deeper than Python's recursion limit
        y = y * 1.0
    nodes, edges = parse(viz.to_dot(y, show_shapes=False))
    # 3000 Mul ops, x, the constant 1.0 of each Mul, output
    assert len(nodes) == 3000 * 2 + 2 and len(edges) == 3000 * 2 + 1


def test_errors() -> None:
    with pytest.raises(TypeError, match="to_dot: expected a Tensor"):
        viz.to_dot(np.ones(3))
    with pytest.raises(TypeError, match="to_dot: params must be"):
        viz.to_dot(mg.ones(2), params=[1])
    with pytest.raises(TypeError, match=r"params\['w'\] is int"):
        viz.to_dot(mg.ones(2), params={"w": 1})


def test_render_without_dot_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(viz.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match=r"'dot' program is not on PATH.*install Graphviz"):
        viz.render("digraph g {}", tmp_path / "g.svg")
    assert not (tmp_path / "g.svg").exists()
    with pytest.raises(ValueError, match="render: format must be"):
        viz.render("digraph g {}", tmp_path / "g.txt")


@pytest.mark.skipif(sys.platform == "win32", reason="fake dot is a shell script")
def test_render_calls_dot_and_reports_its_failure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "dot"
    # a stand-in for Graphviz: checks the -T flag and copies stdin to the -o file
    fake.write_text('#!/bin/sh\n[ "$1" = "-Tsvg" ] || { echo "bad $1" >&2; exit 3; }\ncat > "$3"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(viz.shutil, "which", lambda name: str(fake))
    out = viz.render("digraph g { a -> b; }", tmp_path / "g.svg")
    assert out.read_text() == "digraph g { a -> b; }"
    with pytest.raises(RuntimeError, match=r"dot exited with status 3.*bad -Tpng"):
        viz.render("digraph g {}", tmp_path / "g.png")
