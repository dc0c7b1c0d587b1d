"""receiver.primitive_uids sets a DIMSE primitive's UID exactly as pynetdicom's ``set_uid`` does:
same value, type, errors, log records and warnings, for plain and unusual values alike, and
only plain conformant UIDs skip pynetdicom's checks."""

from __future__ import annotations

import contextlib
import logging
import random
import warnings
from typing import Any, Iterator

import pytest
from pydicom.uid import UID, ExplicitVRLittleEndian
from pynetdicom import _config
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.utils import set_uid as pynetdicoms

from receiver.primitive_uids import _fast_set_uid, plain_uid

UID_64 = "1.2.826.0.1.3680043.8.498." + "1" * 38
PRIVATE_TS = UID("1.2.826.0.1.3680043.8.498.5")
PRIVATE_TS.set_private_encoding(False, True)  # a UID() made of it keeps that
PLAIN = ["1", "0", "0.0", "1.2.840.10008.5.1.4.1.1.2", UID_64, UID("1.2.3"), ExplicitVRLittleEndian, PRIVATE_TS]
UNUSUAL = [None, "", " ", "1.2.3 ", " 1.2.3", "1.2.3\0", "1.02.3", "01.2", "1..2", "1.2.", ".1", UID_64 + "1",
           "1.2.3\n", "1.2\\1.3", "1.2.é", b"1.2.3", b"1.2.3\0", b"", 123, 1.5, ["1.2"]]


def outcome(set_uid: Any, value: Any, **flags: Any) -> tuple:
    """(result as (type, value) or the error, log records, warnings) of one call."""
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(f"{r.levelname}: {r.getMessage()}")  # type: ignore[method-assign]
    logger = logging.getLogger("pynetdicom")
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = set_uid(value, "Affected SOP Instance UID", **flags)
                got: Any = (type(result).__name__, result, getattr(result, "_PRIVATE_TS_ENCODING", None))
            except Exception as exc:  # noqa: BLE001 - the error is part of the outcome
                got = f"{type(exc).__name__}: {exc}"
    finally:
        logger.removeHandler(handler)
    # ResourceWarnings: sockets of earlier tests collected meanwhile, not set_uid's
    return got, records, [str(w.message) for w in caught if not issubclass(w.category, ResourceWarning)]


@contextlib.contextmanager
def counting() -> Iterator[tuple[Any, list]]:
    calls: list = []

    def original(*args: Any) -> Any:
        calls.append(args)
        return pynetdicoms(*args)
    yield _fast_set_uid(original), calls


def random_values(count: int) -> list[str]:
    rng = random.Random(11)
    return ["".join(rng.choice("0123456789...  \0a") for _ in range(rng.randint(0, 70))) for _ in range(count)]


FLAGS = [{}, {"allow_empty": False}, {"allow_none": False}, {"validate": False}]


@pytest.mark.parametrize("flags", FLAGS)
def test_every_value_is_set_as_pynetdicom_sets_it(flags: dict) -> None:
    with counting() as (fast, calls):
        for value in PLAIN + UNUSUAL + random_values(400):
            assert outcome(fast, value, **flags) == outcome(pynetdicoms, value, **flags), repr(value)
    assert calls  # the unusual ones went to pynetdicom


def test_only_plain_conformant_uids_skip_pynetdicoms_checks() -> None:
    for value in PLAIN + UNUSUAL + random_values(400):
        with counting() as (fast, calls), contextlib.suppress(ValueError, TypeError), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fast(value, "Affected SOP Instance UID")
        # pydicom's own idea of a valid UID, for a value that UID() does not strip
        expected_plain = isinstance(value, str) and value == value.strip() and UID(value, 0).is_valid
        assert (not calls) == expected_plain == (isinstance(value, str) and plain_uid(value)), repr(value)


def test_custom_validators_are_pynetdicoms_business(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(_config.VALIDATORS, "UI", lambda value: (False, "refused by a custom validator"))
    with counting() as (fast, calls):
        assert outcome(fast, "1.2.3") == outcome(pynetdicoms, "1.2.3")
    assert calls


def test_a_primitive_holds_the_same_uids(monkeypatch: pytest.MonkeyPatch) -> None:
    primitives = []
    for set_uid in (_fast_set_uid(pynetdicoms), pynetdicoms):
        monkeypatch.setattr("pynetdicom.dimse_primitives.set_uid", set_uid)
        primitive = C_STORE()
        primitive.AffectedSOPClassUID, primitive.AffectedSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", UID_64
        primitives.append({k: (type(v), v) for k, v in vars(primitive).items()})
    assert primitives[0] == primitives[1]
