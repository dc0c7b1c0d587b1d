"""pynetdicom event handlers: log like storescp, spool each object, answer its status.

The C-STORE handler is the receiver's hot path. It never decodes the data set: it
checks the element structure and reads the two SOP UIDs (``spoolscp.rawdicom``),
makes the file durable in the spool (or, for a small object, stores its bytes with
its job row), commits its job row and returns the status that pynetdicom sends back;
the workers' wake-up follows the answer (``receiver.wakeups``).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import A_RELEASE

from receiver import diskfull
from receiver.foldersync import FolderSync
from receiver.groupcommit import GroupCommit
from spoolscp import jobs, spool
from spoolscp.rawdicom import BrokenDataSet, SpoolInfo, scan_spool
from spoolscp.sopclasses import log_code_for
from spoolscp.walsync import UnsyncedCommit
from workers.encoder import Encoding, conversion_possible
from workers.studydirs import UnsafeStudyDir, study_dir_name

log = logging.getLogger("spoolscp.receiver")

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DATASET_MISMATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000

# Longer UIDs would not fit a 255-byte file name with a code and an extension.
MAX_UID_IN_NAME = 200


@dataclass
class Peer:
    """Who sent an object: what ``#a``, ``#c`` and ``#r`` expand to, and the job records."""

    assoc: str  # unique association id, so the tracker can tell associations apart
    calling_ae: str
    called_ae: str
    host: str
    ip: str
    stored: bool = False
    ended: bool = False


def peer_host(ip: str, lookup: bool) -> str:
    """DCMTK's peer name: reverse DNS cut at the first dot, or the address with ``-dhl``."""
    if not lookup:
        return ip
    try:
        return socket.gethostbyaddr(ip)[0].split(".")[0]
    except OSError:
        return ip


