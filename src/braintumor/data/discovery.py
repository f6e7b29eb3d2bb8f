"""Find class folders (and optional split folders) under a dataset root.

Layouts accepted, folder names matched case-insensitively:

    ROOT/CLASS/*.jpg                        -> one split, "all"
    ROOT/{Training,Testing}/CLASS/*.jpg     -> "train", "test"
    ROOT/{train,val,test}/CLASS/*.jpg       -> "train", "val", "test"

Class names are folder names exactly as written (spaces, parentheses, "+" and non-ASCII
letters included); they are sorted with Unicode code-point order so indices are stable.
"""

from __future__ import annotations

import logging
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from braintumor.io import find_scans

log = logging.getLogger(__name__)

SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


@dataclass(frozen=True)
class Sample:
    """One labelled file. `path` is absolute; `label` is the (possibly merged) class name."""

    path: Path
    label: str


@dataclass
class DatasetIndex:
    """What `discover` found: class names and the samples of each split."""

    root: Path
    class_names: list[str]
    splits: dict[str, list[Sample]] = field(default_factory=dict)
    ignored: list[Path] = field(default_factory=list)  # files with no scan suffix, reported not read

    def samples(self, split: str | None = None) -> list[Sample]:
        """Samples of one split, or of all splits when `split` is None."""
        if split is None:
            return [s for items in self.splits.values() for s in items]
        if split not in self.splits:
            raise ValueError(f"{self.root}: no '{split}' split (found: {', '.join(self.splits) or 'none'})")
        return self.splits[split]

    def relpath(self, path: Path) -> str:
        """Path relative to the root, with forward slashes (the form used in every list file)."""
        return Path(path).relative_to(self.root).as_posix()

    def summary(self) -> str:
        """A small table: one row per class, one column per split."""
        names = list(self.splits)
        counts = {s: Counter(x.label for x in self.splits[s]) for s in names}
        width = max([len(c) for c in self.class_names] + [5])
        lines = [f"{'class':<{width}}  " + "  ".join(f"{s:>6}" for s in names)]
        for c in self.class_names:
            lines.append(f"{c:<{width}}  " + "  ".join(f"{counts[s][c]:>6}" for s in names))
        lines.append(f"{'total':<{width}}  " + "  ".join(f"{len(self.splits[s]):>6}" for s in names))
        if self.ignored:
            lines.append(f"({len(self.ignored)} files without a scan suffix ignored)")
        return "\n".join(lines)


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))


def _split_name(folder: Path) -> str | None:
    return SPLIT_ALIASES.get(unicodedata.normalize("NFC", folder.name).strip().lower())


def _spec_groups(spec: str, what: str, example: str, key_name: str) -> list[tuple[str, list[str]]]:
    """Split 'a=x,y;b=z' (';' or new lines between groups) into [(a, [x, y]), (b, [z])]."""
    groups = []
    for group in spec.replace("\n", ";").split(";"):
        if not group.strip():
            continue
        if "=" not in group:
            raise ValueError(f"{what}: '{group.strip()}' has no '=' (expected '{example}')")
        key, items = group.split("=", 1)
        key = key.strip()
        if not key:
            raise ValueError(f"{what}: empty {key_name} name in '{group.strip()}'")
        groups.append((key, [i.strip() for i in items.split(",") if i.strip()]))
    return groups


def parse_merge_map(spec: str) -> dict[str, str]:
    """Parse 'tumor=glioma,meningioma,pituitary;normal=notumor' into {source class: target class}.

    Groups are separated by ';' (or new lines); classes not named keep their own name.
    """
    mapping: dict[str, str] = {}
    for target, sources in _spec_groups(spec, "class-merge map", "new=old1,old2", "target"):
        for src in sources:
            if src in mapping and mapping[src] != target:
                raise ValueError(f"class-merge map: '{src}' is mapped to both '{mapping[src]}' and '{target}'")
            mapping[src] = target
    if not mapping:
        raise ValueError(f"class-merge map: nothing to merge in '{spec}'")
    return mapping


