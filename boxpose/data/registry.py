"""The dataset registry: ``data.name`` -> how to build that dataset from its config, and how it is scored.

A dataset module registers one function that reads its own keys of a data config for a split::

    @register_dataset("mpii", spec="mpii", metric="pckh", root_layout="annot/ ... and images/")
    def mpii_from_config(cfg, split, pipeline, **subset) -> MPIIDataset: ...

``subset`` holds the keyword arguments every :class:`~boxpose.data.base.TopDownDataset` takes
(``fraction``, ``fraction_seed``, ``max_failure_fraction``). :func:`boxpose.builders.build_dataset` does
the rest (checking the keys, generating synthetic data, building the pipeline with the run's codec), and
:func:`boxpose.builders.build_evaluator` scores the dataset with the metric named here
(:data:`boxpose.engine.metrics.METRICS`). Adding a dataset is one module and one registration; nothing
else branches on a dataset's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from boxpose.data.base import TopDownDataset

DatasetFromConfig = Callable[..., TopDownDataset]  # (cfg, split, pipeline, **subset) -> dataset


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset.

    Attributes:
        name: its ``data.name``.
        spec: the name of its keypoint layout (:data:`boxpose.keypoints.SPECS`).
        metric: the name of the metric that scores it (:data:`boxpose.engine.metrics.METRICS`).
        root_layout: what its root folder holds, for error messages.
        from_config: ``(cfg, split, pipeline, **subset) -> TopDownDataset``.
    """

    name: str
    spec: str
    metric: str
    root_layout: str
    from_config: DatasetFromConfig


DATASETS: dict[str, DatasetEntry] = {}


def register_dataset(
    name: str, *, spec: str, metric: str, root_layout: str
) -> Callable[[DatasetFromConfig], DatasetFromConfig]:
    """Decorator: register ``from_config`` as the builder of the dataset ``name``."""

    def decorator(from_config: DatasetFromConfig) -> DatasetFromConfig:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} is registered twice")
        DATASETS[name] = DatasetEntry(name, spec, metric, root_layout, from_config)
        return from_config

    return decorator


def get_dataset_entry(name: Any) -> DatasetEntry:
    """The registration of ``data.name``; a ValueError listing the known names otherwise."""
    if name not in DATASETS:
        raise ValueError(f"data.name must be one of {sorted(DATASETS)}, got {name!r}")
    return DATASETS[name]