@dataclass
class StoreHandler:
    """Everything the C-STORE handler needs, resolved once at start-up."""

    spool_dir: Path
    spool_in_db_max: int  # objects up to this size are spooled in the job table
    jobs_db: jobs.JobDB
    enqueue: Callable[[int], None]
    output: dict[str, Any]  # the output options recorded with every job
    host_lookup: bool
    _peers: "weakref.WeakKeyDictionary[Association, Peer]" = field(default_factory=weakref.WeakKeyDictionary)
    _peers_lock: threading.Lock = field(default_factory=threading.Lock)
    committer: GroupCommit = field(init=False)
    folder_sync: FolderSync = field(init=False)
    encoding: Encoding = field(init=False)

    def __post_init__(self) -> None:
        self.committer = GroupCommit(self.jobs_db)
        self.folder_sync = FolderSync(self.spool_dir)
        self.encoding = Encoding.from_options(self.output["encoding"])

    def peer(self, assoc: Association) -> Peer:
        """The association's peer, looked up once per association."""
        with self._peers_lock:
            found = self._peers.get(assoc)
        if found is None:
            req = assoc.requestor
            found = Peer(
                assoc=uuid.uuid4().hex,
                calling_ae=req.primitive.calling_ae_title,
                called_ae=req.primitive.called_ae_title,
                host=peer_host(req.address, self.host_lookup),
                ip=req.address,
            )
            with self._peers_lock:
                self._peers[assoc] = found
        return found

    def sort_refusal(self, info: SpoolInfo) -> int | None:
        """0xC000 when a sort mode cannot place the object (spec §6); nothing is written then."""
        sort = self.output.get("sort")
        if sort and not first_value(info.study_instance_uid):
            log.error("element StudyInstanceUID (0020,000d) absent or empty in data set")
            return CANNOT_UNDERSTAND
        if sort == "uid":
            try:
                study_dir_name("uid", self.output.get("sort_prefix", ""), first_value(info.study_instance_uid), None,
                               datetime.now())
            except UnsafeStudyDir as exc:
                log.error("%s", exc)
                return CANNOT_UNDERSTAND
        if sort == "conc" and not self.prefix_parent_exists():
            return CANNOT_UNDERSTAND
        return None

    def prefix_parent_exists(self) -> bool:
        """``-ss a/b`` is used raw: its folder can only be made if ``<od>/a`` exists (spec §6)."""
        prefix = self.output.get("sort_prefix", "")
        if "/" not in prefix:
            return True
        parent = f"{self.output['output_dir_display']}/{prefix.rpartition('/')[0]}"
        if Path(self.output["output_dir"], prefix).parent.is_dir():
            return True
        log.error("could not create subdirectory for study: %s_...: no folder %s", parent, parent)
        return False

    def status_for(self, info: SpoolInfo, sop_class: str, sop_instance: str) -> int:
        """DCMTK's status for a stored data set (spec §2.9), read without decoding it."""
        if self.output["encoding"]["bit_preserving"]:
            return SUCCESS  # DCMTK checks nothing in bit-preserving mode
        if info.sop_class_uid is None or info.sop_instance_uid is None:
            log.error("bad DICOM file: %s", sop_instance)
            return CANNOT_UNDERSTAND
        if (info.sop_class_uid, info.sop_instance_uid) != (sop_class, sop_instance):
            return DATASET_MISMATCH
        return SUCCESS

    def __call__(self, event: evt.Event) -> int:
        req = event.request
        sop_class, sop_instance = str(req.AffectedSOPClassUID), str(req.AffectedSOPInstanceUID)
        log.info("Received Store Request (MsgID %s, %s)", req.MessageID, log_code_for(sop_class))
        if self.output.get("ignore"):
            return self.ignored(event.assoc)
        received = Path(event.dataset_path)
        data, failure = self.received(req)
        if failure is not None:
            log.error("cannot spool received object %s: %s", sop_instance, failure)
            return OUT_OF_RESOURCES
        try:
            info = scan_spool(received if data is None else data)
        except BrokenDataSet as exc:
            log.error("Store SCP Failed: broken data set refused, nothing stored: %s", exc)
            return CANNOT_UNDERSTAND
        return self.accept(received, info, sop_class, sop_instance, str(event.context.transfer_syntax),
                           self.peer(event.assoc), data)[0]

    def received(self, req: Any) -> tuple[bytes | None, OSError | None]:
        """The received object's bytes if it is small enough to spool in the job table (no
        file then), and the error that kept it from being written completely, if any."""
        spooling = getattr(req, "_dataset_file", None)
        if not isinstance(spooling, diskfull.SpoolingFile):
            return None, None
        data = spooling.held(self.spool_in_db_max)
        return data, None if data is not None else spooling.write_error()

    def accept(self, received: Path, info: SpoolInfo, sop_class: str, sop_instance: str,
               transfer_syntax: str, peer: Peer, data: bytes | None = None) -> tuple[int, int | None]:
        """Check, spool and record one complete object: its status, and its job (None: not stored).

        The object is the file ``received``, or ``data`` (its bytes, spooled in the job
        table under ``received``'s name; no file exists). The way in for C-STOREs and for
        the drop folder (``receiver.dropfolder``).
        """
        refused = self.sort_refusal(info)
        if refused is not None:
            return refused, None
        if not conversion_possible(transfer_syntax, self.encoding,
                                   info.encapsulated_pixels):
            log.error("cannot write DICOM file: %s: Pixel representation not found", sop_instance)
            return OUT_OF_RESOURCES, None
        status = self.status_for(info, sop_class, sop_instance)
        if len(sop_instance) > MAX_UID_IN_NAME:
            log.error("cannot write DICOM file: %s...: File name too long", sop_instance[:64])
            return OUT_OF_RESOURCES, None
        try:
            spooled = received.name if data is not None else spool.commit(received, self.spool_dir, self.folder_sync)
        except OSError as exc:
            log.error("cannot spool received object %s: %s", sop_instance, exc)
            return OUT_OF_RESOURCES, None
        try:
            seq = self.committer.record(
                {
                    "spool": spooled,
                    "received_at": time.time(),
                    "assoc": peer.assoc,
                    "calling_ae": peer.calling_ae,
                    "called_ae": peer.called_ae,
                    "peer_host": peer.host,
                    "peer_ip": peer.ip,
                    "sop_class": sop_class,
                    "sop_instance": sop_instance,
                    "transfer_syntax": transfer_syntax,
                    "status": status,
                    "study_uid": first_value(info.study_instance_uid),
                    "patient_name": info.patient_name,
                    "charset": _text(info.specific_character_set),
                    "options": self.output,
                },
                data,
            )
        except Exception as exc:  # noqa: BLE001 - any failure here means "not acknowledged"
            log.error("cannot record received object %s: %s", sop_instance, exc)
            if not isinstance(exc, UnsyncedCommit):  # a committed row keeps its file: at least once
                spool.remove(self.spool_dir, spooled)
            return OUT_OF_RESOURCES, None
        peer.stored = True
        self.wake(seq)
        return status, seq

    def ignored(self, assoc: Association) -> int:
        """``--ignore``: nothing is kept, but ``-xcr`` still runs, in reception order (spec §2.8)."""
        if self.output.get("exec_on_reception"):
            peer = self.peer(assoc)
            fields = {"received_at": time.time(), "assoc": peer.assoc, "calling_ae": peer.calling_ae,
                      "called_ae": peer.called_ae, "peer_host": peer.host, "peer_ip": peer.ip,
                      "options": self.output}
            try:
                self.wake(jobs.record_ignored(self.jobs_db, fields))
            except Exception as exc:  # noqa: BLE001 - the object is discarded either way
                log.error("cannot record the reception command of an ignored object: %s", exc)
        return SUCCESS

    def wake(self, seq: int) -> None:
        """Wake the workers for job ``seq``; ``enqueue`` never raises (``receiver.wakeups``)."""
        self.enqueue(seq)

    def release_requested(self, event: evt.Event) -> None:
        """An A-RELEASE-RQ arrived: record the end now, before the response lets the peer go.

        pynetdicom fires ``EVT_RELEASED`` only after sending A-RELEASE-RP, by which time
        the sender may already be on its next association; its objects must come later
        in reception order than this end, as they do in DCMTK's single loop.
        """
        primitive = event.primitive  # type: ignore[attr-defined]
        if isinstance(primitive, A_RELEASE) and primitive.result is None:
            self.association_ended(event)

    def association_ended(self, event: evt.Event) -> None:
        """Tell the tracker, in reception order, that this sender is gone (spec §7)."""
        with self._peers_lock:
            peer = self._peers.get(event.assoc)
        if peer is not None and peer.stored and not peer.ended:
            peer.ended = True
            try:
                self.wake(jobs.record_assoc_end(self.jobs_db, peer.assoc))
            except Exception as exc:  # noqa: BLE001 - only end-of-study timing depends on it
                log.warning("could not record the end of an association: %s", exc)


