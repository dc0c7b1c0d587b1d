"""The storescp command line: DCMTK 3.6.9 option spellings resolved into one typed object.

Every field below mirrors one storescp option (spec §1.2). The parser fills it following
DCMTK's OFCommandLine rules (rightmost option wins, ``@file`` expansion, the §1.4 checks).

>>> opts = parse_args(["-od", "out", "+xa", "11112"])
>>> opts.port, opts.output_directory, opts.prefer
(11112, 'out', 'accept-all')

The checks run in the order storescp 3.6.9's ``main()`` runs them, because that order decides
which message a command line with several problems gets (and whether it is visible at all:
after ``--inetd`` nothing is, after ``-q`` only the ``--arguments`` lines are).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from receiver import cmdline
from receiver.cmdline import CommandLine, ConsoleApp, ExitRequest, Group, Occurrence, Option, Param, ParsedLine

__all__ = ["ExitRequest", "StorescpOptions", "TlsOptions", "UsageError", "arguments_log_lines", "parse_args"]

RCSID = "$dcmtk: storescp v3.6.9 2024-12-11 $"
NAME = "storescp"  # DCMTK's fixed application name, also in spoolscp's banner (see cmdline)
DESCRIPTION = "DICOM storage (C-STORE) SCP"
_LONGCOL, _SHORTCOL = 21, 4  # storescp.cc's column widths

# --prefer-* group: (short, long, help, compressed). "compressed" ones conflict with +te/+tb/+ti/+td.
_PREFER = (
    ("+x=", "--prefer-uncompr", "prefer explicit VR local byte order (default)", False),
    ("+xe", "--prefer-little", "prefer explicit VR little endian TS", False),
    ("+xb", "--prefer-big", "prefer explicit VR big endian TS", False),
    ("+xs", "--prefer-lossless", "prefer default JPEG lossless TS", True),
    ("+xy", "--prefer-jpeg8", "prefer default JPEG lossy TS for 8 bit data", True),
    ("+xx", "--prefer-jpeg12", "prefer default JPEG lossy TS for 12 bit data", True),
    ("+xv", "--prefer-j2k-lossless", "prefer JPEG 2000 lossless TS", True),
    ("+xw", "--prefer-j2k-lossy", "prefer JPEG 2000 lossy TS", True),
    ("+xt", "--prefer-jls-lossless", "prefer JPEG-LS lossless TS", True),
    ("+xu", "--prefer-jls-lossy", "prefer JPEG-LS lossy TS", True),
    ("+xm", "--prefer-mpeg2", "prefer MPEG2 Main Profile @ Main Level TS", True),
    ("+xh", "--prefer-mpeg2-high", "prefer MPEG2 Main Profile @ High Level TS", True),
    ("+xn", "--prefer-mpeg4", "prefer MPEG4 AVC/H.264 HP / Level 4.1 TS", True),
    ("+xl", "--prefer-mpeg4-bd", "prefer MPEG4 AVC/H.264 BD-compatible TS", True),
    ("+x2", "--prefer-mpeg4-2-2d", "prefer MPEG4 AVC/H.264 HP / Level 4.2 TS (2D)", True),
    ("+x3", "--prefer-mpeg4-2-3d", "prefer MPEG4 AVC/H.264 HP / Level 4.2 TS (3D)", True),
    ("+xo", "--prefer-mpeg4-2-st", "prefer MPEG4 AVC/H.264 Stereo HP / Level 4.2 TS", True),
    ("+x4", "--prefer-hevc", "prefer HEVC/H.265 Main Profile / Level 5.1 TS", True),
    ("+x5", "--prefer-hevc10", "prefer HEVC/H.265 Main 10 Profile / L5.1 TS", True),
    ("+xr", "--prefer-rle", "prefer RLE lossless TS", True),
    ("+xd", "--prefer-deflated", "prefer deflated expl. VR little endian TS", False),
    ("+xi", "--implicit", "accept implicit VR little endian TS only", False),
    ("+xa", "--accept-all", "accept all supported transfer syntaxes", False),
)
_COMPRESSED = {long for _, long, _, compressed in _PREFER if compressed}

# --write-xfer-* group: (short, long, help)
_WRITE_XFER = (
    ("+t=", "--write-xfer-same", "write with same TS as input (default)"),
    ("+te", "--write-xfer-little", "write with explicit VR little endian TS"),
    ("+tb", "--write-xfer-big", "write with explicit VR big endian TS"),
    ("+ti", "--write-xfer-implicit", "write with implicit VR little endian TS"),
    ("+td", "--write-xfer-deflated", "write with deflated expl. VR little endian TS"),
)

# TLS security profiles of an OpenSSL 3 build (no 3DES, so no +pb): (short, long, help)
_TLS_PROFILES = (
    ("+pg", "--profile-8996", "BCP 195 RFC 8996 TLS Profile (default)"),
    ("+pm", "--profile-8996-mod", "Modified BCP 195 RFC 8996 TLS Profile"),
    ("+py", "--profile-bcp195-nd", "Non-downgrading BCP 195 TLS Profile (retired)"),
    ("+px", "--profile-bcp195", "BCP 195 TLS Profile (retired)"),
    ("+pz", "--profile-bcp195-ex", "Extended BCP 195 TLS Profile (retired)"),
    ("+pa", "--profile-aes", "AES TLS Secure Transport Connection Profile\n(retired)"),
    ("+pn", "--profile-null", "Authenticated unencrypted communication\n(retired, was used in IHE ATNA)"),
)
# What --list-profiles prints for each profile, in the order of the help text.
_PROFILE_NAMES = (
    "BCP 195 RFC 8996 TLS Profile (default)",
    "Modified BCP 195 RFC 8996 TLS Profile",
    "Non-downgrading BCP 195 TLS Profile (retired)",
    "BCP 195 TLS Profile (retired)",
    "Extended BCP 195 TLS Profile (retired)",
    "AES TLS Secure Transport Connection Profile (retired)",
    "Authenticated unencrypted communication (retired)",
)

_LOG_LEVELS = {  # log4cplus level names (upper case) -> our level names
    "OFF": "off", "FATAL": "fatal", "ERROR": "error", "WARN": "warn",
    "INFO": "info", "DEBUG": "debug", "TRACE": "trace", "ALL": "trace",
}
_INFO_ENABLED = {"info", "debug", "trace"}
_SORT_NEEDED = "--sort-conc-studies, --sort-on-study-uid or --sort-on-patientname"


def _group(title: str, wide_short: bool = False) -> Group:
    """A top-level help heading; some storescp groups reserve a wider short column."""
    return Group(title, columns=(_LONGCOL, _SHORTCOL + 2) if wide_short else None)


def _sub(title: str) -> Group:
    """A help sub-heading."""
    return Group(title, sub=True)


COMMAND_LINE = CommandLine(
    params=(Param("port", "tcp/ip port number to listen on"),),
    option_columns=(_LONGCOL, _SHORTCOL),
    param_column=_LONGCOL + _SHORTCOL + 4,
    entries=(
        _group("general options:", wide_short=True),
        Option("--help", "-h", help="print this help text and exit", exclusive=True),
        Option("--version", help="print version information and exit", exclusive=True),
        Option("--arguments", help="print expanded command line arguments"),
        Option("--quiet", "-q", help="quiet mode, print no warnings and errors"),
        Option("--verbose", "-v", help="verbose mode, print processing details"),
        Option("--debug", "-d", help="debug mode, print debug information"),
        Option("--log-level", "-ll", 1, "[l]evel: string constant",
               "(fatal, error, warn, info, debug, trace)\nuse level l for the logger"),
        Option("--log-config", "-lc", 1, "[f]ilename: string", "use config file f for the logger"),
        Option("--verbose-pc", "+v", help="show presentation contexts in verbose mode"),
        _group("multi-process options:", wide_short=True),
        Option("--single-process", help="single process mode (default)"),
        Option("--fork", help="fork child process for each association"),
        _group("network options:"),
        _sub("association negotiation profile from configuration file:"),
        Option("--config-file", "-xf", 2, "[f]ilename, [p]rofile: string", "use profile p from config file f"),
        _sub("preferred network transfer syntaxes (not with --config-file):"),
        *(Option(long, short, help=text) for short, long, text, _ in _PREFER),
        _sub("network host access control (tcp wrapper):"),
        Option("--access-full", "-ac", help="accept connections from any host (default)"),
        Option("--access-control", "+ac", help="enforce host access control rules"),
        _sub("other network options:"),
        Option("--inetd", "-id", help="run from inetd super server (not with --fork)"),
        Option("--socket-timeout", "-ts", 1, "[s]econds: integer (default: 60)",
               "timeout for network socket (0 for none)"),
        Option("--acse-timeout", "-ta", 1, "[s]econds: integer (default: 30)", "timeout for ACSE messages"),
        Option("--dimse-timeout", "-td", 1, "[s]econds: integer (default: unlimited)",
               "timeout for DIMSE messages"),
        Option("--aetitle", "-aet", 1, "[a]etitle: string", "set my AE title (default: STORESCP)"),
        Option("--max-pdu", "-pdu", 1, "[n]umber of bytes: integer (4096..131072)",
               "set max receive pdu to n bytes (default: 16384)"),
        Option("--disable-host-lookup", "-dhl", help="disable hostname lookup"),
        Option("--refuse", help="refuse association"),
        Option("--reject", help="reject association if no implement. class UID"),
        Option("--ignore", help="ignore store data, receive but do not store"),
        Option("--sleep-after", "", 1, "[s]econds: integer", "sleep s seconds after store (default: 0)"),
        Option("--sleep-during", "", 1, "[s]econds: integer", "sleep s seconds during store (default: 0)"),
        Option("--abort-after", help="abort association after receipt of C-STORE-RQ\n(but before sending response)"),
        Option("--abort-during", help="abort association during receipt of C-STORE-RQ"),
        Option("--promiscuous", "-pm", help="promiscuous mode, accept unknown SOP classes\n(not with --config-file)"),
        Option("--uid-padding", "-up", help="silently correct space-padded UIDs"),
        _group("transport layer security (TLS) options:"),
        _sub("transport protocol stack:"),
        Option("--disable-tls", "-tls", help="use normal TCP/IP connection (default)"),
        Option("--enable-tls", "+tls", 2, "[p]rivate key file, [c]ertificate file: string",
               "use authenticated secure TLS connection"),
        _sub("private key password (only with --enable-tls):"),
        Option("--std-passwd", "+ps", help="prompt user to type password on stdin (default)"),
        Option("--use-passwd", "+pw", 1, "[p]assword: string ", "use specified password"),
        Option("--null-passwd", "-pw", help="use empty string as password"),
        _sub("key and certificate file format:"),
        Option("--pem-keys", "-pem", help="read keys and certs as PEM file (default)"),
        Option("--der-keys", "-der", help="read keys and certificates as DER file"),
        _sub("certification authority:"),
        Option("--add-cert-file", "+cf", 1, "[f]ilename: string", "add certificate file to list of certificates"),
        Option("--add-cert-dir", "+cd", 1, "[d]irectory: string", "add certificates in d to list of certificates"),
        Option("--add-crl-file", "+crl", 1, "[f]ilename: string",
               "add certificate revocation list file\n(implies --enable-crl-vfy)"),
        Option("--enable-crl-vfy", "+crv", help="enable leaf CRL verification"),
        Option("--enable-crl-all", "+cra", help="enable full chain CRL verification"),
        _sub("security profile:"),
        Option("--list-profiles", "+ph", help="list supported TLS profiles and exit", exclusive=True),
        *(Option(long, short, help=text) for short, long, text in _TLS_PROFILES),
        _sub("ciphersuite:"),
        Option("--list-ciphers", "+cc", help="list supported TLS ciphersuites and exit", exclusive=True),
        Option("--cipher", "+cs", 1, "[c]iphersuite name: string",
               "add ciphersuite to list of negotiated suites\n(not with --profile-bcp195-ex)"),
        Option("--dhparam", "+dp", 1, "[f]ilename: string", "read DH parameters for DH/DSS ciphersuites"),
        _sub("server name indication:"),
        Option("--no-sni", help="do not use SNI (default)"),
        Option("--expect-sni", "", 1, "[s]erver name: string", "expect requests for server name s"),
        _sub("pseudo random generator:"),
        Option("--seed", "+rs", 1, "[f]ilename: string", "seed random generator with contents of f"),
        Option("--write-seed", "+ws", help="write back modified seed (only with --seed)"),
        Option("--write-seed-file", "+wf", 1, "[f]ilename: string (only with --seed)", "write modified seed to file f"),
        _sub("peer authentication:"),
        Option("--require-peer-cert", "-rc", help="verify peer cert, fail if absent (default)"),
        Option("--verify-peer-cert", "-vc", help="verify peer certificate if present"),
        Option("--ignore-peer-cert", "-ic", help="don't verify peer certificate"),
        _group("output options:"),
        _sub("general:"),
        Option("--output-directory", "-od", 1, '[d]irectory: string (default: ".")',
               "write received objects to existing directory d"),
        _sub("bit preserving mode:"),
        Option("--normal", "-B", help="allow implicit format conversions (default)"),
        Option("--bit-preserving", "+B", help="write data exactly as read"),
        _sub("output file format:"),
        Option("--write-file", "+F", help="write file format (default)"),
        Option("--write-dataset", "-F", help="write data set without file meta information"),
        _sub("output transfer syntax (not with --bit-preserving or compressed transmission):"),
        *(Option(long, short, help=text) for short, long, text in _WRITE_XFER),
        _sub("post-1993 value representations (not with --bit-preserving):"),
        Option("--enable-new-vr", "+u", help="enable support for new VRs (UN/UT) (default)"),
        Option("--disable-new-vr", "-u", help="disable support for new VRs, convert to OB"),
        _sub("group length encoding (not with --bit-preserving):"),
        Option("--group-length-recalc", "+g=", help="recalculate group lengths if present (default)"),
        Option("--group-length-create", "+g", help="always write with group length elements"),
        Option("--group-length-remove", "-g", help="always write without group length elements"),
        _sub("length encoding in sequences and items (not with --bit-preserving):"),
        Option("--length-explicit", "+e", help="write with explicit lengths (default)"),
        Option("--length-undefined", "-e", help="write with undefined lengths"),
        _sub("data set trailing padding (not with --write-dataset or --bit-preserving):"),
        Option("--padding-off", "-p", help="no padding (default)"),
        Option("--padding-create", "+p", 2, "[f]ile-pad [i]tem-pad: integer",
               "align file on multiple of f bytes and items\non multiple of i bytes"),
        _sub("handling of defined length UN elements:"),
        Option("--retain-un", "-uc", help="retain elements as UN (default)"),
        Option("--convert-un", "+uc", help="convert to real VR if known"),
        _sub("deflate compression level (only with --write-xfer-deflated/same):"),
        Option("--compression-level", "+cl", 1, "[l]evel: integer (default: 6)",
               "0=uncompressed, 1=fastest, 9=best compression"),
        _sub("sorting into subdirectories (not with --bit-preserving):"),
        Option("--sort-conc-studies", "-ss", 1, "[p]refix: string", "sort studies using prefix p and a timestamp"),
        Option("--sort-on-study-uid", "-su", 1, "[p]refix: string",
               "sort studies using prefix p and the Study\nInstance UID"),
        Option("--sort-on-patientname", "-sp", help="sort studies using the Patient's Name and\na timestamp"),
        _sub("filename generation:"),
        Option("--default-filenames", "-uf", help="generate filename from instance UID (default)"),
        Option("--unique-filenames", "+uf", help="generate unique filenames"),
        Option("--timenames", "-tn", help="generate filename from creation time"),
        Option("--filename-extension", "-fe", 1, "[e]xtension: string", "append e to all filenames"),
        _group("event options:", wide_short=True),
        Option("--exec-on-reception", "-xcr", 1, "[c]ommand: string",
               "execute command c after having received and\nprocessed one C-STORE-RQ message"),
        Option("--exec-on-eostudy", "-xcs", 1, "[c]ommand: string",
               "execute command c after having received and\nprocessed all C-STORE-RQ messages that belong\n"
               "to one study"),
        Option("--rename-on-eostudy", "-rns",
               help="having received and processed all C-STORE-RQ\nmessages that belong to one study, rename\n"
                    "output files according to certain pattern"),
        Option("--eostudy-timeout", "-tos", 1, "[t]imeout: integer",
               "specifies a timeout of t seconds for\nend-of-study determination"),
        Option("--exec-sync", "-xs", help="execute command synchronously in foreground"),
        _group("spoolscp options (not in DCMTK):"),
        Option("--config", "", 1, "[f]ilename: string", "read pipeline settings from TOML file f"),
        Option("--state-dir", "", 1, "[d]irectory: string", "keep spool, queue and job table in d"),
        Option("--workers", "", 1, "[n]umber: integer (1..)", "run n output worker processes"),
    ),
)


class UsageError(cmdline.UsageError):
    """A usage error in storescp's format; the banner defaults to storescp's, so a caller can
    raise its own (``UsageError("--fork not supported yet")``) and render it the same way."""

    def __init__(self, message: str, *, header: str = "", preamble: str = "", shown: bool = True,
                 muted: bool = False) -> None:
        super().__init__(message, header=header or _new_app().header(), preamble=preamble,
                         shown=shown, muted=muted)


@dataclass
class TlsOptions:
    """The TLS options of an OpenSSL build of storescp 3.6.9 (spec §13.4)."""

    enabled: bool = False  # +tls
    private_key_file: str | None = None
    certificate_file: str | None = None
    password: str | None = None  # None: prompt (+ps); "" for -pw
    key_format: str = "pem"  # pem|der
    cert_files: list[str] = field(default_factory=list)  # every +cf, in order
    cert_dirs: list[str] = field(default_factory=list)  # every +cd
    crl_files: list[str] = field(default_factory=list)  # every +crl
    crl_mode: str = "none"  # none|leaf|all (+crl alone turns "none" into "leaf" at set-up)
    profile: str = "8996"  # long name suffix after --profile-
    ciphers: list[str] = field(default_factory=list)  # every +cs
    dhparam: str | None = None
    expect_sni: str | None = None
    seed: str | None = None
    write_seed_file: str | None = None  # +ws writes back to the seed file itself
    peer_cert: str = "require"  # require|verify|ignore


@dataclass
class StorescpOptions:
    """storescp's options after parsing; defaults are DCMTK's."""

    port: int | None = None
    # general
    log_level: str = "warn"  # off|fatal|error|warn|info|debug|trace (-q/-v/-d/-ll; -ll all = trace)
    log_config: str | None = None
    arguments: bool = False
    verbose_pc: bool = False
    # multi-process
    fork: bool = False
    # network
    inetd: bool = False
    config_file: tuple[str, str] | None = None  # (file, profile)
    prefer: str = "uncompr"  # long name suffix: uncompr|little|big|lossless|jpeg8|...|deflated|implicit|accept-all
    access_control: bool = False
    socket_timeout: int = 60
    acse_timeout: int = 30
    dimse_timeout: int | None = None
    aetitle: str = "STORESCP"
    max_pdu: int = 16384
    disable_host_lookup: bool = False
    refuse: bool = False
    reject: bool = False
    ignore: bool = False
    sleep_after: int = 0
    sleep_during: int = 0
    abort_after: bool = False
    abort_during: bool = False
    promiscuous: bool = False
    uid_padding: bool = False
    # output
    output_directory: str = "."
    bit_preserving: bool = False
    write_file: bool = True
    write_xfer: str = "same"  # same|little|big|implicit|deflated
    enable_new_vr: bool = True
    group_length: str = "recalc"  # recalc|create|remove
    length_explicit: bool = True
    padding: tuple[int, int] | None = None  # (file, item) from +p f i
    convert_un: bool = False
    compression_level: int = 6
    sort: str | None = None  # conc|uid|patient
    sort_prefix: str = ""
    unique_filenames: bool = False
    timenames: bool = False
    filename_extension: str = ""
    # events
    exec_on_reception: str | None = None
    exec_on_eostudy: str | None = None
    rename_on_eostudy: bool = False
    eostudy_timeout: int | None = None
    exec_sync: bool = False
    # TLS (§13.4): recognised and validated like DCMTK; spoolscp may still refuse them
    tls: TlsOptions = field(default_factory=TlsOptions)
    # spoolscp's own options (not in DCMTK)
    config: str | None = None
    state_dir: str | None = None
    workers: int | None = None
    # long names of every option given, after resolution (for "not supported yet" checks)
    given: set[str] = field(default_factory=set)


@dataclass
class _Evaluation:
    """One run of storescp's option evaluation; records what it acts on in ``opts.given``."""

    app: ConsoleApp
    line: ParsedLine
    opts: StorescpOptions
    argv0: str

    def find(self, long: str) -> Occurrence | None:
        """The rightmost occurrence of an option, which then counts as given."""
        occ = self.line.find(long)
        if occ is not None:
            self.opts.given.add(long)
        return occ

    def find_all(self, long: str) -> list[Occurrence]:
        """All occurrences of an accumulating option."""
        found = self.line.find_all(long)
        if found:
            self.opts.given.add(long)
        return found

    def block(self, *longs: str) -> list[Occurrence]:
        """The members of an exclusive group DCMTK acts on; only the last one (the winner)
        counts as given."""
        found = self.line.block(*longs)
        if found:
            self.opts.given.add(found[-1].long)
        return found

    def choose(self, attr: str, choices: dict[str, Any], check: Callable[[Occurrence], None] | None = None) -> None:
        """An exclusive group that sets one field, running ``check`` on each member acted on."""
        for occ in self.block(*choices):
            if check is not None:
                check(occ)
            setattr(self.opts, attr, choices[occ.long])

    def no_bit_preserving(self, occ: Occurrence) -> None:
        """The check shared by every encoding option: ``--X not allowed with --bit-preserving``."""
        self.app.check_conflict(occ.long, "--bit-preserving", self.opts.bit_preserving)

    def needs_tls(self, occ: Occurrence) -> None:
        """The check shared by most TLS options: ``--X only allowed with --enable-tls``."""
        self.app.check_dependence(occ.long, "--enable-tls", self.opts.tls.enabled)


