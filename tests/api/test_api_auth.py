"""Authorization of the HTTP API: sessions, sign-in refusals, and no existence leaks."""

from __future__ import annotations

import re

import pytest

from healthnft.api import siwe
from healthnft.services.access import NOT_VISIBLE

#: Open before sign-in: the challenge, its answer, the network's membership terms (public:
#: a wallet not yet registered signs its card with them), and (demo homes only) the demo keys.
OPEN_ROUTES = {"/api/auth/challenge", "/api/auth/verify", "/api/network/membership",
               "/api/demo/wallets", "/api/demo/patients", "/api/demo/patients/{address}/keystore"}


def _api_routes(app) -> list[tuple[str, str]]:
    """Every API route, read from the OpenAPI document (routers are included lazily)."""
    out = []
    for path, item in app.openapi()["paths"].items():
        if not path.startswith("/api/") or path in OPEN_ROUTES:
            continue
        for method in sorted(m.upper() for m in item if m in ("get", "post", "delete", "put")):
            out.append((method, re.sub(r"\{[^}]+\}", "1", path)))
    return out


def _body_for(method: str, path: str) -> dict:
    if path == "/api/mint":
        return {"data": {"patient": "0x0"}, "files": {"files": ("a.json", b"{}")}}
    if method in ("POST", "DELETE"):
        return {"json": {"to": "0x0", "purpose": "research", "confirm": True, "owner": "0x0"}}
    return {}


def test_every_endpoint_refuses_a_missing_forged_or_expired_session(served) -> None:
    client = served.client()
    routes = _api_routes(served.app)
    assert len(routes) >= 15, routes
    for method, path in routes:
        r = client.request(method, path, **_body_for(method, path))
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["detail"] == "sign in first (no session, or it expired)"
        assert r.json()["code"] == "credential_rejected"
        r = client.request(method, path, headers={"Authorization": "Bearer forged-token"},
                           **_body_for(method, path))
        assert r.status_code == 401, (method, path)
    # An expired session: valid a moment ago, refused once its time is up.
    served.sign_in(client, served.patient(0))
    assert client.get("/api/me").status_code == 200
    served.clock[0] += 601
    try:
        for method, path in routes:
            r = client.request(method, path, **_body_for(method, path))
            assert r.status_code == 401, (method, path)
    finally:
        served.clock[0] -= 601
    assert client.get("/api/me").status_code == 401  # expired sessions are dropped


def test_sign_in_refuses_replay_foreign_site_wrong_key_and_strangers(served) -> None:
    client = served.client()
    alice, bob = served.patient(0), served.patient(1)
    msg = client.get("/api/auth/challenge", params={"address": alice}).json()["message"]
    good = siwe.sign(msg, served.key(alice))

    def verify(message: str, signature: str) -> tuple[int, str]:
        r = client.post("/api/auth/verify", json={"message": message, "signature": signature})
        return r.status_code, r.json().get("detail", "")

    assert verify(msg, siwe.sign(msg, served.key(bob)))[0] == 401  # someone else's key
    assert verify(msg, "0x1234")[0] == 401  # not a signature
    foreign = msg.replace("testserver wants", "evil.example wants", 1)
    status, reason = verify(foreign, siwe.sign(foreign, served.key(alice)))
    assert status == 401 and "another site" in reason
    assert verify(msg, good)[0] == 200
    status, reason = verify(msg, good)  # the same signed message again
    assert status == 401 and "already used" in reason
    # An expired message.
    msg = client.get("/api/auth/challenge", params={"address": alice}).json()["message"]
    served.clock[0] += 301
    try:
        status, reason = verify(msg, siwe.sign(msg, served.key(alice)))
    finally:
        served.clock[0] -= 301
    assert status == 401 and "expired" in reason
    # A key that is not a participant of the network.
    from eth_account import Account

    stranger = Account.create()
    msg = client.get("/api/auth/challenge", params={"address": stranger.address}).json()["message"]
    status, reason = verify(msg, siwe.sign(msg, bytes(stranger.key)))
    assert status == 401 and "not a participant" in reason
    assert "detail" in client.post("/api/auth/verify",
                                  json={"message": "hello", "signature": good}).json()


def _problem(response) -> tuple[int, str, str]:
    """Status, machine code and message of an RFC 9457 problem answer."""
    assert response.headers["content-type"] == "application/problem+json", response.text
    doc = response.json()
    assert doc["status"] == response.status_code and doc["type"].endswith(doc["code"])
    return response.status_code, doc["code"], doc["detail"]


def _first(client, category: str) -> int:
    rows = client.get("/api/records").json()
    return next(r["token_id"] for r in rows if r["category"] == category)


