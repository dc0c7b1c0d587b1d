"""storescp's command line, checked against DCMTK itself.

Invalid command lines run through both ``/usr/bin/storescp`` (Debian's DCMTK 3.6.7) and our
parser; stderr must match once the version banner line is normalised, and so must the exit
code. "Accepted" lines get ``-od <missing dir>`` appended, so DCMTK stops with its output
directory error right after option parsing instead of listening. Where 3.6.9 differs from
3.6.7 (new TLS options, TLS check order), our 3.6.9 behaviour is asserted directly.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from receiver import cmdline
from receiver.options import (
    _PREFER,
    _WRITE_XFER,
    ExitRequest,
    StorescpOptions,
    TlsOptions,
    UsageError,
    arguments_log_lines,
    parse_args,
)

DCMTK = "/usr/bin/storescp"  # never the pynetdicom script of the same name on $PATH
MISSING_DIR = "/nonexistent-spoolscp-test-dir"

# Contents of the files a case can name as {tmp}/<name>.
FILES = {
    # quotes of both kinds, a quote block glued to a word, an empty token, '#', a nested '@'
    "tokens": "--arguments -aet \"A B\" -xcr 'C \"D' -xcs a\"b c\" -fe \"\" -ss # -su @nested\n-pdu\t5\r\n",
    "hash": "# 1\n",
    "nested": "@{tmp}/missing\n",
    "unterminated": '-aet "A B',
    "empty": "",
    "valid": '-aet "MY AE" -od \'out dir\'\n+xs 104\n',
    "lc_no_settings": "# nothing\n\n",
    "lc_no_log4cplus": "x = y\n",
    "lc_no_root": "log4cplus.appender.a = x\n",
    "lc_fatal": "log4cplus.rootLogger = FATAL, console\nlog4cplus.appender.console = log4cplus::ConsoleAppender\n",
    "lc_info": "  log4cplus.rootLogger=INFO, out\r\nlog4cplus.appender.out=log4cplus::ConsoleAppender\n"
               "log4cplus.appender.out.logToStdErr=true\n",
    "assoc.cfg": "[[TransferSyntaxes]]\n[Uncompressed]\nTransferSyntax1 = LittleEndianExplicit\n"
                 "[[PresentationContexts]]\n[Generic]\nPresentationContext1 = VerificationSOPClass\\Uncompressed\n"
                 "[[Profiles]]\n[Default]\nPresentationContexts = Generic\n",
}


@dataclass
class Run:
    """What a command line makes visible."""

    code: int
    stdout: str
    stderr: str


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    """A folder holding FILES, with ``{tmp}`` in their contents resolved."""
    for name, content in FILES.items():
        (tmp_path / name).write_text(content.format(tmp=tmp_path) if "{tmp}" in content else content)
    (tmp_path / "adir").mkdir()
    return tmp_path


def resolve(args: list[str], tmp: Path) -> list[str]:
    """Put the test folder into ``{tmp}`` placeholders."""
    return [arg.replace("{tmp}", str(tmp)) for arg in args]


def run_dcmtk(args: list[str], cwd: Path) -> Run:
    """Run DCMTK's storescp; the timeout kills it should a case ever be valid."""
    proc = subprocess.run([DCMTK, *args], cwd=cwd, capture_output=True, text=True, timeout=10,
                          stdin=subprocess.DEVNULL, check=False)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def run_ours(args: list[str]) -> Run:
    """Our parser, with what a caller would print."""
    try:
        parse_args(args, argv0=DCMTK)
    except UsageError as err:
        return Run(err.exit_code, "", err.render())
    except ExitRequest as req:
        return Run(req.code, req.text, "")
    return Run(0, "", "")


def normalise(text: str) -> str:
    """Both banners read alike once the version is masked."""
    return text.replace("v3.6.7 2022-04-22", "vX").replace("v3.6.9 2024-12-11", "vX")


def error(message: str) -> str:
    """Our full usage error output for ``message``."""
    return f"$dcmtk: storescp v3.6.9 2024-12-11 $\n\nstorescp: DICOM storage (C-STORE) SCP\nerror: {message}\n"


def both_orders(*pairs: tuple[list[str], list[str]]) -> list[list[str]]:
    """Each pair of option lists as ``a b port`` and ``b a port``."""
    return [case for a, b in pairs for case in (a + b + ["11112"], b + a + ["11112"])]