def _new_app() -> ConsoleApp:
    """storescp's console application identity."""
    return ConsoleApp(NAME, DESCRIPTION, RCSID, error_type=UsageError)


def parse_args(argv: Sequence[str], *, argv0: str = "spoolscp") -> StorescpOptions:
    """Parse storescp's arguments (without the program name) like storescp 3.6.9.

    Raises ExitRequest for the help (also for no arguments), ``--version``, ``--list-ciphers``
    and ``--list-profiles``, UsageError for everything DCMTK rejects. ``argv0`` only appears in
    the ``--arguments`` lines that precede a late error.
    """
    app = _new_app()
    line = app.parse(COMMAND_LINE, argv)
    if line.exclusive:
        _exclusive(app, line)
    ev = _Evaluation(app, line, StorescpOptions(), argv0)
    for step in _STEPS:
        step(ev)
    return ev.opts


def arguments_log_lines(argv0: str, argv: Sequence[str]) -> list[str]:
    """The ``--arguments`` log lines (spec §12) for an already accepted argument list.

    Arguments appear after ``@file`` expansion, with options in their long spelling.
    """
    return cmdline.arguments_log_lines(argv0, COMMAND_LINE.parse(argv).args)


def _exclusive(app: ConsoleApp, line: ParsedLine) -> None:
    """``--version``, ``--list-ciphers``, ``--list-profiles``: print and exit 0, in this order."""
    if line.find("--version"):
        raise ExitRequest(app.header(with_host_info=True) + "\nExternal libraries used:\n" + cmdline.library_versions())
    if line.find("--list-ciphers"):
        raise ExitRequest(app.header(with_host_info=True) + "\nSupported TLS ciphersuites are:\n" + _cipher_list())
    if line.find("--list-profiles"):
        raise ExitRequest(
            app.header(with_host_info=True)
            + f"Cryptographic algorithms implemented by: {ssl.OPENSSL_VERSION}\n"
            + "\nSupported TLS Secure Transport Connection Profiles are:\n"
            + "".join(f"- {name}\n" for name in _PROFILE_NAMES)
        )


