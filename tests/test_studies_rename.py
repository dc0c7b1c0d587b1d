"""-rns planning and crash-safe renames (spec §9), on a real job table and folder."""

from __future__ import annotations

import os

import pytest

from spoolscp import jobs
from workers import eos, tracker

CT, MR = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4"


@pytest.fixture
def db(tmp_path):
    d = jobs.JobDB(tmp_path / "jobs.db")
    yield d
    d.close()


def study_with_files(db, out, classes, naming="default"):
    """Objects of one -su study, tracked and written (empty files), ended by another study."""
    opts = {"output_dir": str(out), "output_dir_display": "out", "naming": naming, "extension": "",
            "sort": "uid", "sort_prefix": "", "rename_on_eostudy": True}
    for n, sop_class in enumerate([*classes, CT], start=1):
        jobs.record_received(db, {
            "spool": f"{n}.dcm", "received_at": 1e9 + n, "assoc": "a", "sop_class": sop_class,
            "sop_instance": f"1.2.{n}", "study_uid": "1.9" if n <= len(classes) else "1.8",
            "options": opts})
    tracker.track(db)
    for (name,) in db.execute("SELECT out_name FROM jobs WHERE kind = 'store' AND study_id = 1"):
        (out / "1.9" / name).write_bytes(name.encode())
    (row,) = db.execute(f"SELECT {jobs.JOB_COLUMNS} FROM jobs WHERE kind = 'eos'")
    return jobs.job_from_row(row)


def test_codes_share_one_counter_in_reception_order(db, tmp_path):
    job = study_with_files(db, tmp_path, [CT, MR, CT])
    eos.rename_study(db, job)
    assert sorted(os.listdir(tmp_path / "1.9")) == ["CT000001", "CT000003", "MR000002"]
    assert (tmp_path / "1.9" / "MR000002").read_bytes() == b"MR.1.2.2"


def test_a_rerun_after_a_crash_between_link_and_unlink_finishes_the_rename(db, tmp_path):
    job = study_with_files(db, tmp_path, [CT, MR])
    folder = tmp_path / "1.9"
    (old, new), _ = eos.plan(db, job)
    os.link(folder / old, folder / new)  # the crash: the new name exists, the old one too
    eos.rename_study(db, jobs.get_job(db, job.seq))
    assert sorted(os.listdir(folder)) == ["CT000001", "MR000002"]
    eos.rename_study(db, jobs.get_job(db, job.seq))  # and once more: nothing changes
    assert sorted(os.listdir(folder)) == ["CT000001", "MR000002"]


def test_an_existing_target_is_never_replaced(db, tmp_path):
    """A -su study ending a second time: the first end's files stay, numbering goes on."""
    (tmp_path / "1.9").mkdir()
    for name in ("CT000001", "MR000002"):
        (tmp_path / "1.9" / name).write_bytes(b"earlier " + name.encode())
    job = study_with_files(db, tmp_path, [CT])
    eos.rename_study(db, job)
    folder = tmp_path / "1.9"
    assert sorted(os.listdir(folder)) == ["CT000001", "CT000003", "MR000002"]
    assert (folder / "CT000001").read_bytes() == b"earlier CT000001"


def test_time_names_take_the_code_after_the_timestamp(db, tmp_path):
    assert eos.rename_code("20261201123456789.CT", time_names=True) == "CT"
    assert eos.rename_code("20261201123456789_0001.MR", time_names=True) == "MR"
    assert eos.rename_code("SRc.1.2.3", time_names=False) == "SR"
