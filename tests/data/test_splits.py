"""Train/validation splits: stratified, seeded, group-aware, with clear errors for tiny classes."""

from __future__ import annotations

import csv
import logging
import shutil
from collections import Counter
from pathlib import Path

import pytest

from braintumor.data import Sample, discover, load_groups_csv, train_val_split

ODD = "Meningioma (de Baixo Grau, Atípico) T1C+"


def _samples(counts: dict[str, int]) -> list[Sample]:
    return [Sample(Path(f"/data/{c}/{i}.jpg"), c) for c, n in counts.items() for i in range(n)]


def _groups(samples: list[Sample], size: int = 3) -> dict[Path, str]:
    """Consecutive images of a class share a group, like copies and adjacent slices do."""
    return {s.path: f"{s.label}-{i // size}" for i, s in enumerate(samples)}


COUNTS = {"glioma": 120, ODD: 60, "notumor": 45}


def test_split_is_a_stratified_partition_in_input_order():
    samples = _samples(COUNTS)
    train, val = train_val_split(samples, val_fraction=0.2, seed=3)
    assert sorted(map(str, [s.path for s in train + val])) == sorted(str(s.path) for s in samples)
    assert not {s.path for s in train} & {s.path for s in val}
    per_class = Counter(s.label for s in val)
    for cls, n in COUNTS.items():
        assert abs(per_class[cls] - 0.2 * n) <= 1, cls
    order = {s.path: i for i, s in enumerate(samples)}
    assert [order[s.path] for s in train] == sorted(order[s.path] for s in train)


def test_split_is_reproducible_and_depends_on_seed():
    samples = _samples(COUNTS)
    a = train_val_split(samples, seed=7)
    assert a == train_val_split(samples, seed=7)
    assert a[1] != train_val_split(samples, seed=8)[1]


def test_group_aware_split_keeps_every_group_on_one_side():
    samples = _samples(COUNTS)
    groups = _groups(samples, size=4)
    train, val = train_val_split(samples, val_fraction=0.15, seed=1, groups=groups)
    assert not {groups[s.path] for s in train} & {groups[s.path] for s in val}
    assert len(train) + len(val) == len(samples)
    # 1/round(1/0.15) = 1/7 of the groups; stratified to within a group or two per class
    per_class = Counter(s.label for s in val)
    for cls, n in COUNTS.items():
        assert abs(per_class[cls] - n / 7) <= 8, (cls, per_class[cls])
    assert (train, val) == train_val_split(samples, val_fraction=0.15, seed=1, groups=groups)


def test_grouped_split_refuses_more_than_half_for_validation():
    # validation is one of round(1/val_fraction) folds: 0.6 and 0.9 would both silently give 50 %
    samples = _samples(COUNTS)
    with pytest.raises(ValueError, match=r"at most 0\.5, got 0\.6"):
        train_val_split(samples, val_fraction=0.6, groups=_groups(samples, size=4))


def test_ungrouped_split_would_separate_groups():
    """The control for the test above: without groups, a split of these data does cut groups."""
    samples = _samples(COUNTS)
    groups = _groups(samples, size=4)
    train, val = train_val_split(samples, val_fraction=0.15, seed=1)
    assert {groups[s.path] for s in train} & {groups[s.path] for s in val}


def test_images_missing_from_groups_map_are_singletons_and_logged(caplog):
    samples = _samples(COUNTS)
    groups = dict(list(_groups(samples).items())[:100])
    with caplog.at_level(logging.WARNING, logger="braintumor.data.splits"):
        train, val = train_val_split(samples, groups=groups)
    assert len(train) + len(val) == len(samples)
    assert "125 of 225 images have no entry" in caplog.text


def test_class_with_one_image_is_a_clear_error():
    with pytest.raises(ValueError, match=r"class 'Meningioma \(de Baixo Grau, Atípico\) T1C\+' \(1 image\)"):
        train_val_split(_samples({"glioma": 50, ODD: 1}))


def test_class_too_small_for_its_share_is_a_clear_error():
    with pytest.raises(ValueError, match="too few images to appear in both parts"):
        train_val_split(_samples({"glioma": 50, "rare": 2}), val_fraction=0.1)


def test_class_in_a_single_group_cannot_be_split():
    samples = _samples({"glioma": 40, "rare": 6})
    groups = {s.path: ("one" if s.label == "rare" else str(i)) for i, s in enumerate(samples)}
    with pytest.raises(ValueError, match=r"\['rare'\] have too few groups of duplicates"):
        train_val_split(samples, groups=groups)


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5])
def test_val_fraction_must_be_in_open_unit_interval(fraction):
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(_samples(COUNTS), val_fraction=fraction)


def _tree(root: Path, samples_dir: Path) -> None:
    for cls in (ODD, "glioma"):
        folder = root / "Training" / cls
        folder.mkdir(parents=True)
        for i, src in enumerate(sorted(samples_dir.rglob("*.jpg"))):
            shutil.copy(src, folder / f"scan, {i} +é.jpg")


def _write_pair_groups(index, csv_path: Path) -> Path:
    """A groups.csv as the audit writes it, putting consecutive images in pairs."""
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "group"])
        w.writerows([index.relpath(s.path), f"g{i // 2}"] for i, s in enumerate(index.samples()))
    return csv_path


def test_groups_csv_round_trip_matches_discovered_paths(tmp_path, samples_dir):
    _tree(tmp_path / "data", samples_dir)
    index = discover(tmp_path / "data")
    groups = load_groups_csv(_write_pair_groups(index, tmp_path / "groups.csv"), tmp_path / "data")
    assert set(groups) == {s.path for s in index.samples()}
    train, val = train_val_split(index.samples("train"), val_fraction=0.25, groups=groups, seed=0)
    assert not {groups[s.path] for s in train} & {groups[s.path] for s in val}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("file,id\na.jpg,1\n", "expected a header 'path,group'"),
        ("", "expected a header"),
        ("path,group\na.jpg\n", "line 2: expected 'path,group'"),
        ("path,group\na.jpg,1\nb.jpg,2\na.jpg,3\n", "line 4: 'a.jpg' is in two groups"),
    ],
)
def test_groups_csv_errors_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "groups.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        load_groups_csv(path, tmp_path)
    assert str(path) in str(info.value)


def test_groups_csv_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="braintumor data audit"):
        load_groups_csv(tmp_path / "none.csv", tmp_path)


def test_groups_csv_matches_a_tree_of_symbolic_links(tmp_path, samples_dir):
    """`data combine` builds trees of links; their groups must match the links, not the files behind them."""
    from braintumor.data.combine import combine_datasets

    _tree(tmp_path / "src", samples_dir)
    combine_datasets([tmp_path / "src"], tmp_path / "both")
    index = discover(tmp_path / "both")
    groups = load_groups_csv(_write_pair_groups(index, tmp_path / "groups.csv"), tmp_path / "both")
    assert set(groups) == {s.path for s in index.samples()}


def test_groups_map_that_names_no_image_is_an_error():
    samples = _samples(COUNTS)
    with pytest.raises(ValueError, match="names none of the 225 images"):
        train_val_split(samples, groups={Path("/elsewhere/a.jpg"): "1"})
