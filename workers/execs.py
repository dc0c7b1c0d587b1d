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


def run(command: str, timeout: float | None = None) -> int:
    """Run through ``/bin/sh -c`` like DCMTK; the exit status decides retry or done."""
    log.debug("executing command: %s", command)
    return subprocess.run(["/bin/sh", "-c", command], timeout=timeout).returncode
