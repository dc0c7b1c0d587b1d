"""Small, upstreamable fixes to pynetdicom 3.0.4 for hostile input.

A C-STORE request whose command set lacks a value pynetdicom needs (an empty Affected
SOP Instance UID, for one) raises inside ``DIMSEMessage.decode_msg``. The exception
kills the association's reactor thread: the peer never gets a response or an abort
and hangs until its own timeout. pynetdicom already answers an invalid *complete*
message with Evt19 (A-ABORT); :func:`install` extends that to decoding errors.

Once spoolscp itself aborts an association mid-transfer (``-td``, ``--abort-during``),
:func:`stop_receiving` has its DIMSE provider drop every later P-DATA: an instance
attribute that shadows ``receive_primitive``, so associations never aborted pay nothing.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from pynetdicom import evt
from pynetdicom.dimse import DIMSEServiceProvider

from receiver import (command_codec, command_decode, directsend, fastpdata, fastrecv, fastsetup, filemeta,
                      fragmentwrite, inline_dul, lightsync, primitive_uids, reactor_wakeups)

log = logging.getLogger("spoolscp.receiver")

_original_receive = DIMSEServiceProvider.receive_primitive


def discard_partial(message: Any) -> None:
    """Close and delete the chunked-receive file of a message that will never complete."""
    handle = getattr(message, "_data_set_file", None)
    if handle is not None:
        handle.close()
        Path(handle.name).unlink(missing_ok=True)


def _receive_primitive(self: DIMSEServiceProvider, primitive: Any) -> None:
    try:
        _original_receive(self, primitive)
    except Exception as exc:  # noqa: BLE001 - anything here must end in an abort, not a dead thread
        log.error("DIMSE failure (aborting association): %s: %s", type(exc).__name__, exc)
        message, self.message = self.message, None
        discard_partial(message)
        self.dul.event_queue.put("Evt19")


def _drop(_primitive: Any) -> None:
    """The DIMSE receive of an association spoolscp has aborted: the rest is read and dropped."""


def stop_receiving(provider: DIMSEServiceProvider) -> None:
    """Drop every later P-DATA of ``provider``'s association (both callers, pynetdicom's
    DT-2 and :mod:`receiver.fastpdata`, look ``receive_primitive`` up on the instance)."""
    provider.receive_primitive = _drop  # type: ignore[method-assign]


def install() -> None:
    """Install this fix and every speed patch of pynetdicom (each module says what it
    changes); calling again is harmless, and keeps hooks installed on top of it since."""
    if DIMSEServiceProvider.receive_primitive is _original_receive:
        DIMSEServiceProvider.receive_primitive = _receive_primitive  # type: ignore[method-assign]
    reactor_wakeups.install()
    lightsync.install()
    command_codec.install()
    command_decode.install()
    fastsetup.install()  # before primitive_uids, which wraps the set_uid it puts in dimse_primitives
    primitive_uids.install()
    filemeta.install()
    fastrecv.install()
    fastpdata.install()
    fragmentwrite.install()
    directsend.install()


def abort_association(assoc: Any, timeout: float = 5.0) -> None:
    """A-ABORT from any thread, on the wire before the connection closes.

    ``Association.abort()`` marks the association killed at once, so its reactor thread may
    shut the socket down before the DUL thread has sent the queued A-ABORT: the peer then
    sees a bare close. Here the A-ABORT is sent first (the DUL leaves Sta6), then killed.
    """
    if assoc._sent_abort or assoc.is_released:
        return
    assoc._sent_abort = True
    state = assoc.dul.state_machine.current_state
    assoc.acse.send_abort(0x00)
    deadline = time.monotonic() + timeout
    while assoc.dul.state_machine.current_state == state and time.monotonic() < deadline:
        inline_dul.wait(assoc, 0.005)  # on the association's own thread, its DUL sends the abort meanwhile
    evt.trigger(assoc, evt.EVT_ABORTED, {})
    assoc.kill()
