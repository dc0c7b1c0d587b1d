"""Logging in DCMTK's format: one line per message line, prefixed ``F: E: W: I: D: T:``.

>>> setup("info")                                  # doctest: +SKIP
>>> log.info("Association Received")               # doctest: +SKIP
I: Association Received
"""

from __future__ import annotations

import logging
import sys
import warnings

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

LEVELS = {
    "off": logging.CRITICAL + 10,
    "fatal": logging.CRITICAL,
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE,
}
_LETTERS = {logging.CRITICAL: "F", logging.ERROR: "E", logging.WARNING: "W", logging.INFO: "I", logging.DEBUG: "D", TRACE: "T"}

log = logging.getLogger("spoolscp")


class DcmtkFormatter(logging.Formatter):
    """Prefix every line of a message with its level letter, as log4cplus does in DCMTK."""

    def format(self, record: logging.LogRecord) -> str:
        letter = _LETTERS.get(record.levelno, "I")
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return "\n".join(f"{letter}: {line}" for line in text.split("\n"))


def setup(level: str) -> None:
    """Send spoolscp's log to stderr at ``level``; the libraries speak only at debug."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(DcmtkFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    quiet_libraries = LEVELS[level] > logging.DEBUG
    for name in ("pynetdicom", "huey", "pydicom"):
        logging.getLogger(name).setLevel(logging.CRITICAL if quiet_libraries else LEVELS[level])
    if quiet_libraries:
        # pydicom repeats its value warnings through the warnings module as well
        warnings.filterwarnings("ignore", module="pydicom")
