"""googlenet.py: the paper's architecture (shapes, parameter counts and order), the aux loss."""

from __future__ import annotations

import argparse
import inspect

import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
from googlenet import (
    ARCH_KEYS,
    ARCH_OPTIONS,
    AUX_WEIGHT,
    INCEPTION_TABLE,
    MODEL_DEFAULTS,
    BasicConv2d,
    GoogLeNet,
    GoogLeNetOutputs,
    Inception,
    InceptionAux,
    InceptionRow,
    PlainConv2d,
    add_model_arguments,
    build_model,
    check_table,
    fused_heads,
    init_weights,
    loss_terms,
    resolve_init,
    scale_channels,
    scale_table,
)
from minigrad import nn
from minigrad.engine import topological_order
from minigrad.gradcheck import gradcheck
from minigrad.optim import SGD


def images(n: int, c: int, s: int, seed: int = 0) -> mg.Tensor:
    return mg.tensor(np.random.default_rng(seed).standard_normal((n, c, s, s)).astype(np.float32))


@pytest.mark.parametrize(
    ("stem", "size", "in_channels"), [("cifar", 32, 3), ("cifar", 32, 1), ("imagenet", 224, 3)]
)
def test_head_shapes_in_train_and_eval_mode(stem: str, size: int, in_channels: int) -> None:
    mg.manual_seed(0)
    model = GoogLeNet(7, in_channels, stem=stem, batch_norm=True, width=1 / 16)
    x = images(2, in_channels, size)
    out = model.train()(x)
    assert isinstance(out, GoogLeNetOutputs)
    assert [t.shape for t in out] == [(2, 7)] * 3
    with mg.no_grad():
        logits = model.eval()(x)
    assert isinstance(logits, mg.Tensor) and logits.shape == (2, 7)


def test_aux_pool_is_the_papers_5x5_3_for_both_stems_and_adaptive_otherwise(monkeypatch) -> None:
    calls: list[str] = []
    avg, adaptive = F.avg_pool2d, F.adaptive_avg_pool2d
    monkeypatch.setattr(F, "avg_pool2d", lambda *a, **k: calls.append("5x5/3") or avg(*a, **k))
    monkeypatch.setattr(
        F, "adaptive_avg_pool2d", lambda *a, **k: calls.append("adaptive") or adaptive(*a, **k)
    )
    aux = InceptionAux(4, 3, width=1 / 16)
    for side, expected in ((14, "5x5/3"), (16, "5x5/3"), (6, "adaptive"), (20, "adaptive")):
        calls.clear()
        assert aux(images(2, 4, side)).shape == (2, 3)
        assert calls == [expected], side
    # a 96x96 ImageNet-stem input gives 6x6 maps at 4a: the adaptive fallback keeps it working
    mg.manual_seed(0)
    out = GoogLeNet(5, stem="imagenet", width=1 / 16)(images(1, 3, 96))
    assert [t.shape for t in out] == [(1, 5)] * 3


def test_without_aux_heads_training_mode_returns_logits() -> None:
    model = GoogLeNet(4, 1, stem="cifar", aux_logits=False, width=1 / 16)
    out = model.train()(images(2, 1, 32))
    assert isinstance(out, mg.Tensor) and out.shape == (2, 4)
    assert not any(n.startswith("aux") for n, _ in model.named_parameters())


@pytest.mark.parametrize(
    ("kwargs", "count"),
    [
        ({"num_classes": 1000, "stem": "imagenet", "batch_norm": True}, 13_385_816),
        ({"num_classes": 1000}, 13_378_280),
        ({"num_classes": 1000, "aux_logits": False}, 6_998_552),
        ({"num_classes": 10, "stem": "cifar", "batch_norm": True}, 10_222_398),
        ({"num_classes": 10, "stem": "cifar", "batch_norm": True, "width": 0.25}, 648_822),
    ],
)
def test_parameter_counts(kwargs: dict, count: int) -> None:
    assert GoogLeNet(**kwargs).num_parameters() == count


