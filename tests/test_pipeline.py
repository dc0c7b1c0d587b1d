"""Foundation acceptance: the durable hand-offs between receiver, spool and workers.

Real processes on ephemeral ports: ``spoolscp receiver`` and ``spoolscp worker`` run
separately, DCMTK's tools and pynetdicom are the peers, and the receiver is killed with
SIGKILL by PID. What an acknowledgement promises (README) is checked from the outside:
the files that appear in ``-od``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import threading
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from sidebyside import (
    HOST,
    SUCCESS,
    InputFile,
    dcmtk_env,
    part10_inputs,
    read_tree,
    scp_server,
    send_dcmtk,
    spoolscp_queue_stats,
    stop_process,
    wait_for,
    wait_output_complete,
    worker_process,
)

ECHOSCU = "/usr/bin/echoscu"
# Explicit and implicit LE, big endian, deflated, a data set UID that differs from the meta's.
HANDOFF_FILES = ["CT_small.dcm", "MR_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm",
                 "image_dfl.dcm", "rtplan.dcm", "waveform_ecg.dcm"]


def corpus_files(names: list[str]) -> list[InputFile]:
    from pydicom.data import get_testdata_file

    files = part10_inputs([get_testdata_file(n) for n in names])
    assert len(files) == len(names), "pydicom's test data looks incomplete"
    return files


def tree(root: Path) -> dict[str, str]:
    """Relative path -> digest of the compared meta elements and data set bytes."""
    return {f.relpath: f.digest for f in read_tree(root)}


def test_receiver_acknowledges_without_workers_and_a_later_worker_writes_everything(tmp_path: Path) -> None:
    files = corpus_files(HANDOFF_FILES)
    with scp_server("dcmtk", [], tmp_path / "dcmtk") as reference:
        ref_statuses = send_dcmtk(reference.port, files, tmp_path / "ref.log")
    assert ref_statuses == [SUCCESS] * len(files)

    with scp_server("spoolscp", [], tmp_path / "spool", receiver_only=True) as receiver:
        statuses = send_dcmtk(receiver.port, files, tmp_path / "cand.log")
        assert statuses == ref_statuses
        waiting = spoolscp_queue_stats(receiver.config)
        print("before any worker:", waiting)
        assert waiting["received"] == waiting["pending"] == len(files)
        assert list(receiver.outdir.iterdir()) == []
        spool = receiver.workdir / "state" / "spool"
        # up to 64 KB as received (file meta included) in jobs.db, larger ones as spool files
        file_sizes = [p.stat().st_size for p in spool.glob("*.dcm")]
        held_sizes = list(spool_data(receiver).values())
        assert file_sizes and held_sizes and len(file_sizes) + len(held_sizes) == len(files)
        assert min(file_sizes) > 64 * 1024 >= max(held_sizes)

        with worker_process(receiver.config, receiver.workdir):
            done = wait_output_complete(receiver, timeout=120)
        print("after the worker ran:", done)
        assert done["done"] == len(files) and done["failed"] == 0
        assert list(spool.glob("*.dcm")) == [] and spool_data(receiver) == {}
    assert tree(receiver.outdir) == tree(reference.outdir)


def spool_data(server) -> dict[int, int]:
    """Job -> size of the spool files the job table holds (small objects)."""
    with contextlib.closing(sqlite3.connect(server.workdir / "state" / "jobs.db")) as db:
        return dict(db.execute("SELECT seq, length(data) FROM spool_data"))


def big_ct(path: Path, megabytes: int) -> Path:
    """A CT image of about ``megabytes`` MB, so that one transfer takes many PDUs."""
    side = int((megabytes * 1024 * 1024 / 2) ** 0.5)
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "CT"
    ds.PatientName = "Kill^Test"
    ds.Rows = ds.Columns = side
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = os.urandom(side * side * 2)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path


class Sender(threading.Thread):
    """A pynetdicom SCU storing files one by one and recording every acknowledgement."""

    def __init__(self, port: int, paths: list[Path]) -> None:
        super().__init__(daemon=True)
        self.port, self.paths = port, paths
        self.acknowledged: list[Path] = []

    def run(self) -> None:
        from pynetdicom import AE

        ae = AE(ae_title="KILLTEST")
        ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
        ae.maximum_pdu_size = 4096  # many small PDUs: the kill lands inside a transfer
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
        assoc = ae.associate(HOST, self.port)
        for path in self.paths:
            if not assoc.is_established:
                return
            try:
                rsp = assoc.send_c_store(path)
            except Exception:  # noqa: BLE001 - the receiver died under us: stop sending
                return
            if rsp and "Status" in rsp and rsp.Status == 0:
                self.acknowledged.append(path)
        if assoc.is_established:
            assoc.release()


def test_sigkill_of_the_receiver_mid_transfer_loses_nothing_acknowledged(tmp_path: Path) -> None:
    sources = [big_ct(tmp_path / f"big{i}.dcm", 6) for i in range(8)]
    with scp_server("spoolscp", ["-pdu", "4096"], tmp_path / "spool", receiver_only=True) as receiver:
        incoming = receiver.workdir / "state" / "spool" / "incoming"
        sender = Sender(receiver.port, sources)
        sender.start()
        # killed while a later object is half-way into the spool's incoming folder
        wait_for(lambda: len(sender.acknowledged) >= 2 and any(incoming.iterdir()),
                 "the sender never got two acknowledgements with a transfer in progress", 120)
        os.kill(receiver.proc.pid, signal.SIGKILL)
        receiver.proc.wait(10)
        sender.join(60)
        acknowledged = list(sender.acknowledged)
        print(f"acknowledged before SIGKILL: {len(acknowledged)} of {len(sources)}")
        assert 2 <= len(acknowledged) < len(sources)
    assert any(incoming.iterdir()), "the kill should have left a partial reception"

    # a new receiver drops the unacknowledged partial file; a worker writes the rest
    with scp_server("spoolscp", [], receiver.workdir.parent / "spool", receiver_only=True) as again:
        assert list(incoming.iterdir()) == []
        with worker_process(again.config, again.workdir):
            stats = wait_output_complete(again, timeout=120)
    print("after restart:", stats)
    written = {dcmread(p).SOPInstanceUID: p for p in again.outdir.iterdir()}
    for source in acknowledged:
        original = dcmread(source)
        output = dcmread(written[original.SOPInstanceUID])
        assert output.PixelData == original.PixelData
    assert stats["failed"] == 0 and stats["done"] >= len(acknowledged)
    assert list((again.workdir / "state" / "spool").glob("*.dcm")) == []


def test_echoscu_gets_an_answer(tmp_path: Path) -> None:
    with scp_server("spoolscp", [], tmp_path / "spool") as server:
        result = subprocess.run([ECHOSCU, "-v", HOST, str(server.port)], capture_output=True,
                                text=True, env=dcmtk_env(), timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "Received Echo Response (Success)" in result.stderr


def test_sigterm_stops_receiver_and_workers_without_orphans(tmp_path: Path) -> None:
    files = corpus_files(["CT_small.dcm"])
    with scp_server("spoolscp", [], tmp_path / "spool") as server:
        assert send_dcmtk(server.port, files, tmp_path / "send.log") == [SUCCESS]
        wait_output_complete(server, timeout=60)
        problems = stop_process(server.proc)
    assert problems == []
    assert server.proc.returncode == 0
    assert [p.name for p in server.outdir.iterdir()] == [f"CT.{files[0].dataset_uid}"]


def test_a_later_reception_of_the_same_name_wins_whatever_order_workers_finish(tmp_path: Path) -> None:
    """Two objects with one SOP Instance UID (a corrected re-send): DCMTK keeps the later
    one. Here the later job is written first, then the earlier one must not replace it."""
    from spoolscp.settings import load_settings
    from workers import tasks

    files = corpus_files(["reportsi.dcm", "reportsi_with_empty_number_tags.dcm"])
    assert files[0].dataset_uid == files[1].dataset_uid
    with scp_server("dcmtk", [], tmp_path / "dcmtk") as reference:
        for f in files:
            assert send_dcmtk(reference.port, [f], tmp_path / "ref.log") == [SUCCESS]
    with scp_server("spoolscp", [], tmp_path / "spool", receiver_only=True) as receiver:
        for f in files:
            assert send_dcmtk(receiver.port, [f], tmp_path / "cand.log") == [SUCCESS]
    settings = load_settings(str(receiver.config))
    handoff = tasks.Handoff(enqueue=lambda seq: None, check_studies_in=lambda delay: None)
    earlier, later = sorted(s for s, in tasks.job_db(settings).execute("SELECT seq FROM jobs WHERE kind = 'store'"))
    for seq in (later, earlier):
        tasks.run(settings, seq, last_attempt=True, handoff=handoff)
    assert tree(receiver.outdir) == tree(reference.outdir)
    notes = dict(tasks.job_db(settings).execute("SELECT seq, error FROM jobs WHERE kind = 'store'"))
    assert notes[later] is None and notes[earlier].startswith("superseded")
    assert list((receiver.workdir / "state" / "spool").glob("*.dcm")) == []
