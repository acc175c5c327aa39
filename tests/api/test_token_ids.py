"""A token id that cannot name a record (negative, 0, 2^63 and up, 2^256 and up) is
answered at every route exactly like one that was never minted: 404 ``not_found``.

Issue #12: ids of 2^64 and more reached a SQLite bind (``OverflowError``) or the ABI
encoder and answered 500.
"""

from __future__ import annotations

import json

import pytest

NEVER_MINTED = 999_999
OUT_OF_RANGE = (-1, 0, 2**63, 2**64, 2**64 + 7, 2**256, 2**256 + 1, 10**90)
#: Routes only a hospital may call (everyone else is refused before the id is looked at).
HOSPITAL_ONLY = ("/attestation/revoke", "/amend")
CORRECTION = {"resourceType": "Observation", "status": "final",
              "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0"}]},
              "subject": {"reference": "Patient/1"}, "valueQuantity": {"value": 5.4}}  # fmt: skip


def _token_routes(app) -> list[tuple[str, str]]:
    """Every route with a {token_id} in its path, from the OpenAPI document."""
    return [(method.upper(), path) for path, item in app.openapi()["paths"].items()
            if "{token_id}" in path for method in item
            if method in ("get", "post", "delete")]  # fmt: skip


def _call(client, method: str, path: str, token_id: int, served) -> object:
    # Other path parameters get a well-formed value (a chunk digest: 64 hex digits).
    url = path.replace("{token_id}", str(token_id)).replace("{digest}", "ab" * 32)
    if url.endswith("/amend"):
        files = {"file": ("fix.json", json.dumps(CORRECTION).encode(), "application/json")}
        return client.post(url, files=files)
    body = {"to": served.research, "confirm": True, "issuer": "demo-hospital"}
    return client.request(method, url, json=body if method == "POST" else None)


def _answer(response) -> tuple[int, str, str]:
    doc = response.json()
    return response.status_code, doc.get("code", ""), doc.get("detail", "")


@pytest.fixture(scope="module")
def clients(served):
    patient, hospital = served.client(), served.client()
    served.sign_in(patient, served.patient(0))
    served.sign_in(hospital, served.hospital)
    return patient, hospital


def test_every_token_route_answers_an_out_of_range_id_as_not_found(served, clients) -> None:
    patient, hospital = clients
    routes = _token_routes(served.app)
    assert len(routes) >= 10, routes
    for method, path in routes:
        client = hospital if path.endswith(HOSPITAL_ONLY) else patient
        never = _call(client, method, path, NEVER_MINTED, served)
        assert never.status_code == 404, (path, never.text)
        for token_id in OUT_OF_RANGE:
            r = _call(client, method, path, token_id, served)
            assert r.headers["content-type"] == "application/problem+json", (path, token_id)
            status, code, detail = _answer(r)
            assert (status, code) == (404, "not_found"), (method, path, token_id, r.text)
            # Word for word what a never-minted id gets (the id itself aside).
            assert detail.replace(str(token_id), "N") == _answer(never)[2].replace(
                str(NEVER_MINTED), "N"
            ), (path, token_id)


def test_ids_in_a_body_out_of_range_are_invalid_input(served, clients) -> None:
    """A body is validated before any service runs: an id out of the index's range is a
    400 naming the field (0 is in range, and answered as never minted)."""
    patient, _hospital = clients
    research = served.client()
    served.sign_in(research, served.research)
    for token_id in (t for t in OUT_OF_RANGE if t != 0):
        calls = [
            patient.post("/api/grants", json={"to": served.research, "purpose": "research",
                                              "days": 3, "token_ids": [token_id]}),
            patient.post("/api/health-cards", json={"token_ids": [token_id]}),
            research.post("/api/requests", json={"owner": served.patient(0), "days": 5,
                                                 "purpose": "research", "token_id": token_id}),
        ]  # fmt: skip
        for r in calls:  # ids in a body are validated first: 400, naming the field
            assert r.status_code == 400 and r.json()["code"] == "invalid_input", r.text
            assert r.json()["fields"], r.text
    # A card of the patient's own record plus an out-of-range id: refused, not half made.
    mine = next(r["token_id"] for r in patient.get("/api/records").json())
    r = patient.post("/api/health-cards", json={"token_ids": [mine, 2**64]})
    assert r.status_code == 400 and r.json()["fields"], r.text
