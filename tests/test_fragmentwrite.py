"""receiver.fragmentwrite writes a streamed data set exactly as pynetdicom's ``decode_msg`` does:
the same bytes, the same flushes, the same "complete" answers and errors, for random P-DATA
sequences of data set fragments (middle, last, empty, with and without the message's file)."""

from __future__ import annotations

import random
from io import BytesIO
from typing import Any

import pytest
from pynetdicom.dimse_messages import DIMSEMessage
from pynetdicom.pdu_primitives import P_DATA

from receiver import fragmentwrite


class Recorder:
    """The chunked-receive file as pynetdicom uses it: ``write``, ``file.flush()``."""

    def __init__(self) -> None:
        self.file = self
        self.calls: list[Any] = []

    def write(self, data: Any) -> int:
        self.calls.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        self.calls.append("flush")


def pdata(items: list[tuple[int, bytes]]) -> P_DATA:
    primitive = P_DATA()
    primitive.presentation_data_value_list.extend(items)  # as pynetdicom's to_primitive() fills it
    return primitive


def random_pdata(rng: random.Random) -> list[tuple[int, bytes]]:
    """One P-DATA's PDVs: mostly middle data set fragments, sometimes a last one or an empty PDV."""
    items = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        header = rng.choice([0x00, 0x00, 0x00, 0x04, 0x02, 0x06]) if rng.random() > 0.03 else None
        data = b"" if header is None else bytes([header]) + rng.randbytes(rng.choice([0, 1, 7, 300]))
        items.append((rng.choice([1, 3, 5]), data))
    return items


def run(decode: Any, sequence: list[list[tuple[int, bytes]]], with_file: bool) -> tuple[list[Any], list[Any], bytes]:
    message = DIMSEMessage()
    recorder = Recorder()
    if with_file:
        message._data_set_file = recorder  # type: ignore[assignment]
    answers: list[Any] = []
    for items in sequence:
        try:
            answers.append(decode(message, pdata(items)))
        except Exception as exc:  # noqa: BLE001 - pynetdicom's error is part of what must match
            answers.append(type(exc).__name__)
            break
    data_set = message.data_set.getvalue() if isinstance(message.data_set, BytesIO) else b""
    return answers, recorder.calls, data_set


@pytest.mark.parametrize("with_file", [True, False])
def test_random_sequences_give_pynetdicoms_outcome(with_file: bool) -> None:
    rng = random.Random(7)
    fast_paths = 0
    for _ in range(400):
        sequence = [random_pdata(rng) for _ in range(rng.randint(1, 6))]
        assert run(fragmentwrite.decode_msg, sequence, with_file) == run(
            fragmentwrite._original_decode, sequence, with_file), sequence
        fast_paths += sum(fragmentwrite.middle_fragments(items) for items in sequence)
    assert fast_paths > 300  # the fast path itself was compared, not only pynetdicom's


def test_only_middle_data_set_fragments_take_the_fast_path() -> None:
    assert fragmentwrite.middle_fragments([(1, b"\x00ab"), (3, b"\x04")])
    for items in ([], [(1, b"\x00a"), (1, b"\x02b")], [(1, b"\x01a")], [(1, b"\x03")], [(1, b"")]):
        assert not fragmentwrite.middle_fragments(items), items


def test_the_receiver_installs_it() -> None:
    from receiver import pynetdicom_fixes

    pynetdicom_fixes.install()
    assert DIMSEMessage.decode_msg is fragmentwrite.decode_msg