def _cipher_list() -> str:
    """The TLS 1.2 ciphersuites this Python's OpenSSL offers (OpenSSL's names, not IANA's)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers("ALL:eNULL")
    return "".join(f"  {c['name']}\n" for c in context.get_ciphers() if c["protocol"] != "TLSv1.3")


def _inetd(ev: _Evaluation) -> None:
    """``--inetd``: DCMTK points stdio at /dev/null right here, so later errors are invisible."""
    if ev.find("--inetd"):
        ev.opts.inetd = True
        ev.app.muted = True


def _multi_process(ev: _Evaluation) -> None:
    """``--single-process`` / ``--fork``; ``--fork`` is refused in inetd mode."""
    for occ in ev.block("--single-process", "--fork"):
        if occ.long == "--fork":
            ev.app.check_conflict("--inetd", "--fork", ev.opts.inetd)
        ev.opts.fork = occ.long == "--fork"


def _port(ev: _Evaluation) -> None:
    """The port parameter: required and 1..65535, except in inetd mode where it is ignored."""
    if ev.opts.inetd:
        return
    if not ev.line.params:
        ev.app.fail("Missing parameter port")
    ev.opts.port = ev.app.unsigned_param(ev.line, 1, 1, 65535)


def _logging(ev: _Evaluation) -> None:
    """-q/-v/-d/-ll/-lc and ``--arguments`` (OFLog::configureFromCommandLine)."""
    levels = {"--debug": "debug", "--verbose": "info", "--quiet": "fatal"}
    level = None
    for occ in ev.block(*levels):
        level = levels[occ.long]
    log_level = ev.find("--log-level")
    if log_level:
        ev.app.check_conflict("--log-level", "--verbose, --debug or --quiet", level is not None)
        level = _LOG_LEVELS.get(_ascii_upper(log_level.values[0])) or ev.app.fail(
            "Invalid log level for --log-level option")
    log_config = ev.find("--log-config")
    if log_config:
        ev.app.check_conflict("--log-config", "--log-level", log_level is not None)
        ev.app.check_conflict("--log-config", "--verbose, --debug or --quiet", level is not None)
        ev.opts.log_config = log_config.values[0]
        level = _check_log_config(ev.app, ev.opts.log_config)
    ev.opts.log_level = level or "warn"
    ev.app.quiet = ev.opts.log_level in ("fatal", "off")
    if ev.find("--arguments"):
        ev.opts.arguments = True
        ev.app.preamble = "".join(f"{text}\n" for text in cmdline.arguments_log_lines(ev.argv0, ev.line.args))


def _ascii_upper(text: str) -> str:
    """log4cplus upper-cases with the C library, i.e. ASCII letters only."""
    return "".join(char.upper() if char.isascii() else char for char in text)


def _check_log_config(app: ConsoleApp, path: str) -> str:
    """DCMTK's checks of a ``--log-config`` file; returns the root logger's level.

    The level only approximates log4cplus (the ``log4cplus.rootLogger`` level, INFO if it names
    none); it decides quiet mode and whether ``--verbose-pc`` is allowed.
    """
    if not os.path.exists(path) or os.path.isdir(path):
        app.fail("Specified --log-config file does not exist")
    if not os.access(path, os.R_OK):
        app.fail("Specified --log-config file cannot be read")
    properties = _read_properties(path)
    if not properties:
        app.fail("Specified --log-config file does not contain any settings")
    if not any(key.startswith("log4cplus.") for key in properties):
        app.fail("Specified --log-config file does not contain any valid settings")
    if "log4cplus.rootLogger" not in properties:
        app.fail("Specified --log-config file does not set up log4cplus.rootLogger")
    root_level = properties["log4cplus.rootLogger"].split(",")[0].strip()
    return _LOG_LEVELS.get(_ascii_upper(root_level), "info")


def _read_properties(path: str) -> dict[str, str]:
    """A log4cplus properties file: ``key = value`` lines, ``#`` comment lines."""
    properties: dict[str, str] = {}
    with open(path, "rb") as handle:
        lines = handle.read().decode("latin-1").split("\n")
    for raw in lines:
        text = raw.lstrip(" \t\n\v\f\r").removesuffix("\r")
        key, equals, value = text.partition("=")
        if text and not text.startswith("#") and equals:
            properties[key.rstrip(" \t\n\v\f\r")] = value.strip(" \t\n\v\f\r")
    return properties


