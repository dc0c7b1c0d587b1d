"""DCMTK's command line conventions (``OFCommandLine`` / ``OFConsoleApplication``), table-driven.

storescp users script against DCMTK's exact parsing rules and messages, so this module
re-implements them rather than using argparse:

* ``@file`` arguments are replaced by the tokens of ``file`` (whitespace separated; double or
  single quotes group; ``#`` is an ordinary character; an ``@`` inside a file is literal).
* An argument is an option if it has two or more characters, starts with ``-`` or ``+`` and its
  second character is not a digit (so ``-1`` and ``+5`` are parameters). Options are matched
  exactly by short or long spelling; they cannot be bundled or abbreviated.
* Values follow their option verbatim, even if they look like options (``-aet -v``).
* Repeated options: the rightmost occurrence is the one looked at (:meth:`ParsedLine.find`).
  For mutually exclusive groups, :meth:`ParsedLine.block` reproduces DCMTK's option blocks.
* Integers are read like C's ``sscanf("%li")`` (base prefixes, saturation) or ``"%lu"``.
* Usage errors are reported as ``<banner>error: <message>`` on stderr with exit code 1.

Nothing here prints or exits: errors are raised as :class:`UsageError` (the caller writes
``render()`` to stderr and exits with ``exit_code``), help-like output as :class:`ExitRequest`
(``text`` to stdout, exit with ``code``).

The banner keeps DCMTK's fixed application name (``storescp: DICOM storage (C-STORE) SCP``):
DCMTK does not derive it from ``argv[0]``, and scripts may match it. Only the ``--arguments``
log line shows the real ``argv[0]``, as DCMTK does.
"""

from __future__ import annotations

import locale
import platform
import ssl
import sys
import sysconfig
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NoReturn

_C_SPACE = " \t\n\v\f\r"  # isspace() in the C locale
_LONG_MIN, _LONG_MAX, _ULONG_MAX = -(2**63), 2**63 - 1, 2**64 - 1


