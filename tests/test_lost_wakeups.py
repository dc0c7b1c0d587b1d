"""A receiver SIGKILLed right after an answer can take that object's wake-up with it (the
message goes out after the response). The job row is the truth: the reconciler re-sends
the message, at once for a row whose receiver is gone instead of after the grace it
gives a live receiver's message, and a starting receiver asks for that run."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from huey import Huey
from pydicom.data import get_testdata_file

from sidebyside import SUCCESS, part10_inputs, read_tree, scp_server, send_dcmtk, wait_for, worker_process
from spoolscp.settings import load_settings
from workers.app import open_queue


def huey_for(config: Path) -> Huey:
    return open_queue(load_settings(str(config))).huey


def test_a_killed_receivers_object_whose_wake_up_was_lost_is_stored_at_worker_start(tmp_path: Path) -> None:
    files = part10_inputs([get_testdata_file("CT_small.dcm")])
    with scp_server("spoolscp", [], tmp_path / "spool", receiver_only=True) as server:
        assert send_dcmtk(server.port, files, tmp_path / "send.log") == [SUCCESS]
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
    huey = huey_for(server.config)
    assert "spoolscp.run_job" in [t.name for t in huey.pending()]
    huey.flush()  # the wake-up lost with its receiver
    with worker_process(server.config, tmp_path / "workers"):
        # well within the 60 s grace that a live receiver's young row still gets
        wait_for(lambda: len(read_tree(server.outdir)) == 1, "the object stored without waiting out the grace", 20)


def test_a_starting_receiver_asks_the_workers_for_a_reconciliation(tmp_path: Path) -> None:
    with scp_server("spoolscp", [], tmp_path / "spool", receiver_only=True) as server:
        names = [t.name for t in huey_for(server.config).pending()]
    assert names == ["spoolscp.reconcile"]
