"""Resource faults and failing steps: nothing acknowledged is lost, every failure is visible and retryable.

* the spool's file system fills up while objects arrive: 0xA700 for what does not fit,
  everything acknowledged is written, and the refused objects go through once space is back;
* the state folder's file system is full (small objects are spooled in jobs.db there):
  0xA700, and the receiver stores again once space is back;
* the output's file system is full: the job is retried (``scheduled``, with the error),
  its spool file (or its bytes in jobs.db) stays intact, and the output appears once
  space is back;
* a corrupt or truncated spool file: the job fails once with a clear error, the worker
  keeps serving;
* an ``-xcr`` command that fails twice then succeeds ends ``done``; one that always fails
  ends ``failed``, is listed by ``queue failed`` and runs again with ``queue retry``.

Full file systems are small tmpfs mounts made by the test (it runs as root). A mount that
fails makes the test fail, never skip.
"""

from __future__ import annotations

import configparser
import contextlib
import ctypes
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from sidebyside import (
    REPO,
    SPOOLSCP,
    SUCCESS,
    part10_inputs,
    read_tree,
    scp_server,
    send_dcmtk,
    split_meta,
    wait_output_complete,
    wait_until,
    worker_process,
)
from spoolscp import jobs
from spoolscp.rawdicom import scan_spool
from spoolscp.settings import load_settings

FAST_RETRIES = "[retry]\nretries = 2\ndelay = 0.1\nbackoff = 1.0\n"
MANY_RETRIES = "[retry]\nretries = 1000\ndelay = 0.2\nbackoff = 1.0\n"


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A ``size`` tmpfs mounted at ``path`` for the block (the test fails if it cannot be mounted)."""
    path.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                           capture_output=True, text=True, timeout=30)
    if mount.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs at {path} (this test needs root): {mount.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def ct_objects(folder: Path, count: int) -> list[Path]:
    """``count`` copies of pydicom's CT_small (39 kB) with their own instance UIDs."""
    folder.mkdir(exist_ok=True)
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    paths = []
    for i in range(count):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.8.498.77.{i + 1}"
        paths.append(folder / f"ct{i + 1}.dcm")
        ds.save_as(paths[-1], enforce_file_format=True)
    return paths


def dataset_bytes(path: Path) -> bytes:
    return split_meta(path.read_bytes())[1]


def tree(folder: Path) -> dict[str, str]:
    """Output file name -> digest of its compared meta elements and data set bytes."""
    return {f.relpath: f.digest for f in read_tree(folder)}


def dcmtk_tree(paths: list[Path], workdir: Path) -> dict[str, str]:
    """What DCMTK storescp writes for ``paths``: the oracle for what spoolscp must write."""
    with scp_server("dcmtk", [], workdir) as reference:
        assert send_dcmtk(reference.port, part10_inputs(paths), workdir / "send.log") == [SUCCESS] * len(paths)
    return tree(reference.outdir)


