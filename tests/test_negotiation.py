"""Association negotiation and the test options, side by side with DCMTK storescp (issue 4).

The A-ASSOCIATE answer itself is compared (raw PDU: contexts in order with result and
transfer syntax, AE titles, user items), translated only by ``VersionDifferences`` /
:func:`sidebyside.expected_candidate_contexts` for the 3.6.7 reference. Then what a sender
sees of ``--refuse``, ``--reject``, the association limit, the test options, ``-pm``,
``+v``, ``-ta``/``-ts``/``-td`` and commands other than C-ECHO/C-STORE. Spec §2, §11.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from sidebyside import (
    NO_RESPONSE,
    SPOOLSCP,
    SUCCESS,
    AssociationAnswer,
    ProposedContext,
    VersionDifferences,
    _launch,
    compare_associate_answers,
    free_port,
    read_input,
    request_association,
    run_side_by_side,
    scp_server,
    stop_process,
)

T = "1.2.840.10008.1.2."
ILE, ELE, EBE, DEFLATED = "1.2.840.10008.1.2", T + "1", T + "2", T + "1.99"
VERIFICATION = "1.2.840.10008.1.1"
CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
UNKNOWN_CLASS = "1.2.3.4.5.6.7.8.9"
CT_SMALL = get_testdata_file("CT_small.dcm")
STORESCP_CFG = "/etc/dcmtk/storescp.cfg"
EVERY_TS = tuple(reversed((
    *(T + s for s in "4.50 4.51 4.57 4.70 4.80 4.81 4.90 4.91 4.92 4.93 5 1.99 1.98".split()),
    *(T + s for s in "4.100 4.100.1 4.101 4.101.1 4.102 4.102.1 4.103 4.103.1 4.104 4.104.1".split()),
    *(T + s for s in "4.105 4.105.1 4.106 4.106.1 4.107 4.108 4.201 4.202 4.203 4.110 4.111 4.112".split()),
    ILE, ELE, EBE, "1.2.3.4.5.99",
)))

# Several syntaxes per context, in no particular order; unknown and non-storage classes;
# :func:`_with_only_369_class` adds a class only 3.6.9 accepts by default, proposed like CT.
P = ProposedContext
PROPOSAL = [
    P(VERIFICATION, (T + "4.50", ILE)),
    P(VERIFICATION, (T + "4.91",)),
    P(CT, (ILE, EBE, ELE, T + "4.50", T + "4.91")),
    P(MR, (ELE, T + "4.70", T + "5", DEFLATED, T + "4.90")),
    P("1.2.840.10008.5.1.4.1.1.7", EVERY_TS),  # SC: shows each option's first preference
    P("1.2.840.10008.5.1.4.1.1.1", (T + "4.70",)),  # CR: compressed only
    P("1.2.840.10008.5.1.4.1.1.6.1", (T + "4.100", T + "4.101", T + "4.102", T + "4.103", ELE)),
    P("1.2.840.10008.5.1.4.1.1.12.1", (T + "4.104", T + "4.105", T + "4.106", T + "4.107", T + "4.108")),
    P("1.2.840.10008.5.1.4.1.1.20", (T + "4.80", T + "4.81", T + "4.51", EBE)),
    P("1.2.840.10008.5.1.4.1.1.128", (T + "4.201", T + "4.110", T + "1.98", T + "4.100.1")),
    P("1.2.840.10008.5.1.4.1.1.1.1", (ILE, ELE, T + "4.50", T + "4.91")),
    P("1.2.840.10008.5.1.4.1.1.481.5", (DEFLATED, ILE)),  # RT Plan
    P("1.2.840.10008.5.1.4.1.1.88.11", ("1.2.3.4.5.99",)),  # Basic Text SR, unknown TS only
    P("1.2.840.10008.5.1.4.1.1.77.1.1.1", (T + "4.102.1", T + "4.102", ELE)),  # video endoscopy
    P(UNKNOWN_CLASS, (ELE, T + "4.50")),
    P("1.2.840.10008.5.1.4.1.2.1.1", (ELE,)),  # Patient Root Q/R FIND: not storage
    P("1.2.840.10008.5.1.4.38.1", (ELE, DEFLATED)),  # Hanging Protocol: known, not default
]
ROLES = {CT: (True, True), MR: (True, False)}

OPTION_SETS = {
    "default": [], "+x=": ["+x="], "+xe": ["+xe"], "+xb": ["+xb"], "+xs": ["+xs"], "+xy": ["+xy"],
    "+xx": ["+xx"], "+xv": ["+xv"], "+xw": ["+xw"], "+xt": ["+xt"], "+xu": ["+xu"], "+xm": ["+xm"],
    "+xh": ["+xh"], "+xn": ["+xn"], "+xl": ["+xl"], "+x2": ["+x2"], "+x3": ["+x3"], "+xo": ["+xo"],
    "+x4": ["+x4"], "+x5": ["+x5"], "+xr": ["+xr"], "+xd": ["+xd"], "+xi": ["+xi"], "+xa": ["+xa"],
    "-pm": ["-pm"],
    "-xf Default": ["-xf", STORESCP_CFG, "Default"],
    "-xf all dicom": ["-xf", STORESCP_CFG, "all dicom"],
    "-pdu 65536": ["-pdu", "65536"],
}
US = "1.2.840.10008.5.1.4.1.1.3.1"  # UltrasoundMultiframeImageStorage
ROLE_PROFILE = """[[TransferSyntaxes]]
[Plain]
TransferSyntax1 = LittleEndianImplicit
TransferSyntax2 = LocalEndianExplicit
[[PresentationContexts]]
[Some]
PresentationContext1 = CTImageStorage\\Plain
PresentationContext2 = MRImageStorage\\Plain
PresentationContext3 = UltrasoundMultiframeImageStorage\\Plain
PresentationContext4 = 1.2.840.10008.5.1.4.1.1.7\\Plain
PresentationContext5 = VerificationSOPClass\\Plain
[[SCPSCURoleSelection]]
[Roles]
Role1 = CTImageStorage\\SCP
Role2 = MRImageStorage\\BOTH
Role3 = UltrasoundMultiframeImageStorage\\SCU
Role4 = 1.2.840.10008.5.1.4.1.1.7\\scp
[[ExtendedNegotiation]]
[Ext]
ExtendedNegotiation1 = CTImageStorage\\0102ff
ExtendedNegotiation2 = MRImageStorage\\00
ExtendedNegotiation3 = VerificationSOPClass\\AB
[[Profiles]]
[Roles and ext]
PresentationContexts = Some
SCPSCURoleSelection = Roles
ExtendedNegotiation = Ext
"""


def _with_only_369_class(diffs: VersionDifferences) -> list[ProposedContext]:
    """PROPOSAL plus a class only the candidate accepts by default, proposed like CT."""
    only = sorted(diffs.accepted[diffs.candidate] - diffs.accepted[diffs.reference])
    extra = [P(only[0], PROPOSAL[2].transfer_syntaxes)] if only else []
    return PROPOSAL + extra


@contextlib.contextmanager
def server_pair(options: list[str], workdir: Path):
    """DCMTK storescp and ``spoolscp receiver`` (no workers needed to negotiate).

    ``SIDEBYSIDE_CANDIDATE=dcmtk`` makes the candidate DCMTK too: the AC comparisons must
    then pass unchanged (the harness checking itself)."""
    kind = "dcmtk" if os.environ.get("SIDEBYSIDE_CANDIDATE") == "dcmtk" else "spoolscp"
    with scp_server("dcmtk", options, workdir / "reference", "reference") as ref, \
            scp_server(kind, options, workdir / "candidate", "candidate", receiver_only=True) as cand:
        yield ref, cand, VersionDifferences.load(ref.version, cand.version)


def _both(ref, cand, **request: object) -> tuple[AssociationAnswer, AssociationAnswer]:
    with ThreadPoolExecutor(2) as pool:
        a, b = (pool.submit(request_association, s.port, **request) for s in (ref, cand))
        return a.result(), b.result()


@pytest.mark.parametrize("options", OPTION_SETS.values(), ids=OPTION_SETS.keys())
def test_associate_ac_matches_dcmtk(options: list[str], tmp_path: Path, record_property) -> None:
    """Same accepted/refused contexts, results, chosen TS, roles and user items as storescp."""
    with server_pair(options, tmp_path) as (ref, cand, diffs):
        proposal = _with_only_369_class(diffs)
        a, b = _both(ref, cand, contexts=proposal, roles=ROLES)
    accepted = [c for c in a.contexts if c[1] == 0]
    record_property("accepted_by_reference", len(accepted))
    print(f"{options}: {len(proposal)} contexts proposed, DCMTK accepted {len(accepted)}:"
          f" {[(cid, ts) for cid, _, ts in accepted]}")
    assert a.kind == "AC" and len(a.contexts) == len(proposal), a
    problems = compare_associate_answers(a, b, proposal, options, diffs)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("roles", [
    {CT: (True, True), MR: (True, False), US: (False, True)},
    {CT: (False, True), "1.2.840.10008.5.1.4.1.1.7": (True, False), US: (True, True)},
    {},
], ids=["mixed", "scp-only", "none"])
def test_profile_roles_and_extended_negotiation(roles: dict, tmp_path: Path) -> None:
    """-xf with role selection and extended negotiation sections: same AC items as storescp."""
    cfg = tmp_path / "roles.cfg"
    cfg.write_text(ROLE_PROFILE)
    proposal = [P(CT, (ELE,)), P(MR, (ILE, ELE)), P(US, (ELE,)), P("1.2.840.10008.5.1.4.1.1.7", (ILE,)),
                P(VERIFICATION, (ILE,)), P(CT, (T + "4.50",))]
    options = ["-xf", str(cfg), "roles and ext"]
    with server_pair(options, tmp_path) as (ref, cand, diffs):
        a, b = _both(ref, cand, contexts=proposal, roles=roles, extended={CT: b"\x01"})
    print(f"{roles}: DCMTK {a.contexts} {a.user_items}")
    assert a.kind == "AC"
    problems = compare_associate_answers(a, b, proposal, options, diffs)
    assert not problems, "\n".join(problems)


def test_rejections_match_dcmtk(tmp_path: Path) -> None:
    """Bad application context: RJ 1/1/2; no Implementation Class UID: still accepted; AE
    titles echoed with their leading spaces (§2.2, §2.3)."""
    ctx = [P(CT, (ELE,))]
    with server_pair(["-v"], tmp_path) as (ref, cand, diffs):
        for request in ({"contexts": ctx, "app_context": "1.2.3.4"},
                        {"contexts": ctx, "called": "  LEAD", "calling": " X Y&Z"},
                        {"contexts": ctx, "implementation_uid": None}):
            a, b = _both(ref, cand, **request)
            print(f"{request}: DCMTK {a.kind} {a.reject}, spoolscp {b.kind} {b.reject}")
            assert compare_associate_answers(a, b, ctx, [], diffs) == []
        assert a.kind == "AC"
        time.sleep(0.2)
        log = cand.stderr_text()
    line = "I: Association Rejected: Bad Application Context Name: 1.2.3.4"
    assert line in ref.stderr_text() and line in log


def test_no_presentation_context_gets_no_pdu(tmp_path: Path) -> None:
    """An RQ without contexts gets no PDU at all. Debian's storescp also never closes the
    connection (a leak, README "Differences"); spoolscp closes it at once."""
    with server_pair(["-d"], tmp_path) as (ref, cand, _):
        a, b = _both(ref, cand, contexts=[], timeout=3)
        time.sleep(0.2)
        logs = [s.stderr_text() for s in (ref, cand)]
    assert (a.kind, b.kind) == ("NO ANSWER", "CLOSED")
    assert all("D: 0006:0110 No presentation context proposed" in log for log in logs)


@pytest.mark.parametrize("option, without_uid, with_uid", [
    ("--refuse", ("RJ", (1, 1, 1)), ("RJ", (1, 1, 1))),
    ("--reject", ("RJ", (1, 1, 1)), ("AC", None)),
])
def test_refuse_and_reject(option: str, without_uid: tuple, with_uid: tuple, tmp_path: Path) -> None:
    """--refuse: always RJ 1/1/1; --reject: RJ 1/1/1 only without Implementation Class UID."""
    ctx = [P(CT, (ELE,))]
    with server_pair([option, "-v"], tmp_path) as (ref, cand, _):
        for uid, want in ((None, without_uid), ("1.2.3.4", with_uid)):
            a, b = _both(ref, cand, contexts=ctx, implementation_uid=uid)
            assert (a.kind, a.reject) == want, a
            assert (b.kind, b.reject) == want, b
        time.sleep(0.2)
        ref_log, cand_log = ref.stderr_text(), cand.stderr_text()
    line = ("I: Refusing Association (forced via command line)" if option == "--refuse"
            else "I: Association Rejected: No Implementation Class UID provided")
    assert line in ref_log and line in cand_log


def test_association_limit(tmp_path: Path) -> None:
    """``[receiver] max_associations``: RJ 2/3/2 (transient, local limit exceeded), logged."""
    from pynetdicom import AE

    port = free_port()
    workdir = tmp_path / "limit"
    workdir.mkdir()
    config = workdir / "spoolscp.toml"
    config.write_text(f'[state]\ndir = "{workdir / "state"}"\n\n'
                      '[receiver]\nbind = "127.0.0.1"\nmax_associations = 1\n')
    server = _launch("limit", "spoolscp", "3.6.9", [SPOOLSCP, "receiver", "--config", str(config),
                                                   "-od", "out", str(port)], workdir, port, config)
    try:
        ae = AE()
        ae.add_requested_context(CT, ELE)
        first = ae.associate("127.0.0.1", port)
        assert first.is_established
        second = request_association(port, [P(CT, (ELE,))])
        first.release()
        time.sleep(0.3)
        third = request_association(port, [P(CT, (ELE,))])
    finally:
        stop_process(server.proc)
    assert (second.kind, second.reject) == ("RJ", (2, 3, 2))
    assert third.kind == "AC"
    assert "Association Rejected: 1 associations open, limit is 1" in server.stderr_text()


# --------------------------------------------------------------------------------------------
# Test options: what the SCU sees (status, abort, files), as with DCMTK


def _ct_inputs(tmp_path: Path, count: int) -> list:
    """``count`` copies of CT_small with their own SOP Instance UIDs."""
    files = []
    for n in range(count):
        ds = dcmread(CT_SMALL)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.2.1143.4.{n + 1}"
        path = tmp_path / f"ct{n}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(read_input(path))
    return files


@pytest.mark.parametrize("options, expected", [
    (["--abort-after"], NO_RESPONSE),
    (["--abort-during"], NO_RESPONSE),
    (["--ignore"], SUCCESS),
    (["--sleep-after", "1"], SUCCESS),
    (["--sleep-during", "1"], SUCCESS),
])
def test_test_options_side_by_side(options: list[str], expected: str, tmp_path: Path) -> None:
    """Statuses and output files equal DCMTK's: aborts get no response and leave no file."""
    files = _ct_inputs(tmp_path, 1 if options[0] == "--sleep-during" else 2)  # 5 s per file there
    # storescu as sender: pynetdicom's SCU sometimes waits out its 60 s DIMSE timeout after an A-ABORT
    cmp = run_side_by_side([*options, "-d"], [files], "dcmtk", tmp_path)
    print(f"{options}: DCMTK {cmp.reference.statuses}, spoolscp {cmp.candidate.statuses}")
    assert cmp.reference.statuses[0][0] == expected
    assert cmp.ok, cmp.report()
    if expected != SUCCESS or "--ignore" in options:
        assert not any(cmp.candidate.server.outdir.iterdir())
    log = cmp.candidate.server.stderr_text()
    if "abort" in options[0]:
        assert "I: ABORT initiated (due to command line options)" in log
    if options[0] == "--sleep-after":  # once per store, after its response
        assert log.count("D: sleeping 1 s after the store (--sleep-after)") == 2
    if options[0] == "--sleep-during":  # start, every PDV, end: at least 3 per store
        assert log.count("during the store (--sleep-during)") >= 2


