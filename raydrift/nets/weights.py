"""Encoder weights files: where they must be, how they load (``weights_only``), and the error that says
how to get them."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from raydrift.errors import UserError


class EncoderWeightsError(UserError, FileNotFoundError):
    """An encoder's weights file is missing, or could not be downloaded; the message says how to get it."""


def check_file(path: str, what: str, how: str) -> None:
    if not Path(path).expanduser().is_file():
        raise EncoderWeightsError(f"{what} weights file not found: {path!r}. {how}")


def torch_load(path: str, what: str, how: str):
    check_file(path, what, how)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.load(Path(path).expanduser(), map_location="cpu", weights_only=True)


def unwrap(state) -> dict[str, torch.Tensor]:
    """A plain state dict from common checkpoint layouts (``state_dict`` / ``model`` wrappers)."""
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_strict(net: nn.Module, state: dict[str, torch.Tensor], name: str, path: str) -> None:
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path or 'the downloaded file'} does not hold {name} weights: {err}") from err
