"""At least once, exactly once in the output: SIGKILL the workers again and again, and the receiver once.

Four pynetdicom senders store CRASH_OBJECTS objects in parallel into ``spoolscp receiver``
while ``spoolscp worker`` is started and SIGKILLed every ~0.5 s, and the receiver is
SIGKILLed once (after a third of the acknowledgements) and started again; a sender whose
association breaks re-associates and re-sends everything not yet acknowledged. Then a
worker runs undisturbed, ``spoolscp queue recover`` sweeps what the kills left, and:

* every object is acknowledged and its output file exists exactly once;
* each output file is byte-identical to the one a clean run (same senders, no kills) wrote;
* no spool file (nor spool data in the job table) is left, no job is running or failed.

``scripts/crash/run`` runs the same test with 1,000 objects (``CRASH_OBJECTS``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from sidebyside import (
    HOST,
    SPOOLSCP,
    scp_server,
    spoolscp_queue_stats,
    wait_output_complete,
    worker_process,
)
from test_output_link import flat_object

OBJECTS = int(os.environ.get("CRASH_OBJECTS", "200"))
SENDERS = 4
KILL_EVERY = 0.5
AE_TITLE = "CRASHTEST"
# Short leases and retries so that recovery happens within the test.
CONFIG = "lease_seconds = 2.0\n\n[retry]\nretries = 3\ndelay = 0.2\nbackoff = 1.0\n\n" \
         "[queue]\npoll_max_delay = 0.05\n"


def make_objects(folder: Path, count: int) -> list[Path]:
    """``count`` objects with their own instance UIDs, ten per study: small CT and MR
    objects (spooled in the job table), and every fourth a 128 kB one without sequences
    (a spool file that becomes the output: ``workers.output.link_durably``)."""
    folder.mkdir()
    bases = [dcmread(get_testdata_file(name)) for name in ("CT_small.dcm", "MR_small.dcm")]
    paths = []
    for i in range(count):
        if i % 10 == 0:
            study = generate_uid()
        path = folder / f"obj{i:04d}.dcm"
        if i % 4 == 3:
            paths.append(flat_object(path, generate_uid(), study, fill=i))
            continue
        ds = bases[i % 2]
        ds.StudyInstanceUID = study
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


class Target:
    """Where the receiver listens now (it moves to a new port when restarted)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.acknowledged = 0
        self.lock = threading.Lock()


class Sender(threading.Thread):
    """Stores its files over one association, re-associating and re-sending until all are acknowledged."""

    def __init__(self, target: Target, paths: list[Path], deadline: float) -> None:
        super().__init__(daemon=True)
        self.target, self.todo, self.deadline = target, list(paths), deadline
        self.acknowledged: list[Path] = []
        self.resent = 0
        self.error: str | None = None

    def run(self) -> None:
        from pynetdicom import AE

        ae = AE(ae_title=AE_TITLE)
        for sop_class in {dcmread(p, stop_before_pixels=True).SOPClassUID for p in self.todo[:2]}:
            ae.add_requested_context(sop_class, "1.2.840.10008.1.2.1")
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
        while self.todo and time.monotonic() < self.deadline:
            assoc = ae.associate(HOST, self.target.port)
            if not assoc.is_established:
                time.sleep(0.1)
                continue
            self.send_over(assoc)
            if assoc.is_established:
                assoc.release()
        if self.todo:
            self.error = f"{len(self.todo)} objects never acknowledged"

    def send_over(self, assoc) -> None:
        while self.todo and assoc.is_established:
            try:
                rsp = assoc.send_c_store(self.todo[0])
            except Exception:  # noqa: BLE001 - the receiver died under us
                break
            if rsp and "Status" in rsp and rsp.Status == 0:
                self.acknowledged.append(self.todo.pop(0))
                with self.target.lock:
                    self.target.acknowledged += 1
            else:
                self.resent += 1  # no answer (killed) or a refusal: send it again
                assoc.abort()


def send_in_parallel(target: Target, paths: list[Path], timeout: float = 600) -> list[Sender]:
    deadline = time.monotonic() + timeout
    senders = [Sender(target, paths[i::SENDERS], deadline) for i in range(SENDERS)]
    for s in senders:
        s.start()
    return senders


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


class WorkerKiller(threading.Thread):
    """Starts ``spoolscp worker`` and SIGKILLs its whole process group ~0.5 s after it is up.

    "Up" is Huey's start-up line: on a loaded machine the start alone can take longer
    than 0.5 s, and workers killed before they run anything would prove nothing.
    """

    def __init__(self, config: Path, workdir: Path) -> None:
        super().__init__(daemon=True)
        self.config, self.workdir = config, workdir
        self.log = workdir / "killed-workers.log"
        self.stop = threading.Event()
        self.kills = 0

    def run(self) -> None:
        with self.log.open("ab") as log:
            while not self.stop.is_set():
                starts = self.starts()
                proc = subprocess.Popen([SPOOLSCP, "worker", "-d", "--config", str(self.config)], cwd=self.workdir,
                                        stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
                deadline = time.monotonic() + 30
                while self.starts() == starts and proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.02)
                self.stop.wait(KILL_EVERY)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # the consumer and the workers it forked
                proc.wait()
                self.kills += 1

    def starts(self) -> int:
        return self.log.read_bytes().count(b"Huey consumer started")