def test_a_foreign_session_sees_nothing_and_learns_nothing(served) -> None:
    alice_client, bob_client = served.client(), served.client()
    served.sign_in(alice_client, served.patient(0))
    served.sign_in(bob_client, served.patient(1))
    lab = _first(alice_client, "laboratory")
    assert alice_client.get(f"/api/records/{lab}").status_code == 200
    missing = bob_client.get("/api/records/999999")
    foreign = bob_client.get(f"/api/records/{lab}")
    assert foreign.status_code == missing.status_code == 404
    assert _problem(foreign) == _problem(missing) == (404, "not_found", NOT_VISIBLE)  # no leak
    for method, path, body in [
        ("GET", f"/api/records/{lab}/verify", None),
        ("POST", f"/api/records/{lab}/transfer", {"to": served.research}),
        ("POST", f"/api/records/{lab}/burn", {"confirm": True}),
        ("POST", "/api/grants", {"to": served.research, "purpose": "research", "days": 3,
                                 "token_ids": [lab]}),
    ]:
        r = bob_client.request(method, path, json=body)
        assert _problem(r) == (404, "not_found", NOT_VISIBLE), (path, r.text)
    assert lab not in {r["token_id"] for r in bob_client.get("/api/records").json()}
    # Alice's grant cannot be revoked by Bob; her requests cannot be answered by him.
    g = alice_client.post("/api/grants", json={"to": served.research, "purpose": "research",
                                               "days": 3, "token_ids": [lab]}).json()
    r = bob_client.delete(f"/api/grants/{g['grant_id']}")
    assert r.status_code == 404 and "no such grant of yours" in r.json()["detail"]
    assert g["grant_id"] not in {x["grant_id"] for x in bob_client.get("/api/grants").json()}
    research = served.client()
    served.sign_in(research, served.research)
    req = research.post("/api/requests", json={"owner": served.patient(0), "purpose": "research",
                                               "category": "vital-signs", "days": 5,
                                               "reason": "cohort study"}).json()
    assert req["state"] == "pending"
    r = bob_client.post(f"/api/requests/{req['request_id']}/approve", json={})
    assert _problem(r) == (404, "not_found", f"request {req['request_id']}: no such request "
                                             "to you")
    assert alice_client.delete(f"/api/grants/{g['grant_id']}").status_code == 200
    # The record's content never appears in a refusal.
    opened = alice_client.get(f"/api/records/{lab}").json()
    assert opened["measurements"] and opened["verification"]["badge"] == "authentic"
    value = opened["measurements"][0]["value"]
    assert value and value not in foreign.text


def test_share_open_revoke_through_the_api(served) -> None:
    patient, research = served.client(), served.client()
    served.sign_in(patient, served.patient(2))
    served.sign_in(research, served.research)
    lab = _first(patient, "laboratory")
    other = _first(patient, "condition")
    assert research.get(f"/api/records/{lab}").status_code == 404
    g = patient.post("/api/grants", json={"to": served.research, "purpose": "research",
                                          "days": 7, "token_ids": [lab]})
    assert g.status_code == 200, g.text
    gid = g.json()["grant_id"]
    listed = {r["grant_id"]: r for r in patient.get("/api/grants").json()}
    assert listed[gid]["state"] == "active" and listed[gid]["token_ids"] == [lab]
    assert lab in {r["token_id"] for r in research.get("/api/shared").json()}
    opened = research.get(f"/api/records/{lab}")
    assert opened.status_code == 200 and opened.json()["owned"] is False
    assert research.get(f"/api/records/{other}").status_code == 404  # outside the grant
    log = patient.get("/api/access-log").json()
    assert any(e["token_id"] == lab and e["grantee"] == served.research for e in log)
    assert patient.delete(f"/api/grants/{gid}").status_code == 200
    assert research.get(f"/api/records/{lab}").status_code == 404
    assert lab not in {r["token_id"] for r in research.get("/api/shared").json()}


def test_only_patients_share_and_only_hospitals_mint(served, fhir_dir) -> None:
    research = served.client()
    served.sign_in(research, served.research)
    r = research.post("/api/grants", json={"to": served.hospital, "purpose": "research",
                                           "days": 1, "category": "laboratory"})
    assert r.status_code == 403
    r = research.post("/api/mint", data={"patient": served.patient(0)},
                      files={"files": ("x.json", b"{}")})
    assert r.status_code == 403 and "only a hospital" in r.json()["detail"]


