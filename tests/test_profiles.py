"""``-xf FILE PROFILE`` file handling against DCMTK storescp (spec §1.5 step 3, §11).

Each hostile or quirky file is given to ``/usr/bin/storescp`` and to spoolscp's profile
loader; the fatal message must be DCMTK's, word for word. A quirky but valid file is paired
with an unknown profile name, so both programs stop with "unknown configuration profile
name" only if they parsed everything before it the same way. A few files also go through
the real ``spoolscp receiver`` process: exit code 1, one ``F:`` line, no traceback.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from receiver import profiles
from sidebyside import DCMTK_STORESCP, SPOOLSCP, dcmtk_env, free_port, write_spoolscp_config

GOOD_TAIL = (
    "[[PresentationContexts]]\n[P]\nPresentationContext1 = CTImageStorage\\U\n"
    "[[Profiles]]\n[X]\nPresentationContexts = P\n"
)
TS = "[[TransferSyntaxes]]\n[U]\nTransferSyntax1 = LittleEndianExplicit\n"
GOOD = TS + GOOD_TAIL

# name -> (file content, profile name)
CASES: dict[str, tuple[bytes | str | None, str]] = {
    "missing file": (None, "X"),
    "empty file": ("", "X"),
    "a folder": ("<dir>", "X"),
    "no presentation contexts": (TS, "X"),
    "no profiles": (TS + "[[PresentationContexts]]\n[P]\nPresentationContext1 = CTImageStorage\\U\n", "X"),
    "unknown ts name": (GOOD.replace("LittleEndianExplicit", "FooBar"), "X"),
    "dicom keyword is not a dcmtk name": (GOOD.replace("LittleEndianExplicit", "ExplicitVRLittleEndian"), "X"),
    "trailing blanks in a value": (GOOD.replace("LittleEndianExplicit", "LittleEndianExplicit   "), "X"),
    "empty ts value": (GOOD.replace("LittleEndianExplicit", ""), "X"),
    "= before a numeric uid": (GOOD.replace("LittleEndianExplicit", "=1.2.840.10008.1.2"), "X"),
    "= before a name": (GOOD.replace("LittleEndianExplicit", "=LocalEndianExplicit"), "BOGUS"),
    "missing backslash": (GOOD.replace("CTImageStorage\\U", "CTImageStorage U"), "X"),
    "undefined ts key": (GOOD.replace("CTImageStorage\\U", "CTImageStorage\\Nope"), "X"),
    "empty ts key": (GOOD.replace("CTImageStorage\\U", "CTImageStorage\\"), "X"),
    "empty abstract syntax": (GOOD.replace("CTImageStorage\\U", "\\U"), "X"),
    "bad abstract syntax": (GOOD.replace("CTImageStorage", "NoSuchStorage"), "X"),
    "undefined context list": (GOOD.replace("PresentationContexts = P", "PresentationContexts = Q"), "X"),
    "profile refers to itself": (GOOD.replace("PresentationContexts = P", "PresentationContexts = X"), "X"),
    "profile without contexts": (GOOD.replace("PresentationContexts = P", "Roles = P"), "X"),
    "two profiles": (GOOD + "[X]\nPresentationContexts = P\n", "X"),
    "duplicate abstract syntax": (GOOD.replace("\\U\n", "\\U\nPresentationContext2 = 1.2.840.10008.5.1.4.1.1.2\\U\n"), "X"),
    "unknown profile": (GOOD, "no such profile"),
    "unknown keys and sections are ignored": (
        "[[Other]]\n[Thing]\nKey = value\n" + TS + "Foo = Bar\nTransferSyntax3 = junk\n" + GOOD_TAIL
        + "[Y]\nBlah = 1\n", "BOGUS"),
    "numbering gap ends the list": (GOOD.replace("\\U\n", "\\U\nPresentationContext3 = Junk\\U\n"), "BOGUS"),
    "role key unknown": (GOOD + "[[SCPSCURoleSelection]]\n[R]\nRole1 = CTImageStorage\\Master\n", "X"),
    "role key with blank": (GOOD + "[[SCPSCURoleSelection]]\n[R]\nRole1 = CTImageStorage\\SCP \n", "X"),
    "role not in context list": (
        GOOD.replace("PresentationContexts = P", "PresentationContexts = P\nSCPSCURoleSelection = R")
        + "[[SCPSCURoleSelection]]\n[R]\nRole1 = MRImageStorage\\SCP\n", "X"),
    "role twice": (GOOD + "[[SCPSCURoleSelection]]\n[R]\nRole1 = CTImageStorage\\SCP\n"
                   "Role2 = 1.2.840.10008.5.1.4.1.1.2\\SCU\n", "X"),
    "undefined role list": (GOOD.replace("PresentationContexts = P", "PresentationContexts = P\nSCPSCURoleSelection = R"), "X"),
    "extneg bad hex": (GOOD + "[[ExtendedNegotiation]]\n[E]\nExtendedNegotiation1 = CTImageStorage\\0g\n", "X"),
    "extneg odd hex": (GOOD + "[[ExtendedNegotiation]]\n[E]\nExtendedNegotiation1 = CTImageStorage\\012\n", "X"),
    "extneg empty": (GOOD + "[[ExtendedNegotiation]]\n[E]\nExtendedNegotiation1 = CTImageStorage\\\n", "X"),
    "extneg too long": (GOOD + "[[ExtendedNegotiation]]\n[E]\nExtendedNegotiation1 = CTImageStorage\\"
                        + "00" * 1024 + "\n", "X"),
    "extneg not in context list": (
        GOOD.replace("PresentationContexts = P", "PresentationContexts = P\nExtendedNegotiation = E")
        + "[[ExtendedNegotiation]]\n[E]\nExtendedNegotiation1 = MRImageStorage\\0102\n", "X"),
    "comments, continuations, CRLF, NUL, case": (
        "# comment\r\n[[ transfer syntaxes ]]\r\n  # not a comment\r\n[u]\r\ntransfersyntax1 =\r\n"
        "  LittleEndianExplicit\r\n#x\r\n[[PresentationContexts]]\n[P]\nPresentation\nContext1 = CTImageStorage\\ u\0\n"
        "[[Profiles]]\n[[[X]]]\n[X]\nPresentationContexts = p\n", "BOGUS"),
    "entries before any section": ("Stray = 1\n[Lonely]\nTransferSyntax1 = junk\n" + GOOD, "BOGUS"),
    "binary garbage": (bytes(range(256)) * 64, "X"),
    "huge file (2 MB, one key)": ("junk line without equals\n" * 80_000, "X"),
    "huge file (many entries)": (TS + "".join(f"Key{n} = v\n" for n in range(100_000)) + GOOD_TAIL, "BOGUS"),
}


def _materialise(tmp_path: Path, name: str, content: bytes | str | None) -> Path:
    path = tmp_path / (name.replace(" ", "_").replace(",", "") + ".cfg")
    if content == "<dir>":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content.encode("latin-1") if isinstance(content, str) else content)
    return path


def _dcmtk_fatal(path: Path, profile: str) -> tuple[int, str]:
    """storescp's exit code and stderr for ``-xf path profile`` (it exits before listening)."""
    result = subprocess.run([DCMTK_STORESCP, "-xf", str(path), profile, str(free_port())],
                            capture_output=True, env=dcmtk_env(), timeout=60, check=False)
    return result.returncode, result.stderr.decode("latin-1")


