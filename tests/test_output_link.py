"""A spool file that already is the output is linked into the output folder, not copied.

The receiver writes the meta group storescp's output carries (``receiver.filemeta``); a
worker whose output would be the spool file byte for byte makes the output a hard link
to it (``workers.output.link_durably``), and copies in every other case, with the same
bytes either way. Unit tests on ``workers.output`` (one output, then a job run again
after a crash), then the real pipeline against DCMTK storescp.
"""

from __future__ import annotations

import dataclasses
import errno
import io
import os
import zlib
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from sidebyside import SUCCESS, part10_inputs, scp_server, send_dcmtk, wait_output_complete, wait_until, worker_process
from spoolscp import identity
from spoolscp.jobs import Job
from spoolscp.rawdicom import DEFLATED_LE, EXPLICIT_LE
from test_encoder import CT, LE, spool_file, uids
from test_faults import tree
from workers import output
from workers.encoder import Encoding, file_meta, write_output

DATASET = uids(LE) + LE.el(0x00100010, "PN", b"DOE^JANE") + LE.el(0x7FE00010, "OW", bytes(range(256)) * 400)


def spool_as_output(path: Path, dataset: bytes = DATASET, ts: str = EXPLICIT_LE,
                    version: str = identity.VERSION_NAME, ae: str = "SENDER") -> Path:
    """A spool file as the receiver writes it on a spoolscp association: the output's meta group."""
    path.write_bytes(bytes(128) + b"DICM" + file_meta(CT, "1.2.3.4", ts, version, ae) + dataset)
    path.chmod(0o600)  # as receiver.diskfull creates spool files
    return path


def in_memory(spool: Path, e: Encoding, ae: str = "SENDER") -> bytes:
    out = io.BytesIO()
    write_output(spool, out, e, ae)
    return out.getvalue()


def written(spool: Path, out: Path, e: Encoding = Encoding(), ae: str = "SENDER") -> bool:
    """Write ``out`` from ``spool``; True if it became the spool file itself (a link)."""
    expected = in_memory(spool, e, ae)
    output.write_durably(spool, out, e, ae)
    assert out.read_bytes() == expected
    return out.stat().st_ino == spool.stat().st_ino


def new_file_mode(tmp_path: Path) -> int:
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    return probe.stat().st_mode & 0o777


@pytest.mark.parametrize(("e", "ts", "version"), [
    (Encoding(), EXPLICIT_LE, identity.VERSION_NAME),
    (Encoding(xfer="little"), EXPLICIT_LE, identity.VERSION_NAME),  # +te of an explicit LE object: no change
    (Encoding(bit_preserving=True), EXPLICIT_LE, identity.BIT_PRESERVING_VERSION_NAME),
    (Encoding(bit_preserving=True), DEFLATED_LE, identity.BIT_PRESERVING_VERSION_NAME),  # raw bytes, as received
], ids=["default", "+te", "+B", "+B deflated"])
def test_output_identical_to_the_spool_file_is_a_link_with_a_new_files_mode(e, ts, version, tmp_path: Path) -> None:
    dataset = DATASET
    if ts == DEFLATED_LE:
        z = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        dataset = z.compress(DATASET) + z.flush()
    spool = spool_as_output(tmp_path / "spool.dcm", dataset, ts, version)
    out = tmp_path / "out" / "CT.tmp"
    out.parent.mkdir()
    assert written(spool, out, e)
    assert out.stat().st_mode & 0o777 == new_file_mode(tmp_path)  # not the spool's 0600: a copy's mode


@pytest.mark.parametrize(("why", "e", "ae", "dataset", "version"), [
    ("another calling AE", Encoding(), "OTHER", DATASET, identity.VERSION_NAME),
    ("-F", Encoding(write_file=False), "SENDER", DATASET, identity.VERSION_NAME),
    ("+B's version name", Encoding(), "SENDER", DATASET, identity.BIT_PRESERVING_VERSION_NAME),
    ("re-encoded (+ti)", Encoding(xfer="implicit"), "SENDER", DATASET, identity.VERSION_NAME),
    ("an odd value length", Encoding(), "SENDER", uids(LE) + LE.el(0x00100010, "PN", b"DOE"), identity.VERSION_NAME),
    ("padded (+p)", Encoding(padding=(256, 0)), "SENDER", DATASET, identity.VERSION_NAME),
])
def test_any_other_output_is_copied(why: str, e: Encoding, ae: str, dataset: bytes, version: str,
                                    tmp_path: Path) -> None:
    spool = spool_as_output(tmp_path / "spool.dcm", dataset, version=version)
    assert not written(spool, tmp_path / "out.tmp", e, ae), why


