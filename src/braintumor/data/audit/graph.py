"""Turn classified pairs into the audit's findings: leaks across splits, groups, label conflicts.

Roles: every image plays "train", "val", "test" (or "all" for a folder without splits). With
`--against`, every image of DATA plays "test" and every image of OTHER plays "train".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from braintumor.data.audit.match import FLIPS, KINDS, Pairs

# Which side of a cross-split pair is evaluated on: the lower number. A pair test-val leaks into the test side.
ROLE_ORDER = {"test": 0, "val": 1, "train": 2, "all": 3}
COPY_KINDS = ("exact", "copy", "mirror")


@dataclass(frozen=True)
class ImageInfo:
    """One image of the audit: where it is listed and how it is labelled."""

    rel: str  # POSIX path relative to its dataset root
    dataset: str  # "data" or "against"
    role: str  # "train", "val", "test" or "all"
    split: str  # split as found by discovery
    label: str


def oriented(pairs: Pairs, roles: list[str]) -> Pairs:
    """Swap i and j where needed so that i is the evaluation side (test before val before train)."""
    ri = np.array([ROLE_ORDER[roles[k]] for k in pairs.i], dtype=np.int64)
    rj = np.array([ROLE_ORDER[roles[k]] for k in pairs.j], dtype=np.int64)
    swap = rj < ri
    out = pairs.select(np.ones(len(pairs), bool))
    out.i, out.j = np.where(swap, pairs.j, pairs.i), np.where(swap, pairs.i, pairs.j)
    return out


def strongest(kinds: list[str]) -> str:
    """The strongest of several kinds (exact > copy > mirror > near)."""
    return min(kinds, key=KINDS.index)


def leaks(dups: Pairs, roles: list[str], side: str, other: tuple[str, ...]) -> dict[int, str]:
    """{image index: strongest kind} for images of role `side` with a duplicate among roles `other`."""
    found: dict[int, list[str]] = {}
    for a, b, kind in zip(dups.i, dups.j, dups.kind, strict=True):
        for x, y in ((a, b), (b, a)):
            if roles[x] == side and roles[y] in other:
                found.setdefault(int(x), []).append(kind)
    return {k: strongest(v) for k, v in found.items()}


def components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected-component label of each of n nodes given undirected edges (i, j)."""
    graph = coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def within_split(dups: Pairs, roles: list[str], all_roles: list[str]) -> dict[str, dict]:
    """Per role of `all_roles`: duplicate groups (components of size >= 2 using only pairs inside the
    role) and pairs per kind. `roles` gives the role of each image."""
    role_of = np.array(roles, dtype=object)
    inside = dups.select(role_of[dups.i] == role_of[dups.j])
    labels = components(len(roles), inside.i, inside.j)
    out: dict[str, dict] = {}
    for role in all_roles:
        members = role_of == role
        sizes = Counter(labels[members].tolist())
        grouped = [s for s in sizes.values() if s >= 2]
        kinds = Counter(inside.kind[role_of[inside.i] == role].tolist())
        out[role] = {
            "images": int(members.sum()),
            "duplicate_groups": len(grouped),
            "images_in_groups": int(sum(grouped)),
            "largest_group": max(grouped, default=0),
            "pairs_per_kind": {k: int(kinds.get(k, 0)) for k in KINDS},
        }
    return out


def label_conflicts(dups: Pairs, infos: list[ImageInfo], kinds: tuple[str, ...]) -> list[dict]:
    """Pairs of the given kinds whose two images carry different labels."""
    return [
        pair_record(dups, q, infos)
        for q in range(len(dups))
        if dups.kind[q] in kinds and infos[dups.i[q]].label != infos[dups.j[q]].label
    ]


def pair_record(pairs: Pairs, q: int, infos: list[ImageInfo]) -> dict:
    """Pair q as written to audit.json; "a" is the evaluation side of a cross-split pair."""
    a, b = infos[pairs.i[q]], infos[pairs.j[q]]
    rec = {
        "kind": pairs.kind[q],
        "a": a.rel,
        "b": b.rel,
        "split_a": a.split,
        "split_b": b.split,
        "label_a": a.label,
        "label_b": b.label,
        "corr": round(float(pairs.corr[q]), 4),
        "ssim": round(float(pairs.ssim[q]), 4),
        "ssim_blur": None if np.isnan(pairs.ssim_blur[q]) else round(float(pairs.ssim_blur[q]), 4),
        "diff": round(float(pairs.mae[q]), 2),
        "mirror": FLIPS[int(pairs.flip[q])] or None,
    }
    if pairs.how[q]:
        rec["exact_by"] = pairs.how[q]
    if pairs.aligned[q]:  # scores and kind are those of the registered crops
        rec["aligned"] = True
    if a.dataset != b.dataset:  # with --against: say which path is relative to which root
        rec["dataset_a"], rec["dataset_b"] = a.dataset, b.dataset
    return rec
