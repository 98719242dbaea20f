"""A :class:`~minigrad.study.flow.FlowReport` as terminal tables and as JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from minigrad.study.flow import FlowReport, branch_names

__all__ = ["format_table", "report_to_dict", "save_report"]


def _fmt(v: float) -> str:
    return f"{v:.3e}" if v else "0"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(
        h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))
    )
    out = [line, "-" * len(line)]
    for r in rows:
        out.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))
            )
        )
    return out


def format_table(report: FlowReport, branches: bool = True) -> str:
    """Two tables: per-layer gradient norms by loss term, and each block's branch shares.

    Table 1, one row per layer (branches indented under their block): the output shape,
    ``|dL/dy|`` (gradient w.r.t. the layer's output, total loss), ``|dL/dW|`` for the
    total and for every loss term separately, and the share of the total weight gradient
    that each aux term contributes (``<g_aux, g>/|g|^2``; the terms' shares add up to 1).

    Table 2, one row per block: ``|dL/dx|`` at the block input and each branch's share
    ``<c_b, g>/|g|^2`` of it (``other``: further readers of the same tensor, such as an
    aux head). The shares add up to 1; ``-`` where a block lacks that branch.

    Args:
        report: from :func:`~minigrad.study.flow.gradient_flow`.
        branches: include the rows of the individual branches in table 1.
    """
    aux = [t for t in report.terms if t != "main"]
    header = ["layer", "output", "|dL/dy|", "|dL/dW|"]
    header += [f"|dW| {t}" for t in report.terms] + [f"share {t}" for t in aux]
    rows = []
    for lay in report.layers:
        if lay.kind == "branch" and not branches:
            continue
        name = ("  " + lay.name.split(".")[-1]) if lay.kind == "branch" else lay.name
        shape = "x".join(str(s) for s in lay.out_shape[1:]) or "-"
        row = [name, shape, _fmt(lay.grad_out["total"]), _fmt(lay.grad_weight["total"])]
        row += [_fmt(lay.grad_weight.get(t, 0.0)) for t in report.terms]
        row += [f"{lay.weight_share.get(t, 0.0):+.3f}" if lay.num_params else "-" for t in aux]
        rows.append(row)
    lines = _table(header, rows)
    losses = ", ".join(f"{k} {v:.4f}" for k, v in report.losses.items())
    lines += ["", f"losses: {losses}"]
    lines.append(
        f"attribution check: sum of per-term gradients vs. total-loss gradient, "
        f"max relative difference {report.additivity_error:.2e}"
    )
    if report.blocks:
        parts = [*branch_names(report.blocks), "other"]
        header2 = ["block input", "|dL/dx|"] + parts
        rows2 = [
            [b.name, _fmt(b.grad_in)]
            + [f"{b.share[p]:.3f}" if p in b.share else "-" for p in parts]
            for b in report.blocks
        ]
        lines += ["", "share of the gradient at each block's input, by branch:"]
        lines += _table(header2, rows2)
    return "\n".join(lines)


def report_to_dict(report: FlowReport) -> dict[str, Any]:
    """Plain JSON-ready data (no arrays): terms, losses, layers, blocks, the check."""
    return {
        "terms": list(report.terms),
        "losses": dict(report.losses),
        "additivity_error": report.additivity_error,
        "layers": [
            {
                "name": lay.name,
                "kind": lay.kind,
                "out_shape": list(lay.out_shape),
                "num_params": lay.num_params,
                "grad_out": lay.grad_out,
                "grad_weight": lay.grad_weight,
                "out_share": lay.out_share,
                "weight_share": lay.weight_share,
            }
            for lay in report.layers
        ],
        "blocks": [
            {
                "name": b.name,
                "branches": list(b.branches),
                "grad_in": b.grad_in,
                "contrib": b.contrib,
                "share": b.share,
            }
            for b in report.blocks
        ],
    }


def save_report(report: FlowReport, path: str | os.PathLike) -> Path:
    """Write :func:`report_to_dict` as JSON to ``path``; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report_to_dict(report), indent=1) + "\n")
    return path