def first_value(text: str | None) -> str:
    """The first value of a multi-valued string, as storescp reads the Study UID (spec §6):
    ``..\\1.2`` is ``..``, and is refused like ``..`` itself."""
    return (text or "").split("\\")[0]


def _text(value: bytes | None) -> str | None:
    """A raw string value as text for the job row (charset names are ASCII)."""
    return None if value is None else value.decode("ascii", "replace").strip(" \0")


def handle_echo(event: evt.Event) -> int:
    log.info("Received Echo Request (MsgID %s)", event.request.MessageID)
    return SUCCESS


def handle_requested(event: evt.Event) -> None:
    log.info("Association Received")


def handle_accepted(event: evt.Event) -> None:
    max_pdu = event.assoc.requestor.maximum_length or 0
    if max_pdu == 0 or max_pdu > 131072:
        max_pdu = 131072
    log.info("Association Acknowledged (Max Send PDV: %d)", max_pdu - 12)
    if not event.assoc.accepted_contexts:
        log.info("    (but no valid presentation contexts)")


def handle_released(event: evt.Event) -> None:
    log.info("Association Release")


def handle_aborted(event: evt.Event) -> None:
    log.info("Association Aborted")


def event_handlers(store: StoreHandler) -> list[tuple]:
    """The handlers bound to the server, in the order the events happen."""
    return [
        (evt.EVT_REQUESTED, handle_requested),
        (evt.EVT_ACCEPTED, handle_accepted),
        (evt.EVT_C_ECHO, handle_echo),
        (evt.EVT_C_STORE, store),
        (evt.EVT_RELEASED, handle_released),
        (evt.EVT_ABORTED, handle_aborted),
        (evt.EVT_ACSE_RECV, store.release_requested),
        (evt.EVT_RELEASED, store.association_ended),
        (evt.EVT_ABORTED, store.association_ended),
    ]
