"""Which presentation contexts storescp accepts, with which transfer syntax and role (spec §2.4, §11).

DCMTK decides each proposed context on its own: the abstract syntax must be acceptable
(result 3 otherwise), then the first entry of *its own* preference list that the SCU proposed
anywhere in the context is accepted (result 4 if there is none). The SCU's order never
matters. Without ``-xf`` the acceptable classes are Verification, the 199 default storage
classes and, with ``-pm``, every UID DCMTK has no name for; all share one preference list.
With ``-xf`` the profile lists the classes, each with its own list and optional role.

>>> preference("big")[:2]
['1.2.840.10008.1.2.2', '1.2.840.10008.1.2.1']
>>> len(preference("accept-all"))
35
>>> DefaultRules("uncompr").decide([Proposed(1, VERIFICATION, (ILE, ELE))])[0].transfer_syntax
'1.2.840.10008.1.2.1'
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cached_property

from receiver.profiles import Profile
from receiver.uidnames import is_known
from spoolscp.sopclasses import accepted_by_default

VERIFICATION = "1.2.840.10008.1.1"
ILE = "1.2.840.10008.1.2"
ELE = "1.2.840.10008.1.2.1"
EBE = "1.2.840.10008.1.2.2"
_TS = "1.2.840.10008.1.2."

ACCEPTED = 0
NO_REASON = 2  # DCMTK's answer when a profile requires the SCP role the SCU did not propose
ABSTRACT_SYNTAX_NOT_SUPPORTED = 3
TRANSFER_SYNTAXES_NOT_SUPPORTED = 4

DEFAULT_ROLE = "default"


def _uncompressed() -> list[str]:
    """ELE, EBE, ILE with the local byte order first, as DCMTK does."""
    return [ELE, EBE, ILE] if sys.byteorder == "little" else [EBE, ELE, ILE]


# --prefer-<name> -> the compressed syntax put in front of ELE, EBE, ILE (storescp 3.6.9)
_PREFERRED_FIRST = {
    "lossless": "4.70", "jpeg8": "4.50", "jpeg12": "4.51", "j2k-lossless": "4.90",
    "j2k-lossy": "4.91", "jls-lossless": "4.80", "jls-lossy": "4.81", "mpeg2": "4.100",
    "mpeg2-high": "4.101", "mpeg4": "4.102", "mpeg4-bd": "4.103", "mpeg4-2-2d": "4.104",
    "mpeg4-2-3d": "4.105", "mpeg4-2-st": "4.106", "hevc": "4.107", "hevc10": "4.108",
    "rle": "5", "deflated": "1.99",
}

# +xa in 3.6.9, compressed part (the uncompressed three follow, local byte order first)
_ACCEPT_ALL = (
    "4.91 4.90 4.51 4.50 4.70 4.81 4.80 5 "
    "4.100 4.100.1 4.101 4.101.1 4.102 4.102.1 4.103 4.103.1 4.104 4.104.1 "
    "4.105 4.105.1 4.106 4.106.1 4.107 4.108 4.201 4.202 4.203 4.110 4.111 4.112 1.99 1.98"
).split()


def preference(prefer: str) -> list[str]:
    """The transfer syntax preference list for a ``--prefer-*`` / ``+xi`` / ``+xa`` choice."""
    if prefer == "uncompr":
        return _uncompressed()
    if prefer == "little":
        return [ELE, EBE, ILE]
    if prefer == "big":
        return [EBE, ELE, ILE]
    if prefer == "implicit":
        return [ILE]
    if prefer == "accept-all":
        return [_TS + s for s in _ACCEPT_ALL] + _uncompressed()
    return [_TS + _PREFERRED_FIRST[prefer], ELE, EBE, ILE]


@dataclass(frozen=True)
class Proposed:
    """One presentation context of an A-ASSOCIATE-RQ, with the role proposed for its class."""

    context_id: int
    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...]
    role: str = DEFAULT_ROLE  # default | SCU | SCP | BOTH (from the RQ's role selection items)


@dataclass(frozen=True)
class Outcome:
    """The answer for one context. Refused contexts carry ILE, as DCMTK sends them."""

    context_id: int
    abstract_syntax: str
    result: int
    transfer_syntax: str = ILE
    proposed_role: str = DEFAULT_ROLE
    accepted_role: str = DEFAULT_ROLE

    @property
    def accepted(self) -> bool:
        return self.result == ACCEPTED

    def role_item(self) -> tuple[str, bool, bool] | None:
        """(class, SCU, SCP) of the AC's role selection item; None when the default role applies."""
        if not self.accepted or DEFAULT_ROLE in (self.proposed_role, self.accepted_role):
            return None
        scu = self.accepted_role in ("SCU", "BOTH") and self.proposed_role != "SCP"
        scp = self.accepted_role in ("SCP", "BOTH") and self.proposed_role != "SCU"
        return self.abstract_syntax, scu, scp


