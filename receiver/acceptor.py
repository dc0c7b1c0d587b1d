"""storescp's answer to an A-ASSOCIATE-RQ, in DCMTK's order of checks (spec §2.2, §2.5).

pynetdicom's own acceptor negotiates differently (its rules for rejected contexts, role
items and the order of the AC's contexts are not DCMTK's), so :func:`install` replaces it
for every AE that carries an :class:`AcceptorPolicy`:

1. the receiver's association limit (``[receiver] max_associations``): A-ASSOCIATE-RJ
   2/3/2, transient, local limit exceeded, logged;
2. ``--refuse``: RJ 1/1/1;
3. no presentation context at all: the connection is closed without any PDU;
4. the contexts are decided (:mod:`receiver.negotiation`);
5. an application context other than DICOM's: RJ 1/1/2;
6. ``--reject`` and no Implementation Class UID: RJ 1/1/1;
7. otherwise the A-ASSOCIATE-AC, contexts in the order proposed, refused ones with ILE.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pynetdicom import evt
from pynetdicom.acse import ACSE
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
    SOPClassExtendedNegotiation,
)
from pynetdicom.pdu_items import SCP_SCU_RoleSelectionSubItem
from pynetdicom.presentation import PresentationContext

from receiver import ac_cache
from receiver.assocdump import dump_parameters
from receiver.negotiation import DEFAULT_ROLE, Outcome, Proposed, Rules

log = logging.getLogger("spoolscp.receiver")

DICOM_APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
REJECTED_PERMANENT, REJECTED_TRANSIENT = 0x01, 0x02
SERVICE_USER, SERVICE_PROVIDER_PRESENTATION = 0x01, 0x03
NO_REASON, APP_CONTEXT_NOT_SUPPORTED, LOCAL_LIMIT_EXCEEDED = 0x01, 0x02, 0x02


@dataclass(frozen=True)
class AcceptorPolicy:
    """The association-level storescp options, resolved once at start-up."""

    rules: Rules
    refuse: bool = False
    reject_without_implementation_uid: bool = False
    verbose_pc: bool = False  # +v: the RQ/AC dumps at INFO instead of DEBUG


def _dump_level(policy: AcceptorPolicy) -> int:
    return logging.INFO if policy.verbose_pc else logging.DEBUG


def proposed_role(role_items: dict, abstract_syntax: str) -> str:
    """DCMTK's reading of an RQ role item: SCU, SCP, else both (even for 0/0)."""
    item = role_items.get(abstract_syntax)
    if item is None:
        return DEFAULT_ROLE
    scu, scp = bool(item.scu_role), bool(item.scp_role)
    return "SCU" if scu and not scp else "SCP" if scp and not scu else "BOTH"


def proposed_contexts(rq: A_ASSOCIATE, role_items: dict) -> list[Proposed]:
    """The RQ's contexts; a repeated context ID counts once, as in DCMTK's answer."""
    first = {}
    for cx in rq.presentation_context_definition_list:
        first.setdefault(int(cx.context_id), cx)
    return [
        Proposed(cid, str(cx.abstract_syntax), tuple(str(ts) for ts in cx.transfer_syntax),
                 proposed_role(role_items, str(cx.abstract_syntax)))
        for cid, cx in first.items()
    ]


def _reject(acse: ACSE, result: int, source: int, reason: int) -> None:
    acse.send_reject(result, source, reason)
    evt.trigger(acse.assoc, evt.EVT_REJECTED, {})
    acse.assoc.kill()


def _refusal(acse: ACSE, policy: AcceptorPolicy) -> tuple[int, int, int] | None:
    """The A-ASSOCIATE-RJ due before the contexts are looked at, if any."""
    ae = acse.assoc.ae
    open_now = sum(1 for a in ae.active_associations if a.is_acceptor and a.is_established)
    if open_now >= ae.maximum_associations:  # connections still negotiating do not count
        log.warning("Association Rejected: %d associations open, limit is %d (receiver.max_associations)",
                    open_now, ae.maximum_associations)
        return REJECTED_TRANSIENT, SERVICE_PROVIDER_PRESENTATION, LOCAL_LIMIT_EXCEEDED
    if policy.refuse:
        log.info("Refusing Association (forced via command line)")
        return REJECTED_PERMANENT, SERVICE_USER, NO_REASON
    return None


def _late_refusal(acse: ACSE, policy: AcceptorPolicy, rq: A_ASSOCIATE) -> tuple[int, int, int] | None:
    """The A-ASSOCIATE-RJ due after the contexts were decided, if any."""
    app_context = str(rq.application_context_name or "")
    if app_context != DICOM_APPLICATION_CONTEXT:
        log.info("Association Rejected: Bad Application Context Name: %s", app_context)
        return REJECTED_PERMANENT, SERVICE_USER, APP_CONTEXT_NOT_SUPPORTED
    if policy.reject_without_implementation_uid and not acse.requestor.implementation_class_uid:
        log.info("Association Rejected: No Implementation Class UID provided")
        return REJECTED_PERMANENT, SERVICE_USER, NO_REASON
    return None


