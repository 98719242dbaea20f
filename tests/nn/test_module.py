"""Module/Parameter: registration, dotted names, modes, devices, state_dict, containers, repr."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn


class Block(nn.Module):
    def __init__(self, c: int = 3) -> None:
        super().__init__()
        self.fc = nn.Linear(c, c, dtype="float64")
        self.scale = nn.Parameter(mg.ones(c, dtype="float64"))
        self.register_buffer("count", mg.zeros((), dtype="int64"))
        self.register_buffer("scratch", mg.zeros(c), persistent=False)

    def forward(self, x):
        return self.fc(x) * self.scale


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = Block()
        self.blocks = nn.ModuleList([Block(), Block()])
        self.heads = nn.ModuleDict({"a": nn.Linear(3, 2, dtype="float64")})
        self.act = nn.ReLU()

    def forward(self, x):
        x = self.stem(x)
        for b in self.blocks:
            x = self.act(b(x))
        return self.heads["a"](x)


def test_parameters_are_registered_with_dotted_names_in_order():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == [
        "stem.scale",
        "stem.fc.weight",
        "stem.fc.bias",
        "blocks.0.scale",
        "blocks.0.fc.weight",
        "blocks.0.fc.bias",
        "blocks.1.scale",
        "blocks.1.fc.weight",
        "blocks.1.fc.bias",
        "heads.a.weight",
        "heads.a.bias",
    ]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())
    assert net.num_parameters() == 3 * (3 + 9 + 3) + 6 + 2
    assert [n for n, _ in net.named_buffers()] == [
        "stem.count",
        "stem.scratch",
        "blocks.0.count",
        "blocks.0.scratch",
        "blocks.1.count",
        "blocks.1.scratch",
    ]
    assert [n for n, _ in net.named_children()] == ["stem", "blocks", "heads", "act"]
    assert [n for n, _ in net.named_modules()][:4] == ["", "stem", "stem.fc", "blocks"]
    assert len(list(net.modules())) == 11


def test_shared_parameters_and_modules_are_listed_once():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias"]
    assert seq.num_parameters() == 6
    assert len(list(seq.children())) == 2


def test_reassignment_and_deletion_keep_registries_consistent():
    m = Block()
    m.scale = None  # a registered parameter may become None
    assert "scale" not in dict(m.named_parameters())
    m.scale = nn.Parameter(mg.ones(3, dtype="float64"))
    assert "scale" in dict(m.named_parameters())
    del m.fc
    assert not any(n.startswith("fc.") for n, _ in m.named_parameters())
    m.count = mg.ones((), dtype="int64")  # assigning a Tensor to a buffer name updates it
    assert m.state_dict()["count"] == 1
    m.plain = mg.zeros(2)  # an unregistered tensor attribute is not a buffer
    assert "plain" not in dict(m.named_buffers())


def test_assignment_errors():
    m = Block()
    with pytest.raises(TypeError, match="cannot assign Tensor as parameter 'scale'"):
        m.scale = mg.ones(3)
    with pytest.raises(TypeError, match="cannot assign int as child module 'fc'"):
        m.fc = 3
    with pytest.raises(TypeError, match="buffer 'count'"):
        m.count = np.zeros(())

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(mg.ones(1))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Early()
    with pytest.raises(ValueError, match="register_buffer: name must be"):
        m.register_buffer("a.b", mg.zeros(1))
    with pytest.raises(TypeError, match="register_parameter: 'w' must be a Parameter"):
        m.register_parameter("w", mg.zeros(1))
    with pytest.raises(ValueError, match="'forward' is already a class attribute"):
        m.register_buffer("forward", mg.zeros(1))


def test_train_eval_propagate_to_every_descendant():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.blocks.train()
    assert net.blocks[1].fc.training and not net.training and not net.stem.training
    with pytest.raises(TypeError, match="train: mode must be a bool"):
        net.train("no")


def test_zero_grad_and_requires_grad():
    net = Net()
    x = mg.randn(4, 3, dtype="float64")
    net(x).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.requires_grad_(False)
    assert net.num_parameters(trainable_only=True) == 0


def test_state_dict_has_host_copies_of_params_and_persistent_buffers():
    net = Net()
    sd = net.state_dict()
    assert list(sd)[:4] == ["stem.scale", "stem.count", "stem.fc.weight", "stem.fc.bias"]
    assert "stem.scratch" not in sd
    assert all(type(v) is np.ndarray for v in sd.values())
    sd["stem.scale"][:] = 7.0
    assert float(net.stem.scale.data[0]) == 1.0  # a copy, not a view


def test_state_dict_round_trip_reproduces_the_outputs(device):
    mg.manual_seed(1)
    a = Net().to(device)
    mg.manual_seed(2)
    b = Net().to(device)
    x = mg.randn(5, 3, dtype="float64", device=device)
    assert not np.allclose(a(x).numpy(), b(x).numpy())
    weight = b.stem.fc.weight
    result = b.load_state_dict(a.state_dict())
    assert result == nn.LoadResult([], [], [])
    assert b.stem.fc.weight is weight  # loaded in place
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(v, b.state_dict()[k])


def test_load_state_dict_names_every_bad_key_in_one_error():
    net = Net()
    sd = net.state_dict()
    del sd["stem.fc.bias"], sd["blocks.1.count"]
    sd["extra.weight"] = np.zeros(2)
    sd["heads.a.weight"] = np.zeros((5, 3))
    before = net.stem.scale.numpy()
    sd["stem.scale"] = np.full(3, 9.0)
    with pytest.raises(ValueError) as err:
        net.load_state_dict(sd)
    msg = str(err.value)
    assert msg == (
        "load_state_dict for Net failed: 2 missing, 1 unexpected, 1 with the wrong shape\n"
        "  missing keys (2):\n"
        "    stem.* (1): fc.bias\n"
        "    blocks.* (1): 1.count\n"
        "  unexpected keys (1):\n"
        "    extra.* (1): weight\n"
        "  wrong shapes (1):\n"
        "    heads.a.weight: checkpoint (5, 3) vs model (2, 3)"
    )
    np.testing.assert_array_equal(net.stem.scale.numpy(), before)  # nothing was loaded

    res = net.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["stem.fc.bias", "blocks.1.count"]
    assert res.unexpected_keys == ["extra.weight"]
    assert res.mismatched_keys == ["heads.a.weight"]
    np.testing.assert_array_equal(net.stem.scale.numpy(), np.full(3, 9.0))
    with pytest.raises(TypeError, match="load_state_dict: expected a dict"):
        net.load_state_dict([1, 2])


def test_load_state_dict_groups_many_keys_by_prefix_and_spots_a_wrapper_prefix():
    net = Net()
    sd = {f"module.{k}": v for k, v in net.state_dict().items()}
    with pytest.raises(ValueError) as err:
        net.load_state_dict(sd)
    msg = str(err.value)
    n = len(sd)
    assert msg.startswith(f"load_state_dict for Net failed: {n} missing, {n} unexpected\n")
    assert f"    module.* ({n}): stem.scale, stem.count, " in msg
    assert "hint: every checkpoint key has the extra prefix 'module.'" in msg
    lines = msg.splitlines()
    assert len(lines) < 12  # one line per prefix, not one per key


def test_load_state_dict_casts_to_the_model_dtype():
    lin = nn.Linear(2, 2)  # float32
    lin.load_state_dict({"weight": np.ones((2, 2)), "bias": [1.0, 2.0]})
    assert lin.weight.dtype == np.float32 and lin.bias.numpy().tolist() == [1.0, 2.0]


def test_to_keeps_parameter_identity_and_casts_float_tensors(device):
    net = Block()
    params = list(net.parameters())
    assert net.to(device) is net
    assert all(a is b for a, b in zip(params, net.parameters()))
    assert all(p.device == device for p in net.parameters())
    assert all(b.device == device for b in net.buffers())
    net.to("float32")
    assert all(p.dtype == np.float32 for p in net.parameters())
    assert net.count.dtype == np.int64  # integer buffers keep their dtype
    net.double()
    assert net.fc.weight.dtype == np.float64
    with pytest.raises(ValueError, match="Module.to: 'gpu' is neither a device"):
        net.to("gpu")
    with pytest.raises(TypeError, match="Module.to: dtype must be floating point"):
        net.to(dtype="int32")


def test_sequential_indexing_slicing_and_forward():
    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert isinstance(seq[-1], nn.Linear) and seq[-1].out_features == 2
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[0] is seq[0]
    x = mg.randn(5, 3)
    np.testing.assert_allclose(seq(x).numpy(), seq[2](seq[1](seq[0](x))).numpy())
    named = nn.Sequential(OrderedDict(conv=nn.Identity(), fc=nn.Linear(3, 1)))
    assert [n for n, _ in named.named_parameters()] == ["fc.weight", "fc.bias"]
    assert len(seq.append(nn.ReLU())) == 4
    with pytest.raises(IndexError, match="Sequential: index 4 out of range for length 4"):
        seq[4]
    with pytest.raises(TypeError, match="Sequential: item 1 is int"):
        nn.Sequential(nn.ReLU(), 3)


def test_module_list_and_dict():
    ml = nn.ModuleList([nn.ReLU()])
    ml.append(nn.Linear(1, 1)).extend([nn.Identity()])
    assert len(ml) == 3 and isinstance(ml[1], nn.Linear)
    ml[0] = nn.Linear(2, 2)
    assert [n for n, _ in ml.named_parameters()][:2] == ["0.weight", "0.bias"]
    with pytest.raises(TypeError, match="ModuleList: expected Modules, got int"):
        ml.extend([1])
    md = nn.ModuleDict({"a": nn.ReLU()})
    md["b"] = nn.Linear(1, 1)
    assert list(md) == ["a", "b"] and "b" in md and len(md) == 2
    del md["a"]
    assert list(md.keys()) == ["b"]
    with pytest.raises(KeyError, match="ModuleDict: no module 'z'"):
        md["z"]


def test_repr_matches_pytorch_layout():
    seq = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU(), nn.Linear(4, 2))
    assert repr(seq) == (
        "Sequential(\n"
        "  (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)\n"
        "  (1): ReLU()\n"
        "  (2): Linear(in_features=4, out_features=2, bias=True)\n"
        ")"
    )
    assert repr(nn.Parameter(mg.zeros(1))).startswith("Parameter containing:\ntensor(")


def test_apply_visits_children_first():
    net = Net()
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and seen[0] == "Linear"


def test_parameter_shares_the_tensor_data():
    t = mg.ones(3)
    p = nn.Parameter(t)
    assert p.data is t.data and p.requires_grad and p.is_leaf
    assert not nn.Parameter(t, requires_grad=False).requires_grad
