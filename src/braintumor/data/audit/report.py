"""The audit's result object, its summary table and the files it writes."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from braintumor import PATH_ERRORS
from braintumor.data.audit.graph import ImageInfo
from braintumor.data.audit.match import FLIPS, KINDS, Pairs, Thresholds
from braintumor.data.audit.plots import PairPicture, load_for_display, pair_grid

# train_leaking.txt is the complement of train_minus_leaks.txt: the file `braintumor train --exclude` takes.
LIST_FILES = ("test_leaking.txt", "test_clean.txt", "train_minus_leaks.txt", "train_leaking.txt")


@dataclass
class AuditResult:
    """Findings of `run_audit`. Paths are POSIX paths relative to DATA, except `train_minus_leaks`
    and the "against" side of pairs, which are relative to OTHER when auditing with `against`.

    Attributes:
        images: readable images per role ("train", "val", "test" or "all").
        test_leaks / train_leaks: kind -> number of test (training) images whose strongest
            duplicate on the other side is of that kind. Test leaks count training and val partners.
        val_leaks: kind -> number of val images with a duplicate in train.
        cross_pairs / within: pairs per kind across roles; per role groups and pairs per kind.
        label_conflicts: exact/copy/mirror pairs with different labels (anywhere);
            near_label_mismatches: the same for near pairs (a mislabel or a same-patient scan).
        groups: DATA path -> group id (connected components of all duplicate pairs).
    """

    data: Path
    against: Path | None
    thresholds: Thresholds
    images: dict[str, int]
    test_leaks: dict[str, int]
    train_leaks: dict[str, int]
    val_leaks: dict[str, int]
    cross_pairs: dict[str, int]
    within: dict[str, dict]
    label_conflicts: list[dict]
    near_label_mismatches: list[dict]
    test_leaking: list[str]
    test_clean: list[str]
    train_minus_leaks: list[str]
    train_leaking: list[str]
    unreadable: list[dict]
    pairs: list[dict]
    groups: dict[str, int]
    timings: dict[str, float] = field(default_factory=dict)
    out_dir: Path | None = None

    @property
    def has_test(self) -> bool:
        return "test" in self.images

    def to_json(self) -> dict:
        """Everything audit.json holds."""
        return {
            "data": str(self.data),
            "against": str(self.against) if self.against else None,
            "thresholds": self.thresholds.to_dict(),
            "images": self.images,
            "cross_split": {
                "test_images_per_kind": self.test_leaks,
                "train_images_per_kind": self.train_leaks,
                "val_images_per_kind": self.val_leaks,
                "pairs_per_kind": self.cross_pairs,
                "test_leaking": len(self.test_leaking),
                "test_clean": len(self.test_clean),
                "train_minus_leaks": len(self.train_minus_leaks),
                "train_leaking": len(self.train_leaking),
            },
            "within_split": self.within,
            "label_conflicts": self.label_conflicts,
            "near_label_mismatches": self.near_label_mismatches,
            "unreadable": self.unreadable,
            "timings_s": {k: round(v, 2) for k, v in self.timings.items()},
            "pairs": self.pairs,
        }

    def summary(self) -> str:
        """A table for people: leaks per kind, within-split groups, label conflicts, clean test images."""
        th = self.thresholds
        head = f"Leakage audit of {self.data}"
        if self.against:
            head += f" (as test) against {self.against} (as training)"
        lines = [head, "images: " + ", ".join(f"{r} {n}" for r, n in self.images.items())]
        if self.has_test:
            lines += ["", f"{'kind':<8} {'test images':>12} {'train images':>13} {'cross pairs':>12}"]
            for k in (*KINDS, "any"):
                lines.append(
                    f"{k:<8} {self.test_leaks.get(k, 0):>12} {self.train_leaks.get(k, 0):>13} "
                    f"{self.cross_pairs.get(k, 0):>12}"
                )
            lines.append(f"clean test images: {len(self.test_clean)} of {self.images.get('test', 0)} (test_clean.txt)")
            lines.append(f"training images with no duplicate in test: {len(self.train_minus_leaks)}")
        else:
            lines.append("no test split: audited duplicates within splits (and val vs train) only; no lists written")
        if self.val_leaks.get("any"):
            lines.append(f"val images with a duplicate in train: {self.val_leaks['any']}")
        lines.append("")
        for role, w in self.within.items():
            kinds = ", ".join(f"{k} {w['pairs_per_kind'][k]}" for k in KINDS)
            lines.append(
                f"within {role}: {w['duplicate_groups']} duplicate groups holding {w['images_in_groups']} images "
                f"(largest {w['largest_group']}); pairs: {kinds}"
            )
        lines.append(
            f"label conflicts (exact/copy/mirror with different labels): {len(self.label_conflicts)}; "
            f"near-identical pairs with different labels: {len(self.near_label_mismatches)}"
        )
        lines.append(f"unreadable files (skipped, listed in audit.json): {len(self.unreadable)}")
        lines += [f"  {u['path']}: {u['reason']}" for u in self.unreadable[:10]]
        if len(self.unreadable) > 10:
            lines.append(f"  ... and {len(self.unreadable) - 10} more")
        lines.append(
            f"near rule: corr >= {th.near_corr:.3f} and (SSIM >= {th.near_ssim:.2f} or blurred SSIM >= "
            f"{th.near_ssim_blur:.2f}); copy/mirror: corr >= {th.copy_corr:.2f}, SSIM >= {th.copy_ssim:.2f}, "
            f"intensity diff <= {th.copy_mae:g}"
        )
        if th.neighbours:
            lines.append(
                f"second look: each image's {th.neighbours} nearest partners"
                + (f" (and {th.zoom_neighbours} of each zoomed view)" if th.zoom_neighbours else "")
                + " registered (affine) and counted "
                f"near at aligned SSIM >= {th.aligned_ssim:.2f} or blurred >= {th.aligned_ssim_blur:.2f}, a "
                f'copy at >= {th.aligned_copy_ssim:.2f}; such pairs carry "aligned": true in audit.json'
            )
        if self.out_dir:
            lists = ", test_leaking.txt, test_clean.txt, train_minus_leaks.txt, train_leaking.txt"
            lists = lists if self.has_test else ""
            lines.append(f"wrote {self.out_dir}: audit.json, groups.csv{lists}, examples_*.png")
        return "\n".join(lines)


def write_lists(result: AuditResult, out_dir: Path) -> None:
    """groups.csv and, when there is a test side, the three lists (one path per line)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if result.has_test:
        lists = (result.test_leaking, result.test_clean, result.train_minus_leaks, result.train_leaking)
        for name, items in zip(LIST_FILES, lists, strict=True):
            (out_dir / name).write_text("".join(f"{p}\n" for p in items), encoding="utf-8", errors=PATH_ERRORS)
    with open(out_dir / "groups.csv", "w", newline="", encoding="utf-8", errors=PATH_ERRORS) as f:
        writer = csv.writer(f)
        writer.writerow(["path", "group"])
        writer.writerows(result.groups.items())


