"""The same pipeline on Huey's RedisHuey: what users switch to when one host is not enough.

A real ``redis-server`` on an ephemeral loopback port (no persistence: the job table,
not the queue, is the truth), spoolscp with ``[queue] backend = "redis"``, DCMTK's
storescu as the sender and DCMTK's storescp as the reference for the output.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidebyside import (
    HOST,
    SUCCESS,
    free_port,
    scp_server,
    send_dcmtk,
    stop_process,
    wait_output_complete,
)
from test_pipeline import HANDOFF_FILES, corpus_files, tree

REDIS_SERVER = "/usr/bin/redis-server"


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """A throw-away Redis on 127.0.0.1; yields its URL."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [REDIS_SERVER, "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        ping = ["/usr/bin/redis-cli", "-h", HOST, "-p", str(port), "ping"]
        for _ in range(200):
            if subprocess.run(ping, capture_output=True, text=True).stdout.strip() == "PONG":
                break
            if proc.poll() is not None:
                pytest.fail(f"redis-server exited with {proc.returncode}")
            subprocess.run(["sleep", "0.05"])
        else:
            pytest.fail("redis-server did not answer PING")
        yield f"redis://{HOST}:{port}/0"
    finally:
        stop_process(proc)


def test_redis_queue_writes_what_dcmtk_writes(tmp_path: Path) -> None:
    files = corpus_files(HANDOFF_FILES)
    with scp_server("dcmtk", [], tmp_path / "dcmtk") as reference:
        assert send_dcmtk(reference.port, files, tmp_path / "ref.log") == [SUCCESS] * len(files)

    with redis_server(tmp_path / "redis") as url:
        queue = f'[queue]\nbackend = "redis"\nredis_url = "{url}"\n'
        with scp_server("spoolscp", [], tmp_path / "spool", extra_config=queue) as server:
            assert send_dcmtk(server.port, files, tmp_path / "cand.log") == [SUCCESS] * len(files)
            stats = wait_output_complete(server, timeout=120)
    print("redis backend:", stats)
    assert stats["done"] == len(files) and stats["failed"] == 0
    assert not (server.workdir / "state" / "queue.db").exists(), "the SQLite queue was used"
    written = tree(server.outdir)
    assert written == tree(reference.outdir)
    assert len(written) == len({f.dataset_uid for f in files})  # same UID, same name: overwritten
