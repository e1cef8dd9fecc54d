"""One process of the 2-process DDP test: trains the tiny setup under torchrun and saves its weights.

torchrun --standalone --nproc_per_node=2 tests/engine/ddp_worker.py DATA_ROOT OUTPUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from boxpose.builders import build_trainer
from boxpose.config import compose_config
from boxpose.engine import distributed
from tests.engine.helpers import tiny_overrides

if __name__ == "__main__":
    data_root, output_dir = Path(sys.argv[1]), Path(sys.argv[2])
    trainer = build_trainer(compose_config("train", tiny_overrides(data_root, output_dir, epochs=2)))
    summary = trainer.fit()
    parameters = {name: p.detach().cpu() for name, p in trainer.plain_model.named_parameters()}
    torch.save({"parameters": parameters, "summary": summary, "world_size": distributed.world_size()},
               output_dir / f"rank{distributed.rank()}.pt")  # fmt: skip
    distributed.cleanup()
