"""Shared fixtures. Tests that need the real datasets take `shared_data` and skip without them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "src" / "braintumor" / "samples"


def _shared_data_dir() -> Path | None:
    env = os.environ.get("BRAINTUMOR_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared" / "data", REPO / "shared" / "data"]
    for c in candidates:
        if (c / "nickparvar-7023").is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real datasets (../shared/data or $BRAINTUMOR_SHARED_DATA); skips when absent."""
    d = _shared_data_dir()
    if d is None:
        pytest.skip("real datasets not found: set BRAINTUMOR_SHARED_DATA or place them in ../shared/data")
    return d


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The sample scans shipped inside the package (two per class)."""
    return SAMPLES