def test_a_spool_file_with_pynetdicoms_meta_is_copied(tmp_path: Path) -> None:
    """Spool files of an earlier spoolscp (pynetdicom's identity in the meta) still work."""
    spool = spool_file(tmp_path / "spool.dcm", DATASET, EXPLICIT_LE)
    assert not written(spool, tmp_path / "out.tmp")


def test_the_job_tables_bytes_are_written(tmp_path: Path) -> None:
    data = spool_as_output(tmp_path / "spool.dcm").read_bytes()
    out = tmp_path / "out.tmp"
    output.write_durably(data, out, Encoding(), "SENDER")
    assert out.read_bytes() == data  # the same bytes, in a file of its own (nothing to link)


@pytest.mark.parametrize("refusal", [errno.EXDEV, errno.EPERM, errno.EMLINK])
def test_where_no_link_can_be_made_the_output_is_copied(refusal: int, tmp_path: Path, monkeypatch) -> None:
    spool = spool_as_output(tmp_path / "spool.dcm")

    def refuse(*_args) -> None:
        raise OSError(refusal, os.strerror(refusal))

    monkeypatch.setattr(output.os, "link", refuse)
    assert not written(spool, tmp_path / "out.tmp")


def test_a_spool_file_of_another_user_is_copied(tmp_path: Path, monkeypatch) -> None:
    """Its link would give the output the receiver's owner, not the worker's."""
    spool = spool_as_output(tmp_path / "spool.dcm")
    monkeypatch.setattr(output.os, "geteuid", lambda: os.stat(spool).st_uid + 1)
    assert not written(spool, tmp_path / "out.tmp")


def test_a_failing_link_error_is_raised(tmp_path: Path, monkeypatch) -> None:
    """A full disk or a lost folder is the job's error (retried), not a silent copy."""
    spool = spool_as_output(tmp_path / "spool.dcm")
    with pytest.raises(FileNotFoundError):
        output.write_durably(spool, tmp_path / "missing-folder" / "out.tmp", Encoding(), "SENDER")


def test_an_earlier_attempts_link_is_replaced_not_truncated(tmp_path: Path) -> None:
    """A crashed attempt left the temporary name as a link to the spool file; a copy
    written there now (the options say copy) must not truncate the spool through it."""
    spool = spool_as_output(tmp_path / "spool.dcm")
    before = spool.read_bytes()
    out = tmp_path / "out.tmp"
    os.link(spool, out)
    assert not written(spool, out, Encoding(write_file=False))
    assert spool.read_bytes() == before
    assert written(spool, out)  # and linking again over it works too


# ------------------------------------------------------------------------------ the pipeline

