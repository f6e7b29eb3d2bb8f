"""Shared fixtures. Tests that need the real datasets take `shared_data` and skip without them."""

from __future__ import annotations

import os
from collections.abc import Callable
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
def external_data() -> Path:
    """Data fetched from public repositories (docs/data-sources.md): ../external or $BRAINTUMOR_EXTERNAL_DATA.

    Holds lgg/kaggle_3m (TCGA lower-grade glioma slices), ixi/ (IXI T1 volumes) and tcia/ (TCIA cases);
    skips when absent.
    """
    env = os.environ.get("BRAINTUMOR_EXTERNAL_DATA")
    for c in [Path(env)] if env else [REPO.parent / "external"]:
        if (c / "lgg" / "kaggle_3m").is_dir() or (c / "ixi").is_dir():
            return c
    pytest.skip("fetched data not found: see docs/data-sources.md, or set BRAINTUMOR_EXTERNAL_DATA")


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The sample scans shipped inside the package (two per class)."""
    return SAMPLES


@pytest.fixture(scope="session")
def pydicom_test_file() -> Callable[[str], Path]:
    """pydicom_test_file(name): a real DICOM file from pydicom's wheel (no download), or skip without it."""
    import pydicom

    def find(name: str) -> Path:
        path = Path(pydicom.__file__).parent / "data" / "test_files" / name
        if not path.is_file():
            pytest.skip(f"pydicom {pydicom.__version__} does not ship {name}")
        return path

    return find


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (untrained, seeded) 4-class simple_cnn checkpoint with the sample classes, 64 px input.

    Small enough to load and run in milliseconds; good for plumbing tests of evaluation, explain and
    the service. Tests of accuracy train their own model.
    """
    import torch

    from braintumor.data.preprocess import Preprocess
    from braintumor.models import create_model, save_checkpoint

    torch.manual_seed(0)
    classes = sorted(p.name for p in SAMPLES.iterdir() if p.is_dir())
    model = create_model("simple_cnn", num_classes=len(classes), in_chans=1, pretrained=False).eval()
    out = tmp_path_factory.mktemp("tiny_model") / "model"
    save_checkpoint(
        out,
        model,
        arch="simple_cnn",
        num_classes=len(classes),
        in_chans=1,
        class_names=classes,
        image_size=64,
        preprocess=Preprocess(image_size=64).to_dict(),
        normalization={"mean": [0.5], "std": [0.5], "per_scan_norm": False},
        temperature=1.0,
    )
    return out.parent


CHROMIUM = Path("/usr/bin/chromium")
# Debian's Chromium as root in a sandbox with no internet: no sandbox, no GPU, no background traffic.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


@pytest.fixture(scope="session")
def chromium_launch() -> dict:
    """Keyword arguments for Playwright's `chromium.launch` on Debian's chromium; skips when absent."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium); .ci/run installs it")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    return {"executable_path": str(CHROMIUM), "args": list(CHROMIUM_ARGS), "headless": True}