@pytest.mark.parametrize("option", ["--abort-after", "--abort-during"])
def test_abort_keeps_earlier_file(option: str, tmp_path: Path) -> None:
    """DCMTK deletes an existing file of the target name (§4.6); spoolscp keeps it (README)."""
    (ct,) = _ct_inputs(tmp_path, 1)
    name = f"CT.{ct.meta_uid}"
    with server_pair([option], tmp_path) as (ref, cand, _):
        for server in (ref, cand):
            (server.outdir / name).write_bytes(b"earlier good file")
        from sidebyside import send_dcmtk  # pynetdicom's SCU sometimes waits its DIMSE timeout after an A-ABORT

        statuses = [send_dcmtk(s.port, [ct], tmp_path / f"{s.name}.log") for s in (ref, cand)]
    assert statuses == [[NO_RESPONSE], [NO_RESPONSE]]
    assert not (ref.outdir / name).exists(), "DCMTK 3.6.x deletes the earlier file"
    assert (cand.outdir / name).read_bytes() == b"earlier good file"


def test_promiscuous_stores_unknown_class(tmp_path: Path) -> None:
    """-pm: an unknown SOP class is accepted and stored as ``UNKNOWN.<uid>``, logged as OT."""
    ds = dcmread(CT_SMALL)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UNKNOWN_CLASS
    path = tmp_path / "unknown.dcm"
    ds.save_as(path, enforce_file_format=True)
    unknown = read_input(path)
    for options in (["-pm", "-v"], ["-v"]):
        cmp = run_side_by_side(options, [[unknown]], "pynetdicom", tmp_path / options[0])
        assert cmp.ok, cmp.report()
        names = sorted(p.name for p in cmp.candidate.server.outdir.iterdir())
        if "-pm" in options:
            assert cmp.reference.statuses == [[SUCCESS]]
            assert names == [f"UNKNOWN.{unknown.meta_uid}"]
            assert "Received Store Request (MsgID 1, OT)" in cmp.candidate.server.stderr_text()
        else:
            assert cmp.reference.statuses != [[SUCCESS]] and names == []


