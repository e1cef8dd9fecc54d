from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """Where the tiny synthetic dataset is generated (once per session, by the first test that uses it)."""
    return tmp_path_factory.mktemp("synthetic") / "mpii"