def _verbose_pc(ev: _Evaluation) -> None:
    """``+v`` needs a log level that shows INFO messages."""
    if ev.find("--verbose-pc"):
        ev.app.check_dependence("--verbose-pc", "verbose mode", ev.opts.log_level in _INFO_ENABLED)
        ev.opts.verbose_pc = True


def _prefer(ev: _Evaluation) -> None:
    """The preferred transfer syntax group; the field holds the long name without prefix."""
    ev.choose("prefer", {long: long.removeprefix("--prefer-").removeprefix("--") for _, long, _, _ in _PREFER})


def _network(ev: _Evaluation) -> None:
    """Timeouts, AE title, PDU size, test switches: value checks in storescp's order."""
    opts, app = ev.opts, ev.app
    if occ := ev.find("--socket-timeout"):
        opts.socket_timeout = app.signed(occ, low=-1)
    if occ := ev.find("--acse-timeout"):
        opts.acse_timeout = app.signed(occ, low=1)
    if occ := ev.find("--dimse-timeout"):
        opts.dimse_timeout = app.signed(occ, low=1)
    if occ := ev.find("--aetitle"):
        opts.aetitle = occ.values[0]
    if occ := ev.find("--max-pdu"):
        opts.max_pdu = app.unsigned(occ, low=4096, high=131072)
    for long in ("--disable-host-lookup", "--refuse", "--reject", "--ignore"):
        _flag(ev, long)
    if occ := ev.find("--sleep-after"):
        opts.sleep_after = app.unsigned(occ, low=0)
    if occ := ev.find("--sleep-during"):
        opts.sleep_during = app.unsigned(occ, low=0)
    for long in ("--abort-after", "--abort-during", "--promiscuous", "--uid-padding"):
        _flag(ev, long)


