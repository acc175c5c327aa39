"""The pharmacy routes over the demo home: verify a pack by code or photo, dispense it
as the signed-in pharmacy (a second dispense is an alert), a hospital's dispense into a
patient's wallet, refusals as problem documents; and the pharmacy page is served."""

from __future__ import annotations

from healthnft.services.demo import DEMO_BATCHES, DEMO_PHARMACY

GTIN, LOT, EXPIRY, _ = DEMO_BATCHES[0]


def hri(n: int) -> str:
    return f"(01){GTIN}(17){EXPIRY}(10){LOT}(21){LOT[-2:]}{n:05d}"


def _signed_in(served, kind: str, name: str | None = None):
    net = served.app.state.service.net
    who = next(p.address for p in net.catalog.participants()
               if p.kind == kind and (name is None or p.label == name))  # fmt: skip
    client = served.client()
    served.sign_in(client, who)
    return client


def test_verify_by_code_and_by_photo(served) -> None:
    from healthnft.drugs.scan import datamatrix_png

    client = _signed_in(served, "pharmacy", DEMO_PHARMACY)
    r = client.post("/api/drugs/verify", json={"code": hri(3)})
    assert r.status_code == 200 and r.json()["status"] == "active", r.text
    assert set(r.json()) == {"status", "reason", "gtin", "lot", "expiry", "serial", "product"}
    assert r.json()["product"]["name"] == "Amoxicillin 500 mg capsules"
    r = client.post("/api/drugs/verify", json={"code": hri(3).replace("00003", "99999")})
    assert r.json()["status"] == "unknown"
    r = client.post("/api/drugs/verify", files={"image": ("p.png", datamatrix_png(hri(4)))})
    assert r.status_code == 200 and r.json()["serial"].endswith("00004"), r.text
    r = client.post("/api/drugs/verify", files={"image": ("p.png", b"not a picture")})
    assert r.status_code == 400 and "unreadable image" in r.json()["detail"]
    r = client.post("/api/drugs/verify", json={"code": "(01)123"})
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem")
    assert served.client().post("/api/drugs/verify", json={"code": hri(3)}).status_code == 401


def test_dispense_alert_and_refusals(served) -> None:
    client = _signed_in(served, "pharmacy", DEMO_PHARMACY)
    first = client.post("/api/drugs/dispense", json={"code": hri(5)})
    assert first.status_code == 200 and first.json()["outcome"] == "dispensed", first.text
    again = client.post("/api/drugs/dispense", json={"code": hri(5)})
    assert again.json()["alert"] is True
    refused = client.post("/api/drugs/dispense", json={"code": hri(5).replace("00005", "X1")})
    assert refused.status_code == 409 and refused.json()["code"] == "dispense_refused"
    patient = _signed_in(served, "patient")
    assert patient.post("/api/drugs/dispense", json={"code": hri(6)}).status_code == 403


def test_a_hospital_dispenses_into_a_patient_wallet(served) -> None:
    client = _signed_in(served, "hospital")
    r = client.post("/api/drugs/dispense", json={"code": hri(7), "patient": served.patient(0)})
    assert r.status_code == 200, r.text
    token = r.json()["token_id"]
    assert isinstance(token, int)
    owner = served.client()
    served.sign_in(owner, served.patient(0))
    assert owner.get(f"/api/records/{token}/verify").json()["valid"] is True


def test_the_pharmacy_page_is_served(served) -> None:
    client = served.client()
    page = client.get("/pharmacy.html")
    assert page.status_code == 200 and 'for="code"' in page.text and 'for="photo"' in page.text
    assert client.get("/static/pharmacy.js").status_code == 200