@contextlib.contextmanager
def killing_workers(config: Path, workdir: Path) -> Iterator[WorkerKiller]:
    """Run a :class:`WorkerKiller` for the block; it kills its last worker when stopped."""
    killer = WorkerKiller(config, workdir)
    killer.start()
    try:
        yield killer
    finally:
        killer.stop.set()
        killer.join(60)


def wait_senders(senders: list[Sender]) -> None:
    for s in senders:
        s.join(660)
    errors = [s.error for s in senders if s.error or s.is_alive()]
    assert not errors, errors


def queue_json(config: Path, *argv: str) -> str:
    result = subprocess.run([SPOOLSCP, "queue", *argv, "--json", "--config", str(config)], capture_output=True,
                            text=True, timeout=120, check=True)
    return result.stdout


def test_sigkilled_workers_and_receiver_lose_nothing_and_duplicate_nothing(tmp_path: Path) -> None:
    paths = make_objects(tmp_path / "objects", OBJECTS)
    started = time.monotonic()
    with scp_server("spoolscp", [], tmp_path / "clean", extra_config=CONFIG) as clean:
        wait_senders(send_in_parallel(Target(clean.port), paths))
        wait_output_complete(clean, timeout=600)
    expected = outputs(clean.outdir)
    clean_seconds = time.monotonic() - started
    assert len(expected) == OBJECTS

    workdir = tmp_path / "crash"
    with scp_server("spoolscp", [], workdir, receiver_only=True, extra_config=CONFIG) as receiver, \
            killing_workers(receiver.config, workdir) as killer:
        target = Target(receiver.port)
        senders = send_in_parallel(target, paths)
        deadline = time.monotonic() + 300
        while target.acknowledged < OBJECTS // 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(receiver.proc.pid, signal.SIGKILL)
        receiver.proc.wait(10)
        acknowledged_before_kill = target.acknowledged
        with scp_server("spoolscp", [], workdir, receiver_only=True, extra_config=CONFIG) as again:
            target.port = again.port
            wait_senders(senders)
            time.sleep(2 * KILL_EVERY)  # a few more worker kills after the last object
            killer.stop.set()
            killer.join(60)
            done_by_killed_workers = spoolscp_queue_stats(again.config)["done"]
            with worker_process(again.config, workdir):
                wait_output_complete(again, timeout=600)
                time.sleep(2.5)  # older than lease_seconds: orphaned spool files may go
                recovered = queue_json(again.config, "recover")
                stats = wait_output_complete(again, timeout=600)
            running = queue_json(again.config, "list", "--state", "running")
            rerun = sum(j["attempts"] > 1 for j in json.loads(queue_json(again.config, "list")))
    got = outputs(again.outdir)
    acknowledged = sum(len(s.acknowledged) for s in senders)
    resent = sum(s.resent for s in senders)
    spool = again.workdir / "state" / "spool"
    leftovers = [p.name for p in spool.iterdir() if p.is_file()] + [p.name for p in (spool / "incoming").iterdir()]
    with contextlib.closing(sqlite3.connect(workdir / "state" / "jobs.db")) as db:  # small objects' spool
        leftovers += [f"job {seq}" for (seq,) in db.execute("SELECT seq FROM spool_data")]
    identical = sum(got.get(name) == data for name, data in expected.items())
    print(f"\ncrash test: {OBJECTS} objects, {SENDERS} senders, clean run {clean_seconds:.1f}s; "
          f"{killer.kills} worker SIGKILLs ({done_by_killed_workers} jobs done by killed workers, "
          f"{rerun} run again after a kill), receiver SIGKILLed after {acknowledged_before_kill} acknowledgements; "
          f"acknowledged {acknowledged}, re-sent {resent}, jobs {stats['received']} "
          f"(done {stats['done']}, failed {stats['failed']}); output files {len(got)}, "
          f"byte-identical to the clean run {identical}; spool leftovers {len(leftovers)}; "
          f"recover: {recovered.strip()}; total {time.monotonic() - started:.1f}s")
    assert acknowledged == OBJECTS
    assert sorted(got) == sorted(expected), \
        f"missing {sorted(set(expected) - set(got))[:5]}, extra {sorted(set(got) - set(expected))[:5]}"
    assert identical == OBJECTS
    assert leftovers == []
    assert running.strip() == "[]" and stats["running"] == stats["failed"] == stats["pending"] == 0
    assert killer.kills >= 3 and stats["done"] == stats["received"] >= OBJECTS
