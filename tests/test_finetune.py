"""--weights: fine-tuning from a torch-format file on a tiny synthetic Imagenette (train, eval,
predict, study), the new head, --freeze, --backbone-lr-scale, and named pretrained files."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch_format as tf
from data.conftest import write_imagenette

import googlenet
import minigrad as mg
from minigrad.checkpoint import load_checkpoint
from minigrad.data.imagenet import imagenet_class_names
from minigrad.data.imagenette import IMAGENETTE_CLASSES
from minigrad.train import finetune

pytestmark = pytest.mark.filterwarnings("ignore::minigrad.data.download.ChecksumWarning")


def tiny_torchvision(num_classes: int = 1000, seed: int = 0) -> googlenet.GoogLeNet:
    mg.manual_seed(seed)
    return googlenet.GoogLeNet.torchvision(num_classes, transform_input=True, width=0.125)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A synthetic Imagenette (3 JPEGs per class and split) and fake torchvision weights
    (width 1/8, 1,000 classes) written in torch's zip format."""
    root = tmp_path_factory.mktemp("finetune")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_imagenette(root, per_class=3)
    weights = tiny_torchvision().state_dict()
    path = tf.save_state_dict(weights, root / "fake-googlenet.pth")
    return {"root": root, "pth": path, "weights": weights}


def test_options_from_weights_tell_the_variant_and_width() -> None:
    tv = googlenet.options_from_weights(tiny_torchvision(10).state_dict())
    assert tv == {"variant": "torchvision", "transform_input": True, "stem": "imagenet",
                  "batch_norm": True, "aux_logits": True, "width": 0.125, "in_channels": 3,
                  "num_classes": 10}  # fmt: skip
    paper = googlenet.GoogLeNet(7, 1, stem="cifar", aux_logits=False, width=0.25)
    opts = googlenet.options_from_weights(paper.state_dict())
    assert opts["variant"] == "paper" and opts["stem"] == "cifar" and not opts["batch_norm"]
    assert (opts["width"], opts["in_channels"], opts["num_classes"]) == (0.25, 1, 7)
    assert opts["aux_logits"] is False and googlenet.options_from_weights({}) == {}


def test_load_pretrained_keeps_a_new_head_and_refuses_other_mismatches(setup: dict) -> None:
    model = tiny_torchvision(10, seed=1)
    fresh_fc = model.fc.weight.numpy().copy()
    head = finetune.load_pretrained(model, setup["weights"], 10)
    assert head == ["aux1.fc2.weight", "aux1.fc2.bias", "aux2.fc2.weight", "aux2.fc2.bias",
                    "fc.weight", "fc.bias"]  # fmt: skip
    np.testing.assert_array_equal(model.fc.weight.numpy(), fresh_fc)
    np.testing.assert_array_equal(model.conv1.conv.weight.numpy(),
                                  setup["weights"]["conv1.conv.weight"])  # fmt: skip
    bad = dict(setup["weights"])
    bad["conv2.conv.weight"] = bad["conv2.conv.weight"][:4]
    del bad["conv3.bn.running_var"]
    with pytest.raises(ValueError) as e:
        finetune.load_pretrained(tiny_torchvision(10), bad, 10)
    msg = str(e.value)
    assert msg.startswith("--weights: load_state_dict for GoogLeNet failed: 1 missing, 1 with")
    assert "conv3.* (1): bn.running_var" in msg
    assert "conv2.conv.weight: weights (4, 8, 1, 1) vs model (8, 8, 1, 1)" in msg


def test_freeze_and_the_backbone_learning_rate() -> None:
    model = tiny_torchvision(10)
    frozen = finetune.freeze(model, "inception4e")
    assert frozen[0] == "conv1" and frozen[-1] == "inception4e" and len(frozen) == 13
    assert not model.inception4e.branch1.conv.weight.requires_grad
    assert model.inception5a.branch1.conv.weight.requires_grad and model.fc.weight.requires_grad
    cfg = {"lr": 0.1, "backbone_lr_scale": 0.01, "new_head": ["fc.weight", "fc.bias"]}
    groups = finetune.param_groups(model, cfg)
    assert groups[0]["lr"] == pytest.approx(0.001) and groups[1]["params"] == [
        model.fc.weight, model.fc.bias]  # fmt: skip
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for g in groups for p in g["params"]} == trainable
    opt = mg.optim.SGD(groups, lr=0.1, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(0.001), 0.1]
    # a step computes no gradient for the frozen blocks
    x = mg.tensor(np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32))
    googlenet.loss_terms(model.train()(x), np.array([1, 2]))["total"].backward()
    assert (
        model.inception4e.branch1.conv.weight.grad is None and model.conv1.conv.weight.grad is None
    )
    assert model.inception5a.branch1.conv.weight.grad is not None
    with pytest.raises(ValueError, match="'stem' is not one of the model's blocks: conv1, "):
        finetune.freeze(model, "stem")
    with pytest.raises(ValueError, match="every parameter would be frozen"):
        finetune.freeze(model, "fc")


