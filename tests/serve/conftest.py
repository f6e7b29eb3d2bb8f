"""A real uvicorn server on a free loopback port, serving the tiny checkpoint, plus test scans in every format."""

from __future__ import annotations

import dataclasses
import io
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from PIL import Image

from braintumor.serve import ServeSettings, create_app


class RunningServer:
    """uvicorn serving `create_app(settings)` in a thread; `url` is its base address."""

    def __init__(self, settings: ServeSettings) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> RunningServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start (see the log above)")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


@pytest.fixture(scope="session")
def ood_model(tiny_checkpoint: Path, samples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny checkpoint with an OOD detector fitted on the sample scans alone."""
    from braintumor.data import discover
    from braintumor.models import load_model, update_metadata
    from braintumor.training.ood_fit import fit_ood

    folder = tmp_path_factory.mktemp("ood_model")
    for f in tiny_checkpoint.iterdir():
        shutil.copy(f, folder / f.name)
    samples = discover(samples_dir).samples()
    loaded = load_model(folder)
    detector = fit_ood(loaded, samples, samples, percentile=100)
    # 5 % above the largest sample score, so re-encoded copies of the samples (DICOM, NIfTI) are not on the edge.
    dataclasses.replace(detector, threshold=detector.threshold * 1.05).save(folder)
    # A caveat per class, as a model card's known weaknesses would give, so the API and page show one.
    update_metadata(folder, caveats={c: f"test caveat for {c}" for c in loaded.class_names})
    return folder


@pytest.fixture(scope="session")
def serve_factory() -> Iterator[Callable[[ServeSettings], RunningServer]]:
    """Start servers on demand; all are stopped at the end of the session."""
    started: list[RunningServer] = []

    def start(settings: ServeSettings) -> RunningServer:
        server = RunningServer(settings).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__(None, None, None)


@pytest.fixture(scope="session")
def server(serve_factory: Callable, ood_model: Path) -> RunningServer:
    """No token, OOD check on, small limits (2 MB per file, 8 MB per request, 8 files)."""
    settings = ServeSettings(model=str(ood_model), max_file_bytes=2 * 2**20, max_request_bytes=8 * 2**20, max_files=8)
    return serve_factory(settings)


@pytest.fixture()
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def jpeg_bytes(array: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="session")
def photo_jpeg() -> bytes:
    """A colour photograph (skimage's cat), as a user might upload by mistake."""
    from skimage.data import chelsea

    return jpeg_bytes(chelsea())


@pytest.fixture(scope="session")
def dicom_bytes(samples_dir: Path) -> bytes:
    """A sample scan written as a 16-bit MR DICOM file with pydicom."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    pixels = np.asarray(Image.open(next(samples_dir.glob("glioma/*.jpg"))).convert("L"), dtype=np.uint16) * 16
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MRImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("scan.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = MRImageStorage, meta.MediaStorageSOPInstanceUID, "MR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.fixture(scope="session")
def nifti_bytes(samples_dir: Path) -> bytes:
    """A small NIfTI-1 volume whose middle axial slice is a sample scan, written with nibabel."""
    import nibabel as nib

    img = np.asarray(Image.open(next(samples_dir.glob("pituitary/*.jpg"))).convert("L"))[::-1, ::-1]
    # (x, y, z), uint8 (under 1 MB); the reader shows the middle slice in display orientation, i.e. the sample
    # scan itself, which the tiny detector (fitted on the samples alone) accepts.
    volume = np.stack([img // 2, img, img // 2], axis=-1).transpose(1, 0, 2)
    return nib.Nifti1Image(volume, np.eye(4)).to_bytes()