def queue(config: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([SPOOLSCP, "queue", *argv, "--config", str(config)], capture_output=True, text=True,
                          timeout=60)


def jobs_json(config: Path, *argv: str) -> list[dict]:
    result = queue(config, "list", "--json", *argv)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_disk_full_while_spooling_answers_a700_and_loses_nothing(tmp_path: Path) -> None:
    paths = ct_objects(tmp_path / "objects", 12)
    workdir = tmp_path / "spoolscp"
    with tmpfs(workdir / "state" / "spool", "200k"), \
            scp_server("spoolscp", [], workdir, receiver_only=True, spool_in_db_max=0) as receiver:
        statuses = send_dcmtk(receiver.port, part10_inputs(paths), tmp_path / "send.log")
        acknowledged = [p for p, s in zip(paths, statuses) if s == SUCCESS]
        refused = [p for p, s in zip(paths, statuses) if s == "0xA700"]
        print("spool disk full:", statuses)
        assert acknowledged and refused and len(acknowledged) + len(refused) == len(paths)
        assert "No space left on device" in receiver.stderr_text()
        with worker_process(receiver.config, workdir):
            stats = wait_output_complete(receiver, timeout=120)
            assert stats["done"] == len(acknowledged) and stats["failed"] == 0
            assert sorted(p.name for p in receiver.outdir.iterdir()) == sorted(
                f"CT.{dcmread(p).SOPInstanceUID}" for p in acknowledged)
            for _ in range(len(refused)):  # the workers empty the spool: the refused objects fit again
                statuses = send_dcmtk(receiver.port, part10_inputs(refused), tmp_path / "resend.log")
                refused = [p for p, s in zip(refused, statuses) if s != SUCCESS]
                stats = wait_output_complete(receiver, timeout=120)
                if not refused:
                    break
            assert refused == []
    assert stats["done"] == len(paths)
    assert tree(receiver.outdir) == dcmtk_tree(paths, tmp_path / "dcmtk")


def spooled_bytes(workdir: Path, name: str) -> bytes | None:
    """A job's spool file, from the spool folder or from the job table; None: neither has it."""
    path = workdir / "state" / "spool" / name
    if path.exists():
        return path.read_bytes()
    db = jobs.JobDB(workdir / "state" / "jobs.db")
    try:
        found = db.execute("SELECT seq FROM jobs WHERE spool = ?", (name,))
        return jobs.spool_data(db, found[0][0]) if found else None
    finally:
        db.close()


@pytest.mark.parametrize("spool_in_db_max", [0, None], ids=["spool-file", "spool-in-db"])
def test_disk_full_while_writing_output_keeps_the_job_retryable_and_its_spool_file(
        tmp_path: Path, spool_in_db_max: int | None) -> None:
    [source] = ct_objects(tmp_path / "objects", 1)
    workdir = tmp_path / "spoolscp"
    with tmpfs(workdir / "out", "128k") as out:
        filler = out / "filler"
        filler.write_bytes(b"\0" * 120 * 1024)  # a few kB left: the 39 kB output cannot fit
        with scp_server("spoolscp", [], workdir, extra_config=MANY_RETRIES, spool_in_db_max=spool_in_db_max) as server:
            assert send_dcmtk(server.port, part10_inputs([source]), tmp_path / "send.log") == [SUCCESS]
            [job] = wait_until(lambda: [j for j in jobs_json(server.config)
                                        if j["attempts"] >= 2 and j["error"]], 60, "no retried job")
            print("output disk full:", {k: job[k] for k in ("state", "attempts", "error")})
            assert job["state"] in ("scheduled", "running") and "No space left on device" in job["error"]
            spooled = spooled_bytes(workdir, job["spool"])
            assert spooled is not None
            assert (workdir / "state" / "spool" / job["spool"]).exists() == (spool_in_db_max == 0)
            # intact: the data set as sent (storescu leaves out the source's trailing padding)
            sent, original = split_meta(spooled)[1], dataset_bytes(source)
            assert original.startswith(sent) and original[len(sent):].startswith(b"\xfc\xff\xfc\xff")
            assert scan_spool(spooled).sop_instance_uid == dcmread(source).SOPInstanceUID
            assert sorted(p.name for p in out.iterdir()) == ["filler"]  # no partial output left
            filler.unlink()
            stats = wait_output_complete(server, timeout=60)
            assert (stats["done"], stats["failed"]) == (1, 0)
            assert spooled_bytes(workdir, job["spool"]) is None
        assert tree(out) == dcmtk_tree([source], tmp_path / "dcmtk")


def test_a_full_state_disk_refuses_small_objects_with_a700_and_recovers(tmp_path: Path) -> None:
    """Small objects are spooled in jobs.db: when its disk is full they are refused, nothing
    acknowledged is lost, and the receiver stores again once space is back."""
    paths = ct_objects(tmp_path / "objects", 6)
    workdir = tmp_path / "spoolscp"
    with tmpfs(workdir / "state", "2m") as state, \
            scp_server("spoolscp", [], workdir, receiver_only=True) as receiver:
        assert send_dcmtk(receiver.port, part10_inputs(paths[:1]), tmp_path / "send1.log") == [SUCCESS]
        filler = state / "filler"
        with contextlib.suppress(OSError), filler.open("wb", buffering=0) as f:
            while True:  # until the disk is full
                f.write(b"\0" * 4096)
        refused = send_dcmtk(receiver.port, part10_inputs(paths[1:]), tmp_path / "send2.log")
        print("state disk full:", refused)
        assert refused == ["0xA700"] * 5
        assert "cannot record received object" in receiver.stderr_text()
        filler.unlink()
        assert send_dcmtk(receiver.port, part10_inputs(paths[1:]), tmp_path / "send3.log") == [SUCCESS] * 5
        with worker_process(receiver.config, workdir):
            stats = wait_output_complete(receiver, timeout=120)
        assert (stats["done"], stats["failed"]) == (6, 0)
        assert list((state / "spool").glob("*.dcm")) == []  # small objects never became files
    assert tree(receiver.outdir) == dcmtk_tree(paths, tmp_path / "dcmtk")


def test_a_corrupt_or_truncated_spool_file_fails_once_with_a_clear_error(tmp_path: Path) -> None:
    paths = ct_objects(tmp_path / "objects", 4)
    with scp_server("spoolscp", [], tmp_path / "spoolscp", receiver_only=True, spool_in_db_max=0) as receiver:
        assert send_dcmtk(receiver.port, part10_inputs(paths[:3]), tmp_path / "send.log") == [SUCCESS] * 3
        truncated, corrupt, good = jobs_json(receiver.config)
        spool = receiver.workdir / "state" / "spool"
        data = (spool / truncated["spool"]).read_bytes()
        (spool / truncated["spool"]).write_bytes(data[: len(data) // 2 + 3])
        (spool / corrupt["spool"]).write_bytes(b"this is not DICOM " * 100)
        with worker_process(receiver.config, receiver.workdir) as worker:
            stats = wait_output_complete(receiver, timeout=60)
            assert (stats["done"], stats["failed"]) == (1, 2)
            # the worker keeps serving
            assert send_dcmtk(receiver.port, part10_inputs(paths[3:]), tmp_path / "send2.log") == [SUCCESS]
            stats = wait_output_complete(receiver, timeout=60)
            assert worker.poll() is None
        failed = {j["seq"]: j for j in json.loads(queue(receiver.config, "failed", "--json").stdout)}
    print("broken spool files:", {s: (j["attempts"], j["error"]) for s, j in failed.items()})
    assert sorted(failed) == [truncated["seq"], corrupt["seq"]]
    assert all(j["attempts"] == 1 for j in failed.values()), "a broken spool file must not be retried"
    assert failed[corrupt["seq"]]["error"] == "BrokenDataSet: not a DICOM file (no DICM prefix)"
    assert failed[truncated["seq"]]["error"].startswith("BrokenDataSet: ")
    assert (stats["done"], stats["failed"]) == (2, 2)
    assert sorted(p.name for p in receiver.outdir.iterdir()) == sorted(f"CT.{dcmread(p).SOPInstanceUID}"
                                                                       for p in (paths[2], paths[3]))


def test_a_failing_command_is_retried_then_kept_as_failed_and_retried_on_demand(tmp_path: Path) -> None:
    flaky, broken = ct_objects(tmp_path / "objects", 2)  # UIDs ending in .1 and .2
    state = tmp_path / "cmd"
    state.mkdir()
    script = tmp_path / "notify.sh"
    script.write_text(  # counts its runs per file; .1 succeeds on the 3rd run, .2 while no "broken" flag
        f'n=$(cat "{state}/$1" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "{state}/$1"\n'
        f'case "$1" in *.1) [ "$n" -ge 3 ];; *.2) [ ! -e "{state}/broken" ];; esac\n'
    )
    (state / "broken").touch()
    with scp_server("spoolscp", ["-xcr", f"sh {script} #f"], tmp_path / "spoolscp",
                    extra_config=FAST_RETRIES) as server:
        assert send_dcmtk(server.port, part10_inputs([flaky, broken]), tmp_path / "send.log") == [SUCCESS] * 2
        wait_output_complete(server, timeout=60)
        commands = {Path(j["command"].split()[-1]).suffix: j for j in jobs_json(server.config) if j["kind"] == "exec"}
        print("commands:", {k: (j["state"], j["attempts"], j["error"]) for k, j in commands.items()})
        assert (commands[".1"]["state"], commands[".1"]["attempts"]) == ("done", 3)
        assert (commands[".2"]["state"], commands[".2"]["attempts"]) == ("failed", 3)
        assert commands[".2"]["error"].startswith("CommandFailed: exit status 1: sh ")
        listed = json.loads(queue(server.config, "failed", "--json").stdout)
        assert [j["seq"] for j in listed] == [commands[".2"]["seq"]]
        human = queue(server.config, "failed").stdout
        assert str(commands[".2"]["seq"]) in human and "CommandFailed" in human

        (state / "broken").unlink()  # the cause is fixed
        retry = queue(server.config, "retry", str(commands[".2"]["seq"]), "--json")
        assert retry.returncode == 0 and json.loads(retry.stdout) == {"retried": [commands[".2"]["seq"]]}
        wait_output_complete(server, timeout=60)
        again = json.loads(queue(server.config, "show", str(commands[".2"]["seq"]), "--json").stdout)
    assert (again["state"], again["attempts"]) == ("done", 4)
    runs = {p.name[-2:]: int(p.read_text()) for p in state.iterdir()}
    assert runs == {".1": 3, ".2": 4}


def test_sigterm_lets_an_open_association_finish_then_the_receiver_exits(tmp_path: Path) -> None:
    from pynetdicom import AE

    first, second = ct_objects(tmp_path / "objects", 2)
    with scp_server("spoolscp", [], tmp_path / "spoolscp", receiver_only=True) as receiver:
        ae = AE(ae_title="SHUTDOWN")
        ae.add_requested_context(dcmread(first).SOPClassUID, dcmread(first).file_meta.TransferSyntaxUID)
        assoc = ae.associate("127.0.0.1", receiver.port)
        assert assoc.is_established and assoc.send_c_store(first).Status == 0
        receiver.proc.send_signal(signal.SIGTERM)

        prober = AE(ae_title="LATE")  # a stopped listener may leave the request unanswered: short timeouts
        prober.add_requested_context(dcmread(first).SOPClassUID, dcmread(first).file_meta.TransferSyntaxUID)
        prober.acse_timeout = prober.network_timeout = 2

        def refuses_new_associations() -> bool:
            late = prober.associate("127.0.0.1", receiver.port)
            if late.is_established:
                late.release()
            return not late.is_established

        wait_until(refuses_new_associations, 10, "the receiver kept accepting new associations after SIGTERM")
        assert assoc.send_c_store(second).Status == 0  # the open association is served to its end
        assoc.release()
        assert receiver.proc.wait(30) == 0
        assert [j["sop_instance"] for j in jobs_json(receiver.config)] == [
            dcmread(p).SOPInstanceUID for p in (first, second)]


def test_a_sigterm_another_thread_takes_still_stops_the_receiver(tmp_path: Path) -> None:
    """The kernel may give a signal sent to the process to any of its threads; under load
    one of the receiver's association threads sometimes took it and the receiver went on
    serving. Sent to such a thread on purpose (``tgkill``), it must still stop it."""
    [source] = ct_objects(tmp_path / "objects", 1)
    with scp_server("spoolscp", [], tmp_path / "spoolscp", receiver_only=True) as receiver:
        assert send_dcmtk(receiver.port, part10_inputs([source]), tmp_path / "send.log") == [SUCCESS]
        pid = receiver.proc.pid
        [thread, *_] = sorted(int(tid) for tid in os.listdir(f"/proc/{pid}/task") if int(tid) != pid)
        assert ctypes.CDLL(None, use_errno=True).tgkill(pid, thread, signal.SIGTERM) == 0, ctypes.get_errno()
        assert receiver.proc.wait(10) == 0


def test_sigterm_hands_a_running_command_back_and_it_runs_once(tmp_path: Path) -> None:
    [source] = ct_objects(tmp_path / "objects", 1)
    marker = tmp_path / "ran"
    command = f"sleep 2; echo ran >> {marker}"
    with scp_server("spoolscp", ["-xcr", command], tmp_path / "spoolscp", receiver_only=True) as receiver:
        impatient = receiver.workdir / "impatient.toml"  # the workers' graceful stop waits 0.3 s
        impatient.write_text(receiver.config.read_text().replace("[receiver]\n", "[receiver]\nshutdown_timeout = 0.3\n"))
        assert send_dcmtk(receiver.port, part10_inputs([source]), tmp_path / "send.log") == [SUCCESS]
        with worker_process(impatient, receiver.workdir) as worker:
            [running] = wait_until(lambda: [j for j in jobs_json(receiver.config, "--state", "running")
                                            if j["kind"] == "exec" and j["child_pid"]], 30, "command never started")
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(30) == 0
            handed_back = json.loads(queue(receiver.config, "show", str(running["seq"]), "--json").stdout)
            assert handed_back["state"] == "queued" and handed_back["pid"] is None
        with worker_process(receiver.config, receiver.workdir):
            stats = wait_output_complete(receiver, timeout=60)
    assert (stats["done"], stats["failed"]) == (2, 0)
    assert marker.read_text() == "ran\n", "the command must neither be lost nor run twice"



def test_systemd_units_stop_with_sigterm_and_outwait_the_shutdown_timeout() -> None:
    """The units send the signal the two tests above prove graceful, and do not SIGKILL early."""
    shipped = load_settings(str(REPO / "pipeline.toml"))
    for unit in ("spoolscp-receiver.service", "spoolscp-worker.service"):
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.optionxform = str  # systemd keys are case-sensitive
        parser.read(REPO / "scripts" / "systemd" / unit)
        service = parser["Service"]
        assert service["KillSignal"] == "SIGTERM", unit
        assert service["KillMode"] == "mixed", unit
        assert float(service["TimeoutStopSec"]) > shipped.shutdown_timeout + 5, unit
