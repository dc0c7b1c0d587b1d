"""receiver.acceptpool: idle pooled threads accept connections and run each association
in place, a thread per concurrent association and none started per association.

The receiver's server runs in a subprocess (the patches ``build_ae`` installs stay out
of the test process) and prints a JSON line for every C-ECHO and on request; the SCUs
are pynetdicom's and raw sockets, over 127.0.0.1.
"""

from __future__ import annotations

import socket
from typing import Any, Iterator

import pytest
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from receiver import reactor_wakeups
from receiver.acceptpool import MAX_IDLE
from tests.scriptserver import ScriptServer
from tests.sidebyside import HOST, free_port, wait_for

reactor_wakeups.install()  # the SCU below is pynetdicom's: unpatched, its reactor may take an answer

SERVER = """
import json, sys, threading
from pynetdicom import evt
from pynetdicom.dul import DULServiceProvider
from receiver import inline_dul, prefork
from receiver.acceptpool import runs_here
from receiver.options import parse_args
from receiver.server import build_ae

def say(**what):
    print(json.dumps(what), flush=True)

def on_echo(event):
    assoc = event.assoc
    say(event="echo", runs_here=runs_here(assoc), own_thread=threading.current_thread() is assoc,
        thread=threading.current_thread().name, inline=inline_dul.inline(assoc.dul),
        dul_threads=sum(isinstance(t, DULServiceProvider) for t in threading.enumerate()),
        server_active=len(server.active_associations), ae_active=len(ae.active_associations))
    return 0x0000

def on_open(event):
    if broken:
        broken.pop()
        event.assoc._target = lambda: 1 / 0  # what Association.run() calls: its reactor

ae = build_ae(parse_args([sys.argv[1]]))
ae.maximum_associations = int(sys.argv[2])
broken = []
server = prefork.start_server(ae, ("127.0.0.1", int(sys.argv[1])),
                              [(evt.EVT_C_ECHO, on_echo), (evt.EVT_CONN_OPEN, on_open)], None)
say(event="ready")
for line in sys.stdin:
    if line.strip() == "break":
        broken.append(1)
    if line.strip() == "shutdown":
        server.shutdown()
    pool = server.pool
    say(event=line.strip(), spawned=pool._spawned, idle=pool._idle,
        threads=sorted(t.name for t in threading.enumerate() if t.name.startswith(pool.name + "-")))
"""


def start(limit: int) -> ScriptServer:
    server = ScriptServer.start(SERVER, free_port(), str(limit))
    server.wait_for("ready", timeout=20)
    return server


@pytest.fixture
def receiver() -> Iterator[ScriptServer]:
    with start(limit=10) as server:
        yield server


def associate(port: int) -> Any:
    ae = AE()
    ae.add_requested_context(Verification)
    return ae.associate(HOST, port)


def test_associations_one_after_another_reuse_a_few_pooled_threads(receiver: ScriptServer) -> None:
    for _ in range(30):
        assoc = associate(receiver.port)
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0
        assoc.release()
    echoes = receiver.events("echo")
    assert len(echoes) == 30
    assert all(e["runs_here"] and not e["own_thread"] and e["inline"] and e["dul_threads"] == 0 for e in echoes)
    assert len({e["thread"] for e in echoes}) <= MAX_IDLE
    assert receiver.ask("stats")["spawned"] <= MAX_IDLE + 1  # not one thread per association


def test_concurrent_associations_get_a_thread_each_and_are_counted(receiver: ScriptServer) -> None:
    assocs = [associate(receiver.port) for _ in range(6)]
    assert all(a.is_established for a in assocs)
    assert [a.send_c_echo().Status for a in assocs] == [0] * 6
    echoes = receiver.events("echo")
    assert len({e["thread"] for e in echoes}) == 6
    assert echoes[-1]["server_active"] == 6 and echoes[-1]["ae_active"] == 6
    for a in assocs:
        a.release()
    wait_for(lambda: len(receiver.ask("stats")["threads"]) <= MAX_IDLE, "idle pool threads beyond MAX_IDLE to end")
    after = receiver.ask("stats")
    assert after["idle"] == len(after["threads"]) >= 1  # the rest ended; someone still accepts
    assoc = associate(receiver.port)
    assert assoc.is_established
    assoc.release()


def test_the_association_limit_counts_pooled_associations() -> None:
    with start(limit=2) as server:
        held = [associate(server.port) for _ in range(2)]
        assert all(a.is_established for a in held)
        answers: list[Any] = []
        scu = AE()
        scu.add_requested_context(Verification)
        third = scu.associate(HOST, server.port, evt_handlers=[(evt.EVT_PDU_RECV, lambda e: answers.append(e.pdu))])
        # What the peer received, not third.is_rejected: pynetdicom's SCU sometimes reports an
        # abort for an RJ followed by its own close (1 in 200 tries before the pool, 1 in 40 now).
        assert not third.is_established
        assert [(type(p).__name__, p.result, p.source, p.reason_diagnostic) for p in answers] == [
            ("A_ASSOCIATE_RJ", 0x02, 0x03, 0x02)]  # transient, service provider (presentation), local limit
        for a in held:
            a.release()


def test_shutdown_stops_accepting_and_open_associations_finish(receiver: ScriptServer) -> None:
    held = associate(receiver.port)
    assert held.is_established
    receiver.ask("shutdown")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, receiver.port), timeout=5).close()
    assert held.send_c_echo().Status == 0
    held.release()
    wait_for(lambda: receiver.ask("stats")["threads"] == [], "the pool's threads to end", timeout=5)


def test_an_association_that_raises_is_logged_and_its_connection_closed(receiver: ScriptServer) -> None:
    receiver.ask("break")
    with socket.create_connection((HOST, receiver.port), timeout=10) as sock:
        assert sock.recv(1) == b""  # closed at once, not left to the peer's timeout
    assoc = associate(receiver.port)
    assert assoc.is_established and assoc.send_c_echo().Status == 0
    assoc.release()
    err = receiver.finish()
    assert "association failed" in err and "ZeroDivisionError" in err
