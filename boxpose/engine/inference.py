"""Inference: batched heatmap prediction with flip test, decoding, and mapping back to image pixels.

Flip test (SimpleBaseline/HRNet): the network also sees the horizontally mirrored crop; its heatmaps
are mirrored back, the left/right joint channels swapped and shifted ``flip_shift`` heatmap pixels
(the reference's misalignment fix, 1 by default), then averaged with the plain heatmaps
(:func:`boxpose.codec.heatmap.merge_flip`). Decoding and back-projection are the codec's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from boxpose.codec.heatmap import HeatmapCodec, merge_flip

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, amp: str):
    """Autocast context for ``amp`` in {"none", "bf16", "fp16"}."""
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {sorted(AMP_DTYPES)}, got {amp!r}")
    if AMP_DTYPES[amp] is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


def final_heatmaps(output: Tensor | Sequence[Tensor]) -> Tensor:
    """The last stack's heatmaps of a model output (a tensor, or a list under intermediate supervision)."""
    return output[-1] if isinstance(output, list | tuple) else output


@torch.no_grad()
def predict_heatmaps(
    model: nn.Module,
    images: Tensor,
    flip_pairs: Sequence[Sequence[int]],
    flip_test: bool = True,
    flip_shift: int = 1,
) -> Tensor:
    """Heatmaps of a batch, with the flip test.

    Args:
        model: in eval mode; (N, 3, H, W) -> (N, K, h, w).
        images: (N, 3, H, W) normalised crops.
    Returns:
        (N, K, h, w) float32.
    """
    heatmaps = final_heatmaps(model(images)).float()
    if flip_test:
        flipped = final_heatmaps(model(images.flip(3))).float()
        heatmaps = merge_flip(heatmaps, flipped, flip_pairs, flip_shift)
    return heatmaps


@dataclass
class Predictions:
    """Per-person predictions in original-image pixels, sorted by dataset index.

    Attributes:
        index: (M,) position of each person in the dataset's annotation / ground-truth order.
        keypoints: (M, K, 3) x, y (0-based image pixels) and confidence (heatmap maximum).
        image_ids: (M,) image ids. image_files: M file paths.
        centers: (M, 2), scales: (M, 2) crop boxes in pixels. box_scores: (M,) person box scores.
    """

    index: np.ndarray
    keypoints: np.ndarray
    image_ids: np.ndarray
    image_files: list[str]
    centers: np.ndarray
    scales: np.ndarray
    box_scores: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    @staticmethod
    def concatenate(parts: Sequence[Predictions]) -> Predictions:
        """Join parts (e.g. gathered from several processes), dropping duplicate indices, sorted by index."""
        index = np.concatenate([p.index for p in parts])
        _, first = np.unique(index, return_index=True)
        files = [f for p in parts for f in p.image_files]
        return Predictions(
            index=index[first],
            keypoints=np.concatenate([p.keypoints for p in parts])[first],
            image_ids=np.concatenate([p.image_ids for p in parts])[first],
            image_files=[files[i] for i in first],
            centers=np.concatenate([p.centers for p in parts])[first],
            scales=np.concatenate([p.scales for p in parts])[first],
            box_scores=np.concatenate([p.box_scores for p in parts])[first],
        )


@torch.no_grad()
def run_inference(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    codec: HeatmapCodec,
    flip_pairs: Sequence[Sequence[int]],
    *,
    device: torch.device,
    flip_test: bool = True,
    flip_shift: int = 1,
    amp: str = "none",
    channels_last: bool = False,
    oracle: bool = False,
    progress: bool = True,
    description: str = "inference",
) -> Predictions:
    """Predict every person of ``loader``'s dataset.

    Args:
        oracle: instead of running the network, decode the encoded ground-truth heatmaps
            (``batch["target"]``): the upper bound of the codec and the crop/back-projection chain.
    """
    was_training = model.training
    model.eval()
    parts = []
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    for batch in tqdm(loader, desc=description, disable=not progress, leave=False, dynamic_ncols=True):
        meta = batch["meta"]
        if oracle:
            heatmaps = batch["target"].float()
        else:
            images = batch["image"].to(device, non_blocking=True).contiguous(memory_format=memory_format)
            with autocast(device, amp):
                heatmaps = predict_heatmaps(model, images, flip_pairs, flip_test, flip_shift)
        centers = meta["center"].numpy().astype(np.float64)
        scales = meta["scale"].numpy().astype(np.float64)
        coords, maxvals = codec.decode_to_image(heatmaps.cpu().numpy(), centers, scales)
        parts.append(
            Predictions(
                index=meta["index"].numpy().astype(np.int64),
                keypoints=np.concatenate([coords, maxvals[..., None]], axis=-1),
                image_ids=meta["image_id"].numpy().astype(np.int64),
                image_files=list(meta["image_file"]),
                centers=centers,
                scales=scales,
                box_scores=meta["score"].numpy().astype(np.float64),
            )
        )
    model.train(was_training)
    if not parts:
        raise ValueError("run_inference: the loader yielded no batches")
    return Predictions.concatenate(parts)
