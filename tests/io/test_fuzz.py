"""Random mutations of real scans: read_scan may succeed or raise ScanReadError, nothing else, never hang.

The shipped sample scans are shrunk to 64x64 and encoded in memory as every supported format;
10,000+ mutated copies (bit flips, byte insertions and deletions, truncations, header splices
between formats, boundary values written into headers, duplicated chunks) go through read_scan.
A seeded numpy RNG keeps every run identical, so a failure can be replayed.
"""

from __future__ import annotations

import faulthandler
import signal
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from braintumor.io import ScanReadError, read_scan

RUNS = 10_000
SEED = 20240611
HEAD = 600  # bytes: where headers live, so half the point mutations aim there
HANG_GUARD_S = 20  # a decode this slow means a hang (normal decodes here take about a millisecond)
RUN_GUARD_S = 600  # a hang inside C code ignores SIGALRM; faulthandler then dumps the stacks and exits
BOUNDARY_VALUES = (b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff", b"\x00\x00\x01\x00", b"\xff\xff\xff\x7f")


@pytest.fixture(scope="module")
def bases(samples_dir, image_bytes, dicom_bytes, nifti_bytes) -> dict[str, bytes]:
    """One small file per format and variant, each from a different shipped sample."""
    paths = sorted(samples_dir.rglob("*.jpg"))
    grays = [Image.open(p).convert("L").resize((64, 64), Image.Resampling.BILINEAR) for p in paths]

    def gray(i: int) -> Image.Image:
        return grays[i % len(grays)]

    def rgb(i: int) -> Image.Image:
        g = gray(i)
        return Image.merge("RGB", [g, g.transpose(Image.Transpose.FLIP_LEFT_RIGHT), g])

    def arr(i: int) -> np.ndarray:
        return np.asarray(gray(i))

    builders: dict[str, Callable[[], bytes]] = {
        "png": lambda: image_bytes(gray(0), "PNG"),
        "png_rgba": lambda: image_bytes(rgb(1).convert("RGBA"), "PNG"),
        "png_16bit": lambda: image_bytes(Image.fromarray(arr(2).astype(np.uint16) * 257), "PNG"),
        "jpeg": lambda: image_bytes(gray(3), "JPEG", quality=90),
        "jpeg_rgb_exif": lambda: image_bytes(rgb(4), "JPEG", exif=_exif(6)),
        "bmp": lambda: image_bytes(gray(5), "BMP"),
        "tiff": lambda: image_bytes(gray(6), "TIFF"),
        "tiff_deflate": lambda: image_bytes(rgb(7), "TIFF", compression="tiff_adobe_deflate"),
        "tiff_pages": lambda: image_bytes(gray(0), "TIFF", save_all=True, append_images=[rgb(1), gray(2)]),
        "webp": lambda: image_bytes(rgb(3), "WEBP", quality=80),
        "webp_lossless": lambda: image_bytes(gray(4), "WEBP", lossless=True),
        "dicom_window": lambda: dicom_bytes(arr(5).astype(np.uint16), WindowCenter=128, WindowWidth=256),
        "dicom_no_preamble": lambda: dicom_bytes(arr(6).astype(np.int16), preamble=False, RescaleSlope=2),
        "dicom_frames": lambda: dicom_bytes(np.stack([arr(7), arr(0), arr(1)]).astype(np.uint16)),
        "nifti": lambda: nifti_bytes(np.stack([arr(2), arr(3), arr(4)], -1).astype(np.int16), np.diag([-1, 1, 2, 1])),
        "nifti_gz": lambda: nifti_bytes(np.stack([arr(5), arr(6)], -1).astype(np.float32), np.eye(4), gz=True),
    }
    return {name: build() for name, build in builders.items()}


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def mutate(data: bytes, bases: list[bytes], rng: np.random.Generator) -> bytes:
    """Apply one to three random mutations."""
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        n = len(b)
        if n == 0:
            break
        op = int(rng.integers(0, 7))
        at = int(rng.integers(0, min(n, HEAD) if rng.random() < 0.5 else n))
        if op == 0:  # bit flips
            for _ in range(int(rng.integers(1, 9))):
                b[at] ^= 1 << int(rng.integers(0, 8))
                at = int(rng.integers(0, n))
        elif op == 1:  # insertion
            b[at:at] = rng.bytes(int(rng.integers(1, 17)))
        elif op == 2:  # deletion
            del b[at : at + int(rng.integers(1, 65))]
        elif op == 3:  # truncation
            b = b[:at]
        elif op == 4:  # header splice: another format's first bytes over ours
            other = bases[int(rng.integers(len(bases)))]
            k = int(rng.integers(1, min(len(other), HEAD)))
            b[:k] = other[:k]
        elif op == 5:  # boundary value into a header field
            value = BOUNDARY_VALUES[int(rng.integers(len(BOUNDARY_VALUES)))]
            b[at : at + len(value)] = value
        else:  # duplicated chunk
            b[at:at] = b[int(rng.integers(0, n)) :][: int(rng.integers(1, 200))]
    return bytes(b)


def check_scan(scan) -> None:
    """What every successful read promises, however damaged the input was."""
    px = scan.pixels
    assert px.ndim == 2 and min(px.shape) >= 32, px.shape
    assert px.dtype in (np.uint8, np.uint16, np.float32), px.dtype
    if px.dtype == np.float32:
        assert np.isfinite(px).all()
    if scan.format == "dicom":
        assert px.min() >= 0 and px.max() <= 1


class Hang(Exception):
    """Raised by the watchdog when one decode runs past HANG_GUARD_S."""


def _alarm(signum, frame):
    raise Hang


def test_bases_are_valid(bases):
    for name, data in bases.items():
        assert read_scan(data, name=name).shape[0] >= 32


def test_fuzz_only_scan_read_errors(bases):
    rng = np.random.default_rng(SEED)
    names, blobs = list(bases), list(bases.values())
    outcomes: dict[str, Counter] = {name: Counter() for name in names}
    unexpected = []
    guard = hasattr(signal, "SIGALRM")
    previous = signal.signal(signal.SIGALRM, _alarm) if guard else None
    faulthandler.dump_traceback_later(RUN_GUARD_S, exit=True)
    try:
        for i in range(RUNS):
            name = names[i % len(names)]
            data = mutate(bases[name], blobs, rng)
            if guard:
                signal.alarm(HANG_GUARD_S)
            try:
                check_scan(read_scan(data, name=f"fuzz-{i}-{name}"))
                outcomes[name]["ok"] += 1
            except ScanReadError as exc:
                assert f"fuzz-{i}-{name}" in str(exc)
                outcomes[name]["error"] += 1
            except AssertionError as exc:
                unexpected.append(f"run {i} ({name}): invalid scan returned: {exc}")
            except Exception as exc:  # collected so one run reports every offender
                unexpected.append(f"run {i} ({name}): {type(exc).__name__}: {exc}")
            finally:
                if guard:
                    signal.alarm(0)
    finally:
        faulthandler.cancel_dump_traceback_later()
        if guard:
            signal.signal(signal.SIGALRM, previous)
    total = sum(sum(c.values()) for c in outcomes.values())
    print({name: dict(c) for name, c in outcomes.items()})
    assert not unexpected, "\n".join(unexpected[:20])
    assert total >= RUNS
    # Both outcomes occur for every format: the mutations reach the decoders, not only the sniffer.
    assert all(c["ok"] > 0 and c["error"] > 0 for c in outcomes.values()), outcomes