def _flag(ev: _Evaluation, long: str) -> None:
    """A switch without values: sets the field named after it (``--uid-padding`` -> uid_padding)."""
    if ev.find(long):
        setattr(ev.opts, long.removeprefix("--").replace("-", "_"), True)


def _config_file(ev: _Evaluation) -> None:
    """``-xf file profile``: not with a transfer syntax preference other than +x=, nor -pm."""
    if occ := ev.find("--config-file"):
        if ev.opts.prefer != "uncompr":
            ev.app.fail(f"--config-file not allowed with {_prefer_option(ev.opts.prefer)}")
        ev.app.check_conflict("--config-file", "--promiscuous", ev.opts.promiscuous)
        ev.opts.config_file = (occ.values[0], occ.values[1])


def _prefer_option(prefer: str) -> str:
    """The long option that selected a ``prefer`` value."""
    return f"--{prefer}" if prefer in ("implicit", "accept-all") else f"--prefer-{prefer}"


def _access_and_output_dir(ev: _Evaluation) -> None:
    """TCP wrapper switch and ``-od``."""
    ev.choose("access_control", {"--access-full": False, "--access-control": True})
    if occ := ev.find("--output-directory"):
        ev.opts.output_directory = occ.values[0]


def _encoding(ev: _Evaluation) -> None:
    """Bit preserving mode, file format, output transfer syntax and the encoding details."""
    ev.choose("bit_preserving", {"--normal": False, "--bit-preserving": True})
    ev.choose("write_file", {"--write-file": True, "--write-dataset": False})
    ev.choose("write_xfer", {long: long.removeprefix("--write-xfer-") for _, long, _ in _WRITE_XFER},
              partial(_check_write_xfer, ev))
    ev.choose("enable_new_vr", {"--enable-new-vr": True, "--disable-new-vr": False}, ev.no_bit_preserving)
    ev.choose("group_length", {"--group-length-recalc": "recalc", "--group-length-create": "create",
                               "--group-length-remove": "remove"}, ev.no_bit_preserving)
    ev.choose("length_explicit", {"--length-explicit": True, "--length-undefined": False}, ev.no_bit_preserving)
    for member in ev.block("--padding-off", "--padding-create"):
        ev.opts.padding = _padding(ev, member) if member.long == "--padding-create" else None
    ev.choose("convert_un", {"--retain-un": False, "--convert-un": True})
    if occ := ev.find("--compression-level"):
        ev.app.check_dependence("--compression-level", "--write-xfer-deflated or --write-xfer-same",
                                ev.opts.write_xfer in ("deflated", "same"))
        ev.opts.compression_level = ev.app.unsigned(occ, low=0, high=9)


