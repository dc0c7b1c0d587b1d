"""``-xf FILE PROFILE``: DCMTK's association negotiation profile files (spec §11).

The file is read the way DCMTK's ``OFConfigFile`` reads it, quirks included, because sites
keep profile files that work with storescp and expect them to keep working:

* ``#`` starts a comment only in column 1; CR and CRLF end lines; NUL reads as a space;
* ``[[Name]]`` / ``[Name]`` open a supersection / section; a key runs up to the next ``=``
  (it may span lines); names and keys keep only ``A-Z 0-9 - _`` after upper-casing a-z;
* a value continues on the next line if that line starts with a space or tab;
* entries outside a section, and sections outside a supersection, are dropped;
* a lookup finds the first supersection and the first key of that name, while equally named
  sections inside a supersection are merged.

Every error is DCMTK's message and ends start-up with ``F: cannot read config file: ...``
(exit 1); a hostile file never raises anything but :class:`ProfileError`.

>>> p = load("/etc/dcmtk/storescp.cfg", "all dicom")    # doctest: +SKIP
>>> p.name, len(p.contexts)                              # doctest: +SKIP
('ALLDICOM', 128)
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from receiver.uidnames import uid_for_name

ELE = "1.2.840.10008.1.2.1"
EBE = "1.2.840.10008.1.2.2"
ROLES = ("SCU", "SCP", "BOTH")

_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_NOT_NAME = re.compile(r"[^A-Z0-9_-]")
_NON_BLANK = re.compile(r"[^ \t\n]")
_VALUE_END = re.compile(r"\n(?=[^ \t\n])")
_AFTER_NEWLINE = re.compile(r"\n[ \t\n]*")
_COMMENT_LINE = re.compile(r"^#[^\n]*(?:\n|\Z)", re.M)
_C_SPACE = " \t\n\v\f\r"


class ProfileError(Exception):
    """A fatal ``-xf`` problem; ``str()`` is the text after ``F: `` (spec §1.5 step 3)."""


# --------------------------------------------------------------------------------------------
# OFConfigFile: the INI-like tree


@dataclass
class Section:
    name: str
    entries: list[tuple[str, str]] = field(default_factory=list)
    _first: dict[str, str] | None = field(default=None, repr=False, compare=False)

    def get(self, key: str) -> str | None:
        """The first entry called ``key`` (DCMTK ignores later duplicates); indexed once, so
        a file with 10^5 numbered entries stays linear."""
        if self._first is None:
            self._first = {}
            for k, value in self.entries:
                self._first.setdefault(k, value)
        return self._first.get(key)


@dataclass
class ConfigTree:
    supersections: list[tuple[str, list[Section]]] = field(default_factory=list)

    def sections(self, name: str) -> list[Section] | None:
        """The sections of the first supersection called ``name``; None if there is none."""
        return next((secs for n, secs in self.supersections if n == name), None)


def _name(raw: str) -> str:
    return _NOT_NAME.sub("", raw.translate(_ASCII_UPPER))


def _clean(data: bytes) -> str:
    """Line ends, column-1 comments and NULs handled up front, as DCMTK's reader sees them."""
    text = data.decode("latin-1").replace("\r\n", "\n").replace("\r", "\n")
    return _COMMENT_LINE.sub("", text).replace("\0", " ")


def _section_header(text: str, pos: int) -> tuple[int, str, int]:
    """(level, name, next position) for a header starting at the ``[`` at ``pos``."""
    level, pos = 1, pos + 1
    while (m := _NON_BLANK.search(text, pos)) and text[m.start()] == "[":
        level, pos = level + 1, m.start() + 1
    if m is None:
        return min(level, 2), "", len(text)
    end = text.find("]", m.start())
    if end < 0:
        return min(level, 2), _name(text[m.start():]), len(text)
    name, pos = _name(text[m.start():end]), end + 1
    for _ in range(level - 1):  # the closing brackets; anything else in between is skipped
        end = text.find("]", pos)
        if end < 0:
            return min(level, 2), name, len(text)
        pos = end + 1
    return min(level, 2), name, pos


def _value(text: str, pos: int) -> tuple[str, int]:
    """A value from after ``=``: leading blanks dropped, continuation lines joined by LF."""
    m = _VALUE_END.search(text, pos)
    end = m.start() + 1 if m else len(text)
    value = _AFTER_NEWLINE.sub("\n", text[pos:end].lstrip(" \t\n"))
    return value.rstrip("\n"), end


def parse(data: bytes) -> ConfigTree:
    """The tree DCMTK builds from ``data`` (two levels of sections, entries below)."""
    text, pos, tree = _clean(data), 0, ConfigTree()
    section: Section | None = None
    while m := _NON_BLANK.search(text, pos):
        if text[m.start()] == "[":
            level, name, pos = _section_header(text, m.start())
            if level == 2:
                tree.supersections.append((name, []))
                section = None
            elif tree.supersections:
                section = Section(name)
                tree.supersections[-1][1].append(section)
            continue
        eq = text.find("=", m.start())
        key = _name(text[m.start():eq if eq >= 0 else len(text)])
        value, pos = _value(text, eq + 1) if eq >= 0 else ("", len(text))
        if section is not None:
            section.entries.append((key, value))
    return tree


