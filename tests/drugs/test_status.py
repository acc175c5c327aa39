"""Every status, the precedence between them, and the JSON and Lightweight Messaging shapes."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime

import pytest

from healthnft.drugs.gs1 import parse_pack
from healthnft.drugs.status import (
    PRECEDENCE,
    ChainFacts,
    Commissioned,
    Status,
    Verdict,
    decide,
)

PACK = parse_pack("(01)09501101530003(21)SER123(10)LOT42(17)271200")  # expires 2027-12-31
AS_PRINTED = Commissioned(gtin14="09501101530003", lot="LOT42", expiry_raw="271200")
TODAY = date(2026, 12, 3)


def test_a_genuine_pack_is_active() -> None:
    verdict = decide(PACK, AS_PRINTED, ChainFacts(), TODAY)
    assert verdict.status is Status.ACTIVE and verdict.may_dispense
    assert "may be handed out" in verdict.reason


def test_a_serial_never_commissioned_is_unknown() -> None:
    verdict = decide(PACK, None, ChainFacts(recalled=True, dispensed=True), TODAY)
    assert verdict.status is Status.UNKNOWN and not verdict.may_dispense
    assert "never commissioned" in verdict.reason and "counterfeit" in verdict.reason


@pytest.mark.parametrize(
    ("commissioned", "fields", "words"),
    [
        (Commissioned("09501101530003", "LOT41", "271200"), ("lot",), "The lot printed"),
        (Commissioned("09501101530003", "LOT42", "271231"), ("expiry",), "The expiry date"),
        (Commissioned("09501101530003", "X", "280100"), ("lot", "expiry"), "lot and expiry"),
        (Commissioned("09501101530010", "LOT42", "271200"), ("gtin",), "product code (GTIN)"),
    ],
)
def test_a_pack_unlike_its_commissioning_is_a_mismatch(
    commissioned: Commissioned, fields: tuple[str, ...], words: str
) -> None:
    verdict = decide(PACK, commissioned, ChainFacts(recalled=True), TODAY)
    assert verdict.status is Status.MISMATCH and verdict.mismatched == fields
    assert words in verdict.reason


def test_recalled_quarantined_dispensed() -> None:
    for facts, status, words in [
        (ChainFacts(recalled=True), Status.RECALLED, "recalled this lot"),
        (ChainFacts(quarantined=True), Status.QUARANTINED, "quarantined this lot"),
        (ChainFacts(dispensed=True), Status.DISPENSED, "already dispensed: do not hand it out"),
    ]:
        verdict = decide(PACK, AS_PRINTED, facts, TODAY)
        assert verdict.status is status and words in verdict.reason


def test_expiry_is_inclusive_and_the_batch_date_can_come_first() -> None:
    assert decide(PACK, AS_PRINTED, ChainFacts(), date(2027, 12, 31)).status is Status.ACTIVE
    verdict = decide(PACK, AS_PRINTED, ChainFacts(), date(2028, 1, 1))
    assert verdict.status is Status.EXPIRED and "expired on 2027-12-31" in verdict.reason
    earlier = ChainFacts(batch_expiry=date(2026, 6, 30))
    assert "expired on 2026-06-30" in decide(PACK, AS_PRINTED, earlier, TODAY).reason


def test_precedence_over_every_combination_of_facts() -> None:
    """For each combination of facts, the status is the first in PRECEDENCE that holds."""
    assert PRECEDENCE == (
        Status.UNKNOWN, Status.MISMATCH, Status.RECALLED, Status.QUARANTINED,
        Status.DISPENSED, Status.EXPIRED, Status.ACTIVE,
    )  # fmt: skip
    other_lot = Commissioned("09501101530003", "LOT41", "271200")
    for unknown, mismatch, recalled, quarantined, dispensed, expired in itertools.product(
        (False, True), repeat=6
    ):
        holds = {
            Status.UNKNOWN: unknown,
            Status.MISMATCH: mismatch and not unknown,
            Status.RECALLED: recalled,
            Status.QUARANTINED: quarantined,
            Status.DISPENSED: dispensed,
            Status.EXPIRED: expired,
            Status.ACTIVE: True,
        }
        commissioned = None if unknown else (other_lot if mismatch else AS_PRINTED)
        facts = ChainFacts(recalled=recalled, quarantined=quarantined, dispensed=dispensed)
        today = date(2028, 1, 1) if expired else TODAY
        expected = next(status for status in PRECEDENCE if holds[status])
        assert decide(PACK, commissioned, facts, today).status is expected


def test_the_json_shape() -> None:
    verdict = decide(PACK, AS_PRINTED, ChainFacts(dispensed=True), TODAY)
    shown = verdict.to_json()
    assert list(shown) == ["status", "reason", "gtin", "lot", "expiry", "serial"]
    assert shown == {
        "status": "dispensed",
        "reason": verdict.reason,
        "gtin": "09501101530003",
        "lot": "LOT42",
        "expiry": "2027-12-31",
        "serial": "SER123",
    }
    json.dumps(shown)  # plain JSON types only


WHEN = datetime(2026, 12, 3, 16, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("verdict_of", "verified", "failure", "info"),
    [
        (lambda: decide(PACK, AS_PRINTED, ChainFacts(), TODAY), True, None, None),
        (lambda: decide(PACK, None, ChainFacts(), TODAY), False, "No_match_GTIN_Serial",
         "Suspect"),
        (lambda: decide(PACK, Commissioned("09501101530003", "X", "271200"), ChainFacts(),
                        TODAY), False, "No_match_GTIN_Serial_Lot", "Suspect"),
        (lambda: decide(PACK, Commissioned("09501101530003", "LOT42", "271231"),
                        ChainFacts(), TODAY), False, "No_match_GTIN_Serial_Expiry", "Suspect"),
        (lambda: decide(PACK, Commissioned("09501101530003", "X", "271231"), ChainFacts(),
                        TODAY), False, "No_match_GTIN_Serial_Lot_Expiry", "Suspect"),
        (lambda: decide(PACK, Commissioned("09501101530010", "LOT42", "271200"),
                        ChainFacts(), TODAY), False, "No_match_GTIN_Serial", "Suspect"),
        (lambda: decide(PACK, AS_PRINTED, ChainFacts(recalled=True), TODAY), False,
         "Not_for_re-distribution", "Recalled"),
        (lambda: decide(PACK, AS_PRINTED, ChainFacts(quarantined=True), TODAY), False,
         "Not_for_re-distribution", "Suspect"),
        (lambda: decide(PACK, AS_PRINTED, ChainFacts(dispensed=True), TODAY), False,
         "Not_for_re-distribution", "Suspect"),
        (lambda: decide(PACK, AS_PRINTED, ChainFacts(), date(2028, 1, 1)), False,
         "Manufacturer_policy", "Expired"),
    ],
)  # fmt: skip
def test_the_lightweight_messaging_response(
    verdict_of: object, verified: bool, failure: str | None, info: str | None
) -> None:
    verdict: Verdict = verdict_of()  # type: ignore[operator]
    response = verdict.to_lms(timestamp=WHEN, responder_gln="0950110153001", corr_uuid="c-1")
    assert response["verificationTimestamp"] == "2026-12-03T16:30:00.000Z"
    assert response["responderGLN"] == "0950110153001" and response["corrUUID"] == "c-1"
    expected: dict[str, object] = {"verified": verified}
    if failure:
        expected["verificationFailureReason"] = failure
    if info:
        expected["additionalInfo"] = info
    assert response["data"] == expected


def test_every_status_has_an_lms_mapping_and_optional_fields_are_omitted() -> None:
    response = decide(PACK, AS_PRINTED, ChainFacts(), TODAY).to_lms()
    assert set(response) == {"verificationTimestamp", "data"}
    assert response["verificationTimestamp"].endswith("Z")
