"""build_dataloader and the epoch-seeded sampler: batching, reproducible and resumable augmentation,
independence from the number of workers and processes, worker seeding, failure counting."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist

from boxpose.data import EpochSampler, MPIIDataset, build_dataloader
from boxpose.data.pipeline import AugmentConfig
from tests.pipelines import make_pipeline


@pytest.fixture(scope="module")
def mpii(realdata: Path) -> MPIIDataset:
    d = realdata / "mmpose-mpii"
    augment = AugmentConfig(rotation_prob=1.0)
    pipeline = make_pipeline("mpii", train=True, input_size=(64, 64), augment=augment)
    return MPIIDataset(d / "test_mpii.json", d, pipeline)


def _epoch(loader, epoch: int, start_batch: int = 0) -> list[dict]:
    loader.sampler.set_epoch(epoch, start_batch=start_batch)
    return [{"rot": b["meta"]["rotation"], "flip": b["meta"]["flipped"], "index": b["meta"]["index"],
             "image": b["image"]} for b in loader]  # fmt: skip


def _same(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(torch.equal(x[k], y[k]) for x, y in zip(a, b) for k in x)


def _loader(dataset, workers: int = 0, seed: int = 0, batch_size: int = 1):
    return build_dataloader(dataset, batch_size=batch_size, train=True, workers=workers, pin_memory=False,
                            persistent_workers=False, seed=seed)  # fmt: skip


def test_batches(mpii):
    loader = _loader(mpii, batch_size=2)
    batches = list(loader)
    assert len(batches) == len(loader) == 2  # 5 samples, the incomplete batch dropped
    b = batches[0]
    assert b["image"].shape == (2, 3, 64, 64) and b["target"].shape == (2, 16, 16, 16)
    assert b["meta"]["scale"].dtype == torch.float32 and b["meta"]["image_id"].dtype == torch.int64
    evaluation = build_dataloader(mpii, batch_size=2, train=False, workers=0, pin_memory=False)
    assert [b["meta"]["index"].tolist() for b in evaluation] == [[0, 1], [2, 3], [4]]  # in order, all kept
    with pytest.raises(ValueError, match="at least one full batch"):
        build_dataloader(mpii, batch_size=8, train=True, workers=0)


def test_augmentation_depends_on_seed_epoch_and_index_only(mpii):
    """The same (seed, epoch) gives the same batches with 0 or 2 workers; epochs and seeds differ."""
    a0 = _epoch(_loader(mpii, workers=0), 0)
    assert _same(a0, _epoch(_loader(mpii, workers=0), 0))
    assert _same(a0, _epoch(_loader(mpii, workers=2), 0))
    assert len(set(torch.cat([x["rot"] for x in a0]).tolist())) == 5  # every sample draws its own rotation
    assert not _same(a0, _epoch(_loader(mpii, workers=0), 1))
    assert not _same(a0, _epoch(_loader(mpii, workers=0, seed=1), 0))
    torch.manual_seed(123)  # the global torch state plays no part
    assert _same(a0, _epoch(_loader(mpii, workers=0), 0))


def test_resume_inside_an_epoch_gives_the_remaining_batches(mpii):
    loader = _loader(mpii, batch_size=2)
    full = _epoch(loader, 3)
    resumed = _epoch(loader, 3, start_batch=1)
    assert len(loader) == 2 and _same(resumed, full[1:])


def test_epoch_sampler_shards_like_distributed_sampler():
    shards = [EpochSampler(10, seed=4, batch_size=2, num_replicas=3, rank=r) for r in range(3)]
    for s in shards:
        s.set_epoch(2)
    keys = [list(s) for s in shards]
    assert [len(k) for k in keys] == [4, 4, 4] and all(len(s) == 4 for s in shards)
    indices = [i for k in keys for i, _, _ in k]
    assert sorted(set(indices)) == list(range(10)) and len(indices) == 12  # padded by repetition
    assert all(seed == 4 and epoch == 2 for k in keys for _, seed, epoch in k)
    shards[0].set_epoch(3)
    assert [i for i, _, _ in shards[0]] != [i for i, _, _ in keys[0]]
    ordered = EpochSampler(5, shuffle=False)
    assert [i for i, _, _ in ordered] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="rank"):
        EpochSampler(5, num_replicas=2, rank=2)


def test_plain_indices_use_torch_seeds(mpii):
    torch.manual_seed(0)
    a = mpii[1]["meta"]["rotation"]
    torch.manual_seed(0)
    assert mpii[1]["meta"]["rotation"] == a
    assert mpii[(1, 0, 0)]["meta"]["rotation"] == mpii[(1, 0, 0)]["meta"]["rotation"]


def test_worker_init_seeds_numpy_per_worker():
    class Probe(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.tensor([np.random.randint(0, 2**31), torch.utils.data.get_worker_info().id])  # noqa: NPY002

    loader = build_dataloader(Probe(), batch_size=1, train=False, workers=2, pin_memory=False,
                              persistent_workers=False)  # fmt: skip
    draws = {int(w): int(v) for v, w in torch.cat(list(loader))}
    assert len(set(draws.values())) == 2  # numpy's global state differs between workers


def test_failures_are_counted_across_workers(tmp_path, realdata):
    shutil.copytree(realdata / "mmpose-mpii", tmp_path / "m")
    (tmp_path / "m" / "004645041.jpg").write_bytes(b"")  # record 3
    pipeline = make_pipeline("mpii", input_size=(32, 32))
    ds = MPIIDataset(tmp_path / "m" / "test_mpii.json", tmp_path / "m", pipeline, max_failure_fraction=0.5)
    loader = build_dataloader(
        ds, batch_size=1, train=False, workers=2, pin_memory=False, persistent_workers=False
    )
    assert [int(b["meta"]["index"]) for b in loader] == [0, 1, 2, 4, 4]  # record 3 replaced by the next one
    assert ds.num_failed == 1  # recorded by a worker process, seen by the main process


def test_distributed(mpii, tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        train = build_dataloader(
            mpii, batch_size=1, train=True, workers=0, pin_memory=False, distributed=True
        )
        assert isinstance(train.sampler, EpochSampler) and train.sampler.num_replicas == 1
        evaluation = build_dataloader(mpii, batch_size=1, train=False, workers=0, pin_memory=False,
                                      distributed=True)  # fmt: skip
        assert isinstance(evaluation.sampler, torch.utils.data.DistributedSampler)
    finally:
        dist.destroy_process_group()