# --------------------------------------------------------------------------------------------
# DcmAssociationConfiguration: transfer syntax lists, contexts, roles, extended negotiation


def resolve_uid(value: str) -> str:
    """DCMTK's ``DcmUIDHandler``: symbolic name (optionally ``=Name``) to UID, else unchanged."""
    if not value or value[0] in "0123456789":
        return value
    name = value[1:] if value[0] == "=" else value
    little = sys.byteorder == "little"
    if name == "LocalEndianExplicit":
        return ELE if little else EBE
    if name == "OppositeEndianExplicit":
        return EBE if little else ELE
    return uid_for_name(name) or value


def valid_uid(uid: str) -> bool:
    return bool(uid) and all(c in "0123456789." for c in uid)


def _mangle(value: str) -> str:
    """Key references: C whitespace dropped, ASCII upper-cased."""
    return "".join(c for c in value if c not in _C_SPACE).translate(_ASCII_UPPER)


ILLEGAL_CALL = "Illegal call, perhaps wrong parameters"


def _numbered(section: Section, prefix: str) -> list[tuple[str, str]]:
    """``PREFIX1``, ``PREFIX2``, ... up to the first gap, as (key, value)."""
    found, n = [], 1
    while (value := section.get(f"{prefix}{n}")) is not None:
        found.append((f"{prefix}{n}", value))
        n += 1
    return found


def _required(tree: ConfigTree, name: str) -> list[Section]:
    sections = tree.sections(name)
    if sections is None:
        raise ProfileError(f"cannot find section [[{name}]] in config file")
    return sections


def _split(value: str, key: str) -> tuple[str, str]:
    sep = value.find("\\")
    if sep < 0:
        raise ProfileError(f"syntax error: missing '\\' in entry {key} in config file")
    return value[:sep], value[sep + 1:]


def transfer_syntax_lists(tree: ConfigTree) -> dict[str, list[str]]:
    lists: dict[str, list[str]] = {}
    for section in _required(tree, "TRANSFERSYNTAXES"):
        for _, value in _numbered(section, "TRANSFERSYNTAX"):
            uid = resolve_uid(value)
            if not valid_uid(uid):
                raise ProfileError(f"not a valid transfer syntax UID: {value}")
            lists.setdefault(section.name, []).append(uid)
    return lists


def context_lists(tree: ConfigTree, ts_lists: dict[str, list[str]]) -> dict[str, list[tuple[str, str]]]:
    """List name -> [(abstract syntax UID, TS list name)]; no 128 limit for SCP use (3.6.9)."""
    lists: dict[str, list[tuple[str, str]]] = {}
    for section in _required(tree, "PRESENTATIONCONTEXTS"):
        for key, value in _numbered(section, "PRESENTATIONCONTEXT"):
            abstract, rest = _split(value, key)
            ts_key = _mangle(rest)
            if ts_key not in ts_lists:
                raise ProfileError(f"transfer syntax key undefined: {ts_key}")
            if not section.name or not abstract:
                raise ProfileError(ILLEGAL_CALL)
            uid = resolve_uid(abstract)
            if not valid_uid(uid):
                raise ProfileError(f"not a valid abstract syntax UID: {abstract}")
            lists.setdefault(section.name, []).append((uid, ts_key))
    return lists


def role_lists(tree: ConfigTree) -> dict[str, dict[str, str]]:
    lists: dict[str, dict[str, str]] = {}
    for section in tree.sections("SCPSCUROLESELECTION") or []:
        for key, value in _numbered(section, "ROLE"):
            abstract, rest = _split(value, key)
            role = rest.translate(_ASCII_UPPER)
            if role not in ROLES:
                raise ProfileError(f"syntax error: unknown role key in entry {key} in config file")
            uid = resolve_uid(abstract)
            if not valid_uid(uid):
                raise ProfileError(f"not a valid abstract syntax UID: {abstract}")
            roles = lists.setdefault(section.name, {})
            if uid in roles:
                raise ProfileError(f"role selection defined twice for abstract syntax UID: {abstract}")
            roles[uid] = role
    return lists


def _hex_bytes(data: str, key: str) -> bytes:
    if not re.fullmatch(r"(?:[0-9A-Fa-f]{2})*", data):
        raise ProfileError(f"parse error in extended negotiation data in entry {key} in config file")
    return bytes.fromhex(data)


