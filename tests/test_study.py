"""minigrad.study: branch shares, main/aux attribution, the recorder and the CLI."""

from __future__ import annotations

import csv
import gc
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
import minigrad.study.command
from googlenet import APP, BRANCHES, GoogLeNet, Inception, inception_branches, loss_terms
from minigrad import nn
from minigrad.study import GradNormRecorder, format_table, gradient_flow, report_to_dict
from minigrad.study.flow import watched_layers
from minigrad.study.flow_plots import plot_branch_shares, plot_heatmap


def study_main(argv: list[str]) -> int:
    return minigrad.study.command.main(argv, APP)


class TwoBlocks(nn.Module):
    """conv -> Inception -> Inception -> pool -> fc, in float64: small enough for exact checks."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 6, 3, padding=1)
        self.block1 = Inception(6, 3, 2, 4, 2, 3, 2)  # -> 12 channels
        self.block2 = Inception(12, 2, 3, 3, 2, 2, 3)  # -> 10 channels
        self.fc = nn.Linear(10, 3)

    def forward(self, x: mg.Tensor) -> mg.Tensor:
        x = self.block2(self.block1(F.relu(self.stem(x))))
        return self.fc(F.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1))


class BlockWithSideReader(nn.Module):
    """conv -> Inception -> sum; optionally a second reader of the block input (like aux1)."""

    def __init__(self, chs: tuple[int, ...], side: bool) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, chs[0], 3, padding=1)
        self.block = Inception(*chs)
        self.side = side

    def forward(self, x: mg.Tensor) -> mg.Tensor:
        h = self.stem(x)
        y = self.block(h).mean()
        return y + (h * h).mean() if self.side else y


@given(
    chs=st.tuples(*[st.integers(1, 4) for _ in range(7)]),
    size=st.integers(1, 5),
    side=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_branch_shares_add_up_for_any_block_geometry(
    chs: tuple[int, ...], size: int, side: bool, seed: int
) -> None:
    mg.manual_seed(seed)
    model = BlockWithSideReader(chs, side).double()
    x = mg.tensor(np.random.default_rng(seed).standard_normal((2, 1, size, size)))
    report = gradient_flow(
        model, x, None, lambda o, t: {"main": o}, blocks=inception_branches, keep_grads=True
    )
    (blk,) = report.blocks
    if blk.grad_in == 0:  # every ReLU of the 1-channel branches dead: no shares to give
        assert all(v == 0 for v in blk.share.values())
    else:
        assert sum(blk.share.values()) == pytest.approx(1.0, abs=1e-9)
    parts = sum(blk.grads[b] for b in BRANCHES)
    if not side:
        np.testing.assert_allclose(parts, blk.grads["input"], rtol=1e-12, atol=1e-15)
    else:  # the side reader's gradient is what is left over
        np.testing.assert_allclose(blk.grads["other"], blk.grads["input"] - parts, atol=1e-15)
        assert np.abs(blk.grads["other"]).max() > 0


def tiny_googlenet() -> GoogLeNet:
    mg.manual_seed(0)
    # dropout 0 so that a second forward pass sees exactly the same network
    model = GoogLeNet(
        10, 1, stem="cifar", batch_norm=True, width=1 / 16, dropout=0.0, aux_dropout=0.0
    )
    return model.double()


def batch(n: int = 4, c: int = 1, s: int = 16) -> tuple[mg.Tensor, mg.Tensor]:
    rng = np.random.default_rng(1)
    return mg.tensor(rng.standard_normal((n, c, s, s))), mg.tensor(np.arange(n) % 3)


def test_branch_contributions_add_up_to_the_block_input_gradient() -> None:
    mg.manual_seed(0)
    model = TwoBlocks().double()
    x, y = batch(c=2, s=6)
    report = gradient_flow(
        model,
        x,
        y,
        lambda o, t: {"main": F.cross_entropy(o, t)},
        blocks=inception_branches,
        keep_grads=True,
    )
    # independent reference: full backward hooks see what each branch sends to its input
    seen: dict[str, dict[str, np.ndarray]] = {"block1": {}, "block2": {}}
    handles = []
    for bname in seen:
        block = getattr(model, bname)
        for b in BRANCHES:

            def hook(mod, gin, gout, bname=bname, b=b):
                seen[bname][b] = gin[0]

            handles.append(getattr(block, b).register_full_backward_hook(hook))

        def hook_in(mod, gin, gout, bname=bname):
            seen[bname]["input"] = gin[0]

        handles.append(block.register_full_backward_hook(hook_in))
    F.cross_entropy(model(x), y).backward()
    for h in handles:
        h.remove()
    assert [b.name for b in report.blocks] == ["block1", "block2"]
    for blk in report.blocks:
        ref = seen[blk.name]
        np.testing.assert_allclose(blk.grads["input"], ref["input"], rtol=1e-10, atol=1e-14)
        parts = sum(blk.grads[b] for b in BRANCHES)
        np.testing.assert_allclose(parts, ref["input"], rtol=1e-10, atol=1e-14)
        for b in BRANCHES:
            np.testing.assert_allclose(blk.grads[b], ref[b], rtol=1e-10, atol=1e-14)
            assert blk.contrib[b] == pytest.approx(np.linalg.norm(ref[b]), rel=1e-9)
        assert sum(blk.share.values()) == pytest.approx(1.0, abs=1e-12)
        assert abs(blk.share["other"]) < 1e-12  # nothing else reads the block input
        assert blk.grad_in == pytest.approx(np.linalg.norm(ref["input"]), rel=1e-9)
        assert all(blk.share[b] != 0 for b in BRANCHES)


def test_other_readers_of_a_block_input_get_the_remainder() -> None:
    model = tiny_googlenet()
    x, y = batch()
    report = gradient_flow(model, x, y, loss_terms, blocks=inception_branches, keep_grads=True)
    shares = {b.name: b.share for b in report.blocks}
    assert abs(shares["inception4b"]["other"]) > 1e-6  # aux1 reads 4a's output = 4b's input
    assert abs(shares["inception4e"]["other"]) > 1e-6  # aux2 reads 4d's output
    assert abs(shares["inception4c"]["other"]) < 1e-12
    for blk in report.blocks:
        assert sum(blk.share.values()) == pytest.approx(1.0, abs=1e-9)
        total = sum(blk.grads[p] for p in [*BRANCHES, "other"])
        np.testing.assert_allclose(total, blk.grads["input"], rtol=1e-12, atol=1e-15)


def test_main_and_aux_attribution_adds_up_to_the_total_gradient() -> None:
    model = tiny_googlenet()
    x, y = batch()
    report = gradient_flow(model, x, y, loss_terms, blocks=inception_branches, keep_grads=True)
    assert report.terms == ["main", "aux1", "aux2"]
    assert report.additivity_error < 1e-10  # float64: the separate total pass agrees
    # the reference: one ordinary backward pass of main + AUX_WEIGHT * (aux1 + aux2)
    model.train()
    model.zero_grad()
    loss = loss_terms(model(x), y)["total"]
    loss.backward()
    assert report.losses["total"] == pytest.approx(loss.item(), rel=1e-12)
    for lay in report.layers:
        module = model
        for part in lay.name.split("."):
            module = getattr(module, part)
        params = list(module.parameters())
        if not params:
            continue
        w = lay.grads["weights"]
        for i, p in enumerate(params):
            summed = w["main"][i] + w["aux1"][i] + w["aux2"][i]
            np.testing.assert_allclose(summed, p.grad, rtol=1e-9, atol=1e-13, err_msg=lay.name)
        ref = np.sqrt(sum(float((p.grad**2).sum()) for p in params))
        assert lay.grad_weight["total"] == pytest.approx(ref, rel=1e-9), lay.name
        assert sum(lay.weight_share[t] for t in report.terms) == pytest.approx(1.0, abs=1e-9)
    # where each aux loss cannot reach, its gradient is exactly zero
    assert report.layer("inception4e").grad_weight["aux2"] == 0.0
    assert report.layer("inception4b").grad_weight["aux1"] == 0.0
    assert report.layer("inception4b").grad_weight["aux2"] > 0.0
    assert report.layer("aux1").grad_weight["main"] == 0.0
    assert report.layer("conv1").grad_weight["aux1"] > 0.0


def test_gradient_flow_leaves_the_model_as_it_was() -> None:
    model = tiny_googlenet().eval()
    x, y = batch()
    sentinel = {id(p): np.full(p.shape, 7.0) for p in model.parameters()}
    for p in model.parameters():
        p.grad = sentinel[id(p)]
    state = {k: v.copy() for k, v in model.state_dict().items()}
    gradient_flow(model, x, y, loss_terms, blocks=inception_branches)
    assert not model.training and not model.inception3a.training
    assert all(p.grad is sentinel[id(p)] for p in model.parameters())
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, state[k], err_msg=k)


def test_table_and_json() -> None:
    model = tiny_googlenet()
    x, y = batch()
    report = gradient_flow(model, x, y, loss_terms, blocks=inception_branches)
    table = format_table(report)
    for name in ("conv1", "inception3a", "branch4", "aux2", "fc", "attribution check"):
        assert name in table
    assert "branch4" not in format_table(report, branches=False).split("losses")[0]
    data = json.loads(json.dumps(report_to_dict(report)))
    assert [lay["name"] for lay in data["layers"]] == [lay.name for lay in report.layers]
    with pytest.raises(KeyError, match="no layer 'nope'"):
        report.layer("nope")


def test_backward_twice_through_retained_conv_and_pool_graph() -> None:
    rng = np.random.default_rng(0)
    x = mg.tensor(rng.standard_normal((2, 3, 6, 6)), requires_grad=True)
    w3 = mg.tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    w1 = mg.tensor(rng.standard_normal((2, 4, 1, 1)), requires_grad=True)
    loss = F.max_pool2d(F.conv2d(F.conv2d(x, w3, padding=1), w1), 3, stride=2).sum()
    loss.backward(retain_graph=True)
    first = [t.grad.copy() for t in (x, w3, w1)]
    for t in (x, w3, w1):
        t.grad = None
    loss.backward()
    for a, t in zip(first, (x, w3, w1)):
        np.testing.assert_array_equal(a, t.grad)


def test_recorder_writes_norms_every_n_steps(tmp_path: Path) -> None:
    model = tiny_googlenet()
    x, y = batch()
    rec = GradNormRecorder(model, tmp_path / "run", every=3)
    expected = {}
    for step in range(8):
        model.zero_grad()
        loss_terms(model(x), y)["total"].backward()
        recorded = rec.on_step_end(step, epoch=step // 4, model=model)
        assert recorded == (step % 3 == 0)
        if recorded:
            p = list(model.inception3a.parameters())
            expected[step] = np.sqrt(sum(float((q.grad**2).sum()) for q in p))
    paths = rec.on_train_end()
    assert {p.name for p in (tmp_path / "run").iterdir()} == {
        "grad_norms.csv",
        "grad_norms.json",
        "grad_norms.png",
    }
    assert paths["png"].stat().st_size > 1000
    with open(paths["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [0, 3, 6]
    assert [int(r["epoch"]) for r in rows] == [0, 0, 1]
    assert "maxpool3" not in rows[0] and "aux1" in rows[0]
    for r in rows:
        assert float(r["inception3a"]) == pytest.approx(expected[int(r["step"])], rel=1e-9)
    data = json.loads(paths["json"].read_text())
    assert data["every"] == 3 and len(data["rows"]) == 3
    with pytest.raises(ValueError, match="every must be a positive int"):
        GradNormRecorder(model, tmp_path, every=0)
    with pytest.raises(ValueError, match="values have shape"):
        plot_heatmap(["a"], [0, 1], np.ones((2, 2)), tmp_path / "h.png")


def test_cli_runs_on_digits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "study"
    argv = ["--width", "0.0625", "--batch-size", "8", "--image-size", "16", "--out", str(out)]
    assert study_main(argv) == 0
    printed = capsys.readouterr().out
    assert "inception5b" in printed and "attribution check" in printed
    assert {p.name for p in out.iterdir()} == {
        "flow.json",
        "study_attribution.png",
        "study_branch_shares.png",
    }
    data = json.loads((out / "flow.json").read_text())
    assert data["terms"] == ["main", "aux1", "aux2"] and len(data["blocks"]) == 9
    missing = ["--checkpoint", str(tmp_path / "none.npz"), "--out", str(out)]
    assert study_main(missing) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_uses_the_checkpoints_model_and_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tiny_googlenet().float().eval()
    calls = []

    def fake_load(path: str, build: object, device: str) -> tuple[GoogLeNet, dict]:
        calls.append((path, build, device))
        return model, {"dataset": "digits", "image_size": 16, "num_classes": 10}

    monkeypatch.setattr(minigrad.study.command, "load_for_inference", fake_load)
    ckpt = tmp_path / "best.npz"
    ckpt.write_bytes(b"")
    argv = ["--checkpoint", str(ckpt), "--batch-size", "4", "--out", str(tmp_path), "--no-plots"]
    assert study_main([*argv, "--device", "cpu"]) == 0
    ((path, build, device),) = calls  # APP.build_model behind the checks of the file's config
    assert path == str(ckpt) and device == "cpu" and build.__qualname__.startswith("checked_")
    data = json.loads((tmp_path / "flow.json").read_text())
    assert data["layers"][0]["name"] == "conv1"
    assert data["layers"][0]["out_shape"][0] == 4 and data["layers"][0]["out_shape"][2:] == [16, 16]
    assert not model.training  # left in eval mode, as loaded
    assert "wrote" in capsys.readouterr().out


def test_hooks_on_tensors_nobody_holds_still_fire() -> None:
    # the study hooks outputs inside forward hooks and keeps no reference to them
    x = mg.tensor(np.array([[1.0, -2.0, 3.0]]), requires_grad=True)
    seen = []

    def make() -> mg.Tensor:
        h = F.relu(x * 2.0)
        h.register_hook(lambda g: seen.append(g.copy()))
        h2 = F.relu(h + 1.0)
        h2.retain_grad()
        kept.append(h2)
        return F.cat([h2, h2], dim=1).sum()  # cat and relu keep no input tensors

    kept: list[mg.Tensor] = []
    loss = make()
    gc.collect()
    loss.backward()
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], [[2.0, 2.0, 2.0]])  # h + 1 > 0 everywhere
    np.testing.assert_array_equal(kept[0].grad, [[2.0, 2.0, 2.0]])


class TwoWay(nn.Module):
    """A block of two branches with names of its own, for the generic selector."""

    def __init__(self) -> None:
        super().__init__()
        self.left = nn.Conv2d(2, 3, 1)
        self.right = nn.Conv2d(2, 3, 3, padding=1)

    def forward(self, x: mg.Tensor) -> mg.Tensor:
        return F.relu(self.left(x)) + F.relu(self.right(x))


class TwoWayNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 3, padding=1)
        self.block = TwoWay()
        self.fc = nn.Linear(3, 4)

    def forward(self, x: mg.Tensor) -> mg.Tensor:
        return self.fc(F.flatten(F.adaptive_avg_pool2d(self.block(self.stem(x)), (1, 1)), 1))


def two_way(module: nn.Module) -> tuple[str, ...] | None:
    return ("left", "right") if isinstance(module, TwoWay) else None


def test_the_block_selector_names_blocks_and_branches(tmp_path: Path) -> None:
    mg.manual_seed(0)
    model = TwoWayNet().double()
    x, y = batch(c=1, s=5)
    ce = lambda o, t: {"main": F.cross_entropy(o, t)}  # noqa: E731
    plain = gradient_flow(model, x, y, ce)  # no selector: every child is a plain layer
    assert plain.blocks == [] and {lay.kind for lay in plain.layers} == {"layer"}
    report = gradient_flow(model, x, y, ce, blocks=two_way, keep_grads=True)
    assert [(lay.name, lay.kind) for lay in report.layers] == [
        ("stem", "layer"),
        ("block", "block"),
        ("block.left", "branch"),
        ("block.right", "branch"),
        ("fc", "layer"),
    ]
    (blk,) = report.blocks
    assert blk.branches == ("left", "right") and set(blk.share) == {"left", "right", "other"}
    assert sum(blk.share.values()) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(blk.grads["left"] + blk.grads["right"], blk.grads["input"])
    table = format_table(report)
    assert "left" in table.split("by branch:")[1] and "branch1" not in table
    png = plot_branch_shares(report, tmp_path / "shares.png", {"left": "1x1"})
    assert png.stat().st_size > 1000
    with pytest.raises(ValueError, match="block has no child module 'middle'"):
        watched_layers(model, lambda m: ("left", "middle") if isinstance(m, TwoWay) else None)


def test_a_given_total_is_the_total_pass_and_the_check_sees_a_mismatch() -> None:
    mg.manual_seed(0)
    model = TwoWayNet().double()
    x, y = batch(c=1, s=5)

    def terms(o: mg.Tensor, t: mg.Tensor) -> dict[str, mg.Tensor]:
        main = F.cross_entropy(o, t)
        return {"main": main, "total": main * 2.0}  # not the sum of the terms

    report = gradient_flow(model, x, y, terms)
    assert report.terms == ["main"]
    assert report.losses["total"] == pytest.approx(2 * report.losses["main"], rel=1e-12)
    assert report.additivity_error == pytest.approx(0.5, rel=1e-9)  # |g - 2g| / |2g|
    with pytest.raises(ValueError, match="no loss terms"):
        gradient_flow(model, x, y, lambda o, t: {"total": F.cross_entropy(o, t)})
