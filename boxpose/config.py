"""Composing boxpose's Hydra configs from Python, and checking every value before work starts.

The YAML files under ``configs/`` stay plain (so every existing command line keeps working); after Hydra
has composed and resolved them, :func:`validate_train_config` / :func:`validate_evaluate_config` check
each value against the table below (its type and range) and raise a :class:`ConfigError` whose one-line
message names the key, the value and what is expected::

    trainer.batch_size=abc: expected an integer >= 1

The command-line entry points print that line and exit with status 2 (as argparse does), without a
Python traceback. Keys missing from a config are not checked here (the code that reads them says so).
"""

from __future__ import annotations

import inspect
import itertools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from boxpose.data import DATASETS

# The network's output is a quarter of its input in every boxpose model (``output_stride``).
OUTPUT_STRIDE = 4


class ConfigError(ValueError):
    """A configuration value has the wrong type or is out of range (a user error: exit status 2)."""


def compose_config(name: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """``configs/<name>.yaml`` (``train``, ``evaluate``, ...) with Hydra ``overrides``, resolved to plain
    dicts and lists: what the matching command line (``boxpose-train <overrides>``) would run with."""
    with initialize_config_module("boxpose._configs", version_base=None):
        return to_plain(compose(name, overrides=list(overrides)))


def to_plain(cfg: Any) -> dict[str, Any]:
    """The resolved plain dict of a composed config; a missing mandatory value (``???``, e.g. ``data.root``)
    or a broken interpolation becomes a one-line :class:`ConfigError` naming the key."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        message = str(exc).splitlines()[0]
        missing = re.search(r"Missing mandatory value: ?([\w.]+)", message)
        if missing:
            key = missing.group(1)
        if missing or "Missing mandatory value" in message:
            raise ConfigError(f"{key} is not set: pass {key}=... on the command line") from None
        raise ConfigError(f"{key}: {message}") from None


# ---------------------------------------------------------------------------------------------------
# value checks: each returns None when the value is fine, else what is expected


Check = Callable[[Any], str | None]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)) and math.isfinite(value)


def integer(minimum: int | None = None) -> Check:
    text = "an integer" + (f" >= {minimum}" if minimum is not None else "")
    return lambda v: None if _is_int(v) and (minimum is None or v >= minimum) else text


def number(low: float | None = None, high: float | None = None, low_open: bool = False,
           high_open: bool = False) -> Check:  # fmt: skip
    """A finite number in the given (open or closed) bounds."""
    if low is not None and high is not None:
        text = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        text = f"a number {'>' if low_open else '>='} {low:g}"
    else:
        text = "a finite number"

    def check(v: Any) -> str | None:
        if not _is_number(v):
            return text
        if low is not None and (v <= low if low_open else v < low):
            return text
        if high is not None and (v >= high if high_open else v > high):
            return text
        return None

    return check


def boolean() -> Check:
    return lambda v: None if isinstance(v, bool) else "true or false"


def boolean_or_auto() -> Check:
    return lambda v: None if isinstance(v, bool) or v == "auto" else "true, false or auto"


def choice(*options: str) -> Check:
    return lambda v: None if v in options else f"one of {' | '.join(options)}"


def text() -> Check:
    return lambda v: None if isinstance(v, str) and v != "" else "a non-empty string"


def optional(check: Check) -> Check:
    def inner(v: Any) -> str | None:
        if v is None:
            return None
        problem = check(v)
        return None if problem is None else f"null or {problem}"

    return inner


def pair(element: Check, what: str) -> Check:
    def check(v: Any) -> str | None:
        ok = isinstance(v, list | tuple) and len(v) == 2 and all(element(x) is None for x in v)
        return None if ok else what

    return check


def list_of(element: Check, what: str) -> Check:
    def check(v: Any) -> str | None:
        ok = isinstance(v, list | tuple) and all(element(x) is None for x in v)
        return None if ok else what

    return check


def _milestones(v: Any) -> str | None:
    ok = isinstance(v, list | tuple) and all(_is_int(x) and x >= 0 for x in v)
    ok = ok and all(a < b for a, b in itertools.pairwise(v))
    return None if ok else "a list of increasing integers >= 0 (epochs)"


_FRACTION = number(0.0, 1.0, low_open=True)  # (0, 1]
_PROBABILITY = number(0.0, 1.0)  # [0, 1]
_SIZE = pair(integer(1), "[width, height], two integers >= 1")

TRAINER_RULES: dict[str, Check] = {
    "seed": integer(0),
    "trainer.epochs": integer(1),
    "trainer.batch_size": integer(1),
    "trainer.workers": integer(0),
    "trainer.device": choice("auto", "cpu", "cuda"),
    "trainer.amp": choice("none", "bf16", "fp16"),
    "trainer.channels_last": boolean_or_auto(),
    "trainer.compile": boolean(),
    "trainer.grad_clip": optional(number(0.0, low_open=True)),
    "trainer.sync_bn": boolean(),
    "trainer.val_every": integer(1),
    "trainer.log_every": integer(1),
    "trainer.image_every": integer(0),
    "trainer.box_figure_every": integer(0),
    "trainer.max_steps_per_epoch": optional(integer(1)),
    "trainer.checkpoint_every": integer(0),
    "trainer.resume": optional(text()),
    "trainer.resume_allow_changes": list_of(text(), "a list of config keys, e.g. [optim.lr]"),
    "trainer.progress": boolean(),
    "optim.name": choice("adam", "adamw", "sgd"),
    "optim.lr": number(0.0, low_open=True),
    "optim.weight_decay": number(0.0),
    "optim.betas": pair(number(0.0, 1.0, high_open=True), "two numbers in [0, 1), e.g. [0.9, 0.999]"),
    "optim.momentum": number(0.0, 1.0, high_open=True),
    "optim.nesterov": boolean(),
    "schedule.epochs": integer(1),
    "schedule.milestones": _milestones,
    "schedule.gamma": number(0.0, low_open=True),
    "schedule.warmup_iters": integer(0),
}

DATA_RULES: dict[str, Check] = {
    "data.name": choice(*sorted(DATASETS)),
    "data.input_size": _SIZE,
    "data.heatmap_size": _SIZE,
    "data.sigma": number(0.0, low_open=True),
    "data.color_rgb": boolean(),
    "data.train_fraction": _FRACTION,
    "data.train_fraction_seed": integer(0),
    "data.max_failure_fraction": _PROBABILITY,
    "data.det_score_thr": number(),
    "data.augment.flip": boolean(),
    "data.augment.flip_prob": _PROBABILITY,
    "data.augment.scale_factor": number(0.0),
    "data.augment.rotation_factor": number(0.0),
    "data.augment.rotation_dist": choice("normal", "uniform"),
    "data.augment.rotation_prob": _PROBABILITY,
    "data.augment.half_body_prob": _PROBABILITY,
    "data.augment.half_body_min_joints": integer(0),
    "data.augment.half_body_padding": number(0.0, low_open=True),
    "data.augment.color_jitter": number(0.0),
}

EVALUATE_RULES: dict[str, Check] = {
    "evaluate.split": choice("val", "test"),
    "evaluate.flip_test": boolean(),
    "evaluate.flip_shift": integer(0),
    "evaluate.decode": choice("quarter", "dark", "argmax"),
    "evaluate.batch_size": integer(1),
    "evaluate.workers": integer(0),
    "evaluate.nms": choice("oks", "soft", "none"),
    "evaluate.oks_thr": _FRACTION,
    "evaluate.in_vis_thr": _PROBABILITY,
    "evaluate.oracle": boolean(),
}

EVALUATE_TOP_RULES: dict[str, Check] = {
    "checkpoint": optional(text()),
    "output_dir": optional(text()),
    "device": choice("auto", "cpu", "cuda"),
    "amp": choice("none", "bf16", "fp16"),
    "channels_last": boolean(),
    "prepare": boolean(),
    "op_impl": optional(choice("auto", "cpu", "cuda", "reference")),
}

# Model keyword arguments (checked when the model's factory takes them).
MODEL_RULES: dict[str, Check] = {
    "model.width": integer(1),
    "model.depthwise": choice("box", "conv3x3", "dilated"),
    "model.boxes_per_channel": integer(1),
    "model.split": choice("none", "h2", "v2", "q4"),
    "model.post_residual": boolean(),
    "model.pretrained": optional(text()),
}

_MISSING = object()


def _lookup(cfg: Mapping[str, Any], key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _show(value: Any) -> str:
    """The value as the user would type it on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return str(value)


def check_rules(cfg: Mapping[str, Any], rules: Mapping[str, Check]) -> None:
    """Raise :class:`ConfigError` for the first key of ``rules`` present in ``cfg`` whose value fails."""
    for key, check in rules.items():
        value = _lookup(cfg, key)
        if value is _MISSING:
            continue
        problem = check(value)
        if problem is not None:
            raise ConfigError(f"{key}={_show(value)}: expected {problem}")


def check_data_sizes(data: Mapping[str, Any], size_divisor: int = OUTPUT_STRIDE) -> None:
    """``data.input_size`` must be divisible by ``size_divisor`` (the model's) and ``data.heatmap_size``
    must be a quarter of it (every boxpose model outputs heatmaps at stride 4)."""
    input_size, heatmap_size = list(data["input_size"]), list(data["heatmap_size"])
    if any(s % size_divisor for s in input_size):
        raise ConfigError(
            f"data.input_size={_show(input_size)}: expected a width and height divisible by {size_divisor} "
            f"(what the model needs)"
        )
    expected = [s // OUTPUT_STRIDE for s in input_size]
    if heatmap_size != expected:
        raise ConfigError(
            f"data.heatmap_size={_show(heatmap_size)}: expected data.input_size / {OUTPUT_STRIDE} = "
            f"{_show(expected)} (data.input_size={_show(input_size)}; heatmaps have stride {OUTPUT_STRIDE})"
        )


def check_model(model: Mapping[str, Any]) -> None:
    """``model.name`` is a registered model and every other key is an argument its factory takes."""
    from boxpose.models import is_model, list_models
    from boxpose.models._registry import _MODELS

    name = model.get("name")
    if not isinstance(name, str) or not is_model(name):
        raise ConfigError(f"model.name={_show(name)}: expected one of {' | '.join(list_models())}")
    parameters = inspect.signature(_MODELS[name]).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for key in model:
        if key != "name" and not takes_any and key not in parameters:
            accepted = sorted(k for k in parameters if k != "num_joints")
            raise ConfigError(f"model.{key}: {name} takes no such argument (it takes {accepted})")
    check_rules({"model": model}, MODEL_RULES)


def validate_train_config(cfg: Mapping[str, Any]) -> None:
    """Every value of a resolved ``configs/train.yaml`` that training reads: types, ranges, the model's
    arguments and heatmap = input / 4. (The batch size's divisibility by the number of processes and the
    input size's by the model's ``size_divisor`` are checked where those are known.)"""
    check_rules(cfg, TRAINER_RULES)
    check_rules(cfg, DATA_RULES)
    check_rules(cfg, EVALUATE_RULES)
    check_model(cfg["model"])
    check_data_sizes(cfg["data"])


EXPORT_RULES: dict[str, Check] = {
    "checkpoint": text(),
    "format": choice("onnx", "torchscript"),
    "output": optional(text()),
    "dynamic_batch": boolean(),
    "verify": boolean(),
    "prepare": boolean(),
    "tolerance": number(0.0, low_open=True),
}

INFO_RULES: dict[str, Check] = {
    "input_size": pair(integer(1), "[width, height], two integers >= 1"),
    "num_joints": integer(1),
    "convention": choice("hrnet", "exact"),
}


def validate_export_config(cfg: Mapping[str, Any]) -> None:
    """Every value of a resolved ``configs/export.yaml``."""
    if cfg.get("checkpoint") in (None, "???"):
        raise ConfigError("checkpoint is not set: pass checkpoint=<run>/best.pt")
    check_rules(cfg, EXPORT_RULES)


def validate_info_config(cfg: Mapping[str, Any]) -> None:
    """Every value of a resolved ``configs/info.yaml`` (the model's arguments included)."""
    check_rules(cfg, INFO_RULES)
    check_model(cfg["model"])


def validate_evaluate_config(cfg: Mapping[str, Any]) -> None:
    """Every value of a resolved ``configs/evaluate.yaml`` (the data block only when one is given)."""
    check_rules(cfg, EVALUATE_TOP_RULES)
    check_rules(cfg, EVALUATE_RULES)
    if cfg.get("data"):
        check_rules(cfg, DATA_RULES)
        check_data_sizes(cfg["data"])
