"""How long access may last: one limit for shares, requests and policies, at every door.

The ConsentManager contract refuses a request longer than ten years; shares and policies
have no bound on chain, and the CLI passed any ``--days`` on (a grant of 100000 days was
made, a request of 100000 days failed as a ledger error). The service now refuses 0,
negative and more than :data:`MAX_GRANT_DAYS` days, naming the limit, for every door.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from healthnft.errors import InvalidInput
from healthnft.services.access import DAY
from healthnft.services.sharing import MAX_GRANT_DAYS

CONTRACT = REPO / "src" / "healthnft" / "ledger" / "contracts" / "ConsentManager.vy"


def test_the_limit_is_the_one_the_contract_puts_on_a_request() -> None:
    source = CONTRACT.read_text()
    m = re.search(r"assert duration > 0 and duration <= ([0-9 *]+), "
                  r"\"consent: duration out of range\"", source)  # fmt: skip
    assert m, "ConsentManager no longer bounds a request's duration this way"
    seconds = 1
    for factor in m.group(1).split("*"):
        seconds *= int(factor)
    assert MAX_GRANT_DAYS * DAY == seconds == 3650 * DAY


def _refused(proc, *fragments: str) -> None:
    assert proc.returncode == InvalidInput.exit_code, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "internal error" not in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("days", ["0", "-1", str(MAX_GRANT_DAYS + 1), "100000"])
def test_days_out_of_range_are_refused_by_every_command(
    fresh_demo_home: tuple[Path, dict], days: str
) -> None:
    home, summary = fresh_demo_home
    patient = summary["patients"][0]["address"]
    hospital = summary["issuer"]["address"]
    token = str(json.loads(run_cli(home, "wallet", "list", "--owner", patient, "--json",
                                   check=True).stdout)[0]["token_id"])  # fmt: skip
    limit = str(MAX_GRANT_DAYS)
    _refused(run_cli(home, "share", token, "--owner", patient, "--to", hospital,
                     "--purpose", "treatment", "--days", days), limit)  # fmt: skip
    _refused(run_cli(home, "share", "--category", "laboratory", "--owner", patient, "--to",
                     hospital, "--purpose", "treatment", "--days", days), limit)  # fmt: skip
    _refused(run_cli(home, "request", "--owner", patient, "--as", hospital, "--purpose",
                     "treatment", "--token-id", token, "--days", days), limit)  # fmt: skip
    _refused(run_cli(home, "policy", "add", "--owner", patient, "--kind", "hospital",
                     "--purpose", "treatment", "--days", days), limit)  # fmt: skip
    _refused(run_cli(home, "policy", "add", "--owner", patient, "--kind", "hospital",
                     "--purpose", "treatment", "--valid-days", days), limit)  # fmt: skip
    grants = json.loads(run_cli(home, "grants", "--owner", patient, "--json").stdout or "[]")
    assert grants == []


def test_the_longest_grant_is_accepted(fresh_demo_home: tuple[Path, dict]) -> None:
    home, summary = fresh_demo_home
    patient = summary["patients"][0]["address"]
    hospital = summary["issuer"]["address"]
    proc = run_cli(home, "share", "--category", "laboratory", "--owner", patient, "--to",
                   hospital, "--purpose", "treatment", "--days", str(MAX_GRANT_DAYS),
                   "--json", check=True)  # fmt: skip
    grant = json.loads(proc.stdout)
    assert grant["expires"] > 0
    asked = run_cli(home, "request", "--owner", patient, "--as", hospital, "--purpose",
                    "treatment", "--category", "immunization", "--days", str(MAX_GRANT_DAYS),
                    "--json", check=True)  # fmt: skip
    assert json.loads(asked.stdout)["days"] == MAX_GRANT_DAYS


@pytest.mark.parametrize(("path", "body"), [
    ("/api/grants", {"to": "{hospital}", "purpose": "treatment", "category": "laboratory"}),
    ("/api/requests", {"owner": "{patient}", "purpose": "treatment", "category": "laboratory"}),
    ("/api/policies", {"kind": "research", "purpose": "research"}),
])  # fmt: skip
def test_the_web_api_has_the_same_limit(served, path: str, body: dict) -> None:
    client = served.client()
    who = served.research if path == "/api/requests" else served.patient(2)
    served.sign_in(client, who)
    filled = {k: v.format(hospital=served.hospital, patient=served.patient(2))
              for k, v in body.items()}  # fmt: skip
    for days in (0, MAX_GRANT_DAYS + 1):
        r = client.post(path, json={**filled, "days": days})
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "invalid_input" and r.json()["fields"] == ["days"]