@pytest.mark.slow
def test_a_hospital_mints_an_upload_with_progress(served, tmp_path) -> None:
    import json
    import time

    hospital, patient = served.client(), served.client()
    served.sign_in(hospital, served.hospital)
    served.sign_in(patient, served.patient(3))
    before = len(patient.get("/api/records").json())
    obs = {"resourceType": "Observation", "id": "web-upload-1", "status": "final",
           "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                     "observation-category", "code": "laboratory"}]}],
           "code": {"text": "Glucose"}, "subject": {"reference": "urn:uuid:web-patient"},
           "effectiveDateTime": "2024-05-01T08:00:00Z",
           "valueQuantity": {"value": 5.4, "unit": "mmol/L"}}
    bad = hospital.post("/api/mint", data={"patient": served.patient(3)},
                        files={"files": ("bad.json", b"{not json")})
    job = bad.json()
    while job["state"] == "running":
        time.sleep(0.05)
        job = hospital.get(f"/api/jobs/{job['job_id']}").json()
    assert job["state"] == "failed" and "JSON" in job["error"], job
    r = hospital.post("/api/mint", data={"patient": served.patient(3)},
                      files={"files": ("o.json", json.dumps(obs).encode())})
    job = r.json()
    while job["state"] == "running":
        time.sleep(0.05)
        job = hospital.get(f"/api/jobs/{job['job_id']}").json()
    assert job["state"] == "done", job
    assert job["result"]["records_minted"] == 1 and job["done"] == job["total"] == 1
    rows = patient.get("/api/records").json()
    assert len(rows) == before + 1
    new = job["result"]["token_ids"][0]
    opened = patient.get(f"/api/records/{new}").json()
    assert opened["summary"] == "Blood test — Glucose 5.4 mmol/L — 1 May 2024"
    assert opened["verification"]["badge"] == "authentic"
    assert patient.get(f"/api/jobs/{job['job_id']}").status_code == 404  # not the patient's job


def test_openapi_and_offline_docs(served) -> None:
    client = served.client()
    spec = client.get("/openapi.json").json()
    assert "/api/records/{token_id}" in spec["paths"] and "/api/grants" in spec["paths"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text.lower()
    assert client.get("/").headers["content-security-policy"].startswith("default-src 'self'")


def test_health_card_for_the_owner_only(served) -> None:
    owner, other = served.client(), served.client()
    served.sign_in(owner, served.patient(4))
    served.sign_in(other, served.patient(5))
    imm = _first(owner, "immunization")
    card = owner.get(f"/api/records/{imm}/health-card")
    assert card.status_code == 200, card.text
    body = card.json()
    assert body["qr_png"] and body["qr_png"][0].startswith("data:image/png;base64,iVBORw0KGgo")
    assert "Immunization" in body["resource_types"] and "Patient" in body["resource_types"]
    refused = other.get(f"/api/records/{imm}/health-card")
    assert _problem(refused) == (404, "not_found", NOT_VISIBLE)
    cond = _first(owner, "condition")
    r = owner.get(f"/api/records/{cond}/health-card")
    assert r.status_code == 400 and "immunization and laboratory" in r.json()["detail"]


def test_an_uploaded_imaging_study_shows_as_a_picture_to_its_owner(served) -> None:
    import time

    from pydicom.data import get_testdata_file

    hospital, patient, other = served.client(), served.client(), served.client()
    served.sign_in(hospital, served.hospital)
    served.sign_in(patient, served.patient(6))
    served.sign_in(other, served.patient(7))
    ct = open(get_testdata_file("CT_small.dcm"), "rb").read()  # noqa: SIM115
    job = hospital.post("/api/mint", data={"patient": served.patient(6)},
                        files={"files": ("scan.dcm", ct)}).json()
    while job["state"] == "running":
        time.sleep(0.05)
        job = hospital.get(f"/api/jobs/{job['job_id']}").json()
    assert job["state"] == "done", job
    token = job["result"]["token_ids"][0]
    opened = patient.get(f"/api/records/{token}").json()
    assert opened["category"] == "imaging" and opened["study"]["series"]
    assert opened["verification"]["badge"] == "authentic"
    png = patient.get(opened["study"]["image"])
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert other.get(f"/api/records/{token}/image.png").status_code == 404
    # Shared with the research institute, the picture opens for it too (custodian path).
    research = served.client()
    served.sign_in(research, served.research)
    assert research.get(f"/api/records/{token}/image.png").status_code == 404
    g = patient.post("/api/grants", json={"to": served.research, "purpose": "research",
                                          "days": 2, "token_ids": [token]}).json()
    shared = research.get(f"/api/records/{token}/image.png")
    assert shared.status_code == 200 and shared.content == png.content
    assert patient.delete(f"/api/grants/{g['grant_id']}").status_code == 200
    assert research.get(f"/api/records/{token}/image.png").status_code == 404
