"""DCMTK's A-ASSOCIATE-RQ/AC parameter dump (``-d``, or ``-v +v``), so logs read like storescp's.

Extended negotiation and user identity items are listed by class / type only (DCMTK prints
their raw bytes); everything else follows DCMTK's layout line by line.
"""

from __future__ import annotations

from typing import Any

from receiver.negotiation import (
    ACCEPTED,
    ABSTRACT_SYNTAX_NOT_SUPPORTED,
    NO_REASON,
    TRANSFER_SYNTAXES_NOT_SUPPORTED,
    Outcome,
    Proposed,
)
from receiver import uidnames

_RESULTS = {
    ACCEPTED: "(Accepted)",
    1: "(User Rejection)",
    NO_REASON: "(No Reason)",
    ABSTRACT_SYNTAX_NOT_SUPPORTED: "(Abstract Syntax Not Supported)",
    TRANSFER_SYNTAXES_NOT_SUPPORTED: "(Transfer Syntaxes Not Supported)",
}
_ROLES = {"default": "Default", "SCU": "SCU", "SCP": "SCP", "BOTH": "SCP/SCU"}


def _uid(uid: str) -> str:
    """``=Name`` for UIDs DCMTK knows, the bare UID otherwise."""
    name = uidnames.name_for_uid(uid)
    return f"={name}" if name else uid


def _head(context_id: int, state: str, abstract_syntax: str, role: str) -> list[str]:
    return [f"  Context ID:        {context_id} {state}",
            f"    Abstract Syntax: {_uid(abstract_syntax)}",
            f"    Proposed SCP/SCU Role: {_ROLES[role]}"]


def _proposed_lines(proposed: list[Proposed]) -> list[str]:
    lines = []
    for pc in proposed:
        lines += [*_head(pc.context_id, "(Proposed)", pc.abstract_syntax, pc.role),
                  "    Proposed Transfer Syntax(es):"]
        lines += [f"      {_uid(ts)}" for ts in pc.transfer_syntaxes]
    return lines


def _outcome_lines(outcomes: list[Outcome]) -> list[str]:
    lines = []
    for o in outcomes:
        result = _RESULTS.get(o.result, "(--Invalid Result/Reason--)")
        lines += [*_head(o.context_id, result, o.abstract_syntax, o.proposed_role),
                  f"    Accepted SCP/SCU Role: {_ROLES[o.accepted_role]}"]
        if o.accepted:
            lines.append(f"    Accepted Transfer Syntax: {_uid(o.transfer_syntax)}")
    return lines


def _items_line(label: str, pad: str, items: list[str]) -> list[str]:
    return [f"{label}:{pad}none"] if not items else [f"{label}:", *(f"  {i}" for i in items)]


def dump_parameters(acse: Any, kind: str, proposed: list[Proposed], outcomes: list[Outcome] | None) -> str:
    """The dump DCMTK logs for the RQ (``outcomes`` None) or for the AC."""
    ae, requestor = acse.assoc.ae, acse.requestor
    rq = requestor.primitive
    ext_rq = [str(uid) for uid in requestor.sop_class_extended or {}]
    ext_ac = [str(i.sop_class_uid) for i in acse.acceptor.user_information
              if type(i).__name__ == "SOPClassExtendedNegotiation"] if kind == "AC" else []
    identity = ["present"] if requestor.user_identity else []
    lines = [
        f"====================== BEGIN A-ASSOCIATE-{kind} =====================",
        f"Our Implementation Class UID:      {ae.implementation_class_uid}",
        f"Our Implementation Version Name:   {ae.implementation_version_name}",
        f"Their Implementation Class UID:    {requestor.implementation_class_uid or ''}",
        f"Their Implementation Version Name: {requestor.implementation_version_name or ''}",
        f"Application Context Name:    {rq.application_context_name}",
        f"Calling Application Name:    {rq.calling_ae_title}",
        f"Called Application Name:     {rq.called_ae_title}",
        f"Responding Application Name: {rq.called_ae_title if kind == 'AC' else ''}",
        f"Our Max PDU Receive Size:    {ae.maximum_pdu_size}",
        f"Their Max PDU Receive Size:  {requestor.maximum_length or 0}",
        "Presentation Contexts:",
        *(_proposed_lines(proposed) if outcomes is None else _outcome_lines(outcomes)),
        *_items_line("Requested Extended Negotiation", " ", ext_rq),
        *_items_line("Accepted Extended Negotiation", "  ", ext_ac),
        *_items_line("Requested User Identity Negotiation", " ", identity),
        *_items_line("User Identity Negotiation Response", "  ", []),
        f"======================= END A-ASSOCIATE-{kind} ======================",
    ]
    return "\n".join(lines)