def parse_class_map(spec: str | Path) -> dict[str, str]:
    """Folder names to class names: 'glioma_tumor=glioma,no_tumor=notumor', or a file of such pairs.

    For datasets whose class folders are named otherwise than a model's classes. The file holds one
    `folder=class` (or YAML `folder: class`) per line; '#' starts a comment. Returns {folder: class}, the
    map `discover(merge=...)` takes; `parse_merge_map` gives the same map from `class=folder1,folder2`.

    Raises:
        ValueError: a pair without '=', an empty name, or a folder mapped to two classes.
    """
    path = Path(spec)
    text = path.read_text(encoding="utf-8") if path.is_file() else str(spec)
    mapping: dict[str, str] = {}
    for line in text.replace(",", "\n").replace(";", "\n").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        folder, sep, target = line.partition("=") if "=" in line else line.partition(":")
        folder, target = folder.strip().strip("'\""), target.strip().strip("'\"")
        if not sep or not folder or not target:
            raise ValueError(f"class map: '{line}' is not 'folder=class' (e.g. 'glioma_tumor=glioma')")
        if mapping.get(folder, target) != target:
            raise ValueError(f"class map: '{folder}' is mapped to both '{mapping[folder]}' and '{target}'")
        mapping[folder] = target
    if not mapping:
        raise ValueError(f"class map: nothing to map in '{spec}'")
    return mapping


def class_mapping(class_map: str | Path | None = None, merge: str | None = None) -> dict[str, str] | None:
    """The {folder: class} map of a `--class-map` (renames, applied first) and a `--merge` map (None: neither)."""
    renames = parse_class_map(class_map) if class_map else {}
    merged = parse_merge_map(merge) if merge else {}
    if not renames and not merged:
        return None
    mapping = {folder: merged.get(target, target) for folder, target in renames.items()}
    return {**{src: dst for src, dst in merged.items() if src not in renames}, **mapping}


def parse_label_sets(spec: str) -> dict[str, tuple[str, ...]]:
    """Parse 'yes=glioma,meningioma,pituitary;no=notumor' into {folder: the classes its scans may be}.

    For coarsely labelled sets (tumour / no tumour): a scan in `yes/` is known to be one of the
    listed classes, not which one.
    """
    sets: dict[str, tuple[str, ...]] = {}
    for folder, classes in _spec_groups(spec, "label sets", "folder=class1,class2", "folder"):
        if not classes:
            raise ValueError(f"label sets: '{folder}' lists no class")
        if folder in sets:
            raise ValueError(f"label sets: '{folder}' is given twice")
        sets[folder] = tuple(dict.fromkeys(classes))
    if not sets:
        raise ValueError(f"label sets: nothing in '{spec}'")
    return sets


def _collect(class_dir: Path, label: str, ignored: list[Path]) -> list[Sample]:
    scans, others = find_scans(class_dir)  # unreadable entries are samples: reading them reports them
    ignored += others
    return [Sample(path=path, label=label) for path in scans]  # not resolved: symlinked files stay under root


def discover(root: str | Path, merge: dict[str, str] | None = None) -> DatasetIndex:
    """Index a dataset folder.

    Args:
        root: dataset root; class folders directly inside, or inside split folders.
        merge: optional {source class: target class} map from `parse_merge_map`.

    Raises:
        FileNotFoundError: root does not exist. NotADirectoryError: root is a file.
        ValueError: no class folder with scans was found, or a merge map names an unknown class.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder (expected class folders inside)")
    root = root.resolve()
    top = _visible_dirs(root)
    split_dirs = {d: _split_name(d) for d in top}
    use_splits = any(split_dirs.values())
    others = [d.name for d in top if not split_dirs[d]]
    if use_splits and others:  # e.g. masks/ beside Training/ and Testing/: never read splits as classes
        log.warning("%s: left out %s: not a split folder (train, val or test) beside the split folders", root, others)
    layout: dict[str, list[Path]] = {} if use_splits else {"all": top}
    for d in (d for d in top if split_dirs[d]):
        if split_dirs[d] in layout:  # e.g. train/ and Training/: both are read, and that is said
            log.warning("%s: two folders for the %s split; reading both", root, split_dirs[d])
        layout.setdefault(split_dirs[d], []).extend(_visible_dirs(d))

    ignored: list[Path] = []
    splits: dict[str, list[Sample]] = {}
    found: set[str] = set()
    for split, class_dirs in layout.items():
        items = splits.setdefault(split, [])
        for class_dir in class_dirs:
            found.add(class_dir.name)
            label = (merge or {}).get(class_dir.name, class_dir.name)
            collected = _collect(class_dir, label, ignored)
            if not collected:  # a class that silently vanished would change what a model is trained for
                log.warning("%s: class folder holds no scans; class '%s' left out of this split", class_dir, label)
            items.extend(collected)
    if merge:
        unknown = sorted(set(merge) - found)
        if unknown:
            raise ValueError(f"{root}: class-merge map names unknown classes {unknown}; found {sorted(found)}")
    if not any(splits.values()):
        raise ValueError(f"{root}: no class folders with scans (expected ROOT/CLASS/*.jpg or ROOT/SPLIT/CLASS/*.jpg)")
    classes = sorted({s.label for items in splits.values() for s in items})
    return DatasetIndex(root=root, class_names=classes, splits=splits, ignored=ignored)
