"""The verdict on a scanned pack: one status, the reason in plain words, its JSON shapes.

Pure: the caller gathers the facts (what the manufacturer commissioned for the serial,
what the chain says of the batch and the pack, today's date) and :func:`decide` answers.
No library is needed for the decision; what is written here is our rule, stated once.

Precedence, when several facts hold at once (the first that holds wins)::

    unknown > mismatch > recalled > quarantined > dispensed > expired > active

- ``unknown`` first: a serial the manufacturer never commissioned is a suspect
  counterfeit, and no fact about any batch applies to it.
- ``mismatch`` next: the serial exists, but the GTIN, lot or expiry printed beside it are
  not what was commissioned — a forged or relabelled pack. The batch facts the caller
  looked up belong to the commissioned batch, not to the pack in hand, so they must not
  speak for it.
- ``recalled`` before ``quarantined``: a recall is the manufacturer's final word on the
  whole lot and sends the pack back; a quarantine is a regulator's temporary hold that
  may be lifted, and lifting it must not hide a recall.
- ``quarantined`` before ``dispensed``: both lot-wide actions tell the person holding the
  pack where it must go (back to the manufacturer, aside for the regulator); the pack was
  dispensed is a pack-level fact whose alert the dispense path raises anyway.
- ``expired`` last of the refusals: the least suspicious — a genuine, untouched pack that
  is simply past its date (usable through the expiry day itself).
- ``active``: none of the above; the pack may be handed out.

:meth:`Verdict.to_json` is the shape the CLI and the API print (issue 15, point 7);
:meth:`Verdict.to_lms` maps the verdict to a response of the GS1 Lightweight Messaging
Standard for Verification of Product Identifiers as profiled for the US DSCSA (the
"VRS" response): ``verificationTimestamp``, ``responderGLN``, ``corrUUID`` and
``data.verified`` / ``data.verificationFailureReason`` / ``data.additionalInfo``, with
the codes of the GS1 US DSCSA implementation guideline (release 1.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from healthnft.drugs.gs1 import Pack


class Status(StrEnum):
    """What a verification answers, from the most to the least alarming."""

    UNKNOWN = "unknown"
    MISMATCH = "mismatch"
    RECALLED = "recalled"
    QUARANTINED = "quarantined"
    DISPENSED = "dispensed"
    EXPIRED = "expired"
    ACTIVE = "active"


#: The precedence above, as data (tests check :func:`decide` against it).
PRECEDENCE: tuple[Status, ...] = tuple(Status)


@dataclass(frozen=True)
class Commissioned:
    """What the manufacturer commissioned for the scanned serial (from its node, which
    holds the salts and proofs; the chain only holds the batch's Merkle root)."""

    gtin14: str
    lot: str
    expiry_raw: str  # YYMMDD exactly as commissioned (and printed)


@dataclass(frozen=True)
class ChainFacts:
    """What the chain says of the commissioned batch and of this pack's commitment."""

    recalled: bool = False
    quarantined: bool = False
    dispensed: bool = False
    #: The batch's expiry as registered, if the caller has it (the earlier of it and the
    #: printed date counts).
    batch_expiry: date | None = None


@dataclass(frozen=True)
class Verdict:
    """One status for one pack, and why, in words a pharmacist acts on."""

    status: Status
    reason: str
    pack: Pack
    #: For ``mismatch``: which of ``gtin``, ``lot``, ``expiry`` differ.
    mismatched: tuple[str, ...] = ()

    @property
    def may_dispense(self) -> bool:
        return self.status is Status.ACTIVE

    def to_json(self) -> dict[str, Any]:
        """``{"status", "reason", "gtin", "lot", "expiry", "serial"}``; the expiry as an
        ISO date (a day ``00`` already turned into the month's last day)."""
        return {
            "status": self.status.value,
            "reason": self.reason,
            "gtin": self.pack.gtin14,
            "lot": self.pack.lot,
            "expiry": self.pack.expiry.isoformat(),
            "serial": self.pack.serial,
        }

    def to_lms(
        self,
        *,
        timestamp: datetime | None = None,
        responder_gln: str | None = None,
        corr_uuid: str | None = None,
    ) -> dict[str, Any]:
        """The verdict as a Lightweight Messaging verification response.

        ``verified`` is true only for ``active``: the standard lets the responder's policy
        decide for expired products (``Manufacturer_policy``); here a pack that must not
        be handed out is never reported as verified.
        """
        failure, info = _LMS[self.status]
        if self.status is Status.MISMATCH:
            failure = _lms_mismatch(self.mismatched)
        data: dict[str, Any] = {"verified": failure is None}
        if failure is not None:
            data["verificationFailureReason"] = failure
        if info is not None:
            data["additionalInfo"] = info
        when = (timestamp or datetime.now(UTC)).astimezone(UTC)
        response: dict[str, Any] = {
            "verificationTimestamp": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "data": data,
        }
        if responder_gln is not None:
            response["responderGLN"] = responder_gln
        if corr_uuid is not None:
            response["corrUUID"] = corr_uuid
        return response


def decide(
    pack: Pack, commissioned: Commissioned | None, facts: ChainFacts, today: date
) -> Verdict:
    """The verdict on ``pack`` (see the module docstring for the precedence and why).

    ``commissioned`` is ``None`` when the manufacturer has no such serial for the GTIN;
    ``facts`` describe the *commissioned* batch and this pack's commitment.
    """
    if commissioned is None:
        return Verdict(Status.UNKNOWN, _UNKNOWN, pack)
    mismatched = tuple(
        name
        for name, printed, registered in (
            ("gtin", pack.gtin14, commissioned.gtin14),
            ("lot", pack.lot, commissioned.lot),
            ("expiry", pack.expiry_raw, commissioned.expiry_raw),
        )
        if printed != registered
    )
    if mismatched:
        return Verdict(Status.MISMATCH, _mismatch_reason(mismatched), pack, mismatched)
    if facts.recalled:
        return Verdict(Status.RECALLED, _RECALLED, pack)
    if facts.quarantined:
        return Verdict(Status.QUARANTINED, _QUARANTINED, pack)
    if facts.dispensed:
        return Verdict(Status.DISPENSED, _DISPENSED, pack)
    expiry = min(pack.expiry, facts.batch_expiry or pack.expiry)
    if today > expiry:
        return Verdict(
            Status.EXPIRED,
            f"This pack expired on {expiry.isoformat()}: do not hand it out; dispose of it "
            "as expired stock.",
            pack,
        )
    return Verdict(Status.ACTIVE, _ACTIVE, pack)


# -- words -------------------------------------------------------------------------------

_UNKNOWN = (
    "The manufacturer never commissioned this serial number: the pack may be counterfeit. "
    "Do not hand it out; put it aside and report it."
)
_RECALLED = (
    "The manufacturer has recalled this lot: do not hand it out; return it as the recall "
    "notice says."
)
_QUARANTINED = (
    "A regulator has quarantined this lot: do not hand it out; keep it aside until the "
    "quarantine is lifted."
)
_DISPENSED = (
    "This pack was already dispensed: do not hand it out. A pack dispensed twice is "
    "reported to the manufacturer and the regulator."
)
_ACTIVE = (
    "This pack is genuine and may be handed out: the manufacturer commissioned it, and it "
    "is not recalled, quarantined, dispensed or expired."
)
_FIELD_WORDS = {"gtin": "product code (GTIN)", "lot": "lot", "expiry": "expiry date"}


def _mismatch_reason(mismatched: tuple[str, ...]) -> str:
    words = [_FIELD_WORDS[name] for name in mismatched]
    listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    verb = "differs" if len(words) == 1 else "differ"
    return (
        f"The {listed} printed on this pack {verb} from what the manufacturer commissioned "
        "for its serial number: the pack may be counterfeit or relabelled. Do not hand it "
        "out; put it aside and report it."
    )


# -- Lightweight Messaging (DSCSA) codes ---------------------------------------------------

#: status -> (verificationFailureReason, additionalInfo); None where the field is omitted.
_LMS: dict[Status, tuple[str | None, str | None]] = {
    Status.ACTIVE: (None, None),
    Status.UNKNOWN: ("No_match_GTIN_Serial", "Suspect"),
    Status.MISMATCH: ("No_match_GTIN_Serial_Lot_Expiry", "Suspect"),  # refined below
    Status.RECALLED: ("Not_for_re-distribution", "Recalled"),
    Status.QUARANTINED: ("Not_for_re-distribution", "Suspect"),
    Status.DISPENSED: ("Not_for_re-distribution", "Suspect"),
    Status.EXPIRED: ("Manufacturer_policy", "Expired"),
}


def _lms_mismatch(mismatched: tuple[str, ...]) -> str:
    """The failure code for a mismatch: a different GTIN means the (GTIN, serial) pair
    itself is unknown; otherwise the code names the lot, the expiry, or both."""
    if "gtin" in mismatched:
        return "No_match_GTIN_Serial"
    if mismatched == ("lot",):
        return "No_match_GTIN_Serial_Lot"
    if mismatched == ("expiry",):
        return "No_match_GTIN_Serial_Expiry"
    return "No_match_GTIN_Serial_Lot_Expiry"
