"""Evaluation fixtures: evaluation runs of the tiny checkpoint on the sample scans, made once per session."""

from __future__ import annotations

import contextlib
import io
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from braintumor.cli import main

# The two sample scans copied into the fake training folder: the audit must flag them as leaks.
LEAKED = ("glioma/Te-gl_0013.jpg", "notumor/Te-no_0010.jpg")


@dataclass
class CliRun:
    """Exit status, captured output and output folder of one `braintumor` command."""

    rc: int
    stdout: str
    stderr: str
    out: Path


def run_cli(args: list[str], out: Path) -> CliRun:
    """`braintumor.cli.main(args)` with stdout/stderr captured."""
    so, se = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
        rc = main(args)
    return CliRun(rc, so.getvalue(), se.getvalue(), out)


@pytest.fixture(scope="session")
def leak_train(tmp_path_factory: pytest.TempPathFactory, samples_dir: Path) -> Path:
    """A 'training' folder holding exact copies of two sample scans (under other names)."""
    root = tmp_path_factory.mktemp("leak_train")
    for i, rel in enumerate(LEAKED):
        dst = root / Path(rel).parent / f"train_{i}.jpg"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(samples_dir / rel, dst)
    return root


@pytest.fixture(scope="session")
def leak_eval(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, samples_dir: Path, leak_train: Path):
    """`braintumor evaluate` of the tiny checkpoint on the samples, leak-aware against `leak_train`."""
    out = tmp_path_factory.mktemp("eval_leak") / "out"
    args = ["evaluate", "--model", str(tiny_checkpoint), "--data", str(samples_dir), "--out", str(out)]
    args += ["--exclude-leaks-from", str(leak_train), "--bootstrap", "200", "--quiet"]
    return run_cli(args, out)
