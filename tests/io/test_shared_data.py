"""Every image of the three real datasets reads with the full decoder (about 15 s on one core)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from braintumor.io import ScanReadError, is_scan_file, read_scan

EXPECTED_FILES = 10_340  # nickparvar-7023 (7,023) + figshare-cheng-3064 (3,064) + chakrabarty-253 (253)


@pytest.mark.slow
def test_every_shared_file_reads(shared_data):
    files = sorted(p for p in shared_data.rglob("*") if p.is_file() and is_scan_file(p))
    assert len(files) == EXPECTED_FILES
    failures, formats, dtypes = [], Counter(), Counter()
    for path in files:
        try:
            scan = read_scan(path)
        except ScanReadError as exc:
            failures.append(str(exc))
            continue
        formats[scan.format] += 1
        dtypes[str(scan.pixels.dtype)] += 1
        assert scan.pixels.ndim == 2 and min(scan.shape) >= 32, path
    print(f"formats {dict(formats)}, dtypes {dict(dtypes)}")
    assert not failures, "\n".join(failures)
    # The data README: mostly JPEG with a few PNGs (some named .jpg), all 8-bit.
    assert formats["jpeg"] > 10_000 and formats["png"] > 0
    assert set(dtypes) == {str(np.dtype(np.uint8))}