def test_parameters_follow_the_papers_order() -> None:
    model = GoogLeNet(10, stem="imagenet", batch_norm=True, width=1 / 16)
    names = [n for n, _ in model.named_parameters()]
    tops = list(dict.fromkeys(n.split(".")[0] for n in names))
    blocks = [f"inception{b}" for b in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")]
    assert tops == ["conv1", "conv2", "conv3", *blocks, "aux1", "aux2", "fc"]
    in_3a = [n[len("inception3a.") :] for n in names if n.startswith("inception3a.")]
    convs = ["branch1", "branch2.0", "branch2.1", "branch3.0", "branch3.1", "branch4.1"]
    assert in_3a == [f"{c}.{p}" for c in convs for p in ("conv.weight", "bn.weight", "bn.bias")]
    assert names[-2:] == ["fc.weight", "fc.bias"]


def test_table1_channels_kernels_and_batch_norm_convs() -> None:
    model = GoogLeNet(10, stem="imagenet", batch_norm=True)
    b = model.inception4d  # Table 1: 112 | 144 -> 288 | 32 -> 64 | 64, input 512
    assert b.branch1.conv.weight.shape == (112, 512, 1, 1)
    assert b.branch2[1].conv.weight.shape == (288, 144, 3, 3)
    assert b.branch3[1].conv.weight.shape == (64, 32, 5, 5)  # a real 5x5, not torchvision's 3x3
    assert b.branch4[1].conv.weight.shape == (64, 512, 1, 1)
    assert model.conv1.conv.weight.shape == (64, 3, 7, 7) and model.fc.weight.shape == (10, 1024)
    pool = b.branch4[0]
    assert (pool.kernel_size, pool.stride, pool.padding) in (((3, 3), (1, 1), (1, 1)), (3, 1, 1))
    convs = [m for m in model.modules() if isinstance(m, (BasicConv2d, PlainConv2d))]
    assert len(convs) == 3 + 9 * 6 + 2 and all(isinstance(m, BasicConv2d) for m in convs)
    for m in convs:
        assert m.conv.bias is None and m.bn.eps == 1e-3 and isinstance(m.bn, nn.BatchNormReLU2d)
    plain = GoogLeNet(10, stem="cifar", width=1 / 16)
    convs = [m for m in plain.modules() if isinstance(m, (BasicConv2d, PlainConv2d))]
    assert len(convs) == 1 + 9 * 6 + 2 and all(isinstance(m, PlainConv2d) for m in convs)
    assert all(m.conv.bias is not None for m in convs)
    assert plain.lrn is False and GoogLeNet(10, width=1 / 16).lrn is True


def test_the_table_chains_and_its_in_column_sizes_the_blocks() -> None:
    check_table(INCEPTION_TABLE)  # the paper's: each row's input is the previous output
    assert [r.out_channels for r in INCEPTION_TABLE][-1] == 1024
    broken = (*INCEPTION_TABLE[:3], INCEPTION_TABLE[3]._replace(in_channels=500))
    with pytest.raises(
        ValueError, match="inception4b takes 500 channels but inception4a gives 512"
    ):
        check_table(broken)
    with pytest.raises(ValueError, match="inception4b takes 500"):
        scale_table(broken, 1.0)
    assert scale_table(INCEPTION_TABLE, 1.0) == INCEPTION_TABLE
    # width 0.3: 4a's scaled columns give 58 + 62 + 14 + 19 = 153 channels, not round(153.6)
    at03 = {r.name: r for r in scale_table(INCEPTION_TABLE, 0.3)}
    assert at03["4b"].in_channels == at03["4a"].out_channels == 153
    model = GoogLeNet(10, stem="cifar", width=0.3)
    for row in at03.values():
        block = getattr(model, f"inception{row.name}")
        assert block.branch1.conv.weight.shape[1] == row.in_channels  # the in column, used
        assert block.out_channels == row.out_channels
    assert model.aux1.conv.conv.weight.shape[1] == at03["4b"].in_channels
    assert model.aux2.conv.conv.weight.shape[1] == at03["4e"].in_channels
    assert isinstance(INCEPTION_TABLE[0], InceptionRow)


def test_block_types_are_passed_in() -> None:
    made: list[str] = []

    class CountingConv(PlainConv2d):
        def __init__(self, *args, **kwargs) -> None:
            made.append("conv")
            super().__init__(*args, **kwargs)

    class CountingAux(InceptionAux):
        def __init__(self, *args, **kwargs) -> None:
            made.append("aux")
            super().__init__(*args, **kwargs)

    model = GoogLeNet(
        4, 1, stem="cifar", width=1 / 16, blocks=(CountingConv, Inception, CountingAux)
    )
    assert made.count("conv") == 1 + 9 * 6 + 2 and made.count("aux") == 2
    assert isinstance(model.inception3a.branch1, CountingConv)
    with pytest.raises(ValueError, match="blocks must be"):
        GoogLeNet(4, blocks=(PlainConv2d, Inception))


def test_width_rule() -> None:
    assert [scale_channels(c, 0.25) for c in (64, 96, 16, 1, 2)] == [16, 24, 4, 1, 1]
    assert scale_channels(48, 1 / 16) == 3 and scale_channels(1, 1e-3) == 1
    model = GoogLeNet(10, stem="cifar", width=0.25)
    assert model.conv1.conv.weight.shape == (48, 3, 3, 3)
    assert model.inception3a.branch3[0].conv.weight.shape == (4, 48, 1, 1)
    assert model.fc.weight.shape == (10, 256)
    assert model.aux1.fc1.weight.shape == (256, 32 * 16)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="stem"):
        GoogLeNet(10, stem="resnet")
    with pytest.raises(ValueError, match="lrn"):
        GoogLeNet(10, stem="cifar", lrn=True)
    with pytest.raises(ValueError, match="width"):
        GoogLeNet(10, width=0)
    with pytest.raises(ValueError, match="dropout"):
        GoogLeNet(10, dropout=1.0)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        GoogLeNet(10, stem="cifar", width=1 / 16)(images(1, 1, 32))


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def test_googlenet_loss_matches_a_hand_computation() -> None:
    rng = np.random.default_rng(0)
    logits, aux1, aux2 = (rng.standard_normal((5, 4)) for _ in range(3))
    y = np.array([0, 3, 1, 1, 2])

    def ce(z: np.ndarray) -> float:
        return float(-_log_softmax(z)[np.arange(5), y].mean())

    outs = GoogLeNetOutputs(mg.tensor(logits), mg.tensor(aux1), mg.tensor(aux2))
    assert AUX_WEIGHT == 0.3  # the paper's
    terms = loss_terms(outs, mg.tensor(y))
    assert list(terms) == ["main", "aux1", "aux2", "total"]
    expected = ce(logits) + AUX_WEIGHT * (ce(aux1) + ce(aux2))
    assert terms["total"].item() == pytest.approx(expected, rel=1e-12)
    assert terms["aux1"].item() == pytest.approx(AUX_WEIGHT * ce(aux1), rel=1e-12)
    assert terms["main"].item() == pytest.approx(ce(logits), rel=1e-12)
    assert loss_terms(outs, y, aux_weight=0.5)["total"].item() == pytest.approx(
        ce(logits) + 0.5 * (ce(aux1) + ce(aux2)), rel=1e-12
    )
    no_aux = loss_terms(outs, y, aux_weight=0)
    assert list(no_aux) == ["main", "total"]
    assert no_aux["total"].item() == pytest.approx(ce(logits), rel=1e-12)
    plain = loss_terms(mg.tensor(logits), y)
    assert list(plain) == ["main", "total"]
    assert plain["total"].item() == pytest.approx(ce(logits), rel=1e-12)


