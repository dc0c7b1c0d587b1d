"""The study tracker decides folders, names and ends of study in reception order (spec §6, §7)."""

from datetime import datetime

import pytest

from spoolscp import jobs
from workers import dispatch, tracker

CT = "1.2.840.10008.5.1.4.1.1.2"
T0 = datetime(2026, 11, 25, 12, 33, 20, 996000).timestamp()


@pytest.fixture
def db(tmp_path):
    d = jobs.JobDB(tmp_path / "jobs.db")
    yield d
    d.close()


def options(out, **kw):
    base = {
        "output_dir": str(out), "output_dir_display": "out", "naming": "default", "extension": "",
        "sort": None, "sort_prefix": "", "exec_on_reception": None, "exec_on_eostudy": None,
        "rename_on_eostudy": False, "eostudy_timeout": None, "exec_sync": False, "ignore": False,
    }
    return base | kw


def receive(db, opts, study, n, assoc="a1", at=0.0, ae="SCU"):
    return jobs.record_received(db, {
        "spool": f"{n}.dcm", "received_at": T0 + at, "assoc": assoc, "calling_ae": ae, "called_ae": "SCP",
        "peer_host": "localhost", "peer_ip": "127.0.0.1", "sop_class": CT, "sop_instance": f"1.2.3.4.100.{n}",
        "transfer_syntax": "1.2.840.10008.1.2.1", "status": 0, "study_uid": study, "patient_name": b"Doe^J",
        "charset": None, "options": opts,
    })


def rows(db, kind):
    return [jobs.job_from_row(r) for r in db.execute(
        f"SELECT {jobs.JOB_COLUMNS} FROM jobs WHERE kind = ? ORDER BY seq", (kind,))]


def test_without_sorting_every_object_goes_to_the_output_folder(db, tmp_path):
    receive(db, options(tmp_path), "1.2.1", 1)
    assert tracker.track(db) == 1
    (job,) = rows(db, "store")
    assert (job.out_subdir, job.out_name, job.study_id) == ("", "CT.1.2.3.4.100.1", None)


def test_study_order_1_1_2_then_2_1_as_dcmtk(db, tmp_path):
    """Spec §7 example: objects 1, 1, 2 | 2, 1 with -ss PRE -rns -xcr -xcs."""
    opts = options(tmp_path, sort="conc", sort_prefix="PRE", rename_on_eostudy=True,
                   exec_on_reception="rec #p #f", exec_on_eostudy="eos #p #a")
    for n, (study, assoc) in enumerate([("s1", "a1"), ("s1", "a1"), ("s2", "a1")], start=1):
        receive(db, opts, study, n, assoc, at=n)
    jobs.record_assoc_end(db, "a1")
    receive(db, opts, "s2", 4, "a2", at=10)
    receive(db, opts, "s1", 5, "a2", at=11)
    tracker.track(db)
    dirs = [r[0] for r in db.execute("SELECT dir FROM studies ORDER BY id")]
    assert len(dirs) == 3 and all(d.startswith("PRE_20261125_1233") for d in dirs)
    assert len(set(dirs)) == 3  # study 1 came back: a new folder with -ss
    stores = rows(db, "store")
    assert [s.out_subdir for s in stores] == [dirs[0], dirs[0], dirs[1], dirs[1], dirs[2]]
    followups = sorted(rows(db, "exec") + rows(db, "eos"), key=lambda r: r.seq)
    described = [(r.kind, r.command) for r in followups]
    assert described == [
        ("exec", f"rec out/{dirs[0]} CT.1.2.3.4.100.1"),
        ("exec", f"rec out/{dirs[0]} CT.1.2.3.4.100.2"),
        ("exec", f"rec out/{dirs[1]} CT.1.2.3.4.100.3"),
        ("eos", None),
        ("exec", f'eos out/{dirs[0]} "SCU"'),
        ("exec", f"rec out/{dirs[1]} CT.1.2.3.4.100.4"),
        ("exec", f"rec out/{dirs[2]} CT.1.2.3.4.100.5"),
        ("eos", None),
        ("exec", f'eos out/{dirs[1]} "SCU"'),
    ]
    assert list((tmp_path).iterdir()) and all((tmp_path / d).is_dir() for d in dirs)


def test_su_reuses_the_folder_of_a_returning_study(db, tmp_path):
    opts = options(tmp_path, sort="uid", sort_prefix="")
    receive(db, opts, "1.2.1", 1, at=0)
    receive(db, opts, "1.2.2", 2, at=1)
    receive(db, opts, "1.2.1", 3, at=2)
    tracker.track(db)
    assert [s.out_subdir for s in rows(db, "store")] == ["1.2.1", "1.2.2", "1.2.1"]


