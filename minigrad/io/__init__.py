"""Weights in other frameworks' files: ``torch.save``'d state_dicts (read without PyTorch)
and safetensors (read and written).

    weights = mg.io.load_pth("googlenet-1378be20.pth")     # name -> np.ndarray
    model.load_state_dict(weights)
    mg.io.save_safetensors(model.state_dict(), "model.safetensors")
"""

from minigrad.io.pth import ALLOWED_GLOBALS, PthError, load_pth
from minigrad.io.tensors import WEIGHT_SUFFIXES, load_safetensors, load_weights, save_safetensors

__all__ = [
    "ALLOWED_GLOBALS",
    "PthError",
    "WEIGHT_SUFFIXES",
    "load_pth",
    "load_safetensors",
    "load_weights",
    "save_safetensors",
]
