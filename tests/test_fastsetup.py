"""Association set-up fast paths give pynetdicom's results (``receiver.fastsetup``,
``receiver.reactor_wakeups``' queues, the lazy negotiation dumps, the unsynced end of
association), and a receiver serves many associations in a row, in parallel and with
aborts in between, to every kind of peer."""

from __future__ import annotations

import copy
import logging
import socket
import sqlite3
import struct
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pydicom import config as pydicom_config
from pydicom.data import get_testdata_file
from pydicom.uid import UID
from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import AddressInformation, RequestHandler

from receiver import fastsetup
from sidebyside import DCMTK_STORESCU, REPO, dcmtk_env, scp_server
from spoolscp.settings import load_settings
from test_negotiation import ROLE_PROFILE

sys.path.insert(0, str(REPO / "scripts" / "bench"))
import rawclient  # noqa: E402

UIDS = ["1.2.840.10008.1.1", "1.2.840.10008.1.2.1", " 1.2.3 ", "1.2.3\0", "1.02.3", "1..2", "abc", "1.2.3a",
        "", "1" * 64, "1" * 65, "1." + "2" * 70, "1.2.840.10008.5.1.4.1.1.2\\1.2"]


def outcome(call, *args) -> tuple:
    """What a set_uid call returned or raised, what it logged and what it warned."""
    loggers = [logging.getLogger("pynetdicom"), logging.getLogger("pydicom")]
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            result = call(*args)
        got = ("ok", type(result), result, result.__dict__ if isinstance(result, UID) else None)
    except Exception as exc:  # noqa: BLE001 - the exception is the outcome compared
        got = ("raised", type(exc), str(exc), None)
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    return got, records, [str(w.message) for w in warned]


@pytest.mark.parametrize("enforce", [False, True])
def test_set_uid_is_pynetdicoms_for_every_input(enforce: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_config, "ENFORCE_UID_CONFORMANCE", enforce)
    fastsetup._known.clear()
    # UID objects of the invalid strings too, built without pydicom's warning: what set_uid
    # does with them (returns, raises, logs, warns) is what is compared
    uid_objects = [UID(u, validation_mode=pydicom_config.IGNORE) for u in UIDS if u.strip(" \0") == u]
    values = [*UIDS, *(u.encode() for u in UIDS), *uid_objects, None, 12]
    for value in values:
        for flags in [(True, True, True), (False, True, True), (True, False, True), (True, True, False)]:
            expected = outcome(fastsetup._original_set_uid, value, "x", *flags)
            for _ in range(3):  # the first call may fill the memory, the later ones read it
                assert outcome(fastsetup.set_uid, value, "x", *flags) == expected, (value, flags)


def test_set_ae_is_pynetdicoms_for_every_input() -> None:
    fastsetup._known_ae.clear()
    for value in ["ANY-SCP", " LEAD", "TRAIL ", "", "   ", "A" * 16, "A" * 17, "A\\B", "\x01X", "ÄÖ", None, 5, b"AE"]:
        for flags in [(True, True), (False, True), (True, False), (False, False)]:
            expected = outcome(fastsetup._original_set_ae, value, "x", *flags)
            for _ in range(3):
                assert outcome(fastsetup.set_ae, value, "x", *flags) == expected, (value, flags)


def test_set_uid_remembers_only_silent_results_and_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    fastsetup._known.clear()
    for _ in range(2):  # non-conformant: pydicom warns every time, it is never remembered
        with pytest.warns(UserWarning, match=r"Invalid value for VR UI: '1\.02\.3'"):
            fastsetup.set_uid("1.02.3", "x")
    private = UID("1.2.3")
    private.set_private_encoding(False, True)
    assert fastsetup.set_uid(private, "x")._PRIVATE_TS_ENCODING == (False, True)
    assert fastsetup._known == {}
    monkeypatch.setattr(fastsetup, "CACHE_LIMIT", 10)
    for i in range(25):
        assert fastsetup.set_uid(f"1.2.{i}", "x") == f"1.2.{i}"
    assert 0 < len(fastsetup._known) <= 10


