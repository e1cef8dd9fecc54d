"""The model registry: small factory functions registered by name (timm style).

Contract of every registered model
----------------------------------
``build_model(name, num_joints, **kwargs)`` returns an ``nn.Module`` mapping images to heatmaps:

- eval mode: ``(N, 3, H, W) -> (N, J, H / 4, W / 4)``, J = ``num_joints``, for any H and W divisible by
  the model's ``size_divisor`` attribute (4 for the BoxNet family, 32 for SimpleBaseline, 64 for the
  stacked hourglass);
- training mode: the same tensor, except for models with intermediate supervision (``hourglass8``),
  which return a list with one ``(N, J, H / 4, W / 4)`` tensor per stack, the last being the final
  prediction. The trainer sums the loss over the list;
- every model works with channels-last inputs, under ``torch.autocast`` (bf16 / fp16) and with
  ``torch.compile``; each also has an ``output_stride`` attribute (4).

Factories take plain keyword arguments only (no config objects); ``configs/model/<name>.yaml`` lists
them, and code calls ``build_model(num_joints=..., **model_cfg)`` with the YAML's ``name`` and kwargs.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import TypeVar

from torch import nn

ModelFactory = TypeVar("ModelFactory", bound=Callable[..., nn.Module])

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(factory: ModelFactory) -> ModelFactory:
    """Register ``factory`` under its function name (decorator)."""
    name = factory.__name__
    if name in _MODELS:
        raise ValueError(f"a model named {name!r} is already registered")
    _MODELS[name] = factory
    return factory


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the registered models matching the shell-style ``pattern`` (e.g. ``"boxnet*"``)."""
    return sorted(name for name in _MODELS if fnmatch.fnmatchcase(name, pattern))


def is_model(name: str) -> bool:
    """Whether ``name`` is a registered model."""
    return name in _MODELS


def build_model(name: str, num_joints: int, **kwargs) -> nn.Module:
    """Build the registered model ``name`` with ``num_joints`` heatmaps (see the module docstring).

    Raises:
        KeyError: ``name`` is not registered (the message lists the registered names).
        TypeError: a keyword argument the factory does not take.
    """
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    if isinstance(num_joints, bool) or not isinstance(num_joints, int) or num_joints < 1:
        raise ValueError(f"num_joints must be a positive integer, got {num_joints!r}")
    return _MODELS[name](num_joints=num_joints, **kwargs)
