"""receiver.wakeups: every recorded job gets its workers' wake-up from the receiver
itself, however its association ends (the reconciler is only for a killed receiver).

The receiver runs without workers, so every Huey message it sent is still in the queue.
"""

from __future__ import annotations

import socket
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

from pydicom.data import get_testdata_file

from sidebyside import DCMTK_STORESCU, REPO, dcmtk_env, scp_server
from spoolscp.settings import load_settings
from workers.app import open_queue
from workers.recovery import RUN_JOB

sys.path.insert(0, str(REPO / "scripts" / "bench"))
import rawclient  # noqa: E402

ABORT = b"\x07\x00" + struct.pack(">I", 4) + b"\x00" * 4


def store_then_abort_at_once(port: int, store: rawclient.Round) -> None:
    """The C-STORE and an A-ABORT in one write: the abort is waiting before the answer is
    out, so the association ends without ever waiting for its peer again."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(store.associate)
        assert rawclient.read_pdu(sock)[0] == 0x02
        sock.sendall(store.request + ABORT)
        try:
            while sock.recv(65536):
                pass
        except ConnectionResetError:  # the receiver closed with our abort unread: also an end
            pass


def test_every_job_has_its_wakeup_however_the_association_ends(tmp_path: Path) -> None:
    store = rawclient.store_round(Path(get_testdata_file("MR_small.dcm")))
    with scp_server("spoolscp", [], tmp_path, receiver_only=True) as server:
        for _ in range(3):
            rawclient.one_round(server.port, store)
            store_then_abort_at_once(server.port, store)
        files = [get_testdata_file(name) for name in ("CT_small.dcm", "MR_small.dcm")]
        sent = subprocess.run([DCMTK_STORESCU, "127.0.0.1", str(server.port), *files], env=dcmtk_env(),
                              capture_output=True, timeout=30)
        assert sent.returncode == 0, sent.stderr
    settings = load_settings(config=server.config)
    with sqlite3.connect(settings.jobs_db) as conn:
        rows = dict(conn.execute("SELECT seq, kind FROM jobs").fetchall())
    assert sorted(rows.values()).count("store") == 8
    woken = [task.args[0] for task in open_queue(settings).huey.pending() if task.name == RUN_JOB]
    assert sorted(woken) == sorted(rows)  # one message per job row, none twice
