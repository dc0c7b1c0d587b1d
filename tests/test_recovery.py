"""The reconciler's spool sweep: leftovers go, work and in-flight receptions stay."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from spoolscp import jobs, spool
from workers.recovery import sweep_spool


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def old_spool_file(spool_dir: Path, pid: int) -> str:
    name = f"{time.time_ns()}-{pid}-0.dcm"
    path = spool_dir / name
    path.write_bytes(b"x")
    os.utime(path, (time.time() - 3600, time.time() - 3600))
    return name


def test_old_orphans_of_a_dead_receiver_go_but_a_live_receivers_file_stays(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    db = jobs.JobDB(tmp_path / "jobs.db")
    gone = old_spool_file(spool_dir, dead_pid())
    in_flight = old_spool_file(spool_dir, os.getpid())  # its receiver may still commit the row
    assert spool.writer_pid(in_flight) == os.getpid()

    removed = sweep_spool(spool_dir, db, orphan_age=60)

    assert removed == [gone]
    assert sorted(p.name for p in spool_dir.iterdir()) == [in_flight]


def test_a_young_orphan_stays(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    db = jobs.JobDB(tmp_path / "jobs.db")
    name = f"{time.time_ns()}-{dead_pid()}-0.dcm"
    (spool_dir / name).write_bytes(b"x")

    assert sweep_spool(spool_dir, db, orphan_age=60) == []
    assert (spool_dir / name).exists()


def queued(db: jobs.JobDB, spool_name: str | None, age: float = 0.0) -> int:
    with db.transaction() as c:
        seq = jobs.insert(c, {"kind": "store" if spool_name else "eos", "state": "queued", "spool": spool_name,
                              "received_at": time.time(), "options": {}})
        c.execute("UPDATE jobs SET updated_at = ? WHERE seq = ?", (time.time() - age, seq))
    return seq


def test_a_young_row_of_a_dead_receiver_needs_a_message_now(tmp_path: Path) -> None:
    """Its wake-up was lost with its receiver: no grace for a message that cannot come.
    A live receiver's young row, and one no receiver wrote, still get the grace."""
    db = jobs.JobDB(tmp_path / "jobs.db")
    orphaned = queued(db, f"{time.time_ns()}-{dead_pid()}-0.dcm")
    queued(db, f"{time.time_ns()}-{os.getpid()}-0.dcm")  # its message may be on its way
    queued(db, None)  # a follow-up step: its worker enqueues it
    old = queued(db, f"{time.time_ns()}-{os.getpid()}-1.dcm", age=120)
    assert jobs.recoverable(db, stale_after=60) == [orphaned, old]
