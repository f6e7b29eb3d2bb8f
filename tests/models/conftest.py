"""Fixtures for model tests: small model options and an isolated, empty torch hub cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

# Options that shrink the from-scratch models so registry-wide tests stay fast on 2 CPU cores.
TINY_OPTIONS = {"vgg_bn": {"width": 8}, "simple_cnn": {"width": 8}}


@pytest.fixture(scope="session")
def tiny_options() -> Callable[[str], dict]:
    """A function: model name -> keyword options for `create_model` giving its smallest sensible variant."""
    return lambda name: dict(TINY_OPTIONS.get(name, {}))


@pytest.fixture()
def empty_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """TORCH_HOME pointing at an empty folder, so nothing comes from the real weights cache."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home
