"""storescp serves C-ECHO and C-STORE only; any other request aborts the association (spec §2.6).

With ``-xf`` a profile can accept, say, a Query/Retrieve context. pynetdicom would then run
its own C-FIND service and answer; DCMTK instead logs the unexpected command and aborts,
so the sender sees an A-ABORT and no response.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_ECHO, C_STORE

from receiver.pynetdicom_fixes import abort_association

log = logging.getLogger("spoolscp.receiver")

BAD_COMMAND = "0006:0201 DIMSE Bad command type"
# request primitive -> (0000,0100) CommandField
COMMAND_FIELDS = {
    "C_GET": 0x0010, "C_FIND": 0x0020, "C_MOVE": 0x0021, "N_EVENT_REPORT": 0x0100, "N_GET": 0x0110,
    "N_SET": 0x0120, "N_ACTION": 0x0130, "N_CREATE": 0x0140, "N_DELETE": 0x0150,
}

_previous: Callable[..., None] | None = None


def _serve_request(self: Association, msg: Any, context_id: int) -> None:
    if getattr(self.ae, "storescp_policy", None) is None or isinstance(msg, (C_ECHO, C_STORE)):
        assert _previous is not None
        return _previous(self, msg, context_id)
    field = COMMAND_FIELDS.get(type(msg).__name__, 0)
    log.error("Expected C-ECHO or C-STORE request but received DIMSE command 0x%04x", field)
    log.error("DIMSE failure (aborting association): %s", BAD_COMMAND)
    abort_association(self)
    return None


def install() -> None:
    """Hook pynetdicom's request dispatch once."""
    global _previous
    if _previous is None:
        _previous = Association._serve_request
        Association._serve_request = _serve_request  # type: ignore[method-assign]