class UsageError(Exception):
    """A command line that DCMTK rejects: write :meth:`render` to stderr, exit with ``exit_code``.

    ``header`` is the application banner printed above ``error: <message>``. ``preamble`` is
    log output DCMTK had already written (``--arguments``). ``shown`` is False in DCMTK's quiet
    mode, where the error exits without a message; ``muted`` means stdio already went to
    /dev/null (``--inetd``), so nothing at all is visible.
    """

    exit_code = 1

    def __init__(self, message: str, *, header: str = "", preamble: str = "", shown: bool = True,
                 muted: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.header = header
        self.preamble = preamble
        self.shown = shown
        self.muted = muted

    def render(self) -> str:
        """Exactly what DCMTK would make visible on stderr."""
        if self.muted:
            return ""
        return self.preamble + (f"{self.header}error: {self.message}\n" if self.shown else "")


class ExitRequest(Exception):
    """Output that ends the program successfully (help, version): ``text`` to stdout, ``code``."""

    def __init__(self, text: str, code: int = 0) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


class ParseError(Exception):
    """A command line status message, before the application wraps it into a UsageError."""


@dataclass(frozen=True)
class Option:
    """One option: its spellings, how many values follow it, and its help text."""

    long: str
    short: str = ""
    values: int = 0
    value_help: str = ""
    help: str = ""
    exclusive: bool = False  # like --help: a line holding it skips the parameter count check


@dataclass(frozen=True)
class Group:
    """A heading in the help text; ``columns`` = (long, short) minimum column widths."""

    title: str
    sub: bool = False
    columns: tuple[int, int] | None = None


@dataclass(frozen=True)
class Param:
    """A positional parameter (DCMTK's PM_Mandatory or PM_Optional)."""

    name: str
    help: str
    optional: bool = True


@dataclass(frozen=True)
class Occurrence:
    """One option as given: ``index`` is its place in the expanded argument list."""

    option: Option
    index: int
    values: tuple[str, ...]

    @property
    def long(self) -> str:
        """The long spelling, which DCMTK uses in every message."""
        return self.option.long


def is_option(arg: str) -> bool:
    """DCMTK's test: ``-x``/``+x`` with x not a digit; everything else is a parameter."""
    return len(arg) >= 2 and arg[0] in "+-" and not arg[1].isdigit()


def scan_long(text: str, *, signed: bool) -> int | None:
    """Read an integer like glibc's ``sscanf(text, signed ? "%li" : "%lu")``.

    DCMTK accepts what sscanf accepts: leading white space, trailing garbage (``5000abc``),
    for ``%li`` base prefixes (``0x10``, ``010`` octal), saturation on overflow, and for
    ``%lu`` the C wrap-around of negative numbers. Returns None if no digit could be read.
    """
    rest = text.lstrip(_C_SPACE)
    negative = rest.startswith("-")
    if rest[:1] in ("+", "-"):
        rest = rest[1:]
    base, alphabet = 10, "0123456789"
    if signed and rest[:2].lower() == "0x" and rest[2:3] and rest[2] in "0123456789abcdefABCDEF":
        base, alphabet, rest = 16, "0123456789abcdefABCDEF", rest[2:]
    elif signed and rest.startswith("0"):
        base, alphabet = 8, "01234567"
    digits = ""
    for char in rest:
        if char not in alphabet:
            break
        digits += char
    if not digits:
        return None
    magnitude = int(digits, base)
    if signed:
        return max(_LONG_MIN, min(_LONG_MAX, -magnitude if negative else magnitude))
    if magnitude > _ULONG_MAX:
        return _ULONG_MAX
    return (-magnitude) % (_ULONG_MAX + 1) if negative else magnitude


def tokenize_command_file(content: str) -> list[str]:
    """Split a command file the way OFCommandLine::parseCommandFile does.

    Quotes (``"`` or ``'``) open a block that ends at the same quote and always yields a token,
    even an empty one, including text collected before the quote (``a"b c"d`` gives ``ab c``
    and ``d``). An unterminated block still yields its text.
    """
    tokens: list[str] = []
    value, block = "", ""
    for char in content:
        if char in "\"'":
            if block == char:
                tokens.append(value)
                value, block = "", ""
            elif not block:
                block = char
            else:
                value += char
        elif char in " \t\n\r" and not block:
            if value:
                tokens.append(value)
                value = ""
        else:
            value += char
    if value:
        tokens.append(value)
    return tokens


def expand_command_files(argv: Sequence[str]) -> list[str]:
    """Replace every ``@file`` argument by the file's tokens (one level only, no nesting)."""
    expanded: list[str] = []
    for arg in argv:
        if not (arg.startswith("@") and len(arg) > 1):
            expanded.append(arg)
            continue
        try:
            with open(arg[1:], "rb") as handle:
                content = handle.read()
        except IsADirectoryError:  # C++ ifstream opens a directory and reads nothing
            content = b""
        except OSError:
            raise ParseError(f"Cannot open command file '{arg[1:]}'") from None
        expanded.extend(tokenize_command_file(content.decode(sys.getfilesystemencoding(), "surrogateescape")))
    return expanded


@dataclass
class ParsedLine:
    """The expanded command line: options (long names) with their values, and parameters."""

    args: list[str] = field(default_factory=list)  # as DCMTK stores them: options in long form
    options: list[Occurrence] = field(default_factory=list)
    params: list[str] = field(default_factory=list)

    @property
    def exclusive(self) -> bool:
        """True if an exclusive option (--help, --version, ...) was given."""
        return any(occ.option.exclusive for occ in self.options)

    def find(self, long: str) -> Occurrence | None:
        """The rightmost occurrence of an option (DCMTK's findOption)."""
        return next((occ for occ in reversed(self.options) if occ.long == long), None)

    def find_all(self, long: str) -> list[Occurrence]:
        """Every occurrence, left to right, for options DCMTK accumulates (``+cf``, ``+cs``)."""
        return [occ for occ in self.options if occ.long == long]

    def block(self, *longs: str) -> list[Occurrence]:
        """DCMTK's option block: which members of an exclusive group the program acts on.

        The program asks for the members in ``longs`` order; a member counts only if its
        rightmost occurrence lies right of the last member that counted. The last one returned
        is always the rightmost member (it wins), but earlier ones still get their checks run,
        which decides the message when several of them conflict with something.
        """
        found: list[Occurrence] = []
        for long in longs:
            occ = self.find(long)
            if occ is not None and (not found or occ.index > found[-1].index):
                found.append(occ)
        return found


@dataclass(frozen=True)
class CommandLine:
    """An option table plus parameters: parses argument lists and renders the help text."""

    entries: tuple[Option | Group, ...]
    params: tuple[Param, ...]
    option_columns: tuple[int, int]  # default (long, short) widths, setOptionColumns
    param_column: int

    def lookup(self, spelling: str) -> Option | None:
        """The option with this exact short or long spelling."""
        return next(
            (e for e in self.entries if isinstance(e, Option) and spelling in (e.long, e.short)),
            None,
        )

    def parse(self, argv: Sequence[str]) -> ParsedLine:
        """Expand ``@file`` arguments and sort the result into options and parameters.

        Raises ParseError for an unreadable command file, an unknown option or a missing value
        (first problem from the left wins, as in DCMTK). The parameter count is checked
        separately (:meth:`check_param_count`) because exclusive options skip that check.
        """
        pending = expand_command_files(argv)
        line = ParsedLine()
        position = 0
        while position < len(pending):
            arg = pending[position]
            position += 1
            if not is_option(arg):
                line.args.append(arg)
                line.params.append(arg)
                continue
            option = self.lookup(arg)
            if option is None:
                raise ParseError(f"Unknown option {arg}")
            line.args.append(option.long)
            values = tuple(pending[position : position + option.values])
            if len(values) < option.values:
                raise ParseError(f"Missing value for option {option.long}")
            position += option.values
            line.options.append(Occurrence(option, len(line.args) - 1, values))
            line.args.extend(values)
        return line

    def check_param_count(self, line: ParsedLine) -> None:
        """Raise ParseError if mandatory parameters are missing or too many were given."""
        mandatory = [p for p in self.params if not p.optional]
        if len(line.params) < len(mandatory):
            raise ParseError(f"Missing parameter {mandatory[len(line.params)].name}")
        if len(line.params) > len(self.params):
            raise ParseError("Too many parameters")

    def syntax(self) -> str:
        """`` [options] [port]``: the part of the usage line after the program name."""
        words = [" [options]"] if self.entries else []
        words += [f" [{p.name}]" if p.optional else f" {p.name}" for p in self.params]
        return "".join(words)

    def params_help(self) -> str:
        """The ``parameters:`` section of the help (OFCommandLine::getParamString)."""
        if not self.params:
            return ""
        width = max([self.param_column] + [len(p.name) for p in self.params])
        indent = "\n" + " " * (2 + width + 2)
        lines = [f"  {p.name.ljust(width)}  {p.help.replace(chr(10), indent)}" for p in self.params]
        return "parameters:\n" + "\n".join(lines) + "\n"

    def options_help(self) -> str:
        """The option list of the help (OFCommandLine::getOptionString), column for column.

        Each heading sets the minimum column widths; the options up to the next heading widen
        them to their longest spellings.
        """
        text = ""
        long_width, short_width = self.option_columns
        indent = 0
        for position, entry in enumerate(self.entries):
            if isinstance(entry, Group):
                long_width, short_width = entry.columns or self.option_columns
                run = self._options_after(position)
                long_width = max([long_width] + [len(o.long) for o in run])
                short_width = max([short_width] + [len(o.short) for o in run])
                indent = 4 if entry.sub else 2
                text += ("  " + entry.title if entry.sub else entry.title) + "\n"
                continue
            text += " " * indent + entry.short.ljust(short_width) + "  " + entry.long.ljust(long_width) + "  "
            column = indent + short_width + long_width + 4
            if entry.value_help:
                text += entry.value_help + "\n" + " " * column
            text += entry.help.replace("\n", "\n" + " " * column) + "\n"
        return text

    def _options_after(self, position: int) -> list[Option]:
        """The options following the heading at ``position``, up to the next heading."""
        run: list[Option] = []
        for entry in self.entries[position + 1 :]:
            if isinstance(entry, Group):
                break
            run.append(entry)
        return run


def host_info() -> str:
    """The ``Host type / Character encoding / Build options`` block of DCMTK's ``--version``.

    DCMTK describes its C++ build; the equivalent facts for this program are the Python
    platform and runtime.
    """
    host = sysconfig.get_config_var("HOST_GNU_TYPE") or platform.platform()
    return (
        f"\nHost type: {host}\n"
        f"Character encoding: {locale.getencoding() or 'system default (unknown)'}\n"
        f"Build options: python-{platform.python_version()}\n"
    )


def library_versions() -> str:
    """The ``External libraries used:`` list: the zlib and OpenSSL this Python links."""
    return f"- ZLIB, Version {zlib.ZLIB_RUNTIME_VERSION}\n- {ssl.OPENSSL_VERSION}\n"


def arguments_log_lines(argv0: str, args: Sequence[str]) -> list[str]:
    """DCMTK's ``--arguments`` output (OFLog), already prefixed with ``I: ``.

    All expanded arguments are counted, but empty ones are not shown; every shown argument is
    followed by a space, and the message ends with a newline, hence the empty ``I: `` line.
    """
    shown = "".join(f"'{arg}' " for arg in args if arg)
    return [f"I: calling '{argv0}' with {len(args)} arguments: {shown}", "I: "]


@dataclass
class ConsoleApp:
    """OFConsoleApplication: banner, usage text, error reporting and value checks."""

    name: str
    description: str
    rcsid: str
    quiet: bool = False  # DCMTK's quiet mode: errors exit without a message
    muted: bool = False  # stdio already points to /dev/null (inetd): nothing is visible
    preamble: str = ""  # log output DCMTK has written before a later error
    error_type: type[UsageError] = UsageError

    def header(self, with_host_info: bool = False) -> str:
        """``rcsid``, a blank line, ``name: description`` (printHeader)."""
        text = f"{self.rcsid}\n\n{self.name}: {self.description}\n"
        return text + host_info() if with_host_info else text

    def usage(self, cmd: CommandLine) -> str:
        """The full help text (printUsage): header, usage line, parameters, options."""
        return (
            self.header()
            + f"usage: {self.name}{cmd.syntax()}\n"
            + "\n"
            + cmd.params_help()
            + "\n"
            + cmd.options_help()
            + "\n"
        )

    def fail(self, message: str) -> NoReturn:
        """printError: raise the usage error, with what would be visible of it."""
        raise self.error_type(message, header=self.header(), preamble=self.preamble,
                              shown=not self.quiet, muted=self.muted)

    def parse(self, cmd: CommandLine, argv: Sequence[str]) -> ParsedLine:
        """parseCommandLine: parse, show the help for no arguments or ``--help``, count params."""
        try:
            line = cmd.parse(argv)
            if not line.args or (line.exclusive and line.find("--help")):
                raise ExitRequest(self.usage(cmd))
            if not line.exclusive:
                cmd.check_param_count(line)
        except ParseError as error:
            self.fail(str(error))
        return line

    def check_conflict(self, first: str, second: str, condition: bool) -> None:
        """``--first not allowed with --second`` if condition holds."""
        if condition:
            self.fail(f"{first} not allowed with {second}")

    def check_dependence(self, sub: str, base: str, condition: bool) -> None:
        """``--sub only allowed with <base>`` unless condition holds."""
        if not condition:
            self.fail(f"{sub} only allowed with {base}")

    def signed(self, occ: Occurrence, low: int | None = None, high: int | None = None, index: int = 0) -> int:
        """A signed integer value (``%li``), checked against an inclusive range."""
        return self._check_range(occ, index, scan_long(occ.values[index], signed=True), low, high)

    def unsigned(self, occ: Occurrence, low: int | None = None, high: int | None = None, index: int = 0) -> int:
        """An unsigned integer value (``%lu``); a leading minus sign is invalid, not wrapped."""
        text = occ.values[index]
        value = scan_long(text, signed=False)
        if value is not None and text.lstrip(" ").startswith("-"):
            value = None
        return self._check_range(occ, index, value, low, high)

    def _check_range(self, occ: Occurrence, index: int, value: int | None, low: int | None, high: int | None) -> int:
        """Fail with DCMTK's value status message unless low <= value <= high."""
        text = occ.values[index]
        if value is None:
            self.fail(f"Invalid value for option {occ.long}" + (f" ({text})" if text else ""))
        if low is not None and value < low:
            self.fail(f"Invalid value for option {occ.long} (underflow: {text})")
        if high is not None and value > high:
            self.fail(f"Invalid value for option {occ.long} (overflow: {text})")
        return value

    def unsigned_param(self, line: ParsedLine, position: int, low: int, high: int) -> int:
        """Parameter ``position`` (1-based) as an unsigned integer in [low, high]."""
        text = line.params[position - 1]
        value = scan_long(text, signed=False)
        if value is None:
            self.fail(f"Invalid parameter value {text}")
        if value < low:
            self.fail(f"Invalid parameter value {text} (underflow)")
        if value > high:
            self.fail(f"Invalid parameter value {text} (overflow)")
        return value
