"""Datasets, the top-down sample pipeline, data loaders and the synthetic pose data generator.

Public entry points::

    build_dataset(cfg, split, train) -> TopDownDataset      # from a configs/data/*.yaml mapping
    build_dataloader(dataset, batch_size, train, ...)       # DataLoader with an epoch-seeded sampler
    MPIIDataset(ann_file, image_dir, gt_mat=..., ...)       # HRNet-layout MPII
    COCODataset(ann_file, image_dir, det_file=..., ...)     # COCO 2017 person keypoints
    ensure_synthetic(kind, root, params)                    # synthetic MPII/COCO-format data on disk
"""

from boxpose.data.base import AnnotationError, ImageReadError, PersonRecord, TopDownDataset
from boxpose.data.coco import COCODataset
from boxpose.data.loader import EpochSampler, build_dataloader, build_dataset, worker_init_fn
from boxpose.data.mpii import MPIIDataset
from boxpose.data.pipeline import AugmentConfig, TopDownPipeline, denormalize_image, normalize_image
from boxpose.data.synthetic import SyntheticParams, ensure_synthetic

__all__ = [
    "AnnotationError",
    "AugmentConfig",
    "COCODataset",
    "EpochSampler",
    "ImageReadError",
    "MPIIDataset",
    "PersonRecord",
    "SyntheticParams",
    "TopDownDataset",
    "TopDownPipeline",
    "build_dataloader",
    "build_dataset",
    "denormalize_image",
    "ensure_synthetic",
    "normalize_image",
    "worker_init_fn",
]