def extended_lists(tree: ConfigTree) -> dict[str, list[tuple[str, bytes]]]:
    lists: dict[str, list[tuple[str, bytes]]] = {}
    for section in tree.sections("EXTENDEDNEGOTIATION") or []:
        for key, value in _numbered(section, "EXTENDEDNEGOTIATION"):
            abstract, data = _split(value, key)
            if len(data) + 1 > 2048:
                raise ProfileError("extended negotiation data too long, cannot handle > 1024 bytes"
                                   f" in entry {key} in config file")
            raw = _hex_bytes(data, key)
            if not raw:
                raise ProfileError(ILLEGAL_CALL)
            uid = resolve_uid(abstract)
            if not valid_uid(uid):
                raise ProfileError(f"not a valid abstract syntax UID: {abstract}")
            items = lists.setdefault(section.name, [])
            if any(u == uid for u, _ in items):
                raise ProfileError(f"extended negotiation defined twice for abstract syntax UID: {abstract}")
            items.append((uid, raw))
    return lists


# --------------------------------------------------------------------------------------------
# Profiles


@dataclass(frozen=True)
class Profile:
    """What storescp negotiates with: per abstract syntax the TS preference list and role."""

    name: str
    contexts: tuple[tuple[str, tuple[str, ...]], ...]  # (abstract syntax, TS preference) in file order
    roles: dict[str, str]  # abstract syntax -> SCU | SCP | BOTH
    extended: tuple[tuple[str, bytes], ...]  # (abstract syntax, raw extended negotiation data)

    def syntaxes_for(self, abstract_syntax: str) -> tuple[str, ...] | None:
        """The TS preference list of the first entry for ``abstract_syntax``; None if not listed."""
        return next((ts for uid, ts in self.contexts if uid == abstract_syntax), None)


@dataclass(frozen=True)
class _ProfileRefs:
    contexts: str
    roles: str | None
    extended: str | None


def _check_subset(key: str, uids: list[str], pc_key: str, pc_uids: set[str]) -> None:
    for uid in uids:
        if uid not in pc_uids:
            # DCMTK says "role selection list" for both kinds
            raise ProfileError(f"abstract syntax defined in role selection list '{key}' but not in"
                               f" presentation context list '{pc_key}': {uid}")


def profile_refs(tree: ConfigTree, contexts: dict, roles: dict, extended: dict) -> dict[str, _ProfileRefs]:
    refs: dict[str, _ProfileRefs] = {}
    for section in _required(tree, "PROFILES"):
        pc_value = section.get("PRESENTATIONCONTEXTS")
        if pc_value is None:
            raise ProfileError(f"no PRESENTATIONCONTEXTS  entry in section {section.name} in config file")
        pc_key = _mangle(pc_value)
        role_value, ext_value = section.get("SCPSCUROLESELECTION"), section.get("EXTENDEDNEGOTIATION")
        role_key = None if role_value is None else _mangle(role_value)
        ext_key = None if ext_value is None else _mangle(ext_value)
        if pc_key not in contexts:
            raise ProfileError(f"presentation context key undefined: {pc_key}")
        pc_uids = {uid for uid, _ in contexts[pc_key]}
        if role_key is not None:
            if role_key not in roles:
                raise ProfileError(f"role selection key undefined: {role_key}")
            _check_subset(role_key, list(roles[role_key]), pc_key, pc_uids)
        if ext_key is not None:
            if ext_key not in extended:
                raise ProfileError(f"extended negotiation key undefined: {ext_key}")
            _check_subset(ext_key, [u for u, _ in extended[ext_key]], pc_key, pc_uids)
        if section.name in refs:
            raise ProfileError(f"two profiles defined for key: {pc_key}")  # sic: the list's key
        refs[section.name] = _ProfileRefs(pc_key, role_key, ext_key)
    return refs


def _read(path: str) -> bytes:
    """The file's bytes; a folder reads as empty, like ``fopen``/``fread`` on Linux."""
    if Path(path).is_dir():
        return b""
    try:
        return Path(path).read_bytes()
    except OSError:
        raise ProfileError(f"cannot read config file: unable to open configuration file: {path}") from None


def mangle_profile_name(name: str) -> str:
    """``"all dicom"`` -> ``ALLDICOM``: whitespace dropped, upper-cased (spec §11)."""
    return _mangle(name)


def load(path: str, profile_name: str) -> Profile:
    """Read ``path`` and return the SCP profile ``profile_name``, or raise DCMTK's error."""
    tree = parse(_read(path))
    try:
        ts_lists = transfer_syntax_lists(tree)
        contexts = context_lists(tree, ts_lists)
        roles, extended = role_lists(tree), extended_lists(tree)
        refs = profile_refs(tree, contexts, roles, extended)
    except ProfileError as exc:
        raise ProfileError(f"cannot read config file: {exc}") from None
    name = mangle_profile_name(profile_name)
    if name not in refs:
        raise ProfileError(f"unknown configuration profile name: {name}")
    ref = refs[name]
    entries = contexts[ref.contexts]
    if len({uid for uid, _ in entries}) != len(entries):
        raise ProfileError(f"profile '{name}' is not valid for SCP use, duplicate abstract syntaxes found")
    return Profile(
        name=name,
        contexts=tuple((uid, tuple(ts_lists[ts_key])) for uid, ts_key in entries),
        roles=dict(roles.get(ref.roles, {})) if ref.roles else {},
        extended=tuple(extended.get(ref.extended, [])) if ref.extended else (),
    )
