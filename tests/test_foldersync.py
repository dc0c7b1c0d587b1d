"""The spool folder's fsync beside the file's (receiver.foldersync, spoolscp.spool.commit).

What makes a rename durable is a folder fsync that *began after* it; the tests record
every request, fsync start and end, and wait, and check that order for every ticket,
alone, under many concurrent threads, after a failing fsync and in a forked child.
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from receiver import foldersync
from receiver.foldersync import FolderSync
from spoolscp import spool


@pytest.fixture
def log(monkeypatch) -> list[tuple]:
    events: list[tuple] = []
    lock = threading.Lock()
    real = foldersync.fsync_dir

    def recorded(path: Path) -> None:
        with lock:
            events.append(("start",))
        try:
            real(path)
        finally:
            with lock:
                events.append(("end",))

    monkeypatch.setattr(foldersync, "fsync_dir", recorded)
    events.append(("lock", lock))
    return events


def request_and_wait(sync: FolderSync, events: list[tuple]) -> None:
    lock = events[0][1]
    with lock:  # the request and its record are one step: no fsync can start in between
        ticket = sync.request()
        events.append(("request", ticket))
    sync.wait(ticket)
    with lock:
        events.append(("waited", ticket))


def check_order(events: list[tuple]) -> int:
    """Every ticket waited for an fsync that started after its request; returns the fsyncs."""
    kinds = [e[0] for e in events]
    for i, event in enumerate(events):
        if event[0] == "waited":
            asked = events.index(("request", event[1]))
            started = [j for j in range(asked, i) if kinds[j] == "start"]
            assert started and "end" in kinds[started[0]:i], f"ticket {event[1]} not covered"
    return kinds.count("start")


def test_a_wait_returns_after_an_fsync_begun_after_the_request(tmp_path: Path, log: list) -> None:
    sync = FolderSync(tmp_path)
    for _ in range(5):
        request_and_wait(sync, log)
    assert check_order(log) == 5


def test_concurrent_requests_share_fsyncs_and_each_is_covered(tmp_path: Path, log: list) -> None:
    sync = FolderSync(tmp_path)
    threads = [threading.Thread(target=lambda: [request_and_wait(sync, log) for _ in range(25)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [e[0] for e in log].count("waited") == 200
    assert check_order(log) <= 200


def test_a_failed_fsync_fails_its_tickets_only(tmp_path: Path, monkeypatch) -> None:
    sync = FolderSync(tmp_path / "gone")  # its fsync fails
    with pytest.raises(FileNotFoundError):
        sync.wait(sync.request())
    (tmp_path / "gone").mkdir()
    sync.wait(sync.request())


def test_a_forked_child_gets_its_own_helper(tmp_path: Path) -> None:
    sync = FolderSync(tmp_path)
    sync.wait(sync.request())
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            sync.wait(sync.request())
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)  # a child without a helper thread would hang here
    assert os.waitstatus_to_exitcode(status) == 0


def test_commit_with_a_folder_sync_renames_and_a_failure_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    spool_dir, incoming = tmp_path / "spool", tmp_path / "spool" / "incoming"
    incoming.mkdir(parents=True)
    (incoming / "a").write_bytes(b"data")
    name = spool.commit(incoming / "a", spool_dir, FolderSync(spool_dir))
    assert (spool_dir / name).read_bytes() == b"data" and not (incoming / "a").exists()

    class Failing:
        def request(self) -> int:
            return 1

        def wait(self, ticket: int) -> None:
            raise OSError(errno.EIO, "I/O error")

    (incoming / "b").write_bytes(b"data")
    with pytest.raises(OSError):
        spool.commit(incoming / "b", spool_dir, Failing())
    assert sorted(p.name for p in spool_dir.iterdir()) == sorted([name, "incoming"])