def test_verbose_pc_dumps_rq_and_ac(tmp_path: Path) -> None:
    """+v: the A-ASSOCIATE-RQ and -AC dumps at INFO, in DCMTK's layout (§12)."""
    with server_pair(["-v", "+v"], tmp_path) as (ref, cand, _):
        _both(ref, cand, contexts=[P(CT, (ILE, ELE)), P(UNKNOWN_CLASS, (ELE,))])
        time.sleep(0.2)
        logs = [s.stderr_text() for s in (ref, cand)]

    def lines(log: str) -> list[str]:
        """The association's lines (the harness's readiness probe comes first), versions aside."""
        tail = log.split("I: Association Received\n")[-1]
        return [line for line in tail.splitlines() if "Implementation" not in line]

    assert lines(logs[0]) == lines(logs[1])
    assert "I:     Accepted Transfer Syntax: =LittleEndianExplicit" in logs[1]


def _stalled_store(port: int, dataset: bytes, uid: str, stall: float) -> str:
    """C-STORE whose data set stops half-way for ``stall`` seconds; the answer's PDU kind."""
    from io import BytesIO

    from pynetdicom.dimse_messages import C_STORE_RQ
    from pynetdicom.dimse_primitives import C_STORE
    from pynetdicom.pdu import P_DATA_TF

    from sidebyside import _rq_pdu, _read_pdu

    req = C_STORE()
    req.MessageID, req.AffectedSOPClassUID, req.AffectedSOPInstanceUID, req.Priority = 1, CT, uid, 2
    req.DataSet = BytesIO(dataset)
    msg = C_STORE_RQ()
    msg.primitive_to_message(req)
    pdus = []
    for primitive in msg.encode_msg(1, 4096):
        pdu = P_DATA_TF()
        pdu.from_primitive(primitive)
        pdus.append(pdu.encode())
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(_rq_pdu([P(CT, (ILE,))], "STALL", "ANY-SCP", "1.2.840.10008.3.1.1.1", "1.2.3", {}, {}))
        assert _read_pdu(sock)[0] == 0x02
        sock.sendall(b"".join(pdus[:3]))
        time.sleep(stall)
        with contextlib.suppress(OSError):  # spoolscp may have closed already
            sock.sendall(b"".join(pdus[3:]))
        answer = _read_pdu(sock)
    return {None: "closed", 0x07: "A-ABORT", 0x04: "P-DATA (a response)"}.get(answer and answer[0], "?")


