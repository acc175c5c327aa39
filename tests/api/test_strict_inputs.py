"""The irreversible step needs a real ``true`` (issue 12.11: burn accepted ``"yes"``)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("confirm", ["yes", "true", 1, "1", None])
def test_burn_wants_the_boolean_true_and_nothing_like_it(served, confirm) -> None:
    patient = served.client()
    served.sign_in(patient, served.patient(5))
    token = patient.get("/api/records").json()[0]["token_id"]
    r = patient.post(f"/api/records/{token}/burn", json={"confirm": confirm})
    assert r.status_code == 400 and r.json()["code"] == "invalid_input", r.text
    assert r.json()["fields"] == ["confirm"]
    assert patient.get(f"/api/records/{token}").status_code == 200  # still there


@pytest.mark.parametrize("credential", ["/etc/passwd", "../index.sqlite", "config.json",
                                        "a/b.c.d", "no-dots-at-all"])  # fmt: skip
def test_revoking_takes_a_credential_never_a_path_on_the_server(served, credential) -> None:
    """A request's text was read as a server file when it was not JWS-shaped: a web
    client could make the server read files and learn from the error whether they exist."""
    hospital = served.client()
    served.sign_in(hospital, served.hospital)
    r = hospital.post("/api/credentials/revoke", json={"credential": credential})
    assert r.status_code == 400 and r.json()["code"] == "invalid_input", r.text
    assert r.json()["detail"].startswith("not a credential")
