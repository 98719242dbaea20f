"""The training loop and CLI: checkpoints, exact resume, NaN stop, Ctrl-C, eval, predict.

Everything runs a GoogLeNet of width 1/16 on a few dozen 16x16 digits, so each test takes
seconds; ``test_digits_converges`` trains for real through the README's command.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import googlenet
import minigrad as mg
from minigrad import devices
from minigrad.checkpoint import load_checkpoint
from minigrad.data import DataLoader, Subset, dataset_info, get_dataset
from minigrad.optim import EMA, SGD, CosineAnnealingLR
from minigrad.train.loop import NonFiniteLossError, RunState

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--limit", "48", "--batch-size", "16", "--width", "0.0625", "--image-size", "16"]


def tiny_setup(seed: int = 0) -> dict[str, Any]:
    """Model, optimizer, schedule, EMA and loaders of a tiny digits run (library API)."""
    info = dataset_info("digits", image_size=16)
    train = Subset(get_dataset("digits", image_size=16), np.arange(48))
    test = Subset(get_dataset("digits", train=False, image_size=16), np.arange(32))
    mg.manual_seed(seed)
    model = googlenet.GoogLeNet(10, 1, stem="cifar", batch_norm=True, width=1 / 16)
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    return {
        "model": model,
        "optimizer": opt,
        "schedule": CosineAnnealingLR(opt, T_max=3),
        "ema": EMA(model, 0.9, warmup=True),
        "train_loader": DataLoader(
            train, 16, shuffle=True, drop_last=True, transform=info.train_transform, seed=seed
        ),
        "val_loader": DataLoader(test, 32, transform=info.eval_transform),
    }


def fit(run: dict[str, Any], out: Path, epochs: int = 2, **kwargs: Any) -> list[dict]:
    return googlenet.fit(
        run["model"], run["train_loader"], run["optimizer"], epochs=epochs,
        val_loader=run["val_loader"], schedule=run["schedule"], ema=run["ema"],
        out_dir=out, plots=False, bar=False, **kwargs,
    )  # fmt: skip


def assert_same_weights(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_resume_from_the_cli_gives_the_same_weights_as_a_straight_run(
    tmp_path, capsys, device
) -> None:
    """Bit-exact on the device under test (GoogLeNet's dropout included): pytest --device cuda."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    common = ["train", *TINY, "--ema", "0.9", "--no-plots", "--device", device]
    assert googlenet.main([*common, "--epochs", "2", "--out", str(straight)]) == 0
    assert googlenet.main([*common, "--epochs", "1", "--out", str(split)]) == 0
    one = load_checkpoint(split / "last.npz")
    assert one["epoch"] == 1 and one["loader"]["epoch"] == 1 and one["loader"]["batch"] == 0
    assert googlenet.main(["train", "--resume", str(split / "last.npz"), "--epochs", "2"]) == 0
    a, b = load_checkpoint(straight / "last.npz"), load_checkpoint(split / "last.npz")
    assert b["epoch"] == 2 and b["step"] == a["step"] == 6
    assert_same_weights(a["model"], b["model"])
    assert_same_weights(a["ema"]["shadow"], b["ema"]["shadow"])
    assert a["schedule"] == b["schedule"] and a["rng"] == b["rng"]
    np.testing.assert_array_equal(
        a["optimizer"]["state"][0]["momentum_buffer"], b["optimizer"]["state"][0]["momentum_buffer"]
    )
    keys = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_top5")
    assert [[r[k] for k in keys] for r in a["metrics"]] == [
        [r[k] for k in keys] for r in b["metrics"]
    ]
    assert len((split / "metrics.csv").read_text().splitlines()) == 3  # header + 2 epochs
    out = capsys.readouterr().out
    assert "resumed at epoch 2" in out and "final test accuracy: top-1" in out


def test_resume_refuses_a_flag_that_changes_the_model(tmp_path, capsys) -> None:
    assert googlenet.main(["train", *TINY, "--epochs", "1", "--out", str(tmp_path)]) == 0
    rc = googlenet.main(["train", "--resume", str(tmp_path), "--width", "0.5", "--epochs", "2"])
    assert rc == 2
    assert "--width 0.5 differs from the checkpoint's 0.0625" in capsys.readouterr().err


def test_init_flag_is_recorded_in_the_config_and_rebuilt_from_it(tmp_path) -> None:
    args = ["train", *TINY, "--epochs", "1", "--no-plots", "--init", "trunc_normal"]
    assert googlenet.main([*args, "--out", str(tmp_path / "cli")]) == 0
    assert load_checkpoint(tmp_path / "cli" / "last.npz")["config"]["init"] == "trunc_normal"
    model, config = googlenet.load_for_inference(tmp_path / "cli" / "last.npz")
    assert model.init == config["init"] == "trunc_normal"
    run = tiny_setup()  # the library's fit records the model's init with its architecture
    run["model"] = googlenet.GoogLeNet(10, 1, stem="cifar", batch_norm=True, width=1 / 16,
                                       init="he")  # fmt: skip
    run["optimizer"] = SGD(run["model"].parameters(), lr=0.05)
    run["ema"] = None
    googlenet.fit(run["model"], run["train_loader"], run["optimizer"], epochs=1,
                  out_dir=tmp_path / "lib", plots=False, bar=False)  # fmt: skip
    assert load_checkpoint(tmp_path / "lib" / "last.npz")["config"]["init"] == "he"


def test_checkpoint_holds_every_part_and_the_run_folder_is_complete(tmp_path) -> None:
    assert googlenet.main(["train", *TINY, "--epochs", "2", "--out", str(tmp_path)]) == 0
    names = {p.name for p in tmp_path.iterdir()}
    assert {"last.npz", "best.npz", "metrics.csv", "metrics.json", "curves.png"} <= names
    ckpt = load_checkpoint(tmp_path / "last.npz")
    for part in ("model", "optimizer", "schedule", "epoch", "step", "rng", "loader", "metrics"):
        assert ckpt[part] is not None, part
    assert ckpt["config"]["width"] == 0.0625 and ckpt["config"]["dataset"] == "digits"
    assert ckpt["config"]["init"] == "auto"
    assert ckpt["rng"]["seed"] == 0 and ckpt["interrupted"] is False
    best = load_checkpoint(tmp_path / "best.npz")
    assert best["best"] == max(r["val_acc"] for r in ckpt["metrics"][: best["epoch"]])
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["epoch", "lr", "train_loss"] and "val_top5" in header


def test_ctrl_c_saves_first_and_resuming_matches_an_uninterrupted_run(tmp_path, capsys) -> None:
    reference = tiny_setup()
    fit(reference, tmp_path / "ref")

    class CtrlC:
        ended = 0

        def on_step_end(self, step: int, epoch: int, model: Any) -> None:
            if step == 4:  # mid-epoch 2, after backward, before the update
                raise KeyboardInterrupt

        def on_train_end(self) -> None:
            self.ended += 1

    run, cb = tiny_setup(), CtrlC()
    with pytest.raises(KeyboardInterrupt):
        fit(run, tmp_path / "run", callbacks=[cb])
    assert cb.ended == 1
    saved = load_checkpoint(tmp_path / "run" / "last.npz")
    assert saved["interrupted"] is True and saved["step"] == 4 and saved["epoch"] == 1
    assert saved["loader"]["epoch"] == 1 and saved["loader"]["batch"] == 1
    assert "interrupted: saved" in capsys.readouterr().out
    resumed = tiny_setup(seed=5)  # other initial weights: everything must come from the file
    fit(resumed, tmp_path / "run", resume=tmp_path / "run" / "last.npz")
    assert_same_weights(reference["model"].state_dict(), resumed["model"].state_dict())
    ref, res = (load_checkpoint(tmp_path / d / "last.npz") for d in ("ref", "run"))
    assert_same_weights(ref["ema"]["shadow"], res["ema"]["shadow"])
    # fit records the architecture, so the library's checkpoints load for inference too
    model, config = googlenet.load_for_inference(tmp_path / "run" / "last.npz")
    assert config["width"] == 1 / 16 and config["aux_weight"] == googlenet.AUX_WEIGHT
    assert config["aux_logits"] is True and not model.training
    assert_same_weights(
        {k: v for k, v in model.state_dict().items() if k in res["ema"]["shadow"]},
        res["ema"]["shadow"],
    )


def test_ctrl_c_in_the_first_epoch_of_a_fresh_run_resumes_bit_identically(tmp_path, capsys) -> None:
    """The run folder does not exist yet when Ctrl-C hits step 2 of epoch 1: the save
    creates it; the resumed run's weights and its epoch-1 figures (loss, total loss and
    accuracy over all 3 steps, from the running sums in the checkpoint) equal a straight run's."""
    reference = tiny_setup()
    straight = fit(reference, tmp_path / "ref")

    class CtrlC:
        def on_step_end(self, step: int, epoch: int, model: Any) -> None:
            if step == 1:
                raise KeyboardInterrupt

    run, out = tiny_setup(), tmp_path / "new" / "run"
    with pytest.raises(KeyboardInterrupt):
        fit(run, out, callbacks=[CtrlC()])
    saved = load_checkpoint(out / "last.npz")
    assert saved["epoch"] == 0 and saved["step"] == 1 and saved["interrupted"] is True
    assert saved["epoch_sums"]["images"] == 16  # the one completed step
    assert f"continue with --resume {out / 'last.npz'}" in capsys.readouterr().out
    resumed = tiny_setup(seed=5)
    history = fit(resumed, out, resume=out / "last.npz")
    assert_same_weights(reference["model"].state_dict(), resumed["model"].state_dict())
    keys = ("train_loss", "train_total_loss", "train_acc", "val_loss", "val_acc")
    assert [[r[k] for k in keys] for r in history] == [[r[k] for k in keys] for r in straight]


def test_a_run_from_before_the_total_loss_column_resumes(tmp_path) -> None:
    """Old runs logged the total (with aux terms) as ``train_loss``: on resume it moves to
    ``train_total_loss`` and the log keeps one header."""
    from minigrad.checkpoint import save_checkpoint

    fit(tiny_setup(), tmp_path, epochs=1)
    ckpt = load_checkpoint(tmp_path / "last.npz")
    old = [  # as the old code wrote them: the total under train_loss
        {k: r["train_total_loss"] if k == "train_loss" else v for k, v in r.items()
         if k != "train_total_loss"}
        for r in ckpt["metrics"]
    ]  # fmt: skip
    save_checkpoint(tmp_path / "last.npz", **{**ckpt, "metrics": old})
    history = fit(tiny_setup(), tmp_path, epochs=2, resume=tmp_path / "last.npz")
    assert history[0]["train_loss"] is None
    assert history[0]["train_total_loss"] == ckpt["metrics"][0]["train_total_loss"]
    assert list(history[0]) == list(history[1])
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 3


def test_a_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    calls = {"n": 0}

    def exploding(outputs: Any, target: Any, **options: Any) -> dict[str, mg.Tensor]:
        calls["n"] += 1
        terms = googlenet.loss_terms(outputs, target, **options)
        # calls 1-3: epoch 1's steps, 4: its evaluation, 6: the 2nd step of epoch 2
        return {**terms, "total": terms["total"] * float("nan")} if calls["n"] == 6 else terms

    monkeypatch.setattr(googlenet, "APP", replace(googlenet.APP, loss_terms=exploding))
    rc = googlenet.main(["train", *TINY, "--epochs", "3", "--out", str(tmp_path)])
    assert rc == 3  # the exit status of a NaN/inf stop
    out = capsys.readouterr().out
    assert (
        "stopped: the training loss is nan at epoch 2, step 2 of the epoch (step 5 of the run) "
        "(lr " in out
    )
    assert f"The last good checkpoint is {tmp_path / 'last.npz'}." in out
    ckpt = load_checkpoint(tmp_path / "last.npz")
    assert ckpt["epoch"] == 1 and ckpt["step"] == 3 and len(ckpt["metrics"]) == 1
    assert all(np.isfinite(v).all() for v in ckpt["model"].values())


def test_a_nan_loss_is_never_applied_to_the_weights() -> None:
    run = tiny_setup()
    before = run["model"].state_dict()
    with pytest.raises(NonFiniteLossError, match="loss is inf at epoch 1, step 1 "):
        googlenet.train_one_epoch(
            run["model"], run["train_loader"], run["optimizer"], bar=False,
            aux_weight=float("inf"),
        )  # fmt: skip
    assert_same_weights(before, run["model"].state_dict())  # BN statistics rolled back too


def test_callbacks_see_gradients_before_the_update() -> None:
    run, seen = tiny_setup(), []

    class Probe:
        def on_step_end(self, step: int, epoch: int, model: Any) -> None:
            w = model.fc.weight
            seen.append((step, epoch, w.grad is not None, w.data.copy()))

    state = RunState()
    googlenet.train_one_epoch(
        run["model"], run["train_loader"], run["optimizer"], callbacks=[Probe()], state=state,
        bar=False,
    )  # fmt: skip
    assert [s[:3] for s in seen] == [(0, 0, True), (1, 0, True), (2, 0, True)]
    assert not np.array_equal(seen[0][3], seen[1][3])  # the step came after the callback
    assert state.step == 3 and state.pending is None


def test_grad_norms_flag_records_through_the_study_recorder(tmp_path) -> None:
    pytest.importorskip("minigrad.study")
    args = ["train", *TINY, "--epochs", "1", "--grad-norms", "1", "--no-plots"]
    assert googlenet.main([*args, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "grad_norms.csv").exists()


def test_tf32_on_the_cpu_is_a_clear_error(capsys) -> None:
    rc = googlenet.main(["train", *TINY, "--device", "cpu", "--precision", "tf32"])
    assert rc == 2 and "--precision tf32 needs a CUDA device" in capsys.readouterr().err
    if not devices.cuda_available():
        with pytest.raises(ValueError, match="set_tf32"):
            devices.set_tf32(True)


def _archives() -> Any:
    """tests/data/conftest.py's writers of tiny official-format archives."""
    spec = importlib.util.spec_from_file_location("archives", ROOT / "tests/data/conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.filterwarnings("ignore::minigrad.data.download.ChecksumWarning")
def test_train_eval_predict_on_a_tiny_cifar10_archive(tmp_path, capsys) -> None:
    from PIL import Image

    (tmp_path / "data").mkdir()
    _archives().write_cifar10(tmp_path / "data", n=4)  # 20 train / 5 test images
    run = tmp_path / "run"
    args = ["--dataset", "cifar10", "--data-dir", str(tmp_path / "data"), "--batch-size", "8"]
    assert googlenet.main(["train", *args, "--epochs", "1", "--width", "0.0625",
                           "--out", str(run)]) == 0  # fmt: skip
    assert (run / "best.npz").exists() and (run / "curves.png").exists()
    model, config = googlenet.load_for_inference(run / "best.npz")
    assert config["num_classes"] == 10 and config["stem"] == "cifar" and not model.training
    capsys.readouterr()
    assert googlenet.main(["eval", str(run / "best.npz"), *args]) == 0
    out = capsys.readouterr().out
    assert re.search(r"cifar10 test: top-1 \d\.\d{4}  top-5 \d\.\d{4}  \(5 images", out)
    assert (run / "confusion.png").stat().st_size > 1000
    png = tmp_path / "frog.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), np.uint8)).save(png)
    assert googlenet.main(["predict", "--resume", str(run / "best.npz"), str(png)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{png}: ")
    probs = [float(p) for p in re.findall(r" (\d\.\d{3})", line)]
    assert len(probs) == 5 and probs == sorted(probs, reverse=True)
    names = re.findall(r"([a-z]+) \d\.\d{3}", line)
    assert set(names) <= set(dataset_info("cifar10").class_names)


def test_predict_reads_a_digit_png_and_names_missing_files(tmp_path, capsys) -> None:
    from PIL import Image

    assert googlenet.main(["train", *TINY, "--epochs", "1", "--out", str(tmp_path)]) == 0
    png = tmp_path / "seven.png"
    digit = np.zeros((8, 8), np.uint8)
    digit[1, 1:7], digit[2:7, 5] = 255, 255  # a 7
    Image.fromarray(digit).save(png)
    capsys.readouterr()
    assert googlenet.main(["predict", "--resume", str(tmp_path / "last.npz"), str(png)]) == 0
    assert len(re.findall(r"\d \d\.\d{3}", capsys.readouterr().out)) == 5
    rc = googlenet.main(["predict", "--resume", str(tmp_path / "last.npz"), "nope.png"])
    assert rc == 2 and "nope.png: no such image file" in capsys.readouterr().err


@pytest.mark.slow  # ~30 s on 2 cores; part of the default run (deselect with -m "not slow")
@pytest.mark.emulated_slow  # its subprocess picks the GPU: > 10 min on the stand-in
def test_digits_converges_with_the_readme_command(tmp_path) -> None:
    """The README's `python googlenet.py` with fewer epochs: >= 95% test top-1 in ~1 minute."""
    start = time.perf_counter()
    cmd = [sys.executable, str(ROOT / "googlenet.py"), "--epochs", "4", "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    top1 = float(re.search(r"final test accuracy: top-1 (\d\.\d+)", done.stdout).group(1))
    assert top1 >= 0.95, done.stdout[-2000:]
    print(f"digits, 4 epochs: top-1 {top1:.4f} in {time.perf_counter() - start:.0f} s")


@pytest.mark.slow
def test_default_init_learns_at_least_as_fast_as_he_under_batch_norm(tmp_path, capsys) -> None:
    """Issue 13: under batch norm, He's larger conv weights lower the effective learning rate.

    One epoch of the README's digits run (BN, lr 0.05, seed 0), ``--init auto`` (PyTorch's
    default) against ``--init he``: mean training loss 3.00 vs 3.34 when written (seeds 1
    and 2: see docs/googlenet.md).
    """
    loss = {}
    for init in ("auto", "he"):
        out = tmp_path / init
        args = ["train", "--epochs", "1", "--init", init, "--no-plots", "--out", str(out)]
        assert googlenet.main(args) == 0
        loss[init] = load_checkpoint(out / "last.npz")["metrics"][0]["train_loss"]
    capsys.readouterr()
    assert loss["auto"] <= loss["he"], loss


def test_study_subcommand_is_dispatched_to_minigrad_study(tmp_path, capsys) -> None:
    args = ["--width", "0.0625", "--batch-size", "4", "--no-plots", "--out", str(tmp_path)]
    assert googlenet.main(["study", *args, "--device", "cpu"]) == 0
    assert (tmp_path / "flow.json").exists() and "inception3a" in capsys.readouterr().out


def test_no_command_means_train_and_bad_flags_exit_with_usage(tmp_path, capsys) -> None:
    assert googlenet.main([*TINY, "--epochs", "1", "--no-plots", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "last.npz").exists()
    assert googlenet.main(["train", "--optimizer", "lbfgs"]) == 2
    assert "invalid choice: 'lbfgs'" in capsys.readouterr().err


@pytest.mark.gpu
def test_train_on_the_gpu_and_load_on_the_cpu(tmp_path) -> None:
    args = ["train", *TINY, "--epochs", "1", "--device", "cuda", "--precision", "tf32"]
    assert googlenet.main([*args, "--no-plots", "--out", str(tmp_path)]) == 0
    model, config = googlenet.load_for_inference(tmp_path / "last.npz", "cpu")
    assert config["device"] == "cuda" and model.fc.weight.device == "cpu"
    devices.set_tf32(False)


def _loss_curve(device: str, tf32: bool, steps: int = 12) -> list[float]:
    """Training losses of a small CIFAR-stem GoogLeNet on fixed random batches."""
    if device != "cpu":
        devices.set_tf32(tf32)
    try:
        mg.manual_seed(0)
        rng = np.random.default_rng(0)
        model = googlenet.GoogLeNet(10, stem="cifar", batch_norm=True, width=0.25).to(device)
        opt = SGD(model.parameters(), lr=0.02, momentum=0.9)
        x = mg.tensor(rng.standard_normal((32, 3, 32, 32), dtype=np.float32), device=device)
        y = rng.integers(0, 10, size=32)
        losses = []
        for _ in range(steps):
            loss = googlenet.loss_terms(model(x), y)["total"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.item()))
        return losses
    finally:
        if device != "cpu":
            devices.set_tf32(False)


@pytest.mark.gpu
@pytest.mark.emulated_slow  # the stand-in has no TF32: 24 emulated steps would show nothing
def test_tf32_loss_curve_stays_within_tolerance_of_float32() -> None:
    ref, tf32 = _loss_curve("cuda", False), _loss_curve("cuda", True)
    assert ref[-1] < ref[0]  # it learns the batch
    # TF32 rounds each product's inputs to 10 mantissa bits: the curves drift apart slowly
    np.testing.assert_allclose(tf32, ref, rtol=0.05)


@pytest.mark.gpu
def test_the_gpu_loss_curve_matches_the_cpu_with_dropout_on() -> None:
    # dropout stays on: its masks come from the Philox stream, the same on every device
    gpu, cpu = _loss_curve("cuda", False, steps=3), _loss_curve("cpu", False, steps=3)
    np.testing.assert_allclose(gpu[:2], cpu[:2], rtol=1e-4)  # the same losses, to rounding
    # the third step amplifies last-bit differences about 100x (summing the CPU's weight
    # gradients over other chunks of images alone moved its third loss by 2e-3): close only
    np.testing.assert_allclose(gpu[2], cpu[2], rtol=1e-2)


def test_the_model_flags_come_from_the_application_not_the_trainer() -> None:
    from minigrad.train import cli
    from minigrad.train.spec import ModelSpec

    bare = ModelSpec("bare.py", "a model without flags", lambda cfg: None, lambda g: None, {},
                     lambda o, t: {"total": o})  # fmt: skip
    generic = {a.dest for a in cli.build_parser(bare)._subparsers._group_actions[0].choices[
        "train"]._actions}  # fmt: skip
    assert not generic & {"stem", "batch_norm", "aux_weight", "aux_logits", "width"}
    assert {"lr", "epochs", "resume", "out"} <= generic
    parser = cli.build_parser(googlenet.APP)
    assert parser.prog == "googlenet.py" and cli.build_parser(bare).prog == "bare.py"
    train = parser._subparsers._group_actions[0].choices["train"]
    (group,) = [g for g in train._action_groups if g.title == "model"]
    assert [a.dest for a in group._group_actions] == [
        "width", "stem", "batch_norm", "init", "aux_logits", "aux_weight", "variant",
        "transform_input", "recompute",
    ]  # fmt: skip


def test_aux_heads_are_a_model_option_and_the_aux_weight_only_weighs(tmp_path) -> None:
    args = ["train", *TINY, "--epochs", "1", "--no-plots"]
    assert googlenet.main([*args, "--no-aux", "--out", str(tmp_path / "none")]) == 0
    assert googlenet.main([*args, "--aux-weight", "0", "--out", str(tmp_path / "zero")]) == 0
    none, zero = (load_checkpoint(tmp_path / d / "last.npz") for d in ("none", "zero"))
    assert (
        none["config"]["aux_logits"] is False
        and none["config"]["aux_weight"] == googlenet.AUX_WEIGHT
    )
    assert not any(k.startswith("aux") for k in none["model"])
    assert zero["config"]["aux_logits"] is True and zero["config"]["aux_weight"] == 0
    assert any(k.startswith("aux1.") for k in zero["model"])  # the heads exist, unweighted
    model, _ = googlenet.load_for_inference(tmp_path / "none" / "last.npz")
    assert not model.aux_logits
