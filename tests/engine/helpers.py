"""A tiny synthetic MPII-style dataset and composed training configs for the engine tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_module
from omegaconf import OmegaConf


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


def compose_config(name: str, overrides: list[str]) -> dict[str, Any]:
    """A resolved configuration from configs/<name>.yaml, as the CLI would build it."""
    with initialize_config_module("boxpose._configs", version_base=None):
        cfg = compose(name, overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)
