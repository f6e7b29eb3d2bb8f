"""`braintumor data combine`: several datasets become one folder that discovery and the audit read."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from braintumor.cli import main
from braintumor.data import discover
from braintumor.data.combine import combine_datasets


def _fill(folder: Path, samples_dir: Path, n: int, name: str = "img") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, src in enumerate(sorted(samples_dir.rglob("*.jpg"))[:n]):
        shutil.copy(src, folder / f"{name}{i}.jpg")


def test_split_and_flat_sources_combine_with_source_names_kept(tmp_path, samples_dir):
    split_src = tmp_path / "nick"
    _fill(split_src / "Training" / "glioma", samples_dir, 2)
    _fill(split_src / "Testing" / "glioma", samples_dir, 1)
    flat_src = tmp_path / "fig"
    _fill(flat_src / "glioma", samples_dir, 3)  # same file names as nick's: the source folder keeps them apart
    _fill(flat_src / "pituitary" / "sub", samples_dir, 1)

    result = combine_datasets([split_src, flat_src], tmp_path / "out")
    index = discover(tmp_path / "out")
    assert set(index.splits) == {"train", "test"}
    rel = sorted(index.relpath(s.path) for s in index.samples("train"))
    assert rel == [
        "Training/glioma/fig/img0.jpg",
        "Training/glioma/fig/img1.jpg",
        "Training/glioma/fig/img2.jpg",
        "Training/glioma/nick/img0.jpg",
        "Training/glioma/nick/img1.jpg",
        "Training/pituitary/fig/sub/img0.jpg",
    ]
    assert [index.relpath(s.path) for s in index.samples("test")] == ["Testing/glioma/nick/img0.jpg"]
    link = tmp_path / "out" / "Training" / "glioma" / "fig" / "img1.jpg"
    assert link.is_symlink() and link.read_bytes() == (flat_src / "glioma" / "img1.jpg").read_bytes()
    assert result.counts[("Training", "glioma", "fig")] == 3
    assert "Training/glioma/fig: 3" in result.summary()


def test_merge_map_and_copy_mode(tmp_path, samples_dir):
    _fill(tmp_path / "a" / "glioma", samples_dir, 1)
    _fill(tmp_path / "a" / "meningioma", samples_dir, 1)
    combine_datasets([tmp_path / "a"], tmp_path / "out", merge={"glioma": "tumor", "meningioma": "tumor"}, copy=True)
    files = sorted(p for p in (tmp_path / "out").rglob("*.jpg"))
    rel = [p.relative_to(tmp_path / "out").as_posix() for p in files]
    assert rel == ["Training/tumor/a/glioma/img0.jpg", "Training/tumor/a/meningioma/img0.jpg"]
    assert not any(p.is_symlink() for p in files)


def test_refuses_nonempty_output_and_name_clash_with_clear_errors(tmp_path, samples_dir, capsys):
    _fill(tmp_path / "x" / "data" / "glioma", samples_dir, 1)
    _fill(tmp_path / "y" / "data" / "glioma", samples_dir, 1)
    with pytest.raises(ValueError, match="share the folder name"):
        combine_datasets([tmp_path / "x" / "data", tmp_path / "y" / "data"], tmp_path / "out1")
    (tmp_path / "out2").mkdir()
    (tmp_path / "out2" / "keep.txt").write_text("mine")
    assert main(["data", "combine", str(tmp_path / "x" / "data"), "--out", str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err
    assert "out2" in err and "not an empty folder" in err
    assert (tmp_path / "out2" / "keep.txt").read_text() == "mine"
    assert main(["data", "combine", str(tmp_path / "missing"), "--out", str(tmp_path / "out3")]) == 2
    assert "missing" in capsys.readouterr().err


def test_one_merge_map_serves_sources_with_different_class_names(tmp_path, samples_dir):
    # a 4-class set and a yes/no set merged into tumour / normal: each source applies the classes it has
    four = tmp_path / "four"
    shutil.copytree(samples_dir, four, ignore=shutil.ignore_patterns("*.md"))
    yesno = tmp_path / "yesno"
    shutil.copytree(samples_dir / "glioma", yesno / "yes")
    shutil.copytree(samples_dir / "notumor", yesno / "no")
    merge = {"glioma": "tumor", "meningioma": "tumor", "pituitary": "tumor", "yes": "tumor"}
    merge |= {"notumor": "normal", "no": "normal"}
    combine_datasets([four, yesno], tmp_path / "out", merge=merge)
    index = discover(tmp_path / "out")
    assert index.class_names == ["normal", "tumor"] and len(index.samples()) == 12
    with pytest.raises(ValueError, match=r"no source has: \['maybe'\]"):
        combine_datasets([four, yesno], tmp_path / "out2", merge={**merge, "maybe": "tumor"})
