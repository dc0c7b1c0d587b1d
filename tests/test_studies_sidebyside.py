"""Studies side by side with DCMTK storescp: sort folders, ends of study, -rns, -xcr/-xcs.

Same synthetic studies, sent in the same order over several associations to both servers
(``sidebyside.run_study_scenario``): folder and file names must agree (timestamps by
pattern), the files must be identical, and the command lines must be the same, in the
same order under ``-xs`` (asynchronous commands may append in any order on either side,
so without ``-xs`` the lines are compared in any order).

The commands list the study folder (``ls #p``) when a study ends, which shows that the
event ran after the study's last object was written and after its rename.
"""

from __future__ import annotations

import pydicom
import pytest

from sidebyside import (
    NamingScheme,
    ScenarioAssociation,
    StudySpec,
    exec_log_lines,
    part10_inputs,
    run_study_scenario,
    synthetic_study,
)

REC = 'echo "REC #p #f #a #c #r" >> exec.log'
EOS = 'echo "EOS #p #f #a #c #r: $(ls #p | tr "\\n" " ")" >> exec.log'
UID = "1.2.826.0.1.3680043.9.7001."


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> dict[str, list]:
    """Three studies: a Latin-1 name, a UTF-8 name (-sp warns, bytes mapped), an empty name."""
    folder = tmp_path_factory.mktemp("studies")
    specs = {
        "s1": StudySpec(UID + "1", "Müller^Jörg Ça=ß", "ISO_IR 100", count=3),
        "s2": StudySpec(UID + "2", "Ærøskøbing^Zoë", "ISO_IR 192", count=2),
        "s3": StudySpec(UID + "3", "", None, count=2),
    }
    return {key: synthetic_study(folder / key, spec) for key, spec in specs.items()}


def interleaved(st: dict[str, list], returning: bool) -> list[ScenarioAssociation]:
    """Spec §7's pattern 1, 1, 2 | 2, 3, (1): studies change inside and across associations."""
    second = [st["s2"][1], st["s3"][0], st["s3"][1]] + ([st["s1"][2]] if returning else [])
    return [ScenarioAssociation([st["s1"][0], st["s1"][1], st["s2"][0]]),
            ScenarioAssociation(second, ae_title="OTHER-SCU")]


SORTS = {"-ss PRE": ["-ss", "PRE"], "-ss ''": ["-ss", ""], "-su PRE": ["-su", "PRE"],
         "-su ''": ["-su", ""], "-sp": ["-sp"]}
VARIANTS = {
    # name: (options, ends of study expected in the log, reception commands expected)
    "xcr": (["-xcr", REC], 0, True),
    "rns-xcr-xcs-xs": (["-rns", "-xcr", REC, "-xcs", EOS, "-xs"], 3, True),
    "xcs": (["-xcs", EOS], 3, False),
    "tn-rns-xcs-xs": (["-tn", "-rns", "-xcs", EOS, "-xs"], 3, False),  # codes after the time
    "fe-uf-rns-xcr-xs": (["-fe", ".dcm", "+uf", "-rns", "-xcr", REC, "-xs"], 0, True),  # no extension
}
CASES = [("-ss PRE", "xcr"), ("-ss PRE", "rns-xcr-xcs-xs"), ("-ss ''", "xcs"),
         ("-su PRE", "xcr"), ("-su ''", "rns-xcr-xcs-xs"), ("-su PRE", "xcs"),
         ("-sp", "xcr"), ("-sp", "rns-xcr-xcs-xs"), ("-sp", "xcs"),
         ("-ss PRE", "tn-rns-xcs-xs"), ("-su PRE", "fe-uf-rns-xcr-xs")]


def test_dcmtk_folders_are_numbered_in_reception_order_and_spoolscps_by_stamp() -> None:
    """DCMTK stamped the second study's folder, made just after a second began, a second
    early (seen in CI): its folders are numbered by reception, spoolscp's by their stamps."""
    scheme = NamingScheme.from_options(["-ss", "PRE"])
    first, second = "PRE_20261202_020403809", "PRE_20261202_020403001"
    assert scheme.dir_shapes({first, second}, {first: 0, second: 2}) == \
        {first: "PRE_<study#1>", second: "PRE_<study#2>"}
    assert scheme.dir_shapes({first, second}) == {first: "PRE_<study#2>", second: "PRE_<study#1>"}


@pytest.mark.parametrize(("sort", "variant"), CASES, ids=[f"{s} {v}" for s, v in CASES])
def test_interleaved_studies_match_dcmtk(sort, variant, studies, tmp_path):
    extra, ends, rec = VARIANTS[variant]
    options = [*SORTS[sort], *extra]
    # -su -rns: DCMTK replaces the renamed files of a returning study (spec §9); not compared
    returning = not (sort.startswith("-su") and "-rns" in extra)
    plan = interleaved(studies, returning)
    cmp = run_study_scenario(options, plan, tmp_path)
    assert cmp.ok, cmp.report()
    sent = sum(len(a.files) for a in plan)
    expected_lines = (sent if rec else 0) + (ends if returning else max(ends - 1, 0))
    assert len(cmp.reference_execs) == expected_lines, cmp.report()
    assert len(cmp.files.pairs) == sent, cmp.report()