COMPRESSED = [short for short, _, _, compressed in _PREFER if compressed]
TS_PREFERENCES = [short for short, long, _, _ in _PREFER if long != "--prefer-uncompr"]

INVALID = [
    # parsing: unknown options, missing values, parameters
    ["--foo", "104"], ["-x", "1"], ["--", "1"], ["+pb", "1"], ["- 1"],
    ["--help", "--foo"], ["--foo", "--help"],
    ["-xf", "a"], ["-aet"], ["1", "-od"], ["+p", "1"], ["+tls", "k"], ["-pdu"],
    ["-aet", "-v"], ["-v"], ["-d", "-od", "x"],
    ["1", "2"], ["104", "105", "-v"], ["1", "-", "2"],
    ["0"], ["70000"], ["65536"], ["abc"], ["-1"], [""], ["0x10"], ["99999999999999999999"], ["@"],
    # value ranges of every ranged option
    ["-ts", "-2", "1"], ["-ts", "abc", "1"], ["-ts", "-99999999999999999999", "1"],
    ["-ta", "0", "1"], ["-ta", "08", "1"], ["-ta", "0x0", "1"], ["-ta", "x", "1"],
    ["-td", "0", "1"], ["-td", "", "1"],
    ["-pdu", "4095", "1"], ["-pdu", "131073", "1"], ["-pdu", "-5", "1"], ["-pdu", "", "1"],
    ["-pdu", "abc", "1"], ["-pdu", "0x2000", "1"], ["-pdu", "99999999999999999999", "1"], ["-pdu", " ", "1"],
    ["-pdu", "5", "-pdu", "5000", "-pdu", "100", "1"],
    ["--sleep-after", "-1", "1"], ["--sleep-after", "x", "1"], ["--sleep-during", "-1", "1"],
    ["+cl", "10", "1"], ["+cl", "-1", "1"], ["+cl", "", "1"],
    ["+p", "-1", "0", "1"], ["+p", "0", "x", "1"], ["-p", "+p", "8", "-8", "1"],
    ["-ss", "x", "-tos", "-1", "1"], ["-sp", "-tos", "abc", "1"],
    # logging options
    ["-ll", "foo", "1"], ["-ll", "", "1"], ["-ll", "info", "-v", "1"], ["-v", "-ll", "info", "1"],
    ["-q", "-ll", "debug", "1"], ["-lc", "x", "-ll", "info", "1"], ["-lc", "x", "-v", "1"],
    ["-lc", "{tmp}/missing", "1"], ["-lc", "{tmp}/adir", "1"], ["-lc", "", "1"],
    ["-lc", "{tmp}/lc_no_settings", "1"], ["-lc", "{tmp}/lc_no_log4cplus", "1"], ["-lc", "{tmp}/lc_no_root", "1"],
    ["+v", "1"], ["+v", "-q", "1"], ["-ll", "warn", "+v", "1"], ["-v", "-q", "+v", "1"],
    ["-lc", "{tmp}/lc_info", "+v", "-pdu", "1", "1"], ["-lc", "{tmp}/lc_fatal", "-pdu", "1", "1"],
    # quiet mode hides late errors, --arguments is logged before them
    ["-q", "-pdu", "5", "1"], ["-ll", "fatal", "-pdu", "5", "1"], ["-ll", "Off", "+te", "+xa", "1"],
    ["-q", "-v", "-pdu", "5", "1"], ["-q", "1", "2"], ["-q", "0"],
    ["--arguments", "-pdu", "5", "104"], ["-q", "--arguments", "-pdu", "5", "1"],
    ["--arguments", "-aet", "", "-pdu", "1", "1"], ["--arguments", "0"], ["--arguments", "-ll", "foo", "1"],
    # --inetd: stdio is /dev/null before these checks, so only the exit code shows
    ["--inetd", "--fork"], ["--fork", "--inetd"], ["--inetd", "-pdu", "5"], ["-id", "-xcs", "x", "-ss", "y"],
    ["--inetd", "1", "2"],
    # spec §1.4, both orders
    *both_orders(*[(["-xf", "f", "p"], [opt]) for opt in [*TS_PREFERENCES, "-pm"]]),
    *both_orders(*[([xfer], [opt]) for xfer in ("+te", "+tb", "+ti", "+td") for opt in ["+xa", "+B", *COMPRESSED]]),
    *both_orders(*[([opt], ["+B"]) for opt in ("+u", "-u", "+g=", "+g", "-g", "+e", "-e", "-sp")]),
    *both_orders((["-ss", "A"], ["+B"]), (["-su", "A"], ["+B"]), (["+p", "2", "4"], ["-F"]),
                 (["+p", "2", "4"], ["+B"]), (["-tn"], ["+uf"])),
    *both_orders(*[(["+cl", "5"], [xfer]) for xfer in ("+te", "+tb", "+ti")]),
    *both_orders(*[([opt, *value], ["--fork", "-ss", "P"]) for opt, *value in (["-xcs", "cmd"], ["-rns"])]),
    ["-xcs", "cmd", "1"], ["-rns", "1"], ["-tos", "5", "1"], ["-tos", "5", "-ss", "x", "+B", "1"],
    # the first check storescp runs decides the message
    ["-xf", "f", "p", "+xe", "-pm", "1"], ["+te", "+ti", "+xa", "1"], ["+ti", "+te", "+xa", "1"],
    ["-ss", "X", "-su", "Y", "+B", "1"], ["-su", "Y", "-ss", "X", "+B", "1"], ["+t=", "+te", "+xa", "1"],
    ["+B", "-ss", "x", "-pdu", "5", "1"], ["-pdu", "5", "+B", "-ss", "x", "1"], ["+te", "+xa", "+pw", "x", "1"],
    # TLS checks shared by 3.6.7 and 3.6.9
    *[[opt, "1"] for opt in ("+ps", "-pw", "-pem", "-der", "+crv", "+cra", "+ws", "-rc", "-vc", "-ic",
                             "+py", "+px", "+pz", "+pa", "+pn")],
    *[[opt, "x", "1"] for opt in ("+pw", "+cf", "+cd", "+crl", "+dp", "+rs", "+wf", "+cs")],
    ["+tls", "k", "c", "+ws", "1"], ["+tls", "k", "c", "+wf", "f", "1"], ["+tls", "k", "c", "-tls", "+pw", "x", "1"],
    ["+tls", "k", "c", "+cs", "x", "+pz", "1"], ["+tls", "k", "c", "+pz", "+cs", "x", "1"],
    # command files
    ["@{tmp}/tokens", "1"], ["@{tmp}/hash"], ["@{tmp}/nested"], ["@{tmp}/unterminated"], ["@{tmp}/adir", "-v"],
    ["@{tmp}/missing"], ["-v", "@{tmp}/missing", "--foo"], ["--foo", "@{tmp}/missing"], ["-xf", "@{tmp}/missing"],
    ["@{tmp}/valid", "-pdu", "1"], ["@{tmp}/valid", "@{tmp}/valid"],
]

