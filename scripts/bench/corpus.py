"""Benchmark corpora: DICOM Part 10 files of a fixed size, generated once and cached.

The header is written with pydicom; the pixel data is appended as raw bytes, so a
1 GB object is generated without ever being held in memory (the same is expected of
the receiver). Every object has its own SOP Instance UID; one corpus is one study.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
SC_IMAGE = "1.2.840.10008.5.1.4.1.1.7"
MULTIFRAME_WORD_SC = "1.2.840.10008.5.1.4.1.1.7.3"
UID_ROOT = "1.2.826.0.1.3680043.8.498."
BLOCK = 1 << 20
DEFAULT_CACHE = Path.home() / ".cache" / "spoolscp-bench"  # corpora are generated once per machine


@dataclass(frozen=True)
class CorpusSpec:
    """``count`` objects of ``rows`` x ``cols`` x ``frames`` 16-bit pixels each."""

    name: str
    count: int
    sop_class: str
    rows: int
    cols: int
    frames: int = 1

    @property
    def pixel_bytes(self) -> int:
        return self.rows * self.cols * self.frames * 2


# The corpora, and a small variant of each for --quick and the smoke test.
FULL = {
    "2KB": CorpusSpec("2KB", 2000, SC_IMAGE, 24, 32),
    "512KB": CorpusSpec("512KB", 500, CT_IMAGE, 512, 512),
    "64MB": CorpusSpec("64MB", 8, MULTIFRAME_WORD_SC, 512, 512, 128),
}
QUICK = {
    "2KB": CorpusSpec("2KB", 300, SC_IMAGE, 24, 32),
    "512KB": CorpusSpec("512KB", 100, CT_IMAGE, 512, 512),
    "64MB": CorpusSpec("64MB", 2, MULTIFRAME_WORD_SC, 512, 512, 128),
}
TINY = {
    "2KB": CorpusSpec("2KB", 12, SC_IMAGE, 24, 32),
    "512KB": CorpusSpec("512KB", 4, CT_IMAGE, 512, 512),
    "64MB": CorpusSpec("64MB", 4, MULTIFRAME_WORD_SC, 64, 64, 8),
}
BIG = CorpusSpec("1GB", 1, MULTIFRAME_WORD_SC, 512, 512, 2048)


def header(spec: CorpusSpec, study: str, index: int) -> Dataset:
    """Everything but the pixel data of object ``index``."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = spec.sop_class
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = spec.sop_class
    ds.StudyDate, ds.StudyTime = "20261201", "120000"
    ds.Modality = "CT" if spec.sop_class == CT_IMAGE else "OT"
    ds.PatientName, ds.PatientID = "BENCH^" + spec.name, "BENCH"
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = study + ".1"
    ds.InstanceNumber = index + 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    if spec.frames > 1:
        ds.NumberOfFrames = spec.frames
    ds.Rows, ds.Columns = spec.rows, spec.cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    return ds


def write_object(path: Path, spec: CorpusSpec, study: str, index: int, pattern: bytes) -> None:
    """One file: pydicom header, then (7FE0,0010) OW streamed in 1 MB blocks."""
    ds = header(spec, study, index)
    uid = f"{study}.1.{index + 1}"
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.SOPInstanceUID = uid
    tmp = path.with_suffix(".part")
    ds.save_as(tmp, enforce_file_format=True)
    with tmp.open("ab") as f:
        f.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, spec.pixel_bytes))
        left = spec.pixel_bytes
        while left:
            chunk = pattern[: min(left, BLOCK)]
            f.write(chunk)
            left -= len(chunk)
    os.replace(tmp, path)


def ensure(spec: CorpusSpec, cache: Path) -> list[Path]:
    """The corpus's files in ``cache/<name>-<count>-<size>``, generated if missing."""
    folder = cache / f"{spec.name}-{spec.count}-{spec.pixel_bytes}"
    done = folder / ".complete"
    files = [folder / f"{i:05d}.dcm" for i in range(spec.count)]
    if done.exists():
        return files
    folder.mkdir(parents=True, exist_ok=True)
    study = UID_ROOT + str(zlib.crc32(folder.name.encode()))
    pattern = os.urandom(BLOCK)
    for i, path in enumerate(files):
        write_object(path, spec, study, i, pattern)
    done.touch()
    return files


def total_bytes(files: list[Path]) -> int:
    return sum(f.stat().st_size for f in files)


def split(files: list[Path], parts: int) -> list[list[Path]]:
    """Round-robin into at most ``parts`` non-empty groups, one per sender."""
    return [files[i::parts] for i in range(min(parts, len(files)))]
