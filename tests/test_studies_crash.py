"""Ends of study survive SIGKILLed workers: every rename and command happens exactly once.

The receiver runs alone (``spoolscp receiver``) and the workers separately, so the test
can SIGKILL the workers' whole process group while end-of-study work is pending, start
new workers on the same state, and count what happened.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
from pathlib import Path

from sidebyside import (
    StudySpec,
    exec_log_lines,
    scp_server,
    send_pynetdicom,
    spoolscp_queue_stats,
    synthetic_study,
    wait_exec_lines,
    wait_for,
    wait_output_complete,
    worker_process,
)

UID = "1.2.826.0.1.3680043.9.7002."
# "start" is logged when the command begins, the folder listing when it ends
SLOW_EOS = 'echo "start #p" >> starts.log; sleep 1; echo "EOS #p: $(ls #p | tr "\\n" " ")" >> exec.log'


def kill_group(proc) -> None:
    """SIGKILL the worker supervisor and every worker process it forked (one session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def stores_done(server) -> int:
    """Objects written, read straight from the job table (faster than ``queue stats``)."""
    with contextlib.closing(sqlite3.connect(server.workdir / "state" / "jobs.db", timeout=30)) as db:
        return db.execute("SELECT count(*) FROM jobs WHERE kind = 'store' AND state = 'done'").fetchone()[0]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_slow_eostudy_commands_run_once_across_two_worker_kills(scp_servers, tmp_path):
    """Studies A B C D in one association: three ends (A, B, C), each a rename then a 1 s
    command under -xs. The workers are killed while A's command runs (B and C's renames
    pending) and again while B's runs; the restarted workers wait for the surviving
    command instead of starting it again."""
    server = scp_servers("spoolscp", ["-ss", "PRE", "-rns", "-xcs", SLOW_EOS, "-xs"], receiver_only=True)
    files = [f for n in range(4) for f in synthetic_study(tmp_path / "in" / str(n), StudySpec(f"{UID}{n}", "X^Y"))]
    assert send_pynetdicom(server.port, files, tmp_path / "send.log") == ["0x0000"] * 8
    starts = server.workdir / "starts.log"
    for already_started in (1, 2):
        with worker_process(server.config, server.workdir) as workers:
            wait_for(lambda: len(lines(starts)) >= already_started, f"command {already_started} to start")
            kill_group(workers)
    with worker_process(server.config, server.workdir):
        wait_exec_lines(server, 3)
        stats = wait_output_complete(server, timeout=60)
    assert stats["failed"] == 0, stats
    assert len(lines(starts)) == 3, lines(starts)
    ends = exec_log_lines(server)
    assert len(ends) == 3 and len({e.split(":")[0] for e in ends}) == 3, ends
    assert all(e.endswith(": CT000001 MR000002 ") for e in ends), ends
    folders = sorted(p for p in server.outdir.iterdir())
    assert [sorted(f.name for f in d.iterdir()) for d in folders[:3]] == [["CT000001", "MR000002"]] * 3
    assert sorted(f.name for f in folders[3].iterdir()) == [f"CT.{UID}3.1", f"MR.{UID}3.2"]  # still open


def test_pending_timeout_fires_once_after_the_workers_were_killed(scp_servers, tmp_path):
    """-tos: the workers die after writing the objects, before the study's timeout fires; the
    next workers end the study (Huey's durable schedule or the start-up reconcile), once."""
    server = scp_servers("spoolscp", ["-ss", "PRE", "-tos", "2", "-rns", "-xcs", SLOW_EOS], receiver_only=True)
    files = synthetic_study(tmp_path / "in", StudySpec(f"{UID}9", "X^Y", count=3))
    with worker_process(server.config, server.workdir) as workers:
        assert send_pynetdicom(server.port, files, tmp_path / "send.log") == ["0x0000"] * 3
        wait_for(lambda: stores_done(server) == 3, "the objects to be written")
        kill_group(workers)
    assert lines(server.workdir / "starts.log") == []  # the kill beat the 2 s timeout
    with worker_process(server.config, server.workdir):
        wait_exec_lines(server, 1)
        wait_output_complete(server, timeout=60)
    (end,) = exec_log_lines(server)
    assert end.endswith(": CT000001 CT000003 MR000002 "), end  # ls order
    assert len(lines(server.workdir / "starts.log")) == 1


def test_a_failing_command_is_retried_with_backoff_then_kept_failed(tmp_path):
    """A non-zero exit is retried as [retry] says, then the command is 'failed' (visible in
    queue stats) while the object it followed stays done."""
    retry = "[retry]\nretries = 2\ndelay = 0.2\nbackoff = 1.0\n"
    with scp_server("spoolscp", ["-ss", "PRE", "-xcr", "echo try >> tries.log; exit 3"], tmp_path / "s",
                    extra_config=retry) as server:
        files = synthetic_study(tmp_path / "in", StudySpec(f"{UID}8", "X^Y", count=1))
        assert send_pynetdicom(server.port, files, tmp_path / "send.log") == ["0x0000"]
        wait_for(lambda: spoolscp_queue_stats(server.config)["failed"] == 1, "the command to fail for good")
        stats = spoolscp_queue_stats(server.config)
    assert lines(server.workdir / "tries.log") == ["try"] * 3
    assert (stats["done"], stats["failed"], stats["pending"] + stats["scheduled"]) == (1, 1, 0), stats