def _check_write_xfer(ev: _Evaluation, occ: Occurrence) -> None:
    """+te/+tb/+ti/+td cannot re-encode what +xa or a compressed preference brings in."""
    if occ.long == "--write-xfer-same":
        return
    ev.app.check_conflict(occ.long, "--accept-all", ev.opts.prefer == "accept-all")
    ev.no_bit_preserving(occ)
    preferred = _prefer_option(ev.opts.prefer)
    ev.app.check_conflict(occ.long, preferred, preferred in _COMPRESSED)


def _padding(ev: _Evaluation, occ: Occurrence) -> tuple[int, int]:
    """``+p f i``: not without file meta information, not in bit preserving mode."""
    ev.app.check_conflict("--padding-create", "--write-dataset", not ev.opts.write_file)
    ev.no_bit_preserving(occ)
    return ev.app.unsigned(occ, low=0, index=0), ev.app.unsigned(occ, low=0, index=1)


def _sorting_and_names(ev: _Evaluation) -> None:
    """Study subdirectories and file name generation."""
    modes = {"--sort-conc-studies": "conc", "--sort-on-study-uid": "uid", "--sort-on-patientname": "patient"}
    for member in ev.block(*modes):
        ev.no_bit_preserving(member)
        ev.opts.sort = modes[member.long]
        ev.opts.sort_prefix = member.values[0] if member.values else ""
    ev.choose("unique_filenames", {"--default-filenames": False, "--unique-filenames": True})
    _flag(ev, "--timenames")
    if occ := ev.find("--filename-extension"):
        ev.opts.filename_extension = occ.values[0]
    if ev.opts.timenames:
        ev.app.check_conflict("--timenames", "--unique-filenames", ev.opts.unique_filenames)