def test_context_deepcopy_is_a_deep_copy() -> None:
    ae = AE()
    ae.add_supported_context("1.2.840.10008.1.1", ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"], True, False)
    original = ae.supported_contexts[0]
    original.context_id = 3
    fastsetup.install()
    twin = copy.deepcopy(original)
    assert type(twin) is PresentationContext and twin is not original
    assert vars(twin) == vars(original)
    twin.add_transfer_syntax("1.2.840.10008.1.2.2")
    assert len(original.transfer_syntax) == 2  # the list is not shared
    pair = copy.deepcopy([original, original])
    assert pair[0] is pair[1]  # the memo is kept, as deepcopy's own


def abort_in_the_middle(port: int, store: rawclient.Round) -> None:
    """A C-STORE's command without its data set, then an A-ABORT: the receiver just closes."""
    command_pdu = 6 + struct.unpack_from(">I", store.request, 2)[0]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(store.associate)
        assert rawclient.read_pdu(sock)[0] == 0x02
        sock.sendall(store.request[:command_pdu])
        sock.sendall(b"\x07\x00" + struct.pack(">I", 4) + b"\x00" * 4)
        assert sock.recv(100) == b""


def echo_and_store(port: int, echo: rawclient.Round, store: rawclient.Round, rounds: int) -> int:
    for _ in range(rounds):
        rawclient.one_round(port, echo)
        rawclient.one_round(port, store)
    return rounds


def test_many_associations_in_a_row_in_parallel_and_aborted(tmp_path: Path) -> None:
    echo, store = rawclient.echo_round(), rawclient.store_round(Path(get_testdata_file("MR_small.dcm")))
    with scp_server("spoolscp", [], tmp_path, receiver_only=True) as server:
        port = server.port
        assert echo_and_store(port, echo, store, 100) == 100
        abort_in_the_middle(port, store)
        with ThreadPoolExecutor(4) as pool:
            assert sum(pool.map(lambda _: echo_and_store(port, echo, store, 25), range(4))) == 100
        abort_in_the_middle(port, store)
        scu = AE()
        scu.add_requested_context("1.2.840.10008.1.1")
        assoc = scu.associate("127.0.0.1", port)
        assert assoc.is_established and assoc.send_c_echo().Status == 0
        assoc.release()
        for argv in (["/usr/bin/echoscu", "127.0.0.1", str(port)],
                     [DCMTK_STORESCU, "127.0.0.1", str(port), get_testdata_file("CT_small.dcm")]):
            assert subprocess.run(argv, env=dcmtk_env(), capture_output=True, timeout=30).returncode == 0
        rawclient.one_round(port, echo)
        db = load_settings(config=server.config).jobs_db
    with sqlite3.connect(db) as conn:
        kinds = dict(conn.execute("SELECT kind, count(*) FROM jobs GROUP BY kind").fetchall())
    assert kinds == {"store": 201, "assoc_end": 201}  # every stored association ended, aborted ones not


def associate_rq(called: bytes, calling: bytes, contexts: list[tuple[str, list[str]]], roles: bytes = b"") -> bytes:
    """An A-ASSOCIATE-RQ with these contexts (ids 1, 3, ...) and optional role items."""
    items = b"".join(
        rawclient._item(0x20, bytes([2 * i + 1]) + b"\0\0\0" + rawclient._item(0x30, abstract.encode())
                        + b"".join(rawclient._item(0x40, ts.encode()) for ts in syntaxes))
        for i, (abstract, syntaxes) in enumerate(contexts))
    user = rawclient._item(0x50, rawclient._item(0x51, struct.pack(">I", 16384))
                           + rawclient._item(0x52, rawclient.IMPL_UID) + roles)
    body = (struct.pack(">HH", 1, 0) + called.ljust(16) + calling.ljust(16) + b"\0" * 32
            + rawclient._item(0x10, rawclient.APP_CONTEXT) + items + user)
    return struct.pack(">BBI", 0x01, 0, len(body)) + body


def role(uid: str, scu: int, scp: int) -> bytes:
    return rawclient._item(0x54, struct.pack(">H", len(uid)) + uid.encode() + bytes([scu, scp]))


CT, MR, US = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.6.1"
LE, BE, JPEG = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.4.50"
VARIANTS = [
    associate_rq(b"ANY-SCP", b"ECHOSCU", [(rawclient.VERIFICATION, [rawclient.IMPLICIT_LE])]),
    associate_rq(b"ANY-SCP", b" LEAD", [(rawclient.VERIFICATION, [rawclient.IMPLICIT_LE])]),
    associate_rq(b"OTHER", b"ECHOSCU", [(rawclient.VERIFICATION, [rawclient.IMPLICIT_LE])]),
    associate_rq(b"ANY-SCP", b"ECHOSCU", [(CT, [LE])]),
    associate_rq(b"ANY-SCP", b"ECHOSCU", [(CT, [BE, LE])]),
    associate_rq(b"ANY-SCP", b"ECHOSCU", [(CT, [JPEG])]),
    associate_rq(b"ANY-SCP", b"ECHOSCU", [(MR, [LE]), (CT, [LE]), ("1.2.3.4", [LE])]),
    associate_rq(b"ANY-SCP", b"ECHOSCU", [(US, [LE])], role(US, 1, 1)),
    associate_rq(b"ANY-SCP", b"ECHOSCU", [(US, [LE])], role(US, 0, 1)),
]


def ac_bytes(port: int, rq: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(rq)
        kind, body = rawclient.read_pdu(sock)
        sock.sendall(rawclient.RELEASE_RQ)
        rawclient.read_pdu(sock)
    return bytes([kind]) + body


@pytest.mark.parametrize("profile", [False, True], ids=["prefer", "roles-and-extended"])
def test_remembered_acs_are_pynetdicoms(profile: bool, tmp_path: Path) -> None:
    """The same RQs, each sent twice, get byte for byte the AC a receiver that never
    remembers one (``-d`` binds a PDU-sent handler) encodes afresh."""
    options = ["+xa"]
    if profile:
        (tmp_path / "roles.cfg").write_text(ROLE_PROFILE)
        options = ["-xf", str(tmp_path / "roles.cfg"), "roles and ext"]
    plan = VARIANTS + VARIANTS
    answers = {}
    for name, extra in (("fresh", ["-d"]), ("remembered", [])):
        with scp_server("spoolscp", [*options, *extra], tmp_path / name, receiver_only=True) as server:
            answers[name] = [ac_bytes(server.port, rq) for rq in plan]
    assert answers["remembered"] == answers["fresh"]
    assert len(set(answers["fresh"])) >= 6  # AE titles, contexts, syntaxes: different answers


@pytest.mark.parametrize("level", ["none", "standard"])
def test_default_handlers_are_pynetdicoms(level: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fastsetup.install()
    monkeypatch.setattr(_config, "LOG_HANDLER_LEVEL", level)
    ae = AE()
    ours = Association(ae, "acceptor")._handlers
    monkeypatch.setattr(Association, "_bind_defaults", fastsetup._original_bind_defaults)
    theirs = Association(ae, "acceptor")._handlers
    assert ours == theirs and len(theirs) >= 15
    assert all(ours[event] is not theirs[event] for event in ours if isinstance(ours[event], list))


def test_addresses_are_pynetdicoms() -> None:
    fastsetup.install()
    fastsetup._resolved.clear()
    values = ["127.0.0.1", "::1", "0:0::1", "::ffff:127.0.0.1", "localhost", "", "<broadcast>", "0.0.0.0", "10.1.2.3"]
    for value in values + values:
        ours = AddressInformation(value, 104)
        theirs = AddressInformation.__new__(AddressInformation)
        fastsetup._original_address.fset(theirs, value)
        assert ours.address == theirs.address, value
    assert set(fastsetup._resolved) == {"127.0.0.1", "::1", "0:0::1", "::ffff:127.0.0.1", "0.0.0.0", "10.1.2.3"}


def _summary(assoc: Association) -> tuple:
    """What an acceptor association is made with, before it runs."""
    local, remote = assoc.acceptor, assoc.requestor
    contexts = [(c.context_id, c.abstract_syntax, tuple(c.transfer_syntax), c.scu_role, c.scp_role)
                for c in local.supported_contexts]
    return (assoc.mode, assoc._server, assoc.name[:len("AcceptorThread@")], len(assoc.name), assoc.dul.socket.socket,
            local.maximum_length, local.ae_title, local.address_info.address, local.address_info.port,
            local.implementation_class_uid, local.implementation_version_name, contexts,
            remote.address_info.address, remote.address_info.port, assoc._handlers)


def test_created_associations_are_pynetdicoms() -> None:
    """An acceptor association made with the server's handlers bound in one step has what
    pynetdicom's own ``_create_association`` gives it, handlers included."""
    fastsetup.install()

    def first(event: Any, *args: Any) -> None: ...

    def second(event: Any, *args: Any) -> None: ...

    ae = AE(ae_title="FASTSETUP")
    ae.add_supported_context("1.2.840.10008.1.1", ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"])
    ae.add_supported_context("1.2.840.10008.5.1.4.1.1.2", scp_role=True, scu_role=False)
    handlers = [(evt.EVT_C_ECHO, first, ["an argument"]), (evt.EVT_C_STORE, second),
                (evt.EVT_ACCEPTED, first), (evt.EVT_ACCEPTED, second, [1, 2]), (evt.EVT_PDU_RECV, first),
                (evt.EVT_RELEASED, second)]
    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers, ae_title="SERVER-AE")
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        server._handlers[evt.EVT_RELEASED] = []  # an event without handlers: bound by neither
        with socket.create_connection(listener.getsockname()) as client:
            request, address = listener.accept()
            made = []
            for create in (fastsetup._create_association, fastsetup._original_create_association):
                handler = RequestHandler.__new__(RequestHandler)
                handler.server, handler.request, handler.client_address = server, request, address
                made.append(_summary(create(handler)))
            request.close()
            assert client.getsockname()[1] == made[0][13]
    finally:
        listener.close()
        server.shutdown()
    ours, theirs = made
    assert ours == theirs
    bound = ours[-1]
    assert bound[evt.EVT_C_ECHO] == (first, ["an argument"]) and bound[evt.EVT_ACCEPTED] == [(first, None), (second, [1, 2])]
    assert evt.EVT_RELEASED not in bound and bound[evt.EVT_C_STORE] == (second, None)