def write_json(result: AuditResult, out_dir: Path) -> None:
    """audit.json, with one pair per line so that `grep NAME audit.json` shows every partner of a file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    body = result.to_json()
    pairs = body.pop("pairs")
    head = json.dumps(body, indent=1)
    lines = ",\n".join("  " + json.dumps(p) for p in pairs)
    text = f'{head[:-2]},\n "pairs": [\n{lines}\n ]\n}}\n'
    (out_dir / "audit.json").write_text(text, encoding="utf-8", errors=PATH_ERRORS)


def _evenly(order: np.ndarray, k: int) -> np.ndarray:
    """k entries spread evenly over an ordered index array, both ends included."""
    if len(order) <= k:
        return order
    return order[np.unique(np.linspace(0, len(order) - 1, k).round().astype(int))]


def pick_examples(pairs: Pairs, roles: list[str], kind: str, th: Thresholds, k: int) -> np.ndarray:
    """Indices of up to k pairs to draw: cross-split pairs first, spread from the weakest to the strongest."""
    margin = np.fmax(pairs.ssim - th.near_ssim, pairs.ssim_blur - th.near_ssim_blur)  # fmax: blur may be NaN
    if kind == "borderline":
        # Pairs that just miss the near rule (SSIM margin within 0.06): what the thresholds leave out.
        mask = (pairs.kind == "") & (pairs.corr >= th.near_corr - th.border) & (margin >= -0.06)
    else:
        mask = pairs.kind == kind
    cross = np.array([roles[a] != roles[b] for a, b in zip(pairs.i, pairs.j, strict=True)], dtype=bool)
    chosen: list[int] = []
    for part in (mask & cross, mask & ~cross):
        idx = np.nonzero(part)[0]
        chosen.extend(_evenly(idx[np.argsort(margin[idx], kind="stable")], k - len(chosen)).tolist())
        if len(chosen) >= k:
            break
    return np.array(chosen, dtype=np.int64)


def _caption(pairs: Pairs, q: int, a: ImageInfo, b: ImageInfo) -> str:
    flip = FLIPS[int(pairs.flip[q])]
    head = (pairs.kind[q] or "not a duplicate") + (f" ({pairs.how[q]})" if pairs.how[q] else "")
    head += f"  mirrored {'left-right' if flip == 'h' else 'top-bottom'}" if flip else ""
    head += "  (after alignment)" if pairs.aligned[q] else ""
    blur = "" if np.isnan(pairs.ssim_blur[q]) else f"  blurred {pairs.ssim_blur[q]:.3f}"
    scores = f"corr {pairs.corr[q]:.3f}  SSIM {pairs.ssim[q]:.3f}{blur}  diff {pairs.mae[q]:.1f}"
    return f"{head}\n{scores}\n{a.label} ({a.role})  |  {b.label} ({b.role})"


def write_examples(
    pairs: Pairs, infos: list[ImageInfo], paths: list[Path], th: Thresholds, out_dir: Path, k: int
) -> None:
    """examples_{exact,copy,mirror,near,borderline}.png: evaluation side left, training side right."""
    roles = [x.role for x in infos]
    for kind in (*KINDS, "borderline"):
        pics = []
        for q in pick_examples(pairs, roles, kind, th, k):
            a, b = infos[pairs.i[q]], infos[pairs.j[q]]
            left, right = load_for_display(paths[pairs.i[q]]), load_for_display(paths[pairs.j[q]])
            pics.append(PairPicture(left, right, a.rel, b.rel, _caption(pairs, q, a, b)))
        title = f"{kind} pairs (left: evaluation side, right: training side; {len(pics)} shown)"
        if kind == "borderline":
            title = (
                f"pairs just below the near rule (corr >= {th.near_corr:.2f} and SSIM >= {th.near_ssim:.2f} "
                f"or blurred SSIM >= {th.near_ssim_blur:.2f}): not counted as duplicates"
            )
        pair_grid(pics, title).savefig(out_dir / f"examples_{kind}.png", dpi=90)