def _events(ev: _Evaluation) -> None:
    """Commands and renaming at reception / end of study, and the end-of-study timeout."""
    opts, app = ev.opts, ev.app
    if occ := ev.find("--exec-on-reception"):
        opts.exec_on_reception = occ.values[0]
    if occ := ev.find("--exec-on-eostudy"):
        _check_end_of_study(ev, occ)
        opts.exec_on_eostudy = occ.values[0]
    if occ := ev.find("--rename-on-eostudy"):
        _check_end_of_study(ev, occ)
        opts.rename_on_eostudy = True
    if occ := ev.find("--eostudy-timeout"):
        app.check_dependence(
            "--eostudy-timeout",
            "--sort-conc-studies, --sort-on-study-uid, --sort-on-patientname, --exec-on-eostudy or --rename-on-eostudy",
            opts.sort is not None or opts.exec_on_eostudy is not None or opts.rename_on_eostudy,
        )
        opts.eostudy_timeout = app.signed(occ, low=0)
    _flag(ev, "--exec-sync")


def _check_end_of_study(ev: _Evaluation, occ: Occurrence) -> None:
    """End-of-study actions need the single study state of one process and a sort mode."""
    ev.app.check_conflict(occ.long, "--fork", ev.opts.fork)
    ev.app.check_conflict(occ.long, "--inetd", ev.opts.inetd)
    ev.app.check_dependence(occ.long, _SORT_NEEDED, ev.opts.sort is not None)