ACCEPTED = [
    ["+B", "-B", "-ss", "X"], ["-ss", "A", "-su", "B", "+B", "-B"], ["+te", "+t=", "+xa"], ["-od", "/tmp"],
    ["-ss", "x", "--fork"], ["-xcr", "c", "--fork"], ["-xs"], ["-fe", ".dcm", "+B", "-F", "-tn", "-xcr", "c"],
    ["+B", "+uc", "-uc", "+cl", "5", "-p"], ["+xd", "+td"], ["+xe", "+te"], ["+xb", "+tb"], ["+xi", "+ti"],
    ["-xf", "{tmp}/assoc.cfg", "Default", "+x="], ["+xs", "+x=", "-xf", "{tmp}/assoc.cfg", "default", "-od", "x"],
    ["-pdu", "010000"], ["-pdu", "5000abc"], ["-pdu", "4096"], ["-pdu", "131072"], ["-ta", "010"],
    ["-ts", "0x10"], ["-ts", "-1"], ["-ts", "99999999999999999999"], ["-td", "1"], ["--sleep-after", "0"],
    ["-ll", "all"], ["-ll", "TRACE"], ["-d", "+v"], ["-ll", "info", "+v"], ["-q", "-v", "+v"],
    ["-aet", ""], ["-pdu", "5", "-pdu", "16384"], ["+p", "-1", "0", "-p"], ["-tn", "+uf", "-uf"],
    ["-ss", "", "-tos", "0", "-xcs", "c", "-rns"], ["+ac"], ["-ac"], ["--single-process"],
    ["--refuse", "--reject", "--ignore", "--abort-after", "--abort-during", "-pm", "-up", "-dhl"],
    ["+tls", "k", "c", "-tls"], ["-tls"], ["@{tmp}/empty", "-v"], ["-lc", "{tmp}/lc_info", "+v"],
]


