"""receiver.datasettimeout's watchdog: one thread for every data set being received, a
deadline that each P-DATA moves, expiry in deadline order. The -td behaviour itself is
compared with DCMTK in tests/test_negotiation.py (test_dimse_timeout_applies_to_the_data_set)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from receiver.datasettimeout import Watchdog


def test_restarts_move_the_deadline_without_new_threads() -> None:
    expired: list[tuple[Any, Any]] = []
    done = threading.Event()
    dog = Watchdog(lambda provider, message: (expired.append((provider, message)), done.set()))
    before = threading.active_count()
    for _ in range(30):  # a data set arriving in 30 P-DATA, 20 ms apart, each restarting 1 s
        dog.watch("assoc", "message", 1.0)  # type: ignore[arg-type]
        time.sleep(0.02)
    assert expired == []
    assert threading.active_count() == before + 1
    assert done.wait(10)
    assert expired == [("assoc", "message")]


def test_a_completed_data_set_never_expires_and_deadlines_expire_in_order() -> None:
    expired: list[str] = []
    dog = Watchdog(lambda provider, message: expired.append(message))
    dog.watch("slow", "second", 0.6)  # type: ignore[arg-type]
    dog.watch("done", "never", 0.1)  # type: ignore[arg-type]
    dog.forget("done")  # type: ignore[arg-type]
    dog.watch("fast", "first", 0.2)  # type: ignore[arg-type] - earlier than the one the thread sleeps to
    deadline = time.monotonic() + 10
    while len(expired) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    assert expired == ["first", "second"]


HOOKS = """
from pynetdicom.dimse import DIMSEServiceProvider as D
from receiver import datasettimeout, pynetdicom_fixes, testoptions
from receiver.options import parse_args
from receiver.server import build_ae

def hooks():
    return D.receive_primitive.__module__, D.send_msg.__module__

print(hooks())
build_ae(parse_args(["11112"]))
print(hooks())
build_ae(parse_args(["--sleep-after", "1", "11112"]))
print(hooks())
build_ae(parse_args(["-td", "5", "--abort-during", "11112"]))
print(hooks())
build_ae(parse_args(["11112"]))
print(hooks())
"""


def test_receive_and_send_hooks_are_installed_only_for_their_options() -> None:
    """Without -td and test options no P-DATA runs more than the exception guard; each
    option adds its hook once, and a later AE without options keeps them (they check it)."""
    out = subprocess.run([sys.executable, "-c", HOOKS], capture_output=True, text=True, timeout=60, check=True,
                         cwd=Path(__file__).parent.parent).stdout.split("\n")
    fixes, tests, timeout = "'receiver.pynetdicom_fixes'", "'receiver.testoptions'", "'receiver.datasettimeout'"
    assert out[0].startswith("('pynetdicom.dimse'")
    sent = out[1].split(", ")[1]
    assert out[1:5] == [f"({fixes}, {sent}", f"({fixes}, {tests})", f"({timeout}, {tests})", f"({timeout}, {tests})"]
