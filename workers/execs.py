"""``-xcr`` / ``-xcs`` command lines: DCMTK's placeholders, made safe for ``/bin/sh``.

>>> expand("notify #p #f #a #c #r", p="out/S", f="CT.1.2", a="A;B$C`", c="X Y&Z(1)", r="localhost")
'notify out/S CT.1.2 "A_B_C_" "X Y_Z_1_" "localhost"'

Placeholders are replaced left to right in the order ``#p #f #a #c #r`` (spec §8);
``f=None`` leaves ``#f`` as it is (``-xcs`` has no file). ``#a``, ``#c`` and ``#r`` are
quoted and reduced to ``[A-Za-z0-9 .:@-]`` as DCMTK HEAD does (3.6.9 leaves ``#r`` raw).
``#p`` and ``#f`` only ever hold names built from the safe file-name character set and
the operator's own ``-od`` and prefix, so no received byte can leave its argument.
"""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path
from typing import Callable

from spoolscp import jobs
from spoolscp.naming import sanitize

log = logging.getLogger("spoolscp.worker")


def quote_received(value: str, what: str) -> str:
    """``"value"`` with DCMTK's AE-title sanitiser applied (a warning when it changed)."""
    return f'"{sanitize(value, what)}"'


def expand(command: str, *, p: str | None, f: str | None, a: str, c: str, r: str) -> str:
    """The command with its placeholders replaced (``None`` leaves one untouched)."""
    values = {
        "#p": p,
        "#f": f,
        "#a": quote_received(a, "calling aetitle"),
        "#c": quote_received(c, "called aetitle"),
        "#r": quote_received(r, "peer host name"),
    }
    for placeholder, value in values.items():
        if value is not None:
            command = command.replace(placeholder, value)
    return command


class CommandFailed(RuntimeError):
    """A command exited non-zero: retried with backoff, then kept as failed."""


# /bin/sh runs the command like DCMTK, then records its exit status durably, so a
# worker killed while the command runs can tell later whether it finished.
_WRAPPER = 'sh -c "$1"; s=$?; echo $s > "$2.tmp" && mv "$2.tmp" "$2"; exit $s'


def _alive(pid: int) -> bool:
    """Is ``pid`` still our command's shell? A zombie or a reused pid is not."""
    if not jobs.pid_alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"spoolscp-exec" in f.read()
    except FileNotFoundError:
        return False
    except OSError:
        return True  # no /proc: trust the pid


def _read_status(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def run_once(command: str, status_file: Path, earlier_child: int | None, started: Callable[[int], None]) -> int:
    """Run ``command`` through ``/bin/sh -c`` and return its exit status, at most once per attempt.

    ``earlier_child`` is the shell of an attempt whose worker died: if that command
    finished, its recorded status is the answer; if it still runs, it is waited for;
    only a command that never finished is run again.
    """
    if earlier_child is not None:
        while _alive(earlier_child):
            time.sleep(0.1)
        status = _read_status(status_file)
        if status is not None:
            return status
    status_file.parent.mkdir(parents=True, exist_ok=True)
    status_file.unlink(missing_ok=True)
    log.debug("executing command: %s", command)
    # its own session: a worker killed (even its whole process group) leaves the command
    # running, and the next attempt waits for it instead of starting it a second time
    child = subprocess.Popen(
        ["/bin/sh", "-c", _WRAPPER, "spoolscp-exec", command, str(status_file)], start_new_session=True
    )
    started(child.pid)
    return child.wait()