@pytest.mark.parametrize("args", INVALID, ids=lambda args: " ".join(args) or "(empty)")
def test_invalid_like_dcmtk(args: list[str], tmp: Path) -> None:
    """Same stderr (banner version masked), same exit code, nothing on stdout."""
    args = resolve(args, tmp)
    expected, got = run_dcmtk(args, tmp), run_ours(args)
    assert expected.code == 1, f"not an error for DCMTK: {expected}"
    assert (got.code, got.stdout, normalise(got.stderr)) == (1, "", normalise(expected.stderr))


@pytest.mark.parametrize("args", ACCEPTED, ids=" ".join)
def test_accepted_like_dcmtk(args: list[str], tmp: Path) -> None:
    """DCMTK gets past its option checks (up to the output directory); so do we."""
    args = [*resolve(args, tmp), "-od", MISSING_DIR, "11112"]
    expected = run_dcmtk(args, tmp)
    assert (expected.code, expected.stdout) == (1, "")
    assert expected.stderr.endswith("specified output directory does not exist\n")  # after -d's debug lines
    assert parse_args(args).output_directory == MISSING_DIR


def test_rightmost_output_directory_wins(tmp: Path) -> None:
    """``-od /tmp -od <missing>`` fails in DCMTK: the rightmost -od is the one used."""
    args = ["-od", str(tmp), "-od", MISSING_DIR, "11112"]
    assert run_dcmtk(args, tmp).stderr == "F: specified output directory does not exist\n"
    assert parse_args(args).output_directory == MISSING_DIR
    assert parse_args(["-od", MISSING_DIR, "-od", str(tmp), "11112"]).output_directory == str(tmp)


# How 3.6.9's help differs from 3.6.7's: texts changed (3.6.9 -> 3.6.7, applied in order) ...
HELP_369_TO_367 = (
    ("Main 10 Profile / L5.1 TS", "Main 10 Profile / Level 5.1 TS"),
    ("read keys and certs as", "read keys and certificates as"),
    ("verify peer cert, fail", "verify peer certificate, fail"),
    ("--list-ciphers         list supported", "--list-ciphers         show list of supported"),
    ("Non-downgrading BCP 195 TLS Profile (retired)", "Non-downgrading BCP 195 TLS Profile (default)"),
    ("BCP 195 TLS Profile (retired)", "BCP 195 TLS Profile"),
)
# ... and lines added (TLS profiles, server name indication)
HELP_NEW_IN_369 = {
    "    +ph   --list-profiles        list supported TLS profiles and exit",
    "    +pg   --profile-8996         BCP 195 RFC 8996 TLS Profile (default)",
    "    +pm   --profile-8996-mod     Modified BCP 195 RFC 8996 TLS Profile",
    "  server name indication:",
    "          --no-sni               do not use SNI (default)",
    "          --expect-sni           [s]erver name: string",
    "                                 expect requests for server name s",
}


@pytest.mark.parametrize("args", [[], ["-h"], ["--help"], ["-h", "1", "2"], ["1", "--help", "-v"], ["@{tmp}/empty"]],
                         ids=lambda args: " ".join(args) or "(none)")
def test_help_like_dcmtk(args: list[str], tmp: Path) -> None:
    """Help on stdout, exit 0; DCMTK's layout, with 3.6.9's texts and spoolscp's own group."""
    expected, got = run_dcmtk(resolve(args, tmp), tmp), run_ours(resolve(args, tmp))
    assert (expected.code, expected.stderr, got.code, got.stderr) == (0, "", 0, "")
    ours, own_group = normalise(got.stdout).split("spoolscp options (not in DCMTK):\n")
    assert own_group.startswith("        --config               [f]ilename: string\n")
    for new, old in HELP_369_TO_367:
        ours = ours.replace(new, old)
    ours = "\n".join(line for line in ours.split("\n") if line not in HELP_NEW_IN_369)
    assert ours + "\n" == normalise(expected.stdout)