def _spoolscp_fatal(path: Path, profile: str) -> str:
    try:
        profiles.load(str(path), profile)
    except profiles.ProfileError as exc:
        return f"F: {exc}\n"
    return "(loaded)"


@pytest.mark.parametrize("name", CASES)
def test_profile_errors_match_dcmtk(name: str, tmp_path: Path) -> None:
    content, profile = CASES[name]
    path = _materialise(tmp_path, name, content)
    code, dcmtk = _dcmtk_fatal(path, profile)
    print(f"{name}: DCMTK exit {code}: {dcmtk.strip()[:200]}")
    assert code == 1
    assert _spoolscp_fatal(path, profile) == dcmtk


@pytest.mark.parametrize("name", ["missing file", "binary garbage", "profile refers to itself"])
def test_receiver_exits_like_dcmtk(name: str, tmp_path: Path) -> None:
    """The real receiver: DCMTK's F: line on stderr, exit code 1, nothing else."""
    content, profile = CASES[name]
    path = _materialise(tmp_path, name, content)
    config = write_spoolscp_config(tmp_path)
    (tmp_path / "out").mkdir()
    result = subprocess.run([SPOOLSCP, "receiver", "--config", str(config), "-xf", str(path), profile,
                             "-od", str(tmp_path / "out"), str(free_port())],
                            capture_output=True, timeout=60, check=False)
    assert (result.returncode, result.stderr.decode("latin-1")) == _dcmtk_fatal(path, profile)


@pytest.mark.parametrize("profile", ["Default", "AllDICOM", " all dicom "])
def test_debian_storescp_cfg_loads(profile: str) -> None:
    """DCMTK's own example file: 128 contexts per profile, Verification with Uncompressed."""
    loaded = profiles.load("/etc/dcmtk/storescp.cfg", profile)
    assert len(loaded.contexts) == 128
    assert loaded.syntaxes_for("1.2.840.10008.1.1") == ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
                                                        "1.2.840.10008.1.2")


def test_parser_quirks() -> None:
    """OFConfigFile details: continuation joins with LF, keys span lines, first key wins."""
    tree = profiles.parse(b"[[A b]]\n[s!x]\nKey = one\n  two\n\n three\nKe\ny = 2\nkey = 3\n[S X]\nk=\n")
    (name, sections), = tree.supersections
    assert name == "AB" and [s.name for s in sections] == ["SX", "SX"]
    assert sections[0].entries == [("KEY", "one\ntwo\nthree"), ("KEY", "2"), ("KEY", "3")]
    assert sections[0].get("KEY") == "one\ntwo\nthree" and sections[1].get("K") == ""