def test_timeout_between_objects_opens_a_new_folder(db, tmp_path):
    opts = options(tmp_path, sort="conc", sort_prefix="PRE", eostudy_timeout=2, exec_on_eostudy="eos #p")
    receive(db, opts, "s1", 1, at=0)
    receive(db, opts, "s1", 2, at=1)
    receive(db, opts, "s1", 3, at=4.5)  # 3.5 s idle: the study ended in between
    tracker.track(db)
    first, _, third = rows(db, "store")
    assert first.out_subdir != third.out_subdir
    (eos,) = rows(db, "exec")
    assert eos.command == f"eos out/{first.out_subdir}" and eos.seq < third.seq + 10


def test_idle_studies_end_on_the_timer(db, tmp_path):
    opts = options(tmp_path, sort="conc", eostudy_timeout=2, exec_on_eostudy="eos #p")
    receive(db, opts, "s1", 1, at=0)
    tracker.close_idle_studies(db, now=T0 + 1)
    assert rows(db, "exec") == []
    tracker.close_idle_studies(db, now=T0 + 2.5)
    assert len(rows(db, "exec")) == 1
    tracker.close_idle_studies(db, now=T0 + 10)
    assert len(rows(db, "exec")) == 1  # once


def test_concurrent_associations_keep_their_studies_apart(db, tmp_path):
    opts = options(tmp_path, sort="conc", eostudy_timeout=5, exec_on_eostudy="eos #p")
    for i in range(3):  # a1 sends study A, a2 sends study B, interleaved
        receive(db, opts, "A", 10 + i, "a1", at=i)
        receive(db, opts, "B", 20 + i, "a2", at=i + 0.5)
    tracker.track(db)
    stores = rows(db, "store")
    a_dirs = {s.out_subdir for s in stores if s.study_uid == "A"}
    b_dirs = {s.out_subdir for s in stores if s.study_uid == "B"}
    assert len(a_dirs) == 1 and len(b_dirs) == 1 and a_dirs != b_dirs
    assert rows(db, "exec") == []  # neither ended by the other
    tracker.close_idle_studies(db, now=T0 + 10)
    assert len(rows(db, "exec")) == 2


def test_timenames_restart_their_serial_in_a_new_study_folder(db, tmp_path):
    """The serial restarts only when a folder is created (spec §4.3), here by -su."""
    opts = options(tmp_path, naming="time", sort="uid")
    receive(db, opts, "s1", 1, at=0)
    receive(db, opts, "s1", 2, at=0)
    receive(db, opts, "s2", 3, at=0)
    tracker.track(db)
    names = [s.out_name for s in rows(db, "store")]
    stamp = datetime.fromtimestamp(T0).strftime("%Y%m%d%H%M%S") + "996"
    assert names == [f"{stamp}.CT", f"{stamp}_0000.CT", f"{stamp}.CT"]


def test_two_studies_begun_in_one_millisecond_get_two_folders(db, tmp_path):
    """-ss: DCMTK would reuse the folder (same timestamp) and mix the studies; the second
    study takes the next millisecond, so its -tn name needs no serial either."""
    opts = options(tmp_path, naming="time", sort="conc", sort_prefix="P")
    for n, study in enumerate(["s1", "s1", "s2"], start=1):
        receive(db, opts, study, n, at=0)
    tracker.track(db)
    stamp = datetime.fromtimestamp(T0).strftime("%Y%m%d%H%M%S") + "996"
    stores = rows(db, "store")
    assert [s.out_subdir for s in stores] == ["P_20261125_123320996"] * 2 + ["P_20261125_123320997"]
    assert [s.out_name for s in stores] == [f"{stamp}.CT", f"{stamp}_0000.CT", f"{stamp}.CT"]


def test_unsafe_study_folder_fails_the_object_not_the_tracker(db, tmp_path):
    opts = options(tmp_path, sort="uid", sort_prefix="")
    receive(db, opts, "..", 1)
    receive(db, opts, "1.2.2", 2)
    tracker.track(db)
    bad, good = rows(db, "store")
    assert bad.state == "failed" and "Refusing" in bad.error
    assert good.out_subdir == "1.2.2"
    assert not (tmp_path.parent / "CT.1.2.3.4.100.1").exists()