@pytest.mark.parametrize("args", [["--version"], ["--version", "1", "2"], ["1", "--version", "--help"]])
def test_version_and_help_precedence_like_dcmtk(args: list[str], tmp: Path) -> None:
    """--version prints the banner, host information and libraries; --help wins over it."""
    expected, got = run_dcmtk(args, tmp), run_ours(args)
    assert (got.code, got.stderr) == (expected.code, expected.stderr) == (0, "")
    assert normalise(got.stdout).split("\n")[:4] == normalise(expected.stdout).split("\n")[:4]
    if "--help" not in args:
        assert "\nHost type: " in got.stdout
        assert got.stdout.endswith("\n") and "\n\nExternal libraries used:\n- ZLIB, Version " in got.stdout


def test_list_ciphers_like_dcmtk(tmp: Path) -> None:
    """+cc: header with host information, then the list, on stdout, exit 0."""
    expected, got = run_dcmtk(["+cc", "1", "2"], tmp), run_ours(["+cc", "1", "2"])
    assert (got.code, got.stderr) == (expected.code, expected.stderr) == (0, "")
    for text in (expected.stdout, got.stdout):
        assert "\nBuild options: " in text and "\n\nSupported TLS ciphersuites are:\n  " in text


def test_list_profiles_369() -> None:
    """+ph is new in 3.6.9 (3.6.7: unknown option): the profiles, the default one first."""
    with pytest.raises(ExitRequest) as exc:
        parse_args(["+ph"])
    assert exc.value.code == 0
    assert "\nCryptographic algorithms implemented by: OpenSSL " in exc.value.text
    assert exc.value.text.endswith(
        "\nSupported TLS Secure Transport Connection Profiles are:\n"
        "- BCP 195 RFC 8996 TLS Profile (default)\n"
        "- Modified BCP 195 RFC 8996 TLS Profile\n"
        "- Non-downgrading BCP 195 TLS Profile (retired)\n"
        "- BCP 195 TLS Profile (retired)\n"
        "- Extended BCP 195 TLS Profile (retired)\n"
        "- AES TLS Secure Transport Connection Profile (retired)\n"
        "- Authenticated unencrypted communication (retired)\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # 3.6.9 TLS options and check order, which Debian's 3.6.7 does not have
        (["+pg", "1"], "--profile-8996 only allowed with --enable-tls"),
        (["+pm", "1"], "--profile-8996-mod only allowed with --enable-tls"),
        (["--expect-sni", "x", "--no-sni", "1"], "--no-sni not allowed with --expect-sni"),
        (["--no-sni", "--expect-sni", "x", "1"], "--no-sni not allowed with --expect-sni"),
        (["1", "--expect-sni"], "Missing value for option --expect-sni"),
        (["+crv", "+pw", "x", "1"], "--use-passwd only allowed with --enable-tls"),
        (["+tls", "k", "c", "+pm", "+cs", "x", "+pz", "1"], "--cipher not allowed with --profile-bcp195-ex"),
        # spoolscp's own options
        (["--workers", "0", "1"], "Invalid value for option --workers (underflow: 0)"),
        (["--workers", "x", "1"], "Invalid value for option --workers (x)"),
        (["--config"], "Missing value for option --config"),
        (["--state-dir", "d", "-pdu", "1", "1"], "Invalid value for option --max-pdu (underflow: 1)"),
    ],
)
def test_invalid_369_and_spoolscp(args: list[str], message: str) -> None:
    """Errors of options Debian's DCMTK cannot check for us."""
    assert run_ours(args) == Run(1, "", error(message))


def test_usage_error_raised_by_a_caller_renders_like_dcmtk() -> None:
    """Callers may refuse options themselves and still print storescp's format."""
    err = UsageError("--fork not supported yet")
    assert (err.exit_code, err.render()) == (1, error("--fork not supported yet"))


def test_defaults() -> None:
    """Just a port: DCMTK's defaults, nothing given."""
    assert parse_args(["104"]) == StorescpOptions(port=104)


@pytest.mark.parametrize(("short", "long", "value"), [
    (short, long, long.removeprefix("--prefer-").removeprefix("--")) for short, long, _, _ in _PREFER
])
def test_every_prefer_option(short: str, long: str, value: str) -> None:
    """Both spellings of every transfer syntax preference; only the winner is given."""
    for spelling in (short, long):
        opts = parse_args(["+xa", "+xs", spelling, "104"])
        assert (opts.prefer, opts.given) == (value, {long})


