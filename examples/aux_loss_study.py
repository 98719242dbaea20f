"""Do GoogLeNet's auxiliary classifiers strengthen the gradient at the lower layers?

    python examples/aux_loss_study.py                       # a few minutes on 2 CPU cores
    python examples/aux_loss_study.py --img docs/img        # replaces docs/study.md's pictures
    python examples/aux_loss_study.py --init he --img runs/aux_he   # He-initialised convs

Trains the same small GoogLeNet (CIFAR stem, batch norm, width 1/8) twice on the embedded
digits, from the same initial weights, on the same batches: once with ``aux_weight=0``
(main loss only) and once with the paper's 0.3. A :class:`GradNormRecorder` records the
weight-gradient norm of every top-level layer every ``--every`` steps (the gradient the
optimizer actually applies). At the end:

* ``aux_loss_study.png``: gradient norms of conv1, 3a, 3b, 4a over training for both runs,
  test accuracy and main-head training loss per epoch;
* ``study_attribution.png`` / ``study_branch_shares.png``: the gradient-flow report of the
  trained aux-0.3 model on a test batch (norms per loss term; branch shares);
* ``grad_norms_heatmap.png``: all layers' gradient norms over the aux-0.3 run;
* ``aux_loss_study.json``: every number behind the pictures, and a printed summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

import minigrad as mg
import minigrad.functional as F
from googlenet import APP, AUX_WEIGHT, GoogLeNet, inception_branches, loss_terms
from minigrad.data import DataLoader, dataset_info, get_dataset
from minigrad.optim import SGD, CosineAnnealingLR
from minigrad.study import GradNormRecorder, format_table, gradient_flow
from minigrad.study.flow_plots import plot_attribution, plot_branch_shares, plot_heatmap

LOWER = ("conv1", "inception3a", "inception3b", "inception4a")


def evaluate(model: Any, images: np.ndarray, labels: np.ndarray, info: Any) -> float:
    """Top-1 accuracy (eval mode: no aux heads, BN running statistics)."""
    model.eval()
    correct = 0
    with mg.no_grad():
        for i in range(0, len(images), 120):
            x = info.eval_transform(images[i : i + 120], np.random.default_rng(0))
            pred = model(mg.tensor(x)).data.argmax(axis=1)
            correct += int((pred == labels[i : i + 120]).sum())
    return correct / len(images)


def train_run(aux_weight: float, args: argparse.Namespace, data: dict[str, Any]) -> dict:
    """One training run; returns per-epoch metrics and the recorder (norms every N steps)."""
    info = data["info"]
    mg.manual_seed(args.seed)  # same initial weights and dropout masks in both runs
    model = GoogLeNet(10, 1, stem="cifar", batch_norm=True, width=args.width, init=args.init)
    opt = SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    sched = CosineAnnealingLR(opt, T_max=args.epochs)  # settles the weights by the last epoch
    loader = DataLoader(
        data["train"], args.batch_size, shuffle=True, drop_last=True,
        transform=info.train_transform, seed=args.seed, prefetch=0,
    )  # fmt: skip
    rec = GradNormRecorder(model, Path(args.out) / f"aux{aux_weight:g}", every=args.every)
    epochs, step, t0 = [], 0, time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        main_losses = []
        for x, y in loader:
            out = model(mg.tensor(x))
            loss = loss_terms(out, y, aux_weight=aux_weight)["total"]
            opt.zero_grad()
            loss.backward()
            rec.on_step_end(step, epoch, model)  # after backward, before the update
            opt.step()
            main_losses.append(F.cross_entropy(out.logits.detach(), y).item())
            step += 1
        sched.step()
        acc = evaluate(model, data["test_x"], data["test_y"], info)
        epochs.append({"epoch": epoch + 1, "main_loss": float(np.mean(main_losses)), "acc": acc})
        print(f"aux_weight {aux_weight:g}  epoch {epoch + 1}/{args.epochs}  main-head loss "
              f"{epochs[-1]['main_loss']:.3f}  test acc {acc:.3f}  "
              f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    rec.on_train_end()
    return {"model": model, "epochs": epochs, "recorder": rec, "steps_per_epoch": len(loader)}


def smooth(v: np.ndarray, k: int) -> np.ndarray:
    """Moving average over ``k`` recorded steps (shorter at the start)."""
    c = np.cumsum(np.insert(v, 0, 0.0))
    n = np.minimum(np.arange(1, len(v) + 1), k)
    return (c[1:] - c[np.arange(1, len(v) + 1) - n]) / n


def plot_study(runs: dict[float, dict], path: Path, steps_per_epoch: int) -> None:
    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    colors = {0.0: "#1f77b4", AUX_WEIGHT: "#d62728"}
    for ax, layer in zip(axes.ravel()[:4], LOWER):
        for w, run in runs.items():
            rec = run["recorder"]
            steps = np.array([r["step"] for r in rec.rows]) / steps_per_epoch
            v = np.array([r[layer] for r in rec.rows])
            ax.plot(steps, v, color=colors.get(w), alpha=0.25, lw=0.8)
            ax.plot(steps, smooth(v, 5), color=colors.get(w), label=f"aux_weight {w:g}")
        ax.set_yscale("log")
        ax.set_title(f"|dL/dW| {layer}")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    for ax, key, title in (
        (axes[1, 1], "acc", "test accuracy"),
        (axes[1, 2], "main_loss", "main-head training loss"),
    ):
        for w, run in runs.items():
            e = [r["epoch"] for r in run["epochs"]]
            ax.plot(
                e,
                [r[key] for r in run["epochs"]],
                "o-",
                color=colors.get(w),
                label=f"aux_weight {w:g}",
            )
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0, 0].set_ylabel("weight-gradient norm")
    fig.suptitle("GoogLeNet (CIFAR stem, BN, width 1/8) on digits: with and without the aux losses")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=f"aux_weight 0 vs {AUX_WEIGHT:g}: lower-layer gradient norms",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--epochs", type=int, default=6, help="epochs to train")
    p.add_argument("--batch-size", type=int, default=64, help="images per step")
    p.add_argument("--width", type=float, default=0.125, help="channel multiplier")
    p.add_argument("--lr", type=float, default=0.05, help="peak learning rate")
    p.add_argument("--every", type=int, default=2, help="record gradient norms every N steps")
    p.add_argument("--seed", type=int, default=0, help="initial weights, batches, dropout")
    p.add_argument("--init", default="auto", choices=("auto", "he", "pytorch", "trunc_normal"),
                   help="GoogLeNet's init= (auto: pytorch under BN)")  # fmt: skip
    p.add_argument("--out", default="runs/aux_loss_study", help="recorder CSV/JSON per run")
    p.add_argument("--img", default=None, help="folder for the pictures; None: the --out folder")
    args = p.parse_args(argv)
    img = Path(args.img or args.out)
    img.mkdir(parents=True, exist_ok=True)
    info = dataset_info("digits")  # 32x32, upsampled from 8x8
    test = get_dataset("digits", train=False)
    test_x, test_y = test.get_batch(np.arange(len(test)), np.random.default_rng(0))
    data = {
        "info": info,
        "train": get_dataset("digits", train=True),
        "test_x": test_x,
        "test_y": test_y,
    }

    runs = {w: train_run(w, args, data) for w in (0.0, AUX_WEIGHT)}
    spe = runs[0.0]["steps_per_epoch"]
    plot_study(runs, img / "aux_loss_study.png", spe)

    # the study report of the trained aux-0.3 model on 64 test images
    rng = np.random.default_rng(args.seed)
    idx = np.sort(rng.permutation(len(test_x))[:64])
    xb = info.eval_transform(test_x[idx], rng)
    report = gradient_flow(
        runs[AUX_WEIGHT]["model"], mg.tensor(xb), mg.tensor(test_y[idx]), loss_terms,
        blocks=inception_branches,
    )  # fmt: skip
    print(format_table(report, branches=False))
    plot_attribution(report, img / "study_attribution.png")
    plot_branch_shares(report, img / "study_branch_shares.png", dict(APP.branch_labels))
    rec = runs[AUX_WEIGHT]["recorder"]
    steps = [r["step"] for r in rec.rows]
    title = f"aux_weight {AUX_WEIGHT:g}: weight-gradient norm per layer (log10)"
    plot_heatmap(rec.names, steps, rec.matrix(), img / "grad_norms_heatmap.png", title=title)

    # summary: mean gradient norm per lower layer, first epoch and last epoch, both runs
    summary: dict[str, Any] = {"args": vars(args), "runs": {}}
    print("\nmean |dL/dW| per epoch (first / last) and final test accuracy:")
    for w, run in runs.items():
        rows = run["recorder"].rows
        per = {}
        for layer in LOWER:
            first = [r[layer] for r in rows if r["epoch"] == 0]
            last = [r[layer] for r in rows if r["epoch"] == args.epochs - 1]
            per[layer] = {"first_epoch": float(np.mean(first)), "last_epoch": float(np.mean(last)),
                          "all": float(np.mean([r[layer] for r in rows]))}  # fmt: skip
        summary["runs"][f"{w:g}"] = {"epochs": run["epochs"], "grad_norm": per}
        cells = "  ".join(
            f"{k} {v['first_epoch']:.3f}/{v['last_epoch']:.3f}" for k, v in per.items()
        )
        print(f"aux_weight {w:g}: {cells}  acc {run['epochs'][-1]['acc']:.3f}")
    g0, g3 = summary["runs"]["0"]["grad_norm"], summary["runs"][f"{AUX_WEIGHT:g}"]["grad_norm"]
    ratios = {k: g3[k]["all"] / g0[k]["all"] for k in LOWER}
    summary[f"ratio_{AUX_WEIGHT:g}_over_0"] = ratios
    cells = "  ".join(f"{k} {r:.2f}" for k, r in ratios.items())
    print(f"ratio of mean norms over the whole run (aux {AUX_WEIGHT:g} / aux 0): {cells}")
    summary["study"] = {
        lay.name: {"grad_weight": lay.grad_weight, "weight_share": lay.weight_share}
        for lay in report.layers if lay.kind != "branch" and lay.num_params
    }  # fmt: skip
    (img / "aux_loss_study.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"pictures in {img}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
