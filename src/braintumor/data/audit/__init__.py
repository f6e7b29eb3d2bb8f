"""Leakage audit (`braintumor data audit`): exact copies, re-encoded/resized copies, mirror images and
near-identical scans within and across the splits of a dataset.

Kinds, strongest first; each pair gets exactly one:
    exact   identical file bytes, or identical decoded pixels
    copy    the same picture re-encoded, resized or re-framed (RGB or gray), same orientation
    mirror  a left-right or top-bottom mirror image of the other (possibly re-encoded/resized)
    near    near-identical but not a copy: an adjacent slice of the same scan, a small shift or
            warp, a brightness/contrast change (also mirrored)
Pairs that a crop into the head or a rotation hides from the head-crop comparison are found by a
second look that registers each image with its nearest partners (`align`); their records
carry "aligned": true.
See `match.Thresholds` for the measures and how the default thresholds were chosen.

Outputs in OUT (paths POSIX, relative to DATA unless said otherwise):
    audit.json              counts per kind across and within splits, label conflicts,
                            thresholds, unreadable files, timings, and every duplicate pair, one
                            per line: kind, a/b paths (a: the evaluation side), split_*, label_*,
                            corr, ssim, ssim_blur (null when not needed), diff (mean |raw
                            intensity difference|, 0-255), mirror ("h", "v" or null), exact_by
    test_leaking.txt        test images with an exact/copy/mirror/near partner in train (or val)
    test_clean.txt          the other readable test images
    train_minus_leaks.txt   training images with no partner in test; relative to DATA, or to
                            OTHER when auditing with --against
    train_leaking.txt       the other training images (same base): what `train --exclude` takes
    groups.csv              `path,group` for every image of DATA: images linked by any duplicate
                            relation share a group (read by `braintumor.data.splits.load_groups_csv`)
    examples_{exact,copy,mirror,near,borderline}.png   pairs to check by eye

Modules, in the order the audit runs: `features` (decode once, head crops, fingerprints), `match`
(candidate pairs, thresholds, kinds), `scores` (correlation and SSIM of pairs), `align` (the registered
second look), `graph` (duplicate groups, lists), `report` and `plots` (what is written), `run` (`run_audit`).
"""

from braintumor.data.audit.report import AuditResult
from braintumor.data.audit.run import run_audit

__all__ = ["AuditResult", "run_audit"]