def test_loss_gradient_reaches_the_aux_heads_with_the_aux_weight() -> None:
    rng = np.random.default_rng(1)
    ts = [mg.tensor(rng.standard_normal((3, 4)), requires_grad=True) for _ in range(3)]
    loss_terms(GoogLeNetOutputs(*ts), np.array([0, 1, 2]))["total"].backward()
    # dCE/dz = (softmax - onehot) / N, scaled by the aux weight on the aux heads
    for t, w in zip(ts, (1.0, AUX_WEIGHT, AUX_WEIGHT)):
        p = np.exp(_log_softmax(t.numpy()))
        p[np.arange(3), [0, 1, 2]] -= 1
        np.testing.assert_allclose(t.grad, w * p / 3, rtol=1e-10)


def test_one_sgd_step_lowers_the_loss() -> None:
    mg.manual_seed(0)
    model = GoogLeNet(5, 1, stem="cifar", batch_norm=True, width=1 / 16, dropout=0, aux_dropout=0)
    x, y = images(8, 1, 16, seed=3), mg.tensor(np.arange(8) % 5)
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9)
    before = loss_terms(model(x), y)["total"]
    opt.zero_grad()
    before.backward()
    opt.step()
    after = loss_terms(model(x), y)["total"]
    assert after.item() < before.item() - 1e-3


