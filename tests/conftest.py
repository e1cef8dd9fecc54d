"""Shared test fixtures: where the real data samples live, and a CPU-only, seeded torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def find_shared_dir() -> Path | None:
    """The project's shared/ folder: $BOXPOSE_SHARED, ./shared inside the checkout, or ../shared beside it."""
    candidates = [os.environ.get("BOXPOSE_SHARED"), REPO_ROOT / "shared", REPO_ROOT.parent / "shared"]
    for c in candidates:
        if c and (Path(c) / "realdata").is_dir():
            return Path(c)
    return None


@pytest.fixture(scope="session")
def realdata() -> Path:
    """Path of shared/realdata (real COCO and MPII samples). Skips outside CI when absent; fails in CI."""
    shared = find_shared_dir()
    if shared is None:
        if os.environ.get("CI"):
            pytest.fail("shared/realdata not found beside the checkout; CI must have it (set BOXPOSE_SHARED)")
        pytest.skip("shared/realdata not found (set BOXPOSE_SHARED to run the real-data tests)")
    return shared / "realdata"


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """Where the tiny synthetic dataset of tests/engine/helpers.py is generated (once per session, by the
    first test that uses it)."""
    return tmp_path_factory.mktemp("synthetic") / "mpii"
