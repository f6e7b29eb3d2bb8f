"""The TCGA lower-grade glioma layout (Buda et al.; Kaggle `mateuszbuda/lgg-mri-segmentation`).

ROOT/<case>/<case>_<n>.tif are 256x256 three-channel slices whose channels are pre-contrast T1, FLAIR
and post-contrast T1; <case>_<n>_mask.tif is the FLAIR abnormality mask. Where a case lacks a
sequence its channel repeats FLAIR: such a channel is not a sequence and is not imported.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from braintumor.data.sources.writer import ImportResult, SliceOptions, head_share, to_uint8
from braintumor.io.source import walk_tree

SEQUENCES = ("T1", "FLAIR", "T1c")  # the TIFF channels, in order
_SLICE = re.compile(r"^(?P<case>.+)_(?P<n>\d+)\.tiff?$", re.IGNORECASE)


def import_lgg(
    root: str | Path,
    out: str | Path,
    options: SliceOptions | None = None,
    *,
    source: str = "lgg",
    progress: bool = True,
) -> ImportResult:
    """Write every kept slice of every case below `root` as one PNG per real sequence (see the package doc).

    A slice is labelled by its mask: `options.tumour_label` from `min_tumour_px` up, `normal_label` when the
    mask is empty, left out in between; slices with little head are skipped. A case whose files cannot be
    read, or whose mask differs in size from its slice, is reported in the result and skipped.
    """
    options = options or SliceOptions()
    result = ImportResult(Path(out))
    cases = sorted({p.parent for p in walk_tree(root) if p.name.lower().endswith(("_mask.tif", "_mask.tiff"))})
    if not cases:
        raise FileNotFoundError(f"{root}: no <case>_<n>_mask.tif files; not the LGG segmentation layout")
    for case in tqdm(cases, desc="cases", unit="case", disable=not progress):
        try:
            numbers, images, masks = _read_case(case)
        except (OSError, ValueError) as exc:
            result.problem(case, str(exc))
            continue
        _write_case(result, options, source, _patient(case.name), numbers, images, masks)
    return result.write()


def _patient(case: str) -> str:
    """TCGA_CS_4941_19960909 -> TCGA_CS_4941 (the case folder adds the scan date)."""
    parts = case.split("_")
    return "_".join(parts[:3]) if len(parts) >= 3 else case


def _read_case(case: Path) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Slice numbers, images (N, H, W, 3) and masks (N, H, W) of one case, in slice order."""
    found = sorted(
        (int(m["n"]), p) for p in case.iterdir() if (m := _SLICE.match(p.name)) and not p.stem.endswith("_mask")
    )
    if not found:
        raise ValueError("no slices")
    images, masks = [], []
    for _, path in found:
        mask_path = path.with_name(f"{path.stem}_mask{path.suffix}")
        with Image.open(path) as im, Image.open(mask_path) as mk:
            image, mask = np.asarray(im.convert("RGB")), np.asarray(mk.convert("L"))
        if image.shape[:2] != mask.shape:
            raise ValueError(f"{mask_path.name} is {mask.shape}, its slice {image.shape[:2]}: inconsistent")
        images.append(image)
        masks.append(mask)
    return [n for n, _ in found], np.stack(images), np.stack(masks)


def _write_case(
    result: ImportResult,
    options: SliceOptions,
    source: str,
    patient: str,
    numbers: list[int],
    images: np.ndarray,
    masks: np.ndarray,
) -> None:
    flair = images[..., 1]
    # a channel identical to FLAIR throughout the case is the dataset's stand-in for a missing sequence
    channels = [c for c in range(3) if c == 1 or not np.array_equal(images[..., c], flair)]
    if len(channels) < 3:
        result.skip("a channel repeating FLAIR, no sequence of its own", len(numbers) * (3 - len(channels)))
    windows = {c: np.percentile(images[..., c], (0.5, 99.5)) for c in channels}
    normal_seen = 0
    for i, number in enumerate(numbers):
        if i % options.every:
            result.skip("between the slices kept (--every)", len(channels))
            continue
        area = int((masks[i] > 0).sum())
        label = options.label(area)
        if label is None:
            result.skip(f"tumour under {options.min_tumour_px} px", len(channels))
            continue
        if area == 0:
            normal_seen += 1
            if (normal_seen - 1) % options.normal_every:
                result.skip("tumour-free, between those kept (--normal-every)", len(channels))
                continue
        if head_share(flair[i]) < options.min_head:
            result.skip("little head", len(channels))
            continue
        for c in channels:
            pixels = to_uint8(images[i, ..., c], *windows[c])
            result.add(
                pixels,
                source=source,
                patient=patient,
                sequence=SEQUENCES[c],
                plane="axial",
                index=number,
                tumour_area=area,
                label=label,
            )
