"""The overrides of a tiny synthetic MPII-style training run (seconds on a CPU), for the tests."""

from __future__ import annotations

from pathlib import Path


def tiny_overrides(data_root: Path, output_dir: Path, epochs: int = 2) -> list[str]:
    """boxnet_tiny on 64x64 crops of a small synthetic MPII set, CPU, no workers, validation every epoch."""
    return [
        "data=synthetic_mpii",
        "model=boxnet_tiny",
        f"data.root={data_root}",
        "data.synthetic.num_train=16",
        "data.synthetic.num_val=6",
        "data.synthetic.image_size=[128,128]",
        "data.input_size=[64,64]",
        "data.heatmap_size=[16,16]",
        f"trainer.epochs={epochs}",
        "trainer.batch_size=8",
        "trainer.workers=0",
        "trainer.device=cpu",
        "trainer.val_every=1",
        "trainer.progress=false",
        "trainer.image_every=1",
        "trainer.box_figure_every=1",
        "evaluate.workers=0",
        "evaluate.batch_size=16",
        "run_name=test",
        f"output_dir={output_dir}",
    ]