def test_dispatch_releases_commands_in_order_and_waits_for_objects(db, tmp_path):
    opts = options(tmp_path, sort="conc", exec_on_reception="rec #f", rename_on_eostudy=True,
                   exec_on_eostudy="eos #p")
    s1 = receive(db, opts, "s1", 1, at=0)
    s2 = receive(db, opts, "s2", 2, at=1)
    tracker.track(db)
    assert dispatch.dispatch(db) == []  # object 1 not written yet
    jobs.mark_done(db, s1)
    (rec1,) = dispatch.dispatch(db)
    assert dispatch.dispatch(db) == []  # rec1 has not started
    jobs.claim(db, rec1)
    ready = dispatch.dispatch(db)  # object 2 not written: its rec waits, and so does all after
    assert ready == []
    jobs.mark_done(db, s2)
    (rec2,) = dispatch.dispatch(db)
    jobs.claim(db, rec2)
    (eos,) = dispatch.dispatch(db)
    assert jobs.get_job(db, eos).kind == "eos"
    jobs.claim(db, eos)
    assert dispatch.dispatch(db) == []  # the rename must finish before -xcs
    jobs.mark_done(db, eos)
    (xcs,) = dispatch.dispatch(db)
    assert jobs.get_job(db, xcs).command.startswith("eos out/")


def test_ignored_objects_get_their_reception_command_with_p_and_f_literal(db, tmp_path):
    """--ignore: no folder, no study change, but -xcr runs with #p #f left as they are (§2.8)."""
    opts = options(tmp_path, sort="conc", ignore=True, exec_on_reception="rec #p #f #a")
    jobs.record_ignored(db, {"received_at": T0, "assoc": "a1", "calling_ae": "SCU", "called_ae": "SCP",
                             "peer_host": "localhost", "peer_ip": "127.0.0.1", "options": opts})
    tracker.track(db)
    (rec,) = rows(db, "exec")
    assert rec.command == 'rec #p #f "SCU"'
    assert db.execute("SELECT count(*) FROM studies")[0][0] == 0
    assert dispatch.dispatch(db) == [rec.seq]


def test_a_timeout_found_late_uses_the_association_before_the_new_object(db, tmp_path):
    """DCMTK's timer fires before the next association arrives: #a is the earlier sender's."""
    opts = options(tmp_path, sort="conc", eostudy_timeout=2, exec_on_eostudy="eos #a")
    receive(db, opts, "s1", 1, "a1", at=0, ae="FIRST")
    receive(db, opts, "s2", 2, "a2", at=5, ae="SECOND")
    tracker.track(db)
    (eos,) = rows(db, "exec")
    assert eos.command == 'eos "FIRST"'


def test_the_timer_places_a_late_object_before_judging_its_study_idle(db, tmp_path):
    """An object received within -tos but not yet tracked keeps its study open."""
    opts = options(tmp_path, sort="conc", eostudy_timeout=2, exec_on_eostudy="eos #p")
    receive(db, opts, "s1", 1, at=0)
    tracker.track(db)
    receive(db, opts, "s1", 2, at=1.5)  # untracked when the timer fires at 2.5
    tracker.close_idle_studies(db, now=T0 + 2.5)
    assert rows(db, "exec") == []
    tracker.close_idle_studies(db, now=T0 + 3.6)
    assert len(rows(db, "exec")) == 1


def test_an_overlapping_sender_does_not_end_a_finished_senders_study(db, tmp_path):
    """a1 and a2 overlap: a1's end does not let a2's objects end a1's study (only -tos
    does); a3, begun after a1 ended, follows it as in DCMTK and ends it."""
    opts = options(tmp_path, sort="conc", exec_on_eostudy="eos #p")
    receive(db, opts, "A", 1, "a1", at=0)
    receive(db, opts, "B", 2, "a2", at=1)
    jobs.record_assoc_end(db, "a1")
    receive(db, opts, "B", 3, "a2", at=2)
    tracker.track(db)
    assert rows(db, "exec") == []
    receive(db, opts, "C", 4, "a3", at=3)
    tracker.track(db)
    a_dir = rows(db, "store")[0].out_subdir
    assert [e.command for e in rows(db, "exec")] == [f"eos out/{a_dir}"]


def test_purging_done_rows_keeps_the_objects_of_an_open_or_unrenamed_study(db, tmp_path):
    opts = options(tmp_path, sort="conc", rename_on_eostudy=True, eostudy_timeout=2)
    for n, study in enumerate(["s1", "s2"], start=1):
        jobs.mark_done(db, receive(db, opts, study, n, at=n))
    tracker.track(db)  # s2 ended s1: s1's rename is waiting, s2 is open
    assert jobs.purge_done(db, older_than=-1) == []
    (eos,) = rows(db, "eos")
    jobs.mark_done(db, eos.seq)
    assert sorted(jobs.purge_done(db, older_than=-1)) == [1, eos.seq]  # s1 done with; s2 open


def test_dispatch_without_waiting_rows_takes_no_write_lock(db, tmp_path):
    """The pass every job ends with: a read-only check when nothing waits."""
    receive(db, options(tmp_path), "1.2.3", 1)
    tracker.track(db)
    seen = []
    db.conn.set_trace_callback(seen.append)
    assert dispatch.dispatch(db) == []
    assert seen and not [s for s in seen if s.upper().startswith("BEGIN")]
