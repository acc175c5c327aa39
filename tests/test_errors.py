"""One error model: each class has a stable code, an exit code and an HTTP status, and
both doors (the CLI and the web API) answer with exactly those."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from conftest import run_cli
from healthnft import errors
from healthnft.api import problems

EXPECTED = {  # class: (code, exit code, HTTP status)
    errors.InvalidInput: ("invalid_input", 2, 400),
    errors.InputNotFound: ("input_not_found", 2, 400),
    errors.TooLarge: ("too_large", 2, 413),
    errors.InvalidRecord: ("invalid_record", 3, 422),
    errors.NotFound: ("not_found", 4, 404),
    errors.UnknownParticipant: ("unknown_participant", 4, 404),
    errors.CredentialRejected: ("credential_rejected", 5, 401),
    errors.AccessDenied: ("access_denied", 6, 403),
    errors.NotAnIssuer: ("not_an_issuer", 4, 403),
    errors.Tampered: ("tampered", 7, 409),
    errors.LedgerError: ("ledger", 8, 502),
    errors.Conflict: ("conflict", 10, 409),
    errors.DispenseRefused: ("dispense_refused", 10, 409),
    errors.Unavailable: ("unavailable", 11, 503),
    errors.MintInterrupted: ("mint_interrupted", 9, 503),
    errors.RateLimited: ("rate_limited", 11, 429),
    errors.ChainMissing: ("chain_missing", 12, 503),
}


def test_every_class_is_listed_with_a_unique_code() -> None:
    assert set(errors.ALL_ERRORS) == set(EXPECTED)
    codes = [cls.code for cls in errors.ALL_ERRORS]
    assert len(set(codes)) == len(codes)
    for cls, (code, exit_code, status) in EXPECTED.items():
        assert (cls.code, cls.exit_code, cls.http_status) == (code, exit_code, status), cls
        assert cls.__doc__ and cls.code in errors.__doc__  # the tree in the docstring names it


@pytest.fixture(scope="module")
def raising_app() -> TestClient:
    app = FastAPI()
    problems.install(app)

    @app.get("/raise/{name}")
    def _raise(name: str) -> None:
        raise getattr(errors, name)(f"{name} happened to token 7")

    @app.get("/boom")
    def _boom() -> None:
        raise RuntimeError("secret value 5.6 mmol/L")

    @app.get("/typed/{n}")
    def _typed(n: int) -> dict:
        return {"n": n}

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize("cls", list(EXPECTED), ids=lambda c: c.__name__)
def test_the_api_answers_each_class_as_one_problem_document(raising_app, cls) -> None:
    code, _exit, status = EXPECTED[cls]
    r = raising_app.get(f"/raise/{cls.__name__}")
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json() == {"type": f"urn:healthnft:problem:{code}", "title": cls.title,
                        "status": status, "detail": f"{cls.__name__} happened to token 7",
                        "code": code, "instance": f"/raise/{cls.__name__}"}


def test_unexpected_and_invalid_requests_are_problems_without_values(raising_app) -> None:
    boom = raising_app.get("/boom")
    assert boom.status_code == 500 and boom.json()["code"] == "internal"
    assert "5.6" not in boom.text and "RuntimeError" in boom.json()["detail"]
    bad = raising_app.get("/typed/not-a-number")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_input"
    assert bad.json()["fields"] == ["path.n"] and "not-a-number" not in bad.json()["detail"]
    missing = raising_app.get("/no/such/path")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


@pytest.mark.parametrize("cls", list(EXPECTED), ids=lambda c: c.__name__)
def test_the_cli_exits_with_each_class_code(cls, monkeypatch, capsys) -> None:
    import healthnft.cli as cli

    def failing(*_args: object, **_kwargs: object) -> None:  # called as app(...)
        raise cls(f"{cls.__name__} happened to token 7")

    monkeypatch.setattr(cli, "app", failing)
    with pytest.raises(SystemExit) as stop:
        cli.main()
    assert stop.value.code == EXPECTED[cls][1]
    assert capsys.readouterr().err == f"error: {cls.__name__} happened to token 7\n"


def test_real_commands_map_to_their_classes(tmp_path: Path) -> None:
    """A few real refusals, end to end: the class decides the exit code."""
    nowhere = run_cli(tmp_path / "none", "wallet", "list", "--owner", "0x" + "1" * 40)
    assert nowhere.returncode == errors.NotFound.exit_code
    assert nowhere.stderr.startswith("error: no healthnft network in ")
    missing = run_cli(tmp_path, "shc", "verify", str(tmp_path / "absent.smart-health-card"),
                      "--json")
    assert missing.returncode == errors.InputNotFound.exit_code
    assert json.loads(missing.stdout)["valid"] is False
