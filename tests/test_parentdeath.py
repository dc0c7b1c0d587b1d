"""Children that die with their parent (spoolscp.parentdeath): a SIGKILLed worker
consumer takes its Huey worker and scheduler processes with it, instead of leaving
them to take tasks beside the pool a restart brings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from sidebyside import SPOOLSCP, wait_for, write_spoolscp_config
from spoolscp.jobs import pid_alive as alive  # a zombie waiting for its reaper counts as gone

REPO = Path(__file__).resolve().parents[1]

# A parent that forks one child calling die_with, prints the child's pid, then sleeps.
PARENT = """
import os, signal, sys, time
from spoolscp import parentdeath
parent = os.getpid() if sys.argv[1] == "own" else 1
pid = os.fork()
if pid == 0:
    parentdeath.die_with(parent, signal.SIGKILL)
    time.sleep(60)
    os._exit(0)
print(pid, flush=True)
if sys.argv[1] == "own":
    time.sleep(60)
else:
    print(os.waitpid(pid, 0)[1] >> 8, flush=True)
"""


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return found


def run_parent(mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", PARENT, mode], stdout=subprocess.PIPE, text=True,
                            cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))


def test_a_child_gets_its_signal_when_the_parent_is_killed() -> None:
    parent = run_parent("own")
    child = int(parent.stdout.readline())
    assert alive(child)
    parent.kill()
    parent.wait(10)
    wait_for(lambda: not alive(child), "the child to die with its parent", 10)


def test_a_child_whose_parent_is_already_gone_exits_at_once() -> None:
    """The fork happened, the parent died before the call: no signal would ever come."""
    parent = run_parent("not-mine")
    parent.stdout.readline()
    assert int(parent.stdout.readline()) == 1  # the child's exit status
    assert parent.wait(10) == 0


def test_a_killed_worker_consumer_takes_its_worker_processes_with_it(tmp_path: Path) -> None:
    config = write_spoolscp_config(tmp_path, workers=2)
    consumer = subprocess.Popen([SPOOLSCP, "worker", "--config", str(config)], cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: len(children(consumer.pid)) >= 3, "two workers and the scheduler", 30)
        pool = children(consumer.pid)
        os.kill(consumer.pid, signal.SIGKILL)
        consumer.wait(10)
        wait_for(lambda: not any(alive(pid) for pid in pool), "the workers to die with their consumer", 10)
    finally:
        try:
            os.killpg(consumer.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