@pytest.mark.parametrize("batch_norm", [False, True])
def test_inception_block_passes_gradcheck_in_float64(batch_norm: bool) -> None:
    mg.manual_seed(0)
    # a whole block at 1/32 of 3a's width: 6 in, 2 | 3->4 | 1->1 | 1 channels
    conv = BasicConv2d if batch_norm else PlainConv2d
    block = Inception(
        6, *(scale_channels(c, 1 / 32) for c in (64, 96, 128, 16, 32, 32)), conv_block=conv
    ).double()
    x = mg.tensor(np.random.default_rng(2).standard_normal((2, 6, 5, 5)), requires_grad=True)
    assert block(x).shape == (2, 8, 5, 5)
    params = list(block.parameters())
    assert gradcheck(lambda x, *ps: block(x), [x, *params], mode="full")


def _block_and_grads(block, x: mg.Tensor, fuse: bool) -> tuple[int, list[np.ndarray]]:
    """(Conv2d ops in the graph, [output, x's grad, every parameter's grad]) with the heads
    fused or not."""
    block.fuse_heads = fuse
    for t in (x, *block.parameters()):
        t.grad = None
    y = block(x)
    convs = sum(type(fn).__name__ == "Conv2d" for fn in topological_order(y._ctx))
    weights = np.random.default_rng(9).standard_normal(y.shape)
    (y * mg.tensor(weights)).sum().backward()
    return convs, [y.numpy(), *(np.asarray(t.grad) for t in (x, *block.parameters()))]


@pytest.mark.parametrize("batch_norm", [False, True])
def test_fused_heads_give_the_three_convolutions_values_and_gradients(batch_norm: bool) -> None:
    mg.manual_seed(0)
    conv = BasicConv2d if batch_norm else PlainConv2d
    block = Inception(7, 3, 4, 5, 2, 3, 2, conv_block=conv).double()
    x = mg.tensor(np.random.default_rng(3).standard_normal((2, 7, 6, 6)), requires_grad=True)
    convs, fused = _block_and_grads(block, x, True)
    assert convs == 4  # the three 1x1 heads as one, the 3x3, the 5x5, the pool projection
    if not batch_norm:  # their ReLUs as one too: 3x3, 5x5, projection and heads
        relus = [fn for fn in topological_order(block(x)._ctx) if type(fn).__name__ == "ReLU"]
        assert len(relus) == 4
    convs, plain = _block_and_grads(block, x, False)
    assert convs == 6
    for a, b in zip(fused, plain):  # one product's sums against three: float64 rounding
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_a_hook_on_a_head_runs_the_branches_one_by_one() -> None:
    mg.manual_seed(0)
    block = Inception(6, 2, 3, 4, 1, 1, 1)
    x = images(2, 6, 5)
    assert block.heads_fusable()
    seen: list[tuple[int, ...]] = []
    for module in (block.branch2[0].conv, block.branch1, block.branch3):
        handle = module.register_forward_hook(lambda m, args, out: seen.append(out.shape))
        assert not block.heads_fusable()
        block(x)  # the hook sees its own layer's output
        handle.remove()
    assert seen == [(2, 3, 5, 5), (2, 2, 5, 5), (2, 1, 5, 5)]
    assert block.heads_fusable()
    block.branch1.forward = lambda x: F.relu(block.branch1.conv(x))  # a replaced forward
    assert not block.heads_fusable()


def test_fused_heads_take_1x1_convolutions_only() -> None:
    x = images(1, 4, 5)
    with pytest.raises(ValueError, match=r"fused_heads: expected 1x1 .* kernel \(3, 3\)"):
        fused_heads(x, [nn.Conv2d(4, 2, 1), nn.Conv2d(4, 2, 3, padding=1)])
    with pytest.raises(ValueError, match="fused_heads: the convolutions must all have a bias"):
        fused_heads(x, [nn.Conv2d(4, 2, 1), nn.Conv2d(4, 2, 1, bias=False)])
    convs = [nn.Conv2d(4, 2, 1), nn.Conv2d(4, 3, 1)]
    for got, conv in zip(fused_heads(x, convs), convs):
        np.testing.assert_allclose(got.numpy(), conv(x).numpy(), rtol=1e-6, atol=1e-6)
    for got, conv in zip(fused_heads(x, convs, relu=True), convs):
        np.testing.assert_allclose(got.numpy(), F.relu(conv(x)).numpy(), rtol=1e-6, atol=1e-6)


