"""Study the backward pass: where the gradient goes, layer by layer, branch by branch, per loss.

    from minigrad.study import gradient_flow, format_table
    report = gradient_flow(model, x, y, loss_terms, blocks=selector)   # one batch
    print(format_table(report))

* :func:`gradient_flow` / :class:`FlowReport`: per-layer gradient norms for each loss term
  separately (e.g. main and aux losses), and each branch's share of the gradient at the
  input of every block that the block selector names (``flow.py``).
* :func:`format_table`, :func:`save_report`: terminal tables and JSON (``report.py``).
* :func:`plot_attribution`, :func:`plot_branch_shares`, :func:`plot_heatmap`: PNGs
  (``flow_plots.py``, matplotlib).
* :class:`GradNormRecorder`: per-layer weight-gradient norms every N training steps, with
  a heatmap at the end (``recorder.py``).
* ``python APP.py study``: the command line an application builds from its
  :class:`~minigrad.train.spec.ModelSpec` (``command.py``).
"""

from minigrad.study.flow import BlockShares, FlowReport, LayerFlow, gradient_flow
from minigrad.study.recorder import GradNormRecorder
from minigrad.study.report import format_table, report_to_dict, save_report


def __getattr__(name: str):
    if name in ("plot_attribution", "plot_branch_shares", "plot_heatmap"):
        from minigrad.study import flow_plots  # noqa: PLC0415

        return getattr(flow_plots, name)
    raise AttributeError(f"module 'minigrad.study' has no attribute {name!r}")


__all__ = [
    "BlockShares",
    "FlowReport",
    "GradNormRecorder",
    "LayerFlow",
    "format_table",
    "gradient_flow",
    "plot_attribution",
    "plot_branch_shares",
    "plot_heatmap",
    "report_to_dict",
    "save_report",
]
