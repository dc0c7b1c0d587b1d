"""A receiver script run in a subprocess, and the JSON lines it prints.

Tests that patch pynetdicom the way the receiver does (``receiver.server.build_ae``)
run that server as ``python -c SCRIPT port ...`` so the patches stay out of the test
process. The script prints one JSON object per line, each with an ``"event"``; it may
read commands from its standard input and answer each with a line whose event is the
command.

Usage::

    with ScriptServer.start(SCRIPT, port) as server:
        server.wait_for("ready")
        stats = server.ask("stats")
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

REPO = Path(__file__).parent.parent


class ScriptServer:
    """The subprocess and the JSON lines it printed so far."""

    def __init__(self, proc: subprocess.Popen, port: int) -> None:
        self.proc, self.port = proc, port
        self.lines: list[dict[str, Any]] = []
        self._arrived = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    @classmethod
    def start(cls, script: str, port: int, *args: str) -> "ScriptServer":
        """Run ``script`` with ``port`` (where it serves) and ``args``; its standard error
        is kept for :meth:`finish`."""
        proc = subprocess.Popen([sys.executable, "-c", script, str(port), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=REPO)
        return cls(proc, port)

    def __enter__(self) -> "ScriptServer":
        return self

    def __exit__(self, *_: Any) -> None:
        if self.proc.returncode is None:
            self.finish()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._arrived:
                self.lines.append(json.loads(line))
                self._arrived.notify_all()

    def wait_for(self, event: str, timeout: float = 10, since: int = 0) -> dict[str, Any]:
        """The first line with ``event`` (among those from line ``since`` on)."""
        with self._arrived:
            found = lambda: [x for x in self.lines[since:] if x["event"] == event]  # noqa: E731
            assert self._arrived.wait_for(found, timeout), self.lines
            return found()[0]

    def ask(self, command: str, timeout: float = 10) -> dict[str, Any]:
        """Write ``command`` to the script; its answer line."""
        with self._arrived:
            seen = len(self.lines)
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.wait_for(command, timeout, since=seen)

    def events(self, event: str) -> list[dict[str, Any]]:
        with self._arrived:
            return [x for x in self.lines if x["event"] == event]

    def finish(self) -> str:
        """Close the script's input, wait for its end; its standard error."""
        _, err = self.proc.communicate("", timeout=20)
        return err