def test_aux_head_passes_gradcheck_in_float64() -> None:
    mg.manual_seed(0)
    aux = InceptionAux(3, 4, width=1 / 64, dropout=0.0).double()
    x = mg.tensor(np.random.default_rng(4).standard_normal((2, 3, 14, 14)), requires_grad=True)
    assert gradcheck(lambda x, *ps: aux(x), [x, *aux.parameters()], mode="random", n_directions=4)


def test_state_dict_round_trip_gives_the_same_logits() -> None:
    mg.manual_seed(0)
    a = GoogLeNet(3, 1, stem="cifar", batch_norm=True, width=1 / 16).eval()
    mg.manual_seed(1)
    b = GoogLeNet(3, 1, stem="cifar", batch_norm=True, width=1 / 16).eval()
    x = images(2, 1, 32)
    with mg.no_grad():
        assert not np.allclose(a(x).numpy(), b(x).numpy())
        b.load_state_dict(a.state_dict())
        np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    assert isinstance(a.inception3a.branch4[0], nn.MaxPool2d)


def test_he_init_keeps_the_signal_alive_through_the_whole_network_without_batch_norm() -> None:
    mg.manual_seed(0)
    model = GoogLeNet(10, 3, stem="cifar", width=0.125).eval()
    conv = model.inception4a.branch2[1].conv  # 3x3 conv, fan in 12 * 9
    assert conv.bias is not None and not conv.bias.numpy().any()
    assert np.std(conv.weight.numpy()) == pytest.approx(np.sqrt(2 / (12 * 9)), rel=0.1)
    seen = {}
    model.inception5b.register_forward_hook(lambda m, i, o: seen.update(out=o.numpy()) and None)
    with mg.no_grad():
        model(images(8, 3, 32))
    # PyTorch's default conv init (gain 1/sqrt(3)) leaves an rms of ~1e-5 here
    assert 0.3 < np.sqrt((seen["out"] ** 2).mean()) < 30


