"""receiver.filemeta writes the meta group pydicom writes for pynetdicom's chunked
receive, and leaves anything unusual to pydicom. (On a spoolscp association it writes
the output's group instead: tests/test_output_link.py shows it through the pipeline.)"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from io import BytesIO

import pytest
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID
from pynetdicom.dsutils import create_file_meta

from receiver.filemeta import MetaRequest, _write, encode_meta, meta_request

CT = "1.2.840.10008.5.1.4.1.1.2"
CASES = [
    (CT, "1.2.826.0.1.3680043.8.498.1", "1.2.840.10008.1.2.1"),  # odd instance UID
    (CT, "1.2.826.0.1.3680043.8.498.12", "1.2.840.10008.1.2"),  # even
    ("1.2.840.10008.5.1.4.1.1.7.3", "1." + "2" * 62, "1.2.840.10008.1.2.1.99"),  # 64 characters
]


def pydicom_bytes(**kwargs) -> bytes:
    out = BytesIO()
    write_file_meta_info(out, create_file_meta(**kwargs))
    return out.getvalue()


@pytest.mark.parametrize("sop_class, instance, ts", CASES)
def test_same_bytes_as_pydicom(sop_class: str, instance: str, ts: str) -> None:
    kwargs = {"sop_class_uid": UID(sop_class), "sop_instance_uid": UID(instance), "transfer_syntax": UID(ts)}
    out = BytesIO()
    _write(out, meta_request(**kwargs))
    assert out.getvalue() == pydicom_bytes(**kwargs)


def outcome(write: Callable[[], bytes]) -> tuple:
    """What ``write`` returned or raised, and what pydicom warned on the way (hostile UIDs)."""
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        try:
            got: tuple = ("ok", write())
        except Exception as exc:  # noqa: BLE001 - then ours must raise the same
            got = ("raised", type(exc), str(exc))
    return got, [(w.category, str(w.message)) for w in warned]


def our_bytes(request: MetaRequest) -> bytes:
    out = BytesIO()
    _write(out, request)
    return out.getvalue()


@pytest.mark.parametrize("instance", ["", "1.02.3", "1.2.3 ", "1." + "2" * 63, "1.2.3\\4.5", None])
def test_unusual_uids_go_through_pydicom(instance) -> None:
    """Same bytes, same exception and the same warnings as pydicom's own path."""
    request = MetaRequest(sop_class_uid=CT, sop_instance_uid=instance, transfer_syntax="1.2.840.10008.1.2",
                          implementation_uid="1.2.3", implementation_version="X")
    assert encode_meta(request) is None
    expected = outcome(lambda: pydicom_bytes(**request))
    assert outcome(lambda: our_bytes(request)) == expected