def flat_object(path: Path, instance: str, study: str, ts: str = ExplicitVRLittleEndian, fill: int = 0) -> Path:
    """A 128 kB CT object without sequences (its data set is written as received)."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.StudyInstanceUID = CT, instance, study
    ds.PatientName = "DOE^JANE"
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 256, 256, 16, 16, 15
    ds.PixelRepresentation, ds.SamplesPerPixel, ds.PhotometricInterpretation = 0, 1, "MONOCHROME2"
    ds.PixelData = bytes([fill % 256]) * (256 * 256 * 2)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ts
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = CT, instance
    ds.save_as(path, enforce_file_format=True)
    return path


def flat_objects(folder: Path, count: int, ts: str) -> list[Path]:
    folder.mkdir()
    return [flat_object(folder / f"flat{i}.dcm", f"1.2.826.0.1.3680043.8.498.78.{i}", "1.2.826.0.1.3680043.8.498.78",
                        ts, i) for i in range(1, count + 1)]


def hold_spool_files(spool_dir: Path, count: int, held: Path) -> set[int] | None:
    """Once there are ``count`` spool files, link each into ``held`` (their inodes then
    stay taken: no copy can get one back) and return the inodes."""
    found = list(spool_dir.glob("*.dcm"))
    if len(found) != count:
        return None
    held.mkdir()
    for path in found:
        os.link(path, held / path.name)
    return {path.stat().st_ino for path in found}


@pytest.mark.parametrize(("options", "ts", "linked"), [
    ([], ExplicitVRLittleEndian, True),
    (["+B"], ExplicitVRLittleEndian, True),
    (["+B"], ImplicitVRLittleEndian, True),
    (["-F"], ExplicitVRLittleEndian, False),
    (["+ti"], ExplicitVRLittleEndian, False),
])
def test_received_objects_are_linked_where_storescp_writes_them_as_received(
        options: list[str], ts: str, linked: bool, tmp_path: Path) -> None:
    """Receiver first (the spool files stay), then the workers: the outputs are the spool
    files' inodes exactly where nothing is re-encoded, and the files are DCMTK's."""
    paths = flat_objects(tmp_path / "objects", 3, ts)
    workdir = tmp_path / "spoolscp"
    with scp_server("spoolscp", options, workdir, receiver_only=True, spool_in_db_max=0) as receiver:
        assert send_dcmtk(receiver.port, part10_inputs(paths), tmp_path / "send.log") == [SUCCESS] * 3
        spooled = wait_until(lambda: hold_spool_files(workdir / "state" / "spool", 3, tmp_path / "held"), 30,
                             "three spool files")
        with worker_process(receiver.config, workdir):
            stats = wait_output_complete(receiver, timeout=120)
    assert stats["done"] == 3 and stats["failed"] == 0
    outputs = {p.stat().st_ino for p in receiver.outdir.iterdir()}
    assert (outputs == spooled) is linked and (outputs.isdisjoint(spooled)) is not linked
    with scp_server("dcmtk", options, tmp_path / "dcmtk") as reference:
        assert send_dcmtk(reference.port, part10_inputs(paths), tmp_path / "dcmtk.log") == [SUCCESS] * 3
    assert tree(receiver.outdir) == tree(reference.outdir)


# ------------------------------------------------------------------------------ re-runs

def store_job(out: Path, seq: int = 7) -> Job:
    """A store job as the tracker leaves it: its output folder, name and options."""
    fields = dict.fromkeys(Job.__dataclass_fields__)
    encoding = {**dataclasses.asdict(Encoding()), "padding": None}
    return Job(**{**fields, "seq": seq, "kind": "store", "state": "running", "calling_ae": "SENDER",
                  "out_subdir": "", "out_name": "CT.1.2.3.4",
                  "options": {"encoding": encoding, "output_dir": str(out), "output_dir_display": "out"}})


def publish_always(path: Path, move) -> bool:
    move()
    return True


def test_a_run_again_after_its_rename_leaves_no_temporary_name(tmp_path: Path) -> None:
    """Killed after the rename, before the job was done: the output already is the spool
    file, and so is the new temporary link. ``rename`` between two links to one file does
    nothing (POSIX); the output stays, and the temporary name must not."""
    spool = spool_as_output(tmp_path / "spool.dcm")
    out = tmp_path / "out"
    out.mkdir()
    job = store_job(out)
    first = output.write_job_output(job, spool, publish_always)
    assert first is not None and first.stat().st_ino == spool.stat().st_ino
    again = output.write_job_output(job, spool, publish_always)  # the job's second attempt
    assert again == first and again.read_bytes() == spool.read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["CT.1.2.3.4"]


def test_moving_a_link_over_a_link_to_the_same_file_leaves_one_name(tmp_path: Path) -> None:
    final = tmp_path / "final"
    final.write_bytes(b"output")
    os.link(final, tmp_path / "tmp")
    output.move_into_place(tmp_path / "tmp", final)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final"] and final.read_bytes() == b"output"
