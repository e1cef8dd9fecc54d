"""Composing boxpose's Hydra configs from Python (the demo, the scripts, the tests)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra import compose, initialize_config_module
from omegaconf import OmegaConf


def compose_config(name: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """``configs/<name>.yaml`` (``train``, ``evaluate``, ...) with Hydra ``overrides``, resolved to plain
    dicts and lists: what the matching command line (``boxpose-train <overrides>``) would run with."""
    with initialize_config_module("boxpose._configs", version_base=None):
        return OmegaConf.to_container(compose(name, overrides=list(overrides)), resolve=True)
