"""``make demo`` / ``python -m boxpose.demo``: the whole pipeline on the built-in synthetic dataset, on a CPU.

1. generates the synthetic MPII-style dataset (``data/synthetic/mpii``, once),
2. trains ``boxnet_tiny`` on it (``configs/experiment/demo.yaml``; a few minutes on 2 cores),
3. evaluates the best checkpoint with flip test and prints the PCKh table,
4. draws its predictions on validation images (``outputs/demo/predictions.png``),
and says where everything was written. Extra arguments are Hydra overrides of the training config,
e.g. ``python -m boxpose.demo trainer.epochs=5``.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from boxpose.builders import build_dataset, build_predictor
from boxpose.cli.evaluate import evaluate
from boxpose.cli.train import train
from boxpose.codec.affine import center_scale_to_box
from boxpose.config import compose_config
from boxpose.engine.memory import retain_freed_memory
from boxpose.viz import draw

TARGET_PCKH = 70.0


def prediction_figure(checkpoint: Path, data_cfg: dict, path: Path, images: int = 6) -> Path:
    """Predicted skeletons on the first validation images (every annotated person), tiled into one PNG."""
    predictor = build_predictor(checkpoint)
    dataset = build_dataset(data_cfg, "val", train=False, codec=predictor.codec)
    by_image: dict[str, list] = {}
    for record in dataset.records:
        by_image.setdefault(record.image_file, []).append(record)
    tiles = []
    for image_file, records in list(by_image.items())[:images]:
        image = cv2.imread(image_file)
        # Each person's box is the one whose padded crop is the dataset's (centre, scale).
        boxes = np.array([center_scale_to_box(r.center, r.scale) for r in records])
        keypoints = predictor.predict(image, boxes)
        tiles.append(draw.draw_people(image, list(keypoints), predictor.spec, score_threshold=0.2))
    figure = draw.put_title(
        draw.tile_images(tiles, columns=3), "boxnet_tiny on synthetic MPII validation images"
    )
    cv2.imwrite(str(path), figure)
    return path


def main(argv: list[str] | None = None) -> int:
    start = time.time()
    retain_freed_memory()
    overrides = ["experiment=demo", *(sys.argv[1:] if argv is None else argv)]
    cfg = compose_config("train", overrides)
    output_dir = Path(cfg["output_dir"])
    print(
        "boxpose demo: boxnet_tiny on the synthetic MPII-style dataset, on the CPU.\n"
        f"  data:   {cfg['data']['root']} (generated on first use)\n"
        f"  output: {output_dir}\n",
        flush=True,
    )
    if output_dir.exists():
        print(f"removing the previous demo run in {output_dir}", flush=True)
        shutil.rmtree(output_dir)
    summary = train(cfg)

    checkpoint = output_dir / "best.pt"
    eval_dir = output_dir / "eval" / "val_flip_test"
    result = evaluate(compose_config("evaluate", [f"checkpoint={checkpoint}", f"output_dir={eval_dir}",
                                            "evaluate.workers=0", "evaluate.flip_test=true"]))  # fmt: skip
    figure = prediction_figure(checkpoint, cfg["data"], output_dir / "predictions.png")
    mean = result["metrics"]["Mean"]
    minutes = (time.time() - start) / 60
    boxes = sorted((output_dir / "figures").glob("boxes_*.png"))
    print(
        f"\nPCKh@0.5 (Mean) on the synthetic validation set, with flip test: {mean:.1f} "
        f"({'meets' if mean >= TARGET_PCKH else 'below'} the demo's target of {TARGET_PCKH:.0f}), "
        f"after {summary['epochs']} epochs in {minutes:.1f} min.\n\n"
        "Written:\n"
        f"  checkpoints        {output_dir / 'best.pt'}, {output_dir / 'last.pt'}\n"
        f"  resolved config    {output_dir / 'config.yaml'}\n"
        f"  metrics            {eval_dir / 'metrics.json'} (predictions: {eval_dir / 'pred.mat'})\n"
        f"  predictions        {figure}\n"
        f"  learned boxes      {boxes[-1] if boxes else output_dir / 'figures'} (paper Fig. 4)\n"
        f"  training log       {output_dir / 'train.log'}\n"
        f"  TensorBoard        {output_dir / 'tensorboard'}\n\n"
        "Open TensorBoard with:\n"
        f"  .venv/bin/tensorboard --logdir {output_dir / 'tensorboard'}   (then http://localhost:6006)\n"
    )
    print(json.dumps({"pckh_mean": mean, "minutes": round(minutes, 2), "output_dir": str(output_dir)}))
    return 0 if mean >= TARGET_PCKH else 1


if __name__ == "__main__":
    sys.exit(main())