def fields(opts: StorescpOptions, names: dict[str, object]) -> dict[str, object]:
    """The named fields of ``opts``."""
    return {name: getattr(opts, name) for name in names}


OUTPUT_CASES = [
    (["-od", "out"], {"output_directory": "out"}),
    (["+B"], {"bit_preserving": True}), (["+B", "-B"], {"bit_preserving": False}),
    (["-F"], {"write_file": False}), (["-F", "+F"], {"write_file": True}),
    *[([short], {"write_xfer": long.removeprefix("--write-xfer-")}) for short, long, _ in _WRITE_XFER],
    (["-u"], {"enable_new_vr": False}), (["-u", "+u"], {"enable_new_vr": True}),
    (["+g"], {"group_length": "create"}), (["-g"], {"group_length": "remove"}),
    (["-g", "+g="], {"group_length": "recalc"}),
    (["-e"], {"length_explicit": False}), (["-e", "+e"], {"length_explicit": True}),
    (["+p", "8", "2"], {"padding": (8, 2)}), (["+p", "8", "2", "-p"], {"padding": None}),
    (["+uc"], {"convert_un": True}), (["+uc", "-uc"], {"convert_un": False}),
    (["+cl", "0"], {"compression_level": 0}), (["+td", "+cl", "9"], {"compression_level": 9, "write_xfer": "deflated"}),
    (["-ss", "P"], {"sort": "conc", "sort_prefix": "P"}), (["-su", ""], {"sort": "uid", "sort_prefix": ""}),
    (["-su", "P", "-sp"], {"sort": "patient", "sort_prefix": ""}),
    (["-ss", "A", "-su", "B"], {"sort": "uid", "sort_prefix": "B"}),
    (["+uf"], {"unique_filenames": True}), (["+uf", "-uf"], {"unique_filenames": False}),
    (["-tn"], {"timenames": True}), (["-fe", ".dcm"], {"filename_extension": ".dcm"}),
    (["-xcr", "echo #f"], {"exec_on_reception": "echo #f"}),
    (["-ss", "x", "-xcs", "c", "-rns", "-tos", "5", "-xs"],
     {"exec_on_eostudy": "c", "rename_on_eostudy": True, "eostudy_timeout": 5, "exec_sync": True}),
]