def test_dimse_timeout_applies_to_the_data_set(tmp_path: Path) -> None:
    """-td 1 and a data set that stalls 2.5 s: no response, the association is aborted, no file."""
    ds = dcmread(CT_SMALL)
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    write_dataset(buffer, ds)
    with server_pair(["-td", "1", "-v"], tmp_path) as (ref, cand, _):
        answers = [_stalled_store(s.port, buffer.getvalue(), str(ds.SOPInstanceUID), 2.5) for s in (ref, cand)]
        time.sleep(0.3)
        logs = [s.stderr_text() for s in (ref, cand)]
    assert answers == ["A-ABORT", "A-ABORT"], answers
    assert not any(ref.outdir.iterdir()) and not any(cand.outdir.iterdir())
    line = "E: Store SCP Failed: 0006:0207 DIMSE No data available (timeout in non-blocking mode)"
    assert line in logs[0] and line in logs[1]


def test_other_commands_abort_like_dcmtk(tmp_path: Path) -> None:
    """A C-FIND on a context a profile accepted: no response, A-ABORT, DCMTK's log lines (§2.6)."""
    from pydicom.dataset import Dataset
    from pynetdicom import AE

    find = "1.2.840.10008.5.1.4.1.2.1.1"
    cfg = tmp_path / "find.cfg"
    cfg.write_text(f"[[TransferSyntaxes]]\n[U]\nTransferSyntax1 = LittleEndianImplicit\n"
                   f"[[PresentationContexts]]\n[P]\nPresentationContext1 = {find}\\U\n"
                   f"PresentationContext2 = VerificationSOPClass\\U\n"
                   f"[[Profiles]]\n[F]\nPresentationContexts = P\n")
    query = Dataset()
    query.QueryRetrieveLevel, query.PatientID = "PATIENT", "*"
    seen = []
    with server_pair(["-xf", str(cfg), "F", "-v"], tmp_path) as (ref, cand, _):
        for server in (ref, cand):
            ae = AE()
            ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
            ae.add_requested_context(find, ILE)
            assoc = ae.associate("127.0.0.1", server.port)
            assert assoc.is_established
            statuses = [getattr(status, "Status", None) for status, _ in assoc.send_c_find(query, find)]
            seen.append(statuses)  # [None]: the association ended without a response
        time.sleep(0.3)
        logs = [s.stderr_text() for s in (ref, cand)]
    assert seen == [[None], [None]], seen
    for line in ("E: Expected C-ECHO or C-STORE request but received DIMSE command 0x0020",
                 "E: DIMSE failure (aborting association): 0006:0201 DIMSE Bad command type"):
        assert line in logs[0] and line in logs[1]