def _first_proposed(preferred: tuple[str, ...] | list[str], proposed: tuple[str, ...]) -> str | None:
    return next((ts for ts in preferred if ts in proposed), None)


@dataclass(frozen=True)
class DefaultRules:
    """Negotiation without ``-xf``: one preference list for every acceptable class."""

    prefer: str
    promiscuous: bool = False

    @cached_property
    def syntaxes(self) -> list[str]:
        return preference(self.prefer)

    @cached_property
    def classes(self) -> frozenset[str]:
        return frozenset((VERIFICATION, *accepted_by_default()))

    def acceptable(self, abstract_syntax: str) -> bool:
        if abstract_syntax in self.classes:
            return True
        return self.promiscuous and not is_known(abstract_syntax)

    def decide(self, proposed: list[Proposed]) -> list[Outcome]:
        return [self._one(pc) for pc in proposed]

    def _one(self, pc: Proposed) -> Outcome:
        if not self.acceptable(pc.abstract_syntax):
            return Outcome(pc.context_id, pc.abstract_syntax, ABSTRACT_SYNTAX_NOT_SUPPORTED, proposed_role=pc.role)
        ts = _first_proposed(self.syntaxes, pc.transfer_syntaxes)
        if ts is None:
            return Outcome(pc.context_id, pc.abstract_syntax, TRANSFER_SYNTAXES_NOT_SUPPORTED, proposed_role=pc.role)
        return Outcome(pc.context_id, pc.abstract_syntax, ACCEPTED, ts, pc.role)

    def extended_items(self, outcomes: list[Outcome]) -> list[tuple[str, bytes]]:
        return []


@dataclass(frozen=True)
class ProfileRules:
    """Negotiation with ``-xf``: classes, preference lists, roles and extended items from the profile."""

    profile: Profile

    def decide(self, proposed: list[Proposed]) -> list[Outcome]:
        return [self._one(pc) for pc in proposed]

    def _one(self, pc: Proposed) -> Outcome:
        syntaxes = self.profile.syntaxes_for(pc.abstract_syntax)
        if syntaxes is None:
            return Outcome(pc.context_id, pc.abstract_syntax, ABSTRACT_SYNTAX_NOT_SUPPORTED, proposed_role=pc.role)
        ts = _first_proposed(syntaxes, pc.transfer_syntaxes)
        if ts is None:
            return Outcome(pc.context_id, pc.abstract_syntax, TRANSFER_SYNTAXES_NOT_SUPPORTED, proposed_role=pc.role)
        role = self.profile.roles.get(pc.abstract_syntax, DEFAULT_ROLE)
        if pc.role == DEFAULT_ROLE and role == "SCP":
            # the SCU did not offer to be SCP, which is all the profile accepts
            return Outcome(pc.context_id, pc.abstract_syntax, NO_REASON, proposed_role=pc.role)
        return Outcome(pc.context_id, pc.abstract_syntax, ACCEPTED, ts, pc.role, role)

    def extended_items(self, outcomes: list[Outcome]) -> list[tuple[str, bytes]]:
        """The profile's extended negotiation items whose class has an accepted context."""
        accepted = {o.abstract_syntax for o in outcomes if o.accepted}
        return [(uid, raw) for uid, raw in self.profile.extended if uid in accepted]


Rules = DefaultRules | ProfileRules
