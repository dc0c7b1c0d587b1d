"""The drop folder: files put into ``[dropfolder] dir`` are stored as if received.

One spoolscp (receiver + workers) watches an inbox. Files arrive four ways: already
there at start (the start-up rescan), written elsewhere and renamed in, written in
place in two halves with a pause longer than ``settle`` (still being written when first
seen), and a broken file. The oracle is DCMTK storescp receiving the same files from
storescu with the drop folder's calling AE title, so the outputs must be identical.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from pydicom.data import get_testdata_file
from watchdog.events import FileClosedEvent

from sidebyside import (
    SUCCESS,
    part10_inputs,
    read_tree,
    scp_server,
    send_dcmtk,
    spoolscp_queue_stats,
    wait_output_complete,
    wait_until,
)
from receiver.dropfolder import CALLING_AE, REJECTED, DropFolder

FILES = {"before_start": "CT_small.dcm", "renamed_in": "MR_small.dcm", "slow": "waveform_ecg.dcm"}
SETTLE = 1.0


def test_files_dropped_into_the_inbox_are_stored_like_received_ones(tmp_path: Path) -> None:
    sources = {key: Path(get_testdata_file(name)) for key, name in FILES.items()}
    with scp_server("dcmtk", [], tmp_path / "dcmtk") as reference:
        statuses = send_dcmtk(reference.port, part10_inputs(list(sources.values())), tmp_path / "ref.log",
                              extra_args=("-nh", "-td", "60", "-aet", CALLING_AE))
    assert statuses == [SUCCESS] * len(sources)

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copyfile(sources["before_start"], inbox / "before_start.dcm")
    config = f'[dropfolder]\ndir = "{inbox}"\nsettle = {SETTLE}\nrescan = 30.0\n'
    with scp_server("spoolscp", [], tmp_path / "spoolscp", extra_config=config) as server:
        wait_until(lambda: not (inbox / "before_start.dcm").exists(), 30, "the start-up rescan missed a file")

        partial = inbox / ".renamed_in.dcm.part"  # write-then-rename
        shutil.copyfile(sources["renamed_in"], partial)
        time.sleep(3 * SETTLE)
        assert partial.exists(), "a temporary name was taken"
        partial.rename(inbox / "renamed_in.dcm")

        data = sources["slow"].read_bytes()
        with (inbox / "slow.dcm").open("wb") as writer:  # still being written when first seen
            writer.write(data[: len(data) // 2])
            writer.flush()
            time.sleep(3 * SETTLE)
            assert (inbox / "slow.dcm").exists(), "a file still open for writing was taken"
            assert spoolscp_queue_stats(server.config)["received"] == 2
            writer.write(data[len(data) // 2 :])

        (inbox / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x40\x00")
        wait_until(lambda: not any(p.is_file() for p in inbox.iterdir()), 30, "inbox not emptied")
        stats = wait_output_complete(server, timeout=120)
        log = server.stderr_text()
    print("drop folder:", stats)
    assert stats["received"] == stats["done"] == len(sources) and stats["failed"] == 0
    assert [p.name for p in (inbox / REJECTED).iterdir()] == ["broken.dcm"]
    assert "broken.dcm cannot be stored" in log
    assert {f.relpath: f.digest for f in read_tree(server.outdir)} == \
        {f.relpath: f.digest for f in read_tree(reference.outdir)}
    assert list((server.workdir / "state" / "spool").glob("*.dcm")) == []
    assert not os.listdir(server.workdir / "state" / "spool" / "incoming")


def test_a_file_whose_events_were_missed_is_found_by_the_rescan_once_quiet(tmp_path: Path) -> None:
    """No observer runs here: only the rescan sees the files, as after lost inotify events."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    folder = DropFolder(inbox, tmp_path / "incoming", store=None, called_ae="SCP", settle=60.0)
    (inbox / "old.dcm").write_bytes(b"complete")
    os.utime(inbox / "old.dcm", (time.time() - 120, time.time() - 120))
    (inbox / "fresh.dcm").write_bytes(b"maybe still being written")
    (inbox / ".hidden.dcm.part").write_bytes(b"a writer's temporary name")
    folder.scan_folder()
    assert folder.ready_files() == []  # one look is not enough: the size must hold still
    assert folder.ready_files() == [inbox / "old.dcm"]  # quiet for longer than settle
    assert folder.ready_files() == []  # fresh.dcm: written a moment ago, and no close was seen
    folder.on_any_event(FileClosedEvent(str(inbox / "fresh.dcm")))
    assert folder.ready_files() == [inbox / "fresh.dcm"]  # closed after writing, unchanged since