def test_acse_timeout_closes_without_pdu(tmp_path: Path) -> None:
    """-ta 1 and an SCU that connects but sends nothing: closed without a PDU, logged (§2.2)."""
    with server_pair(["-ta", "1"], tmp_path) as (ref, cand, _):
        def silent_peer(port: int) -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
                return sock.recv(16)

        with ThreadPoolExecutor(2) as pool:
            received = list(pool.map(silent_peer, (ref.port, cand.port)))
        time.sleep(0.3)
        logs = [s.stderr_text() for s in (ref, cand)]
    assert received == [b"", b""]
    assert all("E: Receiving Association failed: 0006:031a DUL network read timeout" in log for log in logs)


def test_socket_timeout_drops_an_idle_association(tmp_path: Path) -> None:
    """-ts 2 and an idle association: the connection just drops, no A-ABORT (§2.7)."""
    from sidebyside import DICOM_APP_CONTEXT, _read_pdu, _rq_pdu

    rq = _rq_pdu([P(VERIFICATION, (ILE,))], "IDLE", "ANY-SCP", DICOM_APP_CONTEXT, "1.2.3", {}, {})
    with server_pair(["-ts", "2", "-v"], tmp_path) as (ref, cand, _):
        def idle_peer(port: int) -> tuple:
            with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
                sock.sendall(rq)
                return _read_pdu(sock)[0], _read_pdu(sock)

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(idle_peer, (ref.port, cand.port)))
        time.sleep(0.3)
        logs = [s.stderr_text() for s in (ref, cand)]
    assert answers == [(0x02, None), (0x02, None)], answers
    assert all(log.rstrip().endswith("I: Association Aborted") for log in logs)