def test_a_named_file_offline_recipe_and_its_sha256_prefix(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MINIGRAD_DATA", str(tmp_path / "cache"))
    source = tmp_path / "source.pth"
    tf.save_state_dict({"w": np.ones(3, np.float32)}, source)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    good, bad = f"net-{digest[:8]}.pth", "net-00000000.pth"
    spec = googlenet.APP.__class__(**{**googlenet.APP.__dict__, "pretrained": {
        good: source.as_uri(), bad: source.as_uri()}})  # fmt: skip
    with pytest.raises(FileNotFoundError) as e:
        finetune.resolve_weights_path(good, spec)
    assert "pass --download" in str(e.value) and f"SHA-256 starts with {digest[:8]}" in str(e.value)
    with pytest.raises(ValueError, match="does not start with 00000000; the file was deleted"):
        finetune.resolve_weights_path(bad, spec, download=True)
    assert not (tmp_path / "cache" / "weights" / bad).exists()
    got = finetune.resolve_weights_path(good, spec, download=True)
    assert got == tmp_path / "cache" / "weights" / good and got.read_bytes() == source.read_bytes()
    assert finetune.resolve_weights_path(good, spec) == got  # found in the cache now
    with pytest.raises(FileNotFoundError, match="no file 'other.pth'"):
        finetune.resolve_weights_path("other.pth", spec)


def test_fine_tune_eval_predict_and_study_end_to_end(
    setup: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root, pth = setup["root"], str(setup["pth"])
    data = ["--dataset", "imagenette", "--data-dir", str(root)]
    out = tmp_path / "run"
    rc = googlenet.main(
        [
            "train",
            *data,
            "--weights",
            pth,
            "--epochs",
            "2",
            "--image-size",
            "64",
            "--batch-size",
            "10",
            "--lr",
            "0.05",
            "--freeze",
            "inception4e",
            "--backbone-lr-scale",
            "0.1",
            "--out",
            str(out),
            "--no-plots",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "358 tensors loaded; new head at its initial values: aux1.fc2.weight" in text
    assert "--freeze inception4e: 13 blocks frozen (conv1 ... inception4e)" in text
    assert "torchvision's network, width 0.125" in text
    ckpt = load_checkpoint(out / "last.npz")
    cfg = ckpt["config"]
    assert cfg["variant"] == "torchvision" and cfg["transform_input"] is True
    assert cfg["weights"] == pth and cfg["new_head"][-2:] == ["fc.weight", "fc.bias"]
    sd = ckpt["model"]
    # frozen blocks kept the file's weights; the later ones and the head trained
    np.testing.assert_array_equal(sd["inception4e.branch1.conv.weight"],
                                  setup["weights"]["inception4e.branch1.conv.weight"])  # fmt: skip
    assert not np.array_equal(sd["inception5b.branch1.conv.weight"],
                              setup["weights"]["inception5b.branch1.conv.weight"])  # fmt: skip
    assert sd["fc.weight"].shape == (10, 128)
    groups = ckpt["optimizer"]["param_groups"]  # backbone at 0.1 x --lr, head at --lr
    assert groups[0]["initial_lr"] == pytest.approx(0.005) and groups[1]["initial_lr"] == 0.05

    for crops in ("1", "10"):
        assert googlenet.main(["eval", str(out), "--data-dir", str(root), "--crops", crops]) == 0
    text = capsys.readouterr().out
    assert "(30 images scored, the whole test split; " in text
    assert "(30 images scored, the whole test split, 10 crops; " in text

    image = sorted((root / "imagenette2-160" / "val").rglob("*.JPEG"))[0]
    assert googlenet.main(["predict", "--checkpoint", str(out), str(image), "--top", "3"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{image}: ") and line.split(": ", 1)[1].split(" 0.")[0] in (
        IMAGENETTE_CLASSES)  # fmt: skip
    # the file itself: ImageNet's 1,000 classes; on Imagenette, its 10 among them
    assert googlenet.main(["predict", "--weights", pth, str(image), "--top", "2"]) == 0
    imagenet = set(imagenet_class_names())
    top = capsys.readouterr().out.strip().split(": ", 1)[1].split(", ")
    assert len(top) == 2 and all(t.rsplit(" ", 1)[0] in imagenet for t in top)
    assert googlenet.main(["predict", "--weights", pth, "--dataset", "imagenette",
                           str(image), "--top", "10"]) == 0  # fmt: skip
    top = capsys.readouterr().out.strip().split(": ", 1)[1].split(", ")
    assert sorted(t.rsplit(" ", 1)[0] for t in top) == sorted(IMAGENETTE_CLASSES)
    assert googlenet.main(["eval", "--weights", pth, *data, "--image-size", "64",
                           "--out", str(tmp_path)]) == 0  # fmt: skip
    assert googlenet.main(["study", "--weights", pth, *data, "--image-size", "64",
                           "--batch-size", "4", "--out", str(tmp_path / "study"),
                           "--no-plots"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "imagenette test: top-1 " in text and "(30 images scored" in text
    assert (tmp_path / "study" / "flow.json").is_file()


def test_weights_in_safetensors_and_npz_and_the_errors(
    setup: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pytest.importorskip("safetensors.numpy")
    root = setup["root"]
    model = tiny_torchvision(10, seed=3)
    mg.io.save_safetensors(model.state_dict(), tmp_path / "ten.safetensors")
    np.savez(tmp_path / "ten.npz", **model.state_dict())
    data = ["--dataset", "imagenette", "--data-dir", str(root), "--image-size", "64",
            "--out", str(tmp_path)]  # fmt: skip
    for name in ("ten.safetensors", "ten.npz"):
        assert googlenet.main(["eval", "--weights", str(tmp_path / name), *data]) == 0
    a, b = [ln for ln in capsys.readouterr().out.splitlines() if "top-1" in ln]
    assert a.split("(")[0] == b.split("(")[0]  # the same weights, the same scores
    assert googlenet.main(["eval", "--weights", str(tmp_path / "ten.npz"), "--dataset",
                           "digits"]) == 2  # fmt: skip
    assert "takes 3-channel images but digits has 1" in capsys.readouterr().err
    assert googlenet.main(["predict", "--weights", str(tmp_path / "ten.npz"), "x.jpg"]) == 2
    assert "10 classes; pass --dataset" in capsys.readouterr().err
    assert googlenet.main(["train", "--weights", str(tmp_path / "none.pth")]) == 2
    assert "no file" in capsys.readouterr().err
