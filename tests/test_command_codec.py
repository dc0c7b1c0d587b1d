"""receiver.command_codec writes exactly the bytes pydicom writes for every command set
pynetdicom builds, and hands anything it does not know back to pydicom."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pynetdicom import dimse_primitives as prim
from pynetdicom.dimse_messages import C_ECHO_RQ, C_ECHO_RSP, C_FIND_RSP, C_STORE_RQ, C_STORE_RSP
from pynetdicom.dsutils import encode as pydicom_encode

from receiver.command_codec import encode_command_set, simple_response

CT = "1.2.840.10008.5.1.4.1.1.2"
ODD_UID = "1.2.826.0.1.3680043.8.498.1"  # odd length: padded with a NUL
EVEN_UID = "1.2.826.0.1.3680043.8.498.12"


def store_rsp_primitive(status: int, uid: str = ODD_UID, **extra) -> prim.C_STORE:
    p = prim.C_STORE()
    p.MessageIDBeingRespondedTo, p.AffectedSOPClassUID, p.AffectedSOPInstanceUID = 7, CT, uid
    p.Status = status
    for key, value in extra.items():
        setattr(p, key, value)
    return p


def store_rsp(status: int, **extra) -> C_STORE_RSP:
    m = C_STORE_RSP()
    m.primitive_to_message(store_rsp_primitive(status, **extra))
    return m


def store_rq(**extra) -> C_STORE_RQ:
    p = prim.C_STORE()
    p.MessageID, p.AffectedSOPClassUID, p.AffectedSOPInstanceUID, p.Priority = 65535, CT, EVEN_UID, 2
    p.DataSet = __import__("io").BytesIO(b"\x08\x00\x18\x00\x02\x00\x00\x001\x00")
    for key, value in extra.items():
        setattr(p, key, value)
    m = C_STORE_RQ()
    m.primitive_to_message(p)
    return m


def echo(rsp: bool) -> C_ECHO_RQ | C_ECHO_RSP:
    p = prim.C_ECHO()
    if rsp:
        p.MessageIDBeingRespondedTo, p.Status = 1, 0
    else:
        p.MessageID = 1
    p.AffectedSOPClassUID = "1.2.840.10008.1.1"
    m = C_ECHO_RSP() if rsp else C_ECHO_RQ()
    m.primitive_to_message(p)
    return m


def find_rsp() -> C_FIND_RSP:
    p = prim.C_FIND()
    p.MessageIDBeingRespondedTo, p.AffectedSOPClassUID, p.Status = 3, "1.2.840.10008.5.1.4.1.2.1.1", 0xFF00
    m = C_FIND_RSP()
    m.primitive_to_message(p)
    return m


MESSAGES = {
    "store-rsp success": lambda: store_rsp(0x0000),
    "store-rsp refused": lambda: store_rsp(0xA700),
    "store-rsp warning": lambda: store_rsp(0xB000),
    "store-rq": store_rq,
    "store-rq move originator": lambda: store_rq(MoveOriginatorApplicationEntityTitle="MOVER",
                                                 MoveOriginatorMessageID=4),
    "echo-rq": lambda: echo(False),
    "echo-rsp": lambda: echo(True),
    "find-rsp": find_rsp,
}


@pytest.mark.parametrize("name", MESSAGES)
def test_same_bytes_as_pydicom(name: str) -> None:
    command_set = MESSAGES[name]().command_set
    fast = encode_command_set(command_set)
    assert fast is not None and fast == pydicom_encode(command_set, True, True)


def test_what_it_does_not_know_goes_back_to_pydicom() -> None:
    with_comment = store_rsp(0xC000).command_set
    with_comment.ErrorComment = "Müller"  # not ASCII
    offending = store_rsp(0xC000).command_set
    offending.OffendingElement = [0x00100010]  # AT
    other_group = Dataset()
    other_group.PatientName = "X"
    for ds in (with_comment, offending, other_group):
        assert encode_command_set(ds) is None


@pytest.mark.parametrize("status", [0x0000, 0xA700, 0xA900, 0xB000, 0xC000])
@pytest.mark.parametrize("uid", [ODD_UID, EVEN_UID])
def test_a_store_response_straight_from_its_primitive_is_pynetdicoms(status: int, uid: str) -> None:
    p = store_rsp_primitive(status, uid)
    m = C_STORE_RSP()
    m.primitive_to_message(p)
    assert simple_response(p) == pydicom_encode(m.command_set, True, True)


def test_a_store_response_with_error_details_or_a_request_takes_pynetdicoms_path() -> None:
    assert simple_response(store_rsp_primitive(0xC000, ErrorComment="bad")) is None
    assert simple_response(store_rsp_primitive(0xC000, OffendingElement=[0x00100010])) is None
    request = prim.C_STORE()
    request.MessageID, request.AffectedSOPClassUID, request.AffectedSOPInstanceUID = 1, CT, ODD_UID
    assert simple_response(request) is None


@pytest.mark.parametrize("status", [0x0000, 0x0211])
def test_an_echo_response_straight_from_its_primitive_is_pynetdicoms(status: int) -> None:
    m = echo(True)
    m.command_set.Status = status
    p = prim.C_ECHO()
    p.MessageIDBeingRespondedTo, p.AffectedSOPClassUID, p.Status = 1, "1.2.840.10008.1.1", status
    assert simple_response(p) == pydicom_encode(m.command_set, True, True)