def _tls(ev: _Evaluation) -> None:
    """DcmTLSOptions::parseArguments (3.6.9, acceptor role)."""
    tls, app = ev.opts.tls, ev.app
    for member in ev.block("--disable-tls", "--enable-tls"):
        tls.enabled = member.long == "--enable-tls"
        tls.private_key_file, tls.certificate_file = member.values or (None, None)
    passwords = {"--std-passwd": None, "--null-passwd": ""}  # prompt / empty; --use-passwd brings its own
    for member in ev.block("--std-passwd", "--use-passwd", "--null-passwd"):
        app.check_dependence(member.long, "--enable-tls", tls.enabled)
        tls.password = member.values[0] if member.values else passwords[member.long]
    _tls_choice(ev, "key_format", {"--pem-keys": "pem", "--der-keys": "der"})
    _tls_choice(ev, "crl_mode", {"--enable-crl-vfy": "leaf", "--enable-crl-all": "all"})
    if occ := ev.find("--dhparam"):
        ev.needs_tls(occ)
        tls.dhparam = occ.values[0]
    if occ := ev.find("--expect-sni"):
        tls.expect_sni = occ.values[0]
    if ev.find("--no-sni"):
        app.check_conflict("--no-sni", "--expect-sni", tls.expect_sni is not None)
    if occ := ev.find("--seed"):
        ev.needs_tls(occ)
        tls.seed = occ.values[0]
    for member in ev.block("--write-seed", "--write-seed-file"):
        ev.needs_tls(member)
        app.check_dependence(member.long, "--seed", tls.seed is not None)
        tls.write_seed_file = member.values[0] if member.values else tls.seed
    _tls_choice(ev, "peer_cert", {"--require-peer-cert": "require", "--ignore-peer-cert": "ignore",
                                  "--verify-peer-cert": "verify"})
    _tls_profile(ev)
    for long, attr in (("--add-cert-file", "cert_files"), ("--add-cert-dir", "cert_dirs"),
                       ("--add-crl-file", "crl_files"), ("--cipher", "ciphers")):
        if found := ev.find_all(long):
            ev.needs_tls(found[-1])
            setattr(tls, attr, [each.values[0] for each in found])
    if tls.ciphers:
        app.check_conflict("--cipher", "--profile-bcp195-ex", tls.profile == "bcp195-ex")


def _tls_choice(ev: _Evaluation, attr: str, choices: dict[str, str]) -> None:
    """An exclusive TLS group whose every member needs ``--enable-tls``."""
    for occ in ev.block(*choices):
        ev.needs_tls(occ)
        setattr(ev.opts.tls, attr, choices[occ.long])


def _tls_profile(ev: _Evaluation) -> None:
    """The security profile group, in DCMTK's evaluation order (not the help order).

    DCMTK names ``--profile-basic`` in the dependence message of ``--profile-aes``; kept.
    """
    order = ("--profile-8996", "--profile-8996-mod", "--profile-bcp195", "--profile-bcp195-nd",
             "--profile-bcp195-ex", "--profile-aes", "--profile-null")
    for occ in ev.block(*order):
        named = "--profile-basic" if occ.long == "--profile-aes" else occ.long
        ev.app.check_dependence(named, "--enable-tls", ev.opts.tls.enabled)
        ev.opts.tls.profile = occ.long.removeprefix("--profile-")


def _spoolscp(ev: _Evaluation) -> None:
    """spoolscp's own options, checked last with DCMTK's value messages."""
    if occ := ev.find("--config"):
        ev.opts.config = occ.values[0]
    if occ := ev.find("--state-dir"):
        ev.opts.state_dir = occ.values[0]
    if occ := ev.find("--workers"):
        ev.opts.workers = ev.app.signed(occ, low=1)


# storescp 3.6.9's main() order; TLS comes after all of storescp's own checks.
_STEPS: tuple[Callable[[_Evaluation], None], ...] = (
    _inetd, _multi_process, _port, _logging, _verbose_pc, _prefer, _network, _config_file,
    _access_and_output_dir, _encoding, _sorting_and_names, _events, _tls, _spoolscp,
)
