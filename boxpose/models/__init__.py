"""Pose models (BoxNet, SimpleBaseline, stacked hourglass) behind a name registry, and their counters.

>>> from boxpose.models import build_model, count_macs, count_parameters, list_models
>>> model = build_model("boxnet", num_joints=17)
>>> count_parameters(model), round(count_macs(model, (192, 256)).giga, 2)
(1857953, 5.69)

See :mod:`boxpose.models._registry` for the contract every registered model keeps and
:mod:`boxpose.models.counting` for the MAC convention of the paper's tables.
"""

from boxpose.models import boxnet, hourglass, simple_baseline  # noqa: F401  (registers the factories)
from boxpose.models._registry import build_model, is_model, list_models, register_model
from boxpose.models.counting import count_macs, count_parameters, summarize
from boxpose.models.inference import prepare_for_inference

__all__ = [
    "build_model",
    "count_macs",
    "count_parameters",
    "is_model",
    "list_models",
    "prepare_for_inference",
    "register_model",
    "summarize",
]