def _conv_weights_over_bound(model: GoogLeNet) -> np.ndarray:
    """Every conv weight times sqrt(fan_in), pooled (PyTorch's default: U(-1, 1) then)."""
    parts = [
        m.weight.numpy().ravel() * np.sqrt(nn.init.fan_in(m.weight))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    return np.concatenate(parts).astype(np.float64)


@pytest.mark.parametrize("init", ["he", "pytorch", "trunc_normal"])
def test_init_schemes_follow_their_formulas(init: str) -> None:
    mg.manual_seed(0)
    model = GoogLeNet(10, 3, stem="cifar", batch_norm=True, width=0.25, init=init)
    assert model.init == init
    w = _conv_weights_over_bound(model)  # ~600 k samples
    if init == "he":  # N(0, 2 / fan_in)
        assert w.std() == pytest.approx(np.sqrt(2), rel=0.01)
    elif init == "pytorch":  # U(+-1 / sqrt(fan_in))
        assert w.std() == pytest.approx(1 / np.sqrt(3), rel=0.01) and np.abs(w).max() <= 1
    convs = [m.weight.numpy() for m in model.modules() if isinstance(m, nn.Conv2d)]
    if init == "trunc_normal":  # N(0, 0.01^2) on [-2, 2], for linear layers too
        raw = np.concatenate([c.ravel() for c in convs])
        assert raw.std() == pytest.approx(0.01, rel=0.01)
        assert model.fc.weight.numpy().std() == pytest.approx(0.01, rel=0.1)
    else:  # linear layers keep PyTorch's default, U(+-1 / sqrt(1024 * 0.25))
        assert np.abs(model.fc.weight.numpy()).max() <= 1 / 16
        assert model.fc.weight.numpy().std() == pytest.approx(1 / 16 / np.sqrt(3), rel=0.1)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all((b.weight.numpy() == 1).all() and not b.bias.numpy().any() for b in bns)


@pytest.mark.parametrize(("batch_norm", "scheme"), [(True, "pytorch"), (False, "he")])
def test_auto_init_is_pytorch_with_batch_norm_and_he_without(batch_norm: bool, scheme: str):
    assert resolve_init("auto", batch_norm) == scheme
    mg.manual_seed(3)
    auto = GoogLeNet(10, 1, stem="cifar", batch_norm=batch_norm, width=1 / 16)
    mg.manual_seed(3)
    same = GoogLeNet(10, 1, stem="cifar", batch_norm=batch_norm, width=1 / 16, init=scheme)
    assert auto.init == "auto"
    for (name, a), (_, b) in zip(auto.state_dict().items(), same.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize(("init", "scheme_draws"), [("auto", 0), ("he", 1), ("trunc_normal", 1)])
def test_each_weight_is_drawn_by_its_layer_and_again_only_where_the_scheme_differs(
    monkeypatch, init: str, scheme_draws: int
) -> None:
    # the blocks set no weights of their own, and GoogLeNet does not reset its new layers:
    # "auto" under batch norm is PyTorch's default, which the layers drew when built
    draws: dict[int, int] = {}

    def counting(fn):
        def draw(t, *args, **kwargs):
            draws[id(t)] = draws.get(id(t), 0) + 1
            return fn(t, *args, **kwargs)

        return draw

    for name in ("kaiming_uniform_", "kaiming_normal_", "trunc_normal_"):
        monkeypatch.setattr(nn.init, name, counting(getattr(nn.init, name)))
    model = GoogLeNet(10, 3, stem="cifar", batch_norm=True, width=1 / 16, init=init)
    convs = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert {draws[id(w)] for w in convs} == {1 + scheme_draws}
    assert draws[id(model.fc.weight)] == 1 + (init == "trunc_normal")


def test_init_weights_redraws_in_place_and_rejects_unknown_names() -> None:
    mg.manual_seed(0)
    block = Inception(16, 8, 8, 8, 4, 4, 4)  # built alone: its layers' PyTorch defaults
    conv = block.branch2[1].conv  # fan in 8 * 9
    assert np.abs(conv.weight.numpy()).max() <= 1 / np.sqrt(72)
    assert init_weights(block, "he") is block  # He convs, zero biases
    assert conv.weight.numpy().std() == pytest.approx(np.sqrt(2 / 72), rel=0.15)
    assert not conv.bias.numpy().any()
    assert init_weights(block, "pytorch") is block
    assert np.abs(conv.weight.numpy()).max() <= 1 / np.sqrt(72)
    assert np.abs(conv.bias.numpy()).max() > 0  # PyTorch's default bias, no longer zero
    init_weights(block, "he")
    assert not conv.bias.numpy().any()
    with pytest.raises(ValueError, match=r"GoogLeNet: init must be one of .* got 'xavier'"):
        GoogLeNet(10, init="xavier")
    with pytest.raises(ValueError, match=r"init_weights: scheme must be one of .* got 'auto'"):
        init_weights(block, "auto")


def test_pytorch_init_without_batch_norm_fades_the_signal_that_he_keeps() -> None:
    """Why ``auto`` is He without batch norm (the He counterpart is the test above)."""
    mg.manual_seed(0)
    model = GoogLeNet(10, 3, stem="cifar", width=0.125, init="pytorch").eval()
    seen = {}
    model.inception5b.register_forward_hook(lambda m, i, o: seen.update(out=o.numpy()) and None)
    with mg.no_grad():
        model(images(8, 3, 32))
    assert np.sqrt((seen["out"] ** 2).mean()) < 0.1  # He: > 0.3 (the test above)


def test_the_architecture_keys_are_one_list_that_flags_build_model_and_fit_share() -> None:
    parser = argparse.ArgumentParser()
    add_model_arguments(parser.add_argument_group("model"))
    flags = {a.dest for a in parser._actions} - {"help"}
    assert flags == {*MODEL_DEFAULTS, "recompute"}  # the flags are the defaults' keys
    assert set(ARCH_OPTIONS) <= set(MODEL_DEFAULTS) and set(ARCH_OPTIONS) <= set(ARCH_KEYS)
    assert set(ARCH_KEYS) <= set(inspect.signature(GoogLeNet).parameters)  # its keywords
    mg.manual_seed(0)
    model = GoogLeNet(7, 1, stem="imagenet", batch_norm=False, width=1 / 16, init="he")
    config = {k: getattr(model, k) for k in ARCH_KEYS}  # what fit records
    rebuilt = build_model(config)
    assert {k: getattr(rebuilt, k) for k in ARCH_KEYS} == config
    assert [n for n, _ in rebuilt.named_parameters()] == [n for n, _ in model.named_parameters()]
    old = build_model({"num_classes": 3, "width": 1 / 16})  # a run from before stem/variant
    assert (old.stem, old.batch_norm, old.variant, old.in_channels) == ("cifar", True, "paper", 3)
    assert isinstance(build_model({"num_classes": 3, "width": 1}).width, float)
