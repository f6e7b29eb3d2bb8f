"""Dataset discovery on the layouts users download: split folders, odd class names, hidden clutter."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from braintumor.data import check_readable, discover, parse_merge_map

ODD = "Meningioma (de Baixo Grau, Atípico) T1C+"


def _fill(folder: Path, samples_dir: Path, n: int = 2) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, src in enumerate(sorted(samples_dir.rglob("*.jpg"))[:n]):
        shutil.copy(src, folder / f"img {i} ç.jpg")


def test_training_testing_layout_keeps_odd_class_names_exactly(tmp_path, samples_dir):
    for split in ("Training", "Testing"):
        for cls in (ODD, "glioma", "notumor"):
            _fill(tmp_path / split / cls, samples_dir)
    index = discover(tmp_path)
    assert set(index.splits) == {"train", "test"}
    assert index.class_names == sorted([ODD, "glioma", "notumor"])
    odd = [s for s in index.samples("train") if s.label == ODD]
    assert len(odd) == 2 and all(s.path.is_absolute() and s.path.exists() for s in odd)
    assert index.relpath(odd[0].path) == f"Training/{ODD}/img 0 ç.jpg"
    assert ODD in index.summary()


@pytest.mark.parametrize(
    "names", [("train", "val", "test"), ("TRAIN", "Validation", "Test"), ("training", "VALID", "testing")]
)
def test_train_val_test_layouts_any_case(tmp_path, samples_dir, names):
    for split in names:
        _fill(tmp_path / split / "a", samples_dir, n=1)
        _fill(tmp_path / split / "b", samples_dir, n=1)
    index = discover(tmp_path)
    assert set(index.splits) == {"train", "val", "test"}
    assert index.class_names == ["a", "b"]
    assert all(len(index.samples(s)) == 2 for s in ("train", "val", "test"))


def test_flat_layout_is_one_split(tmp_path, samples_dir):
    _fill(tmp_path / "yes", samples_dir, n=3)
    _fill(tmp_path / "no", samples_dir, n=1)
    index = discover(tmp_path)
    assert list(index.splits) == ["all"]
    assert [len([s for s in index.samples() if s.label == c]) for c in index.class_names] == [1, 3]
    with pytest.raises(ValueError, match="no 'test' split"):
        index.samples("test")


def test_hidden_entries_are_ignored_and_non_scans_reported(tmp_path, samples_dir):
    _fill(tmp_path / "Training" / "glioma", samples_dir)
    _fill(tmp_path / "Testing" / "glioma", samples_dir)
    (tmp_path / "Training" / "glioma" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    _fill(tmp_path / ".ipynb_checkpoints" / "glioma", samples_dir)  # top level: not a split or class
    _fill(tmp_path / "Training" / "glioma" / ".ipynb_checkpoints", samples_dir)  # inside a class
    _fill(tmp_path / "Training" / "__MACOSX", samples_dir)
    (tmp_path / "Training" / "glioma" / "notes.txt").write_text("hello")
    index = discover(tmp_path)
    assert set(index.splits) == {"train", "test"}
    assert index.class_names == ["glioma"]
    paths = [s.path for s in index.samples()]
    assert len(paths) == 4
    assert not any(part.startswith(".") or part == "__MACOSX" for p in paths for part in p.parts[-3:])
    assert [p.name for p in index.ignored] == ["notes.txt"]


def test_merge_map_merges_and_rejects_unknown_classes(tmp_path, samples_dir):
    for cls in ("glioma", ODD, "pituitary", "notumor"):
        _fill(tmp_path / cls, samples_dir, n=1)
    # The text form separates classes with ',', so a name containing ',' goes in as a dict.
    merge = parse_merge_map("tumor=glioma, pituitary;normal=notumor") | {ODD: "tumor"}
    index = discover(tmp_path, merge=merge)
    assert index.class_names == ["normal", "tumor"]
    assert sum(s.label == "tumor" for s in index.samples()) == 3
    with pytest.raises(ValueError, match=r"unknown classes.*astrocytoma"):
        discover(tmp_path, merge={"astrocytoma": "tumor"})


@pytest.mark.parametrize(
    ("spec", "message"),
    [("tumor", "no '='"), ("=glioma", "empty target"), ("a=x;b=x", "mapped to both"), (" ; ", "nothing to merge")],
)
def test_merge_map_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_merge_map(spec)


def test_parse_merge_map_groups_and_newlines():
    assert parse_merge_map("tumor=glioma, meningioma\nnormal=notumor") == {
        "glioma": "tumor",
        "meningioma": "tumor",
        "notumor": "normal",
    }


def test_missing_file_and_empty_roots(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        discover(tmp_path / "nope")
    (tmp_path / "file.jpg").write_bytes(b"x")
    with pytest.raises(NotADirectoryError):
        discover(tmp_path / "file.jpg")
    (tmp_path / "empty" / "glioma").mkdir(parents=True)
    with pytest.raises(ValueError, match="no class folders with scans"):
        discover(tmp_path / "empty")


def test_real_nickparvar_layout(shared_data):
    index = discover(shared_data / "nickparvar-7023")
    assert index.class_names == ["glioma", "meningioma", "notumor", "pituitary"]
    assert (len(index.samples("train")), len(index.samples("test"))) == (5712, 1311)


def test_symlinked_folders_are_followed_once_and_broken_links_reported(tmp_path, samples_dir):
    # a class folder whose scans sit in a linked folder, a link loop and a dangling link
    root = tmp_path / "data"
    (root / "glioma").mkdir(parents=True)
    (root / "notumor").mkdir()
    shutil.copy(next(samples_dir.glob("glioma/*.jpg")), root / "glioma" / "a.jpg")
    (root / "notumor" / "linked").symlink_to(samples_dir / "notumor", target_is_directory=True)
    (root / "glioma" / "loop").symlink_to(root / "glioma", target_is_directory=True)  # must not recurse forever
    (root / "glioma" / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    index = discover(root)
    names = sorted(Path(s.path).name for s in index.samples())
    assert names == ["Te-no_0010.jpg", "Te-no_0224.jpg", "a.jpg", "gone.jpg"]
    _, bad = check_readable(index.samples())
    assert [(Path(p).name, reason.endswith("gone.jpg: file not found")) for p, reason in bad] == [("gone.jpg", True)]
    assert all(str(s.path).startswith(str(root)) for s in index.samples())  # paths stay under the root


def test_a_folder_that_cannot_be_listed_is_reported_not_dropped(tmp_path, samples_dir, monkeypatch):
    # chmod 000 does not stop root, so the listing failure is simulated at os.scandir
    from braintumor.io import source

    root = tmp_path / "data"
    shutil.copytree(samples_dir / "glioma", root / "glioma")
    (root / "glioma" / "locked").mkdir()
    real_scandir = os.scandir

    def scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(source.os, "scandir", scandir)
    found = list(source.walk_tree(root))
    assert root / "glioma" / "locked" in found
    _, bad = check_readable(discover(root).samples())
    assert [Path(p).name for p, _ in bad] == ["locked"]


def test_an_empty_class_folder_is_said_not_silently_dropped(tmp_path, samples_dir, caplog):
    shutil.copytree(samples_dir / "glioma", tmp_path / "glioma")
    (tmp_path / "meningioma").mkdir()
    with caplog.at_level("WARNING"):
        index = discover(tmp_path)
    assert index.class_names == ["glioma"]
    assert "class 'meningioma' left out" in caplog.text


def test_split_folders_are_never_read_as_classes(tmp_path, samples_dir, caplog):
    # masks/ beside Training/ and Testing/ used to turn the splits into two classes
    shutil.copytree(samples_dir / "glioma", tmp_path / "Training" / "glioma")
    shutil.copytree(samples_dir / "glioma", tmp_path / "train" / "glioma2")
    shutil.copytree(samples_dir / "notumor", tmp_path / "Testing" / "notumor")
    (tmp_path / "masks").mkdir()
    with caplog.at_level("WARNING"):
        index = discover(tmp_path)
    assert set(index.splits) == {"train", "test"} and len(index.samples("train")) == 4  # both train folders
    assert "left out ['masks']" in caplog.text and "two folders for the train split" in caplog.text


def test_class_maps_rename_folders_before_a_merge(tmp_path) -> None:
    from braintumor.data import class_mapping, parse_class_map

    assert parse_class_map("glioma_tumor=glioma, no_tumor = notumor") == {
        "glioma_tumor": "glioma",
        "no_tumor": "notumor",
    }
    listed = tmp_path / "map.yaml"
    listed.write_text("glioma_tumor: glioma  # renamed\n'no tumor': notumor\n")
    assert parse_class_map(listed) == {"glioma_tumor": "glioma", "no tumor": "notumor"}
    with pytest.raises(ValueError, match="'a' is mapped to both 'b' and 'c'"):
        parse_class_map("a=b,a=c")
    with pytest.raises(ValueError, match="is not 'folder=class'"):
        parse_class_map("glioma_tumor")
    both = class_mapping("glioma_tumor=glioma,no_tumor=notumor", "tumor=glioma,meningioma")
    assert both == {"glioma_tumor": "tumor", "no_tumor": "notumor", "glioma": "tumor", "meningioma": "tumor"}
    assert class_mapping(None, None) is None