def _item(item_type: int, data: bytes) -> bytes:
    return bytes([item_type, 0]) + len(data).to_bytes(2, "big") + data


def _raw_rq(contexts: list[tuple[int, bytes, list[bytes]]], user: bytes | None = b"") -> bytes:
    """An A-ASSOCIATE-RQ built byte by byte, so that it can break the rules."""
    items = b"".join(_item(0x20, bytes([cid, 0, 0, 0]) + _item(0x30, abstract)
                           + b"".join(_item(0x40, ts) for ts in syntaxes))
                     for cid, abstract, syntaxes in contexts)
    if user is not None:
        items += _item(0x50, _item(0x51, (16384).to_bytes(4, "big")) + _item(0x52, b"1.2.3") + user)
    body = (b"\x00\x01\x00\x00" + b"ANY-SCP".ljust(16) + b"HOSTILE".ljust(16) + bytes(32)
            + _item(0x10, b"1.2.840.10008.3.1.1.1") + items)
    return b"\x01\x00" + len(body).to_bytes(4, "big") + body


HOSTILE_RQS = {  # name -> (RQ, whether DCMTK answers it at all)
    "empty abstract syntax": (_raw_rq([(1, b"", [ILE.encode()])]), True),
    "repeated context ID": (_raw_rq([(1, CT.encode(), [ILE.encode()]), (1, VERIFICATION.encode(), [ILE.encode()])]), True),
    "even context IDs": (_raw_rq([(0, CT.encode(), [ILE.encode()]), (2, CT.encode(), [ILE.encode()])]), True),
    "no user information": (_raw_rq([(1, CT.encode(), [ILE.encode()])], None), True),
    "role item 0/0": (_raw_rq([(1, CT.encode(), [ILE.encode()])],
                              _item(0x54, len(CT).to_bytes(2, "big") + CT.encode() + b"\0\0")), True),
    "no transfer syntax": (_raw_rq([(1, CT.encode(), [])]), False),
    "300 transfer syntaxes": (_raw_rq([(1, CT.encode(), [b"1.2.3.%d" % i for i in range(300)] + [ILE.encode()])]), False),
    "80-character abstract syntax": (_raw_rq([(1, b"1." * 40, [ILE.encode()])]), False),
}


def test_hostile_requests(tmp_path: Path) -> None:
    """Malformed RQs: DCMTK's answer where it gives one; otherwise spoolscp still answers (no
    hanging peer, no traceback) where storescp never does."""
    from sidebyside import _read_pdu

    def answer(port: int, rq: bytes) -> object:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(rq)
            try:
                pdu = _read_pdu(sock)
            except TimeoutError:
                return "NO ANSWER"
            if pdu and pdu[0] == 0x02:
                sock.sendall(b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00")
                from sidebyside import decode_associate_ac
                return decode_associate_ac(pdu[1]).contexts
            return pdu and pdu[0]

    with server_pair([], tmp_path) as (ref, cand, _):
        for name, (rq, dcmtk_answers) in HOSTILE_RQS.items():
            with ThreadPoolExecutor(2) as pool:
                a, b = pool.map(answer, (ref.port, cand.port), (rq, rq))
            print(f"{name}: DCMTK {a}, spoolscp {b}")
            assert (a == b) if dcmtk_answers else (a == "NO ANSWER" and b != "NO ANSWER"), name
        time.sleep(0.2)
        assert "Traceback" not in cand.stderr_text()