class _RoleAnswer(SCP_SCU_RoleSelectionNegotiation):
    """A role item that may grant neither role: DCMTK answers 0/0 when a profile's only role
    is one the SCU did not propose, and pynetdicom refuses to encode that."""

    def from_primitive(self) -> SCP_SCU_RoleSelectionSubItem:
        item = SCP_SCU_RoleSelectionSubItem()
        item.from_primitive(self)
        return item


_RoleAnswer.__name__ = SCP_SCU_RoleSelectionNegotiation.__name__  # pynetdicom filters items by class name


def _context(outcome: Outcome) -> PresentationContext:
    cx = PresentationContext()
    cx._context_id = outcome.context_id  # unchecked: an even ID is echoed as DCMTK does
    cx.abstract_syntax = outcome.abstract_syntax
    cx.transfer_syntax = [outcome.transfer_syntax]
    cx.result = outcome.result
    cx._as_scu, cx._as_scp = False, outcome.accepted  # we serve C-STORE/C-ECHO as SCP
    return cx


def _user_information(acse: ACSE, outcomes: list[Outcome], extended: list[tuple[str, bytes]]) -> list[Any]:
    """The AC's user items in DCMTK's order: max length, class UID, roles, version, extended."""
    ae = acse.assoc.ae
    items: list[Any] = []
    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = ae.maximum_pdu_size
    class_uid = ImplementationClassUIDNotification()
    class_uid.implementation_class_uid = ae.implementation_class_uid
    items += [max_length, class_uid]
    for outcome in outcomes:
        if (role := outcome.role_item()) is not None:
            item = _RoleAnswer()
            item.sop_class_uid, item.scu_role, item.scp_role = role
            items.append(item)
    version = ImplementationVersionNameNotification()
    version.implementation_version_name = ae.implementation_version_name
    items.append(version)
    for uid, raw in extended:
        ext = SOPClassExtendedNegotiation()
        ext.sop_class_uid, ext.service_class_application_information = uid, raw
        items.append(ext)
    return items


def _accept(acse: ACSE, rq: A_ASSOCIATE, outcomes: list[Outcome], extended: list[tuple[str, bytes]]) -> None:
    assoc = acse.assoc
    contexts = [_context(o) for o in outcomes]
    assoc._accepted_cx = {cx.context_id: cx for cx in contexts if cx.result == 0}
    assoc._rejected_cx = [cx for cx in contexts if cx.result != 0]
    ac = A_ASSOCIATE()
    ac.application_context_name = DICOM_APPLICATION_CONTEXT
    ac.calling_ae_title = rq.calling_ae_title
    ac.called_ae_title = rq.called_ae_title
    ac.result, ac.result_source = 0x00, 0x01
    ac.presentation_context_definition_results_list = contexts  # in the order proposed
    ac.user_information = _user_information(acse, outcomes, extended)
    ae = assoc.ae  # everything the AC is made of, above and in _user_information:
    ac_cache.attach(ac, (rq.calling_ae_title, rq.called_ae_title, tuple(outcomes), tuple(extended),
                         ae.maximum_pdu_size, ae.implementation_class_uid, ae.implementation_version_name))
    acse.acceptor.primitive = ac
    acse.dul.send_pdu(ac)
    evt.trigger(assoc, evt.EVT_ACCEPTED, {})
    assoc.is_established = True
    evt.trigger(assoc, evt.EVT_ESTABLISHED, {})


def negotiate(acse: ACSE, policy: AcceptorPolicy) -> None:
    """Answer the RQ held by ``acse`` as storescp with ``policy`` would."""
    rq = acse.requestor.primitive
    acse.requestor.ae_title = rq.calling_ae_title
    proposed = proposed_contexts(rq, acse.requestor.role_selection)
    dump = log.isEnabledFor(_dump_level(policy))  # building the dumps costs more than the AC
    if dump:
        log.log(_dump_level(policy), "Parameters:\n%s", dump_parameters(acse, "RQ", proposed, None))
    if (rj := _refusal(acse, policy)) is not None:
        return _reject(acse, *rj)
    if not proposed:
        log.debug("0006:0110 No presentation context proposed")
        acse.dul.socket.close()  # no RJ, no abort: the connection just ends (Evt17)
        acse.assoc.kill()
        return None
    outcomes = policy.rules.decide(proposed)
    if (rj := _late_refusal(acse, policy, rq)) is not None:
        return _reject(acse, *rj)
    _accept(acse, rq, outcomes, policy.rules.extended_items(outcomes))
    if dump:
        log.log(_dump_level(policy), "%s", dump_parameters(acse, "AC", proposed, outcomes))
    return None


_original = ACSE._negotiate_as_acceptor


def _negotiate_as_acceptor(self: ACSE) -> None:
    policy = getattr(self.assoc.ae, "storescp_policy", None)
    if policy is None:
        return _original(self)
    try:
        return negotiate(self, policy)
    except Exception:  # noqa: BLE001 - the peer must get an answer, not a dead thread
        log.exception("association negotiation failed, aborting")
        self.assoc.abort()
        return None


def install() -> None:
    """Route pynetdicom's acceptor through :func:`negotiate`; calling again is harmless."""
    ACSE._negotiate_as_acceptor = _negotiate_as_acceptor  # type: ignore[method-assign]
    ac_cache.install()
