"""Datasets, the top-down sample pipeline, data loaders, the dataset registry and the synthetic pose data
generator.

Public entry points::

    MPIIDataset(ann_file, image_dir, pipeline, gt_mat=...)      # HRNet-layout MPII
    COCODataset(ann_file, image_dir, pipeline, det_file=...)    # COCO 2017 person keypoints
    TopDownPipeline(spec, codec, augment, color_rgb)            # image + person -> sample
    DATASETS["mpii"].from_config(cfg, split, pipeline)          # the registry (boxpose.builders uses it)
    build_dataloader(dataset, batch_size, train, ...)           # DataLoader with an epoch-seeded sampler
    ensure_synthetic(kind, root, params)                        # synthetic MPII/COCO-format data on disk
"""

from boxpose.data.base import AnnotationError, ImageReadError, PersonRecord, TopDownDataset
from boxpose.data.coco import COCODataset
from boxpose.data.loader import EpochSampler, build_dataloader, worker_init_fn
from boxpose.data.mpii import MPIIDataset
from boxpose.data.pipeline import AugmentConfig, TopDownPipeline, denormalize_image, normalize_image
from boxpose.data.registry import DATASETS, DatasetEntry, get_dataset_entry, register_dataset
from boxpose.data.synthetic import SyntheticParams, ensure_synthetic

__all__ = [
    "DATASETS",
    "AnnotationError",
    "AugmentConfig",
    "COCODataset",
    "DatasetEntry",
    "EpochSampler",
    "ImageReadError",
    "MPIIDataset",
    "PersonRecord",
    "SyntheticParams",
    "TopDownDataset",
    "TopDownPipeline",
    "build_dataloader",
    "denormalize_image",
    "ensure_synthetic",
    "get_dataset_entry",
    "normalize_image",
    "register_dataset",
    "worker_init_fn",
]
