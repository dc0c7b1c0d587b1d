"""``spoolscp queue``: the documented JSON, the tables, the exit codes and the levers.

The job table is filled through ``spoolscp.jobs`` as the receiver and workers fill it,
then the CLI is run in-process (``queuecli.main``) and once as the installed console
script, whose exit code scripts rely on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from sidebyside import SPOOLSCP
from spoolscp import jobs, queuecli

LIST_KEYS = {
    "seq", "kind", "state", "spool", "received_at", "assoc", "calling_ae", "called_ae", "peer_host", "peer_ip",
    "sop_class", "sop_instance", "transfer_syntax", "status", "study_uid", "patient_name", "charset", "options",
    "study_id", "out_subdir", "out_name", "command", "after_seq", "sync", "attempts", "error", "pid", "host",
    "lease_until", "child_pid", "updated_at",
}
HOUR = 3600.0


def received(n: int, study: str = "1.2.3") -> dict:
    return {
        "spool": f"s{n}.dcm", "received_at": time.time(), "calling_ae": "SCU", "called_ae": "SCP",
        "peer_host": "localhost", "peer_ip": "127.0.0.1", "sop_class": "1.2.840.10008.5.1.4.1.1.2",
        "sop_instance": f"1.2.3.{n}", "transfer_syntax": "1.2.840.10008.1.2.1", "status": 0,
        "study_uid": study, "patient_name": b"M\xfcller^Hans", "options": {"output_dir": "/tmp/x"},
    }


@pytest.fixture
def state(tmp_path):
    """A job table with one job in each interesting state; returns (state dir, seqs by name)."""
    db = jobs.JobDB(tmp_path / "jobs.db")
    seqs = {name: jobs.record_received(db, received(i, "9.9" if name == "other_study" else "1.2.3"))
            for i, name in enumerate(["queued", "old_done", "new_done", "failed", "untracked_done", "other_study"])}
    db.execute("UPDATE jobs SET tracked = 1 WHERE seq != ?", (seqs["untracked_done"],))
    old = time.time() - 2 * HOUR
    for name in ("old_done", "new_done", "untracked_done"):
        jobs.claim(db, seqs[name])
        jobs.mark_done(db, seqs[name])
    db.execute("UPDATE jobs SET updated_at = ? WHERE seq IN (?, ?)", (old, seqs["old_done"], seqs["untracked_done"]))
    jobs.claim(db, seqs["failed"])
    jobs.mark_error(db, seqs["failed"], "CommandFailed: exit status 1: " + "x" * 80, final=True)
    db.close()
    return tmp_path, seqs


def run(capsys, state_dir, *argv: str) -> tuple[int, str, str]:
    code = queuecli.main([*argv, "--state-dir", str(state_dir)])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, state_dir, *argv: str):
    code, out, err = run(capsys, state_dir, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_stats_json_counts_every_state(capsys, state):
    state_dir, _ = state
    assert run_json(capsys, state_dir, "stats") == {
        "received": 6, "pending": 2, "running": 0, "scheduled": 0, "done": 3, "failed": 1}


def test_list_json_filters_by_state_and_study(capsys, state):
    state_dir, seqs = state
    everything = run_json(capsys, state_dir, "list")
    assert [r["seq"] for r in everything] == sorted(seqs.values())
    assert set(everything[0]) == LIST_KEYS
    assert everything[0]["patient_name"] == "M\u00fcller^Hans"  # raw bytes, one char per byte
    assert everything[0]["options"] == {"output_dir": "/tmp/x"}
    done = run_json(capsys, state_dir, "list", "--state", "done")
    assert [r["seq"] for r in done] == [seqs["old_done"], seqs["new_done"], seqs["untracked_done"]]
    two_states = run_json(capsys, state_dir, "list", "--state", "failed", "--state", "queued")
    assert {r["state"] for r in two_states} == {"failed", "queued"} and len(two_states) == 3
    assert [r["seq"] for r in run_json(capsys, state_dir, "list", "--study", "9.9")] == [seqs["other_study"]]
    assert len(run_json(capsys, state_dir, "list", "--limit", "2")) == 2


def test_failed_lists_dead_letters_with_the_whole_error(capsys, state):
    state_dir, seqs = state
    failed = run_json(capsys, state_dir, "failed")
    assert [(r["seq"], r["attempts"]) for r in failed] == [(seqs["failed"], 1)]
    code, out, _ = run(capsys, state_dir, "failed")
    assert code == 0 and "x" * 80 in out and out.splitlines()[0].split() == list(queuecli.LIST_COLUMNS)
    code, out, _ = run(capsys, state_dir, "list")
    assert code == 0 and "x" * 80 not in out and "..." in out  # the list table shortens errors


def test_show_prints_one_job_or_exits_3(capsys, state):
    state_dir, seqs = state
    shown = run_json(capsys, state_dir, "show", str(seqs["failed"]))
    assert shown["state"] == "failed" and shown["error"].startswith("CommandFailed") and shown["pid"] is None
    code, out, _ = run(capsys, state_dir, "show", str(seqs["queued"]))
    assert code == 0 and "sop_instance" in out and "1.2.3.0" in out
    code, out, err = run(capsys, state_dir, "show", "999")
    assert (code, out) == (queuecli.EXIT_NOT_FOUND, "") and "no job 999" in err


def test_retry_exit_codes(capsys, state):
    state_dir, seqs = state
    assert run(capsys, state_dir, "retry", "999")[0] == queuecli.EXIT_NOT_FOUND
    code, _, err = run(capsys, state_dir, "retry", str(seqs["old_done"]))
    assert code == queuecli.EXIT_CONFLICT and "is done, not failed" in err
    assert run(capsys, state_dir, "retry")[0] == queuecli.EXIT_USAGE
    assert run(capsys, state_dir, "retry", "--all-failed", str(seqs["failed"]))[0] == queuecli.EXIT_USAGE


def test_retry_all_failed_queues_them_with_a_huey_message(capsys, state):
    state_dir, seqs = state
    assert run_json(capsys, state_dir, "retry", "--all-failed") == {"retried": [seqs["failed"]]}
    assert run_json(capsys, state_dir, "show", str(seqs["failed"]))["state"] == "queued"
    from spoolscp.settings import load_settings
    from workers.app import open_queue

    pending = open_queue(load_settings(state_dir=str(state_dir))).huey.pending()
    assert [t.args for t in pending] == [(seqs["failed"],)]
    assert run_json(capsys, state_dir, "retry", "--all-failed") == {"retried": []}


def test_purge_forgets_old_done_jobs_only(capsys, state):
    state_dir, seqs = state
    (state_dir / "exec").mkdir()
    status_file = state_dir / "exec" / f"{seqs['old_done']}.status"
    status_file.write_text("0\n")
    assert run_json(capsys, state_dir, "purge", "--done", "--older-than", "1h") == {"purged": 1}
    remaining = {r["seq"] for r in run_json(capsys, state_dir, "list")}
    assert remaining == set(seqs.values()) - {seqs["old_done"]}  # untracked_done is kept for the tracker
    assert not status_file.exists()
    assert run(capsys, state_dir, "purge", "--done", "--older-than", "soon")[0] == queuecli.EXIT_USAGE


def test_recover_requeues_dead_workers_jobs_and_sweeps_the_spool(capsys, state):
    state_dir, seqs = state
    spool_dir = state_dir / "spool"
    spool_dir.mkdir()
    db = jobs.JobDB(state_dir / "jobs.db")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    db.execute("UPDATE jobs SET state = 'running', pid = ?, host = ? WHERE seq = ?",
               (int(dead.stdout), jobs.HOST, seqs["other_study"]))
    db.execute("UPDATE jobs SET updated_at = ? WHERE seq = ?", (time.time() - HOUR, seqs["queued"]))
    late_retry, due_retry = (jobs.record_received(db, received(n)) for n in (12, 13))
    for seq, updated in ((late_retry, time.time() - HOUR), (due_retry, time.time())):
        db.execute("UPDATE jobs SET state = 'scheduled', attempts = 1, updated_at = ? WHERE seq = ?", (updated, seq))
    expired, leased = (jobs.record_received(db, received(n)) for n in (10, 11))  # workers on another host
    for seq, lease in ((expired, time.time() - 1), (leased, time.time() + HOUR)):
        db.execute("UPDATE jobs SET state = 'running', pid = 1, host = 'elsewhere', lease_until = ? WHERE seq = ?",
                   (lease, seq))
    db.execute("UPDATE jobs SET tracked = 1")  # placed by the tracker already (these rows have no options)
    names = {n: jobs.row(db, s)["spool"] for n, s in seqs.items()}
    db.close()
    for name in names.values():
        (spool_dir / name).write_bytes(b"spooled")
    orphan, young_orphan = spool_dir / "orphan.dcm", spool_dir / "young.dcm"
    orphan.write_bytes(b"never acknowledged")
    young_orphan.write_bytes(b"its row is being committed")
    os.utime(orphan, (time.time() - HOUR, time.time() - HOUR))

    done = run_json(capsys, state_dir, "recover")
    # the retry an hour late lost its Huey message; the other one is still on its way
    assert done["requeued"] == [seqs["queued"], seqs["other_study"], late_retry, expired]
    assert sorted(done["spool_removed"]) == sorted(
        [names["old_done"], names["new_done"], names["untracked_done"], "orphan.dcm"])
    left = sorted(p.name for p in spool_dir.iterdir())
    assert left == sorted([names["queued"], names["failed"], names["other_study"], "young.dcm"])
    assert run_json(capsys, state_dir, "show", str(leased))["state"] == "running"  # its lease still runs
    # idempotent, and a job whose message is still waiting gets no duplicate
    assert run_json(capsys, state_dir, "recover") == {"requeued": [], "spool_removed": []}


def test_console_script_exit_codes(tmp_path):
    """Scripts see the documented codes: 2 for a usage error, 3 for an unknown job."""
    def code(*argv: str) -> int:
        return subprocess.run([SPOOLSCP, "queue", *argv, "--state-dir", str(tmp_path)], capture_output=True,
                              timeout=60).returncode

    assert code("bogus") == queuecli.EXIT_USAGE
    assert code("show", "1", "--json") == queuecli.EXIT_NOT_FOUND
    assert code("stats") == queuecli.EXIT_OK
