"""``Optimizer``: parameter groups, per-parameter state, and state_dict round trips.

Subclasses write ``_update(p, grad, state, group)`` for one parameter; ``step()`` loops over
the groups and the parameters that have a gradient. Updates work in place on ``p.data``
(so a model and its optimizer keep sharing arrays) and keep the parameter's dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from minigrad import backend, devices
from minigrad.functional._threads import for_items
from minigrad.tensor import Tensor

__all__ = ["Optimizer"]


class Optimizer:
    """Base class: holds ``param_groups`` (list of dicts with ``"params"`` and hyper-parameters)
    and ``state`` (per-parameter dict, e.g. momentum buffers).

    Args:
        params: an iterable of parameters, or of dicts ``{"params": [...], "lr": ...}`` (param
            groups; keys they leave out take the optimizer's defaults).
        defaults: the hyper-parameters of this optimizer.
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[int, dict[str, Any]] = {}  # keyed by id(param)
        groups = list(params) if not isinstance(params, Tensor) else [params]
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyper-parameters."""
        name = type(self).__name__
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{name}: a param group must be a dict with a 'params' key")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: parameter {i} is a {type(p).__name__}, not a Tensor")
            if not p.is_leaf or p.dtype.kind != "f":
                raise ValueError(
                    f"{name}: parameter {i} (shape {p.shape}, dtype {p.dtype}) must be a "
                    "floating-point leaf tensor"
                )
            if id(p) in seen:
                raise ValueError(f"{name}: parameter {i} (shape {p.shape}) appears twice")
            seen.add(id(p))
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise ValueError(f"{name}: unknown hyper-parameter(s) {sorted(unknown)} in param group")
        full = {**self.defaults, **group, "params": params}
        self._check_hparams(full)
        self.param_groups.append(full)

    def _check_hparams(self, group: dict[str, Any]) -> None:
        """Every hyper-parameter is a finite number (a tuple, e.g. betas, of finite numbers;
        flags are bools); subclasses add their ranges after calling this."""
        name = type(self).__name__
        for key, value in group.items():
            if key == "params":
                continue
            for v in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(v, bool):
                    continue
                if not hasattr(v, "__float__"):  # a str like "0.1" is not a number here
                    raise TypeError(
                        f"{name}: {key} must be a number, got {type(v).__name__} {value!r}"
                    )
                finite = math.isfinite(float(v))
                if not finite:
                    raise ValueError(f"{name}: {key} must be a finite number, got {value}")
        lr = group.get("lr")
        if lr is None or not lr >= 0:
            raise ValueError(f"{type(self).__name__}: lr must be >= 0, got {lr}")
        if group.get("weight_decay", 0) < 0:
            raise ValueError(
                f"{type(self).__name__}: weight_decay must be >= 0, got {group['weight_decay']}"
            )

    def zero_grad(self) -> None:
        """Set every parameter's ``.grad`` to None."""
        for g in self.param_groups:
            for p in g["params"]:
                p.grad = None

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; return ``closure()`` if given."""
        loss = closure() if closure is not None else None
        work = [
            (p, self.state.setdefault(id(p), {}), group)
            for group in self.param_groups
            for p in group["params"]
            if p.grad is not None
        ]

        def update(items: slice) -> None:  # each parameter's update is its own arrays'
            for p, state, group in work[items]:
                with devices.device_context(p.device):  # state and temporaries live there
                    self._update(p, p.grad, state, group)

        if work:  # on the host threads, in runs of parameters of about equal size
            for_items(update, [p.data.size for p, _, _ in work], work[0][0].data)
        return loss

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError  # pragma: no cover

    # ------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {name: host array | number}}, "param_groups": [...],
        "optimizer": "SGD"}``.

        Parameters are referred to by their index across the groups, as in PyTorch, so the
        dict is valid for any optimizer of the same class built over the same parameters in
        the same order. ``"optimizer"`` (the class name) is minigrad's addition: another
        class's :meth:`load_state_dict` refuses the dict.
        """
        index = {}
        groups = []
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ids})
        state = {}
        for pid, s in self.state.items():
            if pid in index and s:
                state[index[pid]] = {
                    k: backend.as_numpy(v).copy() if hasattr(v, "shape") else v
                    for k, v in s.items()
                }
        return {"state": state, "param_groups": groups, "optimizer": type(self).__name__}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (arrays go to each parameter's device).

        Raises:
            ValueError: when the dict is another optimizer class's (Adam's given to SGD), or
                the number of groups, the group sizes, or a state array's shape do not
                match this optimizer's parameters.
        """
        name = type(self).__name__
        try:
            groups, state = state_dict["param_groups"], state_dict["state"]
        except (KeyError, TypeError):
            raise ValueError(
                f"{name}.load_state_dict: expected a dict with 'state' and 'param_groups'"
            ) from None
        self._check_same_class(state_dict, groups)
        if len(groups) != len(self.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: {len(groups)} param group(s) in the state dict, "
                f"{len(self.param_groups)} in the optimizer"
            )
        for i, (saved, own) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: group {i} has {len(saved['params'])} parameters "
                    f"in the state dict, {len(own['params'])} in the optimizer"
                )
        by_index = {}
        for saved, own in zip(groups, self.param_groups):
            for idx, p in zip(saved["params"], own["params"]):
                by_index[int(idx)] = p
        new_state: dict[int, dict[str, Any]] = {}
        for idx, s in state.items():
            p = by_index.get(int(idx))
            if p is None:
                raise ValueError(f"{name}.load_state_dict: state for unknown parameter {idx}")
            entry = {}
            for k, v in s.items():
                if hasattr(v, "shape") and tuple(v.shape) != ():
                    if tuple(v.shape) != p.shape:
                        raise ValueError(
                            f"{name}.load_state_dict: state {k!r} of parameter {idx} has shape "
                            f"{tuple(v.shape)}, parameter has {p.shape}"
                        )
                    xp = backend.get_array_module(p.data)
                    with devices.device_context(p.device):
                        v = xp.array(devices.to_device(v, p.device), dtype=p.dtype)
                elif hasattr(v, "shape"):
                    v = v.item()  # a 0-d array or NumPy scalar: back to a Python number
                entry[k] = v
            new_state[id(p)] = entry
        for saved, own in zip(groups, self.param_groups):
            own.update({k: v for k, v in saved.items() if k != "params"})
        self.state = new_state

    def _check_same_class(self, state_dict: dict[str, Any], groups: list[Any]) -> None:
        """Refuse another optimizer class's state: its hyper-parameters (Adam's lr 0.001)
        would silently replace this one's. A dict from before the ``"optimizer"`` entry
        is told apart by hyper-parameters this class does not have."""
        name = type(self).__name__
        other = state_dict.get("optimizer")
        if other is None:
            foreign = {k for g in groups if isinstance(g, dict) for k in g}
            foreign -= {*self.defaults, "params", "initial_lr"}
            if not foreign:
                return
            whose = f"another optimizer's (it has hyper-parameter(s) {sorted(foreign)})"
        elif other != name:
            whose = f"{other}'s"
        else:
            return
        raise ValueError(
            f"{name}.load_state_dict: the state dict is {whose}, not {name}'s; load it into "
            f"the optimizer that saved it (or build a fresh {name})"
        )

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines + [")"])