@pytest.mark.parametrize(("args", "expected"), OUTPUT_CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_output_and_event_options(args: list[str], expected: dict[str, object]) -> None:
    """Every output and event option sets its field."""
    assert fields(parse_args([*args, "104"]), expected) == expected


NETWORK_CASES = [
    (["-ts", "-1", "-ta", "1", "-td", "5"], {"socket_timeout": -1, "acse_timeout": 1, "dimse_timeout": 5}),
    (["-ts", "0x10", "-ta", "010"], {"socket_timeout": 16, "acse_timeout": 8}),  # %li reads C prefixes
    (["-pdu", "010000"], {"max_pdu": 10000}),  # %lu is always decimal
    (["-pdu", " 5000abc"], {"max_pdu": 5000}),
    (["-aet", "ME", "-aet", ""], {"aetitle": ""}),
    (["--sleep-after", "3", "--sleep-during", "4"], {"sleep_after": 3, "sleep_during": 4}),
    (["-dhl", "--refuse", "--reject", "--ignore", "--abort-after", "--abort-during", "-pm", "-up"],
     {"disable_host_lookup": True, "refuse": True, "reject": True, "ignore": True, "abort_after": True,
      "abort_during": True, "promiscuous": True, "uid_padding": True}),
    (["+ac"], {"access_control": True}), (["+ac", "-ac"], {"access_control": False}),
    (["-xf", "f.cfg", "Default", "+x="], {"config_file": ("f.cfg", "Default"), "prefer": "uncompr"}),
    (["--fork"], {"fork": True}), (["--fork", "--single-process"], {"fork": False}),
    (["-q"], {"log_level": "fatal"}), (["-v"], {"log_level": "info"}), (["-d"], {"log_level": "debug"}),
    (["-q", "-v"], {"log_level": "info"}), (["-v", "-q"], {"log_level": "fatal"}),
    (["-ll", "all"], {"log_level": "trace"}), (["-ll", "Off"], {"log_level": "off"}),
    (["-d", "+v", "--arguments"], {"verbose_pc": True, "arguments": True}),
    (["--config", "p.toml", "--state-dir", "st", "--workers", "3"],
     {"config": "p.toml", "state_dir": "st", "workers": 3}),
]


@pytest.mark.parametrize(("args", "expected"), NETWORK_CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_general_and_network_options(args: list[str], expected: dict[str, object]) -> None:
    """General, network and spoolscp options set their fields."""
    assert fields(parse_args([*args, "104"]), expected) == expected


def test_log_config_level(tmp: Path) -> None:
    """With -lc the log level comes from the file's root logger."""
    opts = parse_args(["-lc", str(tmp / "lc_info"), "104"])
    assert (opts.log_config, opts.log_level) == (str(tmp / "lc_info"), "info")


@pytest.mark.parametrize("args", [["--inetd"], ["-id", "abc"], ["--inetd", "--single-process", "70000"]])
def test_inetd_ignores_the_port(args: list[str]) -> None:
    """In inetd mode the port parameter is optional and never checked."""
    opts = parse_args(args)
    assert (opts.inetd, opts.fork, opts.port) == (True, False, None)


def test_given_holds_winners_only() -> None:
    """``given`` lists every option in force, by long name, losers of a group excluded."""
    opts = parse_args(["-v", "-q", "+xs", "-ss", "x", "-su", "y", "+B", "-B", "--workers", "2", "-aet", "A", "104"])
    assert opts.given == {"--quiet", "--prefer-lossless", "--sort-on-study-uid", "--normal", "--workers", "--aetitle"}


def test_command_file(tmp: Path) -> None:
    """@file tokens are parsed like command line arguments."""
    opts = parse_args([f"@{tmp / 'valid'}"])
    assert (opts.aetitle, opts.output_directory, opts.prefer, opts.port) == ("MY AE", "out dir", "lossless", 104)


def test_tls_options() -> None:
    """TLS values are kept; accumulating options keep every occurrence in order."""
    opts = parse_args(["+tls", "k.pem", "c.pem", "+pw", "secret", "-der", "+cf", "a", "+cf", "b", "+cd", "d",
                       "+crl", "r", "+cra", "+px", "+cs", "X", "+cs", "Y", "+dp", "dh", "--expect-sni", "host",
                       "+rs", "seed", "+ws", "-vc", "104"])
    assert opts.tls == TlsOptions(
        enabled=True, private_key_file="k.pem", certificate_file="c.pem", password="secret", key_format="der",
        cert_files=["a", "b"], cert_dirs=["d"], crl_files=["r"], crl_mode="all", profile="bcp195",
        ciphers=["X", "Y"], dhparam="dh", expect_sni="host", seed="seed", write_seed_file="seed", peer_cert="verify",
    )
    assert parse_args(["+tls", "k", "c", "-pw", "+crv", "+cra", "104"]).tls.crl_mode == "all"  # 3.6.9: no conflict
    assert parse_args(["+tls", "k", "c", "+pw", "x", "+ps", "104"]).tls.password is None


def test_arguments_log_lines(tmp: Path) -> None:
    """Expanded, long spellings, empty arguments counted but not shown."""
    assert arguments_log_lines("spoolscp", ["-v", "-aet", "", f"@{tmp / 'valid'}"]) == [
        "I: calling 'spoolscp' with 9 arguments: '--verbose' '--aetitle' '--aetitle' 'MY AE' "
        "'--output-directory' 'out dir' '--prefer-lossless' '104' ",
        "I: ",
    ]


@pytest.mark.parametrize(("text", "signed", "value"), [
    ("12", True, 12), ("  -0x1F", True, -31), ("017", True, 15), ("08", True, 0), ("0x", True, 0),
    ("99999999999999999999", True, 2**63 - 1), ("-99999999999999999999", True, -(2**63)), ("+5z", True, 5),
    ("0x10", False, 0), ("017", False, 17), ("-1", False, 2**64 - 1), ("99999999999999999999", False, 2**64 - 1),
    ("", True, None), ("-", False, None), ("x1", True, None), (" \t", False, None),
])
def test_scan_long(text: str, signed: bool, value: int | None) -> None:
    """glibc's sscanf %li / %lu, which DCMTK relies on."""
    assert cmdline.scan_long(text, signed=signed) == value
