"""Combine several datasets into one folder of links, so one audit and one training run see them all.

    OUT/<Split>/<class>/<source name>/<path inside the source's class folder>
    (with a merge map: OUT/<Split>/<new class>/<source name>/<old class>/<path>)

Each file is a symbolic link to the original (or a copy with `copy=True`), so nothing is decoded
or re-encoded and the audit compares the very bytes the authors published. A source with split
folders keeps its splits (Training/Validation/Testing); a source without them counts as
training data. The source name (its folder name) keeps equal file names from different sources
apart and stays visible in every list the audit writes, so a reader can tell where an image came
from. Written here, not borrowed: no library builds a class-folder tree from several roots, and
the layout must be exactly the one `discover` reads back.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from braintumor.data.discovery import discover

SPLIT_FOLDERS = {"train": "Training", "all": "Training", "val": "Validation", "test": "Testing"}


@dataclass
class CombineResult:
    """What `combine_datasets` wrote: counts per (split folder, class, source)."""

    out: Path
    counts: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        lines = [f"combined into {self.out} ({sum(self.counts.values())} files)"]
        for (split, label, source), n in sorted(self.counts.items()):
            lines.append(f"  {split}/{label}/{source}: {n}")
        return "\n".join(lines)


def combine_datasets(
    sources: list[str | Path],
    out: str | Path,
    *,
    merge: dict[str, str] | None = None,
    copy: bool = False,
) -> CombineResult:
    """Link (or copy) every scan of `sources` into one dataset folder at `out`.

    Raises:
        ValueError: no source, two sources with the same folder name, or `out` exists and is
            not empty (a half-merged folder is never extended silently).
        FileNotFoundError / NotADirectoryError: a source is missing (from `discover`).
    """
    if not sources:
        raise ValueError("combine: give at least one source dataset")
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out}: exists and is not an empty folder; choose a new output folder")
    indexes = [discover(s) for s in sources]
    if merge:  # one map for all sources: each applies the classes it has, and every class must be somewhere
        unknown = sorted(set(merge) - {c for ix in indexes for c in ix.class_names})
        if unknown:
            raise ValueError(f"combine: the class-merge map names classes no source has: {unknown}")
        indexes = [
            discover(s, merge={k: v for k, v in merge.items() if k in ix.class_names})
            for s, ix in zip(sources, indexes, strict=True)
        ]
    names = [ix.root.name for ix in indexes]
    dupes = sorted(n for n, k in Counter(names).items() if k > 1)
    if dupes:
        raise ValueError(f"combine: two sources share the folder name {dupes}; rename one (names keep sources apart)")
    result = CombineResult(out=out.resolve() if out.exists() else out.absolute())
    for index in indexes:
        has_splits = set(index.splits) != {"all"}
        for split, samples in index.splits.items():
            split_folder = SPLIT_FOLDERS[split]
            for sample in samples:
                parts = Path(index.relpath(sample.path)).parts
                class_folder, inner = (parts[1], Path(*parts[2:])) if has_splits else (parts[0], Path(*parts[1:]))
                if class_folder != sample.label:  # merged classes: keep the old class apart, so names cannot clash
                    inner = Path(class_folder) / inner
                target = out / split_folder / sample.label / index.root.name / inner
                if target.exists() or target.is_symlink():
                    raise ValueError(f"{sample.path}: would overwrite {target}; rename one of the two files")
                target.parent.mkdir(parents=True, exist_ok=True)
                if copy:
                    shutil.copy2(sample.path, target)
                else:
                    os.symlink(sample.path, target)
                result.counts[(split_folder, sample.label, index.root.name)] += 1
    return result
