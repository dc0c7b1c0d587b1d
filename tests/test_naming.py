"""File names as storescp 3.6.9 builds them (spec §4)."""

from datetime import datetime

import pytest

from spoolscp import naming, sopclasses

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"


def test_default_name_uses_code_and_command_uid():
    assert naming.default_name(CT, "1.2.3.4.100.1", "") == "CT.1.2.3.4.100.1"
    assert naming.default_name(CT, "1.2.3.4.100.1", ".dcm") == "CT.1.2.3.4.100.1.dcm"


@pytest.mark.parametrize(
    "uid, expected",
    [
        ("1.2.3*4;5`6", "CT.1.2.3_4_5_6"),  # the Deb/HEAD examples of spec §4.1
        ("1.2.3.4/../500.2", "CT.1.2.3.4_.._500.2"),
        ("1.2$(reboot)", "CT.1.2__reboot_"),
        ("..", "CT..."),
        ("a\0b", "CT.a_b"),
    ],
)
def test_hostile_uids_stay_one_file_name(uid, expected):
    name = naming.default_name(CT, uid, "")
    assert name == expected
    assert set(name) <= set("CT.0123456789_abcdefghijklmnopqrstuvwxyz")


def test_unknown_class_is_named_unknown_and_logged_ot():
    assert naming.default_name("1.2.3.4.5.6.7.8.9", "1.2", "") == "UNKNOWN.1.2"
    assert sopclasses.log_code_for("1.2.3.4.5.6.7.8.9") == "OT"


def test_codes_are_the_369_table():
    assert sopclasses.code_for("1.2.840.10008.5.1.4.1.1.88.33") == "SRc"
    assert len(sopclasses.accepted_by_default()) == 199


def test_unique_names_differ_every_time():
    a, b = naming.unique_name(CT, ".dcm"), naming.unique_name(CT, ".dcm")
    assert a != b
    assert a.startswith("CT.X.") and a.endswith(".dcm")


def test_timenames_follow_the_serial_rule_of_spec_4_3():
    """Association 1 stores CT x4, association 2 MR, CT, CT, all in one millisecond."""
    now = datetime(2024, 3, 5, 10, 20, 30)
    names, last, counter = [], "", -1
    for cls in (CT, CT, CT, CT, MR, CT, CT):
        last, counter = naming.next_time_name(cls, "", now, last, counter)
        names.append(last)
    stamp = "20240305102030000"
    assert names == [
        f"{stamp}.CT",
        f"{stamp}_0000.CT",
        f"{stamp}_0001.CT",
        f"{stamp}_0002.CT",
        f"{stamp}.MR",
        f"{stamp}.CT",
        f"{stamp}_0000.CT",
    ]


def test_timenames_reset_when_the_millisecond_changes():
    first, counter = naming.next_time_name(CT, ".dcm", datetime(2024, 3, 5, 10, 20, 30, 1000), "", -1)
    second, _ = naming.next_time_name(CT, ".dcm", datetime(2024, 3, 5, 10, 20, 30, 2000), first, counter)
    assert (first, second) == ("20240305102030001.CT.dcm", "20240305102030002.CT.dcm")
