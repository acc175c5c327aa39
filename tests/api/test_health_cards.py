"""Health cards over HTTP: one QR code, or none when asked; never chunks."""

from __future__ import annotations

import json

from healthnft.credentials.shc import QR_SINGLE_MAX_CHARS


def _card_tokens(client) -> list[int]:
    return [r["token_id"] for r in client.get("/api/records").json()
            if r["category"] in ("immunization", "laboratory")]  # fmt: skip


def test_a_card_has_one_qr_code_and_none_when_asked(served) -> None:
    patient = served.client()
    served.sign_in(patient, served.patient(1))
    token = _card_tokens(patient)[0]
    card = patient.post("/api/health-cards", json={"token_ids": [token]})
    assert card.status_code == 200, card.text
    assert len(card.json()["qr_png"]) == 1 and "chunks" not in card.json()
    plain = patient.post("/api/health-cards", json={"token_ids": [token], "qr": False})
    assert plain.status_code == 200 and plain.json()["qr_png"] == []
    assert json.loads(plain.json()["card"])["verifiableCredential"]
    one = patient.get(f"/api/records/{token}/health-card", params={"qr": "false"})
    assert one.status_code == 200 and one.json()["qr_png"] == []


def test_a_card_too_large_for_one_qr_code_is_refused(served) -> None:
    patient = served.client()
    served.sign_in(patient, served.patient(1))
    tokens = _card_tokens(patient)
    plain = patient.post("/api/health-cards", json={"token_ids": tokens, "qr": False})
    assert plain.status_code == 200, plain.text
    (jws,) = json.loads(plain.json()["card"])["verifiableCredential"]
    assert len(jws) > QR_SINGLE_MAX_CHARS, "the test needs more records than one code holds"
    r = patient.post("/api/health-cards", json={"token_ids": tokens})
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "invalid_input"
    assert "too large for one QR code" in r.json()["detail"]
    assert '"qr": false' in r.json()["detail"]