@pytest.mark.parametrize("sort", [["-ss", "PRE", "-rns"], ["-sp"]], ids=["-ss -rns", "-sp"])
def test_eostudy_timeout_inside_and_between_associations_matches_dcmtk(sort, studies, tmp_path):
    """Spec §7 B: idle inside an association past -tos ends the study, the same study UID
    then opens a new folder; after the release the idle time between associations ends it."""
    st = studies
    plan = [ScenarioAssociation([st["s1"][0], st["s1"][1], st["s1"][2]], idle_after={1: 1}, then_wait=2),
            ScenarioAssociation([st["s2"][0], st["s2"][1]], then_wait=3)]
    cmp = run_study_scenario([*sort, "-tos", "2", "-xcs", EOS, "-xs"], plan, tmp_path)
    assert cmp.ok, cmp.report()
    assert len(cmp.reference_execs) == 3, cmp.report()
    assert len({p.reference.relpath.split("/")[0] for p in cmp.files.pairs}) == 3, cmp.report()


def test_eostudy_timeout_with_su_reuses_the_folder_like_dcmtk(studies, tmp_path):
    st = studies
    plan = [ScenarioAssociation([st["s1"][0], st["s1"][1], st["s1"][2]], idle_after={0: 2}, then_wait=5)]
    cmp = run_study_scenario(["-su", "", "-tos", "2", "-xcr", REC, "-xcs", EOS, "-xs"], plan, tmp_path)
    assert cmp.ok, cmp.report()
    assert [line.split()[0] for line in cmp.reference_execs] == ["REC", "EOS", "REC", "REC", "EOS"]


def test_su_rns_returning_study_keeps_every_file_where_dcmtk_replaces(studies, tmp_path):
    """Documented difference (README): DCMTK's rename replaces CT000001 of the study's first
    end; spoolscp numbers on past the names in use, so no object is lost."""
    st = studies
    plan = [ScenarioAssociation([st["s1"][0], st["s1"][1], st["s2"][0], st["s1"][2], st["s2"][1]])]
    cmp = run_study_scenario(["-su", "", "-rns", "-xcs", EOS, "-xs"], plan, tmp_path)
    ref = sorted(p.reference.relpath for p in cmp.files.pairs if p.reference)
    cand = sorted(p.candidate.relpath for p in cmp.files.pairs if p.candidate)
    s1 = UID + "1"
    assert [r for r in ref if r.startswith(s1)] == [f"{s1}/CT000001", f"{s1}/MR000002"]  # one lost
    assert [c for c in cand if c.startswith(s1)] == [f"{s1}/CT000001", f"{s1}/CT000003", f"{s1}/MR000002"]
    assert len(exec_log_lines(cmp.files.candidate.server)) == 3


def test_ignore_runs_xcr_with_p_and_f_literal_like_dcmtk(studies, tmp_path):
    """--ignore (spec §2.8): nothing is written, -xcr still runs, #p and #f stay literal."""
    plan = interleaved(studies, returning=True)
    cmp = run_study_scenario(["--ignore", "-ss", "PRE", "-xcr", 'echo "REC #p #f #a" >> exec.log', "-xs"],
                             plan, tmp_path)
    assert cmp.ok, cmp.report()
    assert cmp.reference_execs == ["REC #p #f STORESCU"] * 3 + ["REC #p #f OTHER-SCU"] * 4
    assert cmp.files.pairs == []


def test_no_reception_command_for_a_refused_object_where_dcmtk_runs_a_stale_one(studies, tmp_path):
    """Documented difference (README): an object without a Study UID gets 0xC000 in sort mode
    on both sides; DCMTK still runs -xcr with the previous object's #p/#f, spoolscp does not."""
    ds = pydicom.dcmread(studies["s3"][0].path)
    del ds.StudyInstanceUID
    ds.save_as(tmp_path / "no-study.dcm", enforce_file_format=True)
    (no_study,) = part10_inputs([tmp_path / "no-study.dcm"])
    plan = [ScenarioAssociation([studies["s1"][0], no_study, studies["s1"][1]])]
    cmp = run_study_scenario(["-ss", "PRE", "-xcr", REC, "-xs"], plan, tmp_path / "run")
    assert [r.reference_status for r in cmp.files.inputs] == ["0x0000", "0xC000", "0x0000"]
    assert cmp.files.ok, cmp.files.report()
    first, stale, second = cmp.reference_execs
    assert stale == first and first != second  # the refused object repeated the first's #p #f
    assert cmp.candidate_execs == [first, second]


def test_ss_prefix_into_a_missing_folder_is_refused_like_dcmtk(studies, tmp_path):
    """-ss a/b uses the prefix raw: without <od>/a the study folder cannot be made, 0xC000.

    DCMTK then keeps the failed folder as the open study: the next object of the study gets
    0xA700 and both run -xcr with a file that was never written. spoolscp refuses every
    object of the study alike and runs no command (README: not stored, no command)."""
    cmp = run_study_scenario(["-ss", "a/b", "-xcr", REC], [ScenarioAssociation(studies["s2"])], tmp_path)
    assert [r.reference_status for r in cmp.files.inputs] == ["0xC000", "0xA700"]
    assert [r.candidate_status for r in cmp.files.inputs] == ["0xC000", "0xC000"]
    assert cmp.files.pairs == [] and len(cmp.reference_execs) == 2 and cmp.candidate_execs == []
