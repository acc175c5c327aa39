"""Nothing that identifies a patient, and no clinical value, reaches the chain or the CLI output.

Acceptance: after minting the Synthea data, search the exported chain (raw bytes,
hex and UTF-8) for every patient name, identifier, SSN, birth date, address and
every Observation value: zero hits. Also the logs and error messages of a
failing run.

The needles are collected from the input files themselves (whatever ``fhir_dir``
holds: the Synthea bundles, or the package's generated sample when
``../shared`` is absent), never typed in by hand.

Skip rule (what is *not* searched, and why):

- ``state`` and ``country`` of addresses are not collected: state-level
  geography is not an identifier under HIPAA's safe harbour;
- a text needle shorter than :data:`MIN_TEXT` characters, or one of
  :data:`GENERIC` (honorifics, "US", state names, ...), is skipped: it would be
  found by chance and tells nothing about a patient;
- a number with fewer than :data:`MIN_SIGNIFICANT` significant digits ("72",
  "5.4", "0.0") is skipped as a bare number; every Observation number is,
  however, also searched in context, as its canonical JSON member
  (``"value":72``): that is the form it has in the committed record;
- the binary searches (the needle's UTF-8 bytes in the raw ``chain.sqlite``
  file, and their lowercase hex anywhere in the export) need at least
  :data:`MIN_BINARY` bytes: a given 3-byte string occurs by chance in the
  ~150 kB of hashes, signatures and keys of a chain about once in a hundred
  runs, which is no evidence of a leak. Shorter needles are searched as text
  (and in context, above).

The UTF-8 search of the export matches whole tokens (not preceded or followed
by a letter or digit): the export is mostly hex, in which any digit string of a
few characters occurs by chance ("01581" inside a hash); a leak of a text value
would sit between quotes, spaces or punctuation.
"""

from __future__ import annotations

import copy
import json
import re
import sqlite3
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import rfc8785

from conftest import SYNTHEA, run_cli

MIN_TEXT = 4
MIN_SIGNIFICANT = 3
MIN_BINARY = 4
GENERIC = frozenset(
    {
        "us",
        "usa",
        "united states",
        "massachusetts",
        "ma",
        "mr.",
        "mrs.",
        "ms.",
        "miss",
        "dr.",
        "jr.",
        "sr.",
        "phone",
        "home",
        "email",
    }
)
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")
_GEO = "http://hl7.org/fhir/StructureDefinition/geolocation"
_MAIDEN = "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName"
_BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"


@dataclass(frozen=True)
class Needle:
    kind: str
    text: str

    @property
    def numeric(self) -> bool:
        return bool(_NUMBER.fullmatch(self.text))

    @property
    def integer(self) -> bool:
        return self.numeric and re.fullmatch(r"-?\d+", self.text) is not None

    def pattern(self, flags: int = 0) -> re.Pattern[str]:
        return re.compile(r"(?<![0-9A-Za-z])" + re.escape(self.text) + r"(?![0-9A-Za-z])", flags)


# -- collecting the needles -------------------------------------------------------


def _resources(path: Path) -> list[dict[str, Any]]:
    # Numbers are kept as the text they have in the file ("40.912", not 40.912).
    doc = json.loads(path.read_text(encoding="utf-8"), parse_float=str, parse_int=str)
    if not isinstance(doc, dict):
        return []
    if doc.get("resourceType") == "Bundle":
        return [e["resource"] for e in doc.get("entry", []) if isinstance(e.get("resource"), dict)]
    return [doc]


def _significant(number: str) -> int:
    digits = re.sub(r"[eE].*$", "", number).replace("-", "").replace(".", "")
    return len(digits.strip("0") if "." in number else digits.lstrip("0"))


def _keep(text: Any) -> bool:
    if not isinstance(text, str) or not text.strip():
        return False
    text = text.strip()
    if _NUMBER.fullmatch(text):
        return _significant(text) >= MIN_SIGNIFICANT
    return len(text) >= MIN_TEXT and text.lower() not in GENERIC


class _Collector:
    def __init__(self) -> None:
        self.needles: dict[str, Needle] = {}  # by text: each string is searched once
        self.patients = 0
        self.patient_ids: list[str] = []

    def add(self, kind: str, text: Any) -> None:
        if _keep(text):
            self.needles.setdefault(text.strip(), Needle(kind, text.strip()))

    def patient(self, res: dict[str, Any]) -> None:
        self.patients += 1
        if isinstance(res.get("id"), str):
            self.patient_ids.append(res["id"])
            self.add("patient_id", res["id"])
        for name in res.get("name", []):
            parts = [*name.get("prefix", []), *name.get("given", []), name.get("family")]
            for part in [*parts, *name.get("suffix", []), name.get("text")]:
                self.add("name", part)
            self.add("name", " ".join([*name.get("given", []), name.get("family") or ""]))
        for ident in res.get("identifier", []):
            codes = {c.get("code") for c in ident.get("type", {}).get("coding", [])}
            ssn = "SS" in codes or str(ident.get("system", "")).endswith("us-ssn")
            self.add("ssn" if ssn else "identifier", ident.get("value"))
        self.add("birth_date", res.get("birthDate"))
        self.add("birth_date", res.get("deceasedDateTime"))
        for tel in res.get("telecom", []):
            self.add("telecom", tel.get("value"))
        for address in res.get("address", []):
            self._address(address, "address")
        for ext in res.get("extension", []):
            if ext.get("url") == _MAIDEN:
                self.add("maiden_name", ext.get("valueString"))
                for part in str(ext.get("valueString", "")).split():
                    self.add("maiden_name", part)
            elif ext.get("url") == _BIRTH_PLACE:
                self._address(ext.get("valueAddress", {}), "birth_place")

    def _address(self, address: dict[str, Any], kind: str) -> None:
        for line in address.get("line", []):
            self.add(kind, line)
        for field in ("city", "district", "postalCode", "text"):
            self.add(kind, address.get(field))
        for ext in address.get("extension", []):
            if ext.get("url") == _GEO:
                for coord in ext.get("extension", []):
                    self.add("geolocation", coord.get("valueDecimal"))

    def observation(self, res: dict[str, Any]) -> None:
        for holder in [res, *res.get("component", [])]:
            for key, value in holder.items():
                if not key.startswith("value"):
                    continue
                if key == "valueQuantity":
                    number = value.get("value")
                    self.add("observation_value", number)
                    if isinstance(number, str):  # the member as the canonical record has it
                        canonical = rfc8785.dumps({"value": json.loads(number)}).decode()
                        self.add("observation_value_json", canonical[1:-1])
                elif key == "valueCodeableConcept":
                    self.add("observation_value", value.get("text"))
                    for coding in value.get("coding", []):
                        self.add("observation_value", coding.get("display"))
                elif isinstance(value, str) and key != "valueBoolean":
                    self.add("observation_value", value)

    def condition(self, res: dict[str, Any]) -> None:
        code = res.get("code", {})
        self.add("condition_text", code.get("text"))
        for coding in code.get("coding", []):
            self.add("condition_text", coding.get("display"))


def collect(fhir_dir: Path) -> _Collector:
    found = _Collector()
    handlers = {
        "Patient": found.patient,
        "Observation": found.observation,
        "Condition": found.condition,
    }
    for path in sorted(fhir_dir.glob("*.json")):
        for res in _resources(path):
            handler = handlers.get(res.get("resourceType"))
            if handler:
                handler(res)
    return found


# -- searching --------------------------------------------------------------------


def find_leaks(needles: list[Needle], export_text: str, raw: dict[str, bytes]) -> list[str]:
    """Every place a needle is found: UTF-8 in the export, hex in the export, raw bytes."""
    lowered = export_text.lower()
    hits = []
    for n in needles:
        m = n.pattern().search(export_text)
        if m:
            ctx = export_text[max(0, m.start() - 40) : m.end() + 40]
            hits.append(f"{n.kind} {n.text!r}: UTF-8 in the export: …{ctx}…")
        data = n.text.encode()
        if len(data) < MIN_BINARY:
            continue
        if data.hex() in lowered:
            hits.append(f"{n.kind} {n.text!r}: as hex {data.hex()} in the export")
        for name, blob in raw.items():
            if data in blob:
                hits.append(f"{n.kind} {n.text!r}: raw bytes in {name}")
    return hits


def _raw_chain(home: Path) -> dict[str, bytes]:
    files = {p.name: p.read_bytes() for p in sorted(home.glob("chain.sqlite*"))}
    assert "chain.sqlite" in files
    return files


# -- fixtures ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def collected(fhir_dir: Path) -> _Collector:
    return collect(fhir_dir)


@pytest.fixture(scope="module")
def needles(collected: _Collector) -> list[Needle]:
    return list(collected.needles.values())


@pytest.fixture(scope="module")
def exported(demo_home: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> dict:
    home, summary = demo_home
    out = tmp_path_factory.mktemp("privacy-export") / "chain-export.json"
    run_cli(home, "chain", "export", str(out), check=True)
    text = out.read_text(encoding="utf-8")
    return {"home": home, "summary": summary, "text": text, "doc": json.loads(text)}


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    # Debug mode re-raises internal errors with their messages: not what users see.
    monkeypatch.delenv("HEALTHNFT_DEBUG", raising=False)


# -- the needles are real -----------------------------------------------------------


def test_the_needle_list_is_not_trivial(
    collected: _Collector, needles: list[Needle], fhir_dir: Path
) -> None:
    by_kind = Counter(n.kind for n in needles)
    print(f"searching {len(needles)} needles from {collected.patients} patients: {dict(by_kind)}")
    assert collected.patients >= 1
    assert by_kind["name"] >= collected.patients
    assert by_kind["birth_date"] >= 1
    assert by_kind["patient_id"] == collected.patients
    assert by_kind["observation_value"] + by_kind["observation_value_json"] >= 1
    if fhir_dir == SYNTHEA:
        assert collected.patients >= 6
        assert by_kind["name"] >= 6
        assert by_kind["ssn"] >= 6
        assert by_kind["birth_date"] >= 6
        assert by_kind["address"] >= 6
        assert by_kind["telecom"] >= 6
        assert by_kind["observation_value"] >= 20
        assert by_kind["observation_value_json"] >= 20
        assert by_kind["condition_text"] >= 5


def test_the_search_finds_a_planted_leak(needles: list[Needle], exported: dict) -> None:
    """A control: every form of every kind of needle would be found if it were there."""
    text = exported["text"]
    samples: dict[str, Needle] = {}
    for n in needles:
        if len(n.text.encode()) >= MIN_BINARY:
            samples.setdefault(n.kind, n)
    for n in samples.values():
        as_text = text.replace('"format"', f'"{n.text}", "format"', 1)
        as_hex = text.replace('"0x', f'"0x{n.text.encode().hex()}', 1)
        assert any("UTF-8" in h for h in find_leaks([n], as_text, {})), n
        assert any("as hex" in h for h in find_leaks([n], as_hex, {})), n
        raw = {"chain.sqlite": b"\x00\x01" + n.text.encode() + b"\xff"}
        assert any("raw bytes" in h for h in find_leaks([n], "", raw)), n
    assert len(samples) >= 5


# -- the chain ------------------------------------------------------------------------


def test_the_export_covers_the_minted_batches(exported: dict) -> None:
    """The export is the real thing: it holds every batch's Merkle root as minted."""
    home, summary = exported["home"], exported["summary"]
    assert summary["records_minted"] > 0
    con = sqlite3.connect(f"file:{home / 'index.sqlite'}?mode=ro", uri=True)
    try:
        roots = [r[0] for r in con.execute("SELECT root FROM batches WHERE state = 'minted'")]
    finally:
        con.close()
    assert len(roots) == summary["batches"] >= len(summary["patients"])
    for root in roots:
        assert bytes(root).hex() in exported["text"]
    assert len(exported["doc"]["transactions"]) >= len(roots)


def test_no_patient_data_in_the_exported_chain(needles: list[Needle], exported: dict) -> None:
    hits = find_leaks(needles, exported["text"], _raw_chain(exported["home"]))
    searched = Counter(n.kind for n in needles)
    binary = Counter(n.kind for n in needles if len(n.text.encode()) >= MIN_BINARY)
    print(f"searched as UTF-8: {dict(searched)}; also as hex and raw bytes: {dict(binary)}")
    assert hits == [], "patient data found on the chain:\n" + "\n".join(hits)


def test_no_patient_data_on_chain_with_consent_activity(
    needles: list[Needle], demo_home: tuple[Path, dict], tmp_path: Path
) -> None:
    """The same search after grants, requests (with a reason), a policy, key releases,
    a transfer, an amendment (approval, then the corrected record minted) and a burn are
    on chain."""
    import shutil

    home = tmp_path / "home"
    shutil.copytree(demo_home[0], home)
    alice, bob = (p["address"] for p in demo_home[1]["patients"][:2])

    def cli(*args: str) -> Any:
        proc = run_cli(home, *args, "--json")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    research = cli("participant", "add", "--kind", "research", "--name", "uni")["address"]
    insurer = cli("participant", "add", "--kind", "insurer", "--name", "ins")["address"]
    rows = cli("wallet", "list", "--owner", alice)
    lab = [r["token_id"] for r in rows if r["category"] == "laboratory"]
    other = [r["token_id"] for r in rows if r["category"] not in ("laboratory",)]
    cli("policy", "add", "--owner", alice, "--kind", "research", "--purpose", "research",
        "--category", "laboratory")  # fmt: skip
    cli("request", "--owner", alice, "--as", research, "--category", "laboratory", "--purpose",
        "research", "--reason", "needs the values of " + needles[0].text)  # fmt: skip
    for token in lab[:2]:
        cli("open", str(token), "--as", research)
    req = cli("request", "--owner", alice, "--as", insurer, "--token-id", str(other[0]),
              "--purpose", "insurance", "--reward-wei", "1000")  # fmt: skip
    grant = cli("approve", str(req["request_id"]), "--owner", alice)["grant_id"]
    cli("open", str(other[0]), "--as", insurer)
    cli("revoke", str(grant), "--owner", alice)
    cli("share", str(other[1]), "--owner", alice, "--to", bob, "--purpose", "treatment")
    cli("transfer", str(other[2]), "--owner", alice, "--to", bob)
    cli("burn", str(other[3]), "--owner", alice, "--yes")
    # A correction: the owner approves, the hospital mints the amended version.
    fixed = cli("wallet", "show", str(lab[0]))["resource"]
    fixed["status"] = "amended"
    fixed_file = tmp_path / "corrected.json"  # outside the home and the chain
    fixed_file.write_text(json.dumps(fixed), "utf-8")
    cli("approve-amendment", str(lab[0]), "--owner", alice, "--issuer", "demo-hospital")
    amended = cli("amend", str(lab[0]), str(fixed_file), "--issuer", "demo-hospital")
    assert amended["supersedes"] == lab[0]
    assert cli("access-log", "--owner", alice)  # releases are on chain
    out = tmp_path / "chain.json"
    run_cli(home, "chain", "export", str(out), check=True)
    hits = find_leaks(needles, out.read_text(encoding="utf-8"), _raw_chain(home))
    assert hits == [], "patient data on the chain with consent activity:\n" + "\n".join(hits)


def test_no_patient_uuid_in_blocks_or_transactions(collected: _Collector, exported: dict) -> None:
    doc = exported["doc"]
    chain_data = json.dumps(
        {k: doc[k] for k in ("blocks", "transactions", "receipts", "logs", "contracts")}
    ).lower()
    whole = exported["text"].lower()
    raw = _raw_chain(exported["home"])
    assert collected.patient_ids
    for pid in collected.patient_ids:
        forms = {pid.lower(), pid.lower().replace("-", "")}
        forms |= {f.encode().hex() for f in list(forms)}
        try:
            forms.add(uuid.UUID(pid).bytes.hex())
            raw_forms = [uuid.UUID(pid).bytes, pid.encode(), pid.replace("-", "").encode()]
        except ValueError:  # not a UUID (the sample's ids are): its text forms still count
            raw_forms = [pid.encode()]
        for form in forms:
            assert form not in chain_data, f"patient id {pid} in chain data as {form}"
            assert form not in whole, f"patient id {pid} in the export as {form}"
        for name, blob in raw.items():
            for form in raw_forms:
                assert form not in blob, f"patient id {pid} in {name} as {form!r}"


# -- output and error messages of failing runs -------------------------------------


@pytest.fixture(scope="module")
def failing_home(tmp_path_factory: pytest.TempPathFactory, fhir_dir: Path) -> dict:
    """A demo home of this module's own: the failing runs below must not write, but may."""
    home = tmp_path_factory.mktemp("privacy-failing") / "home"
    proc = run_cli(home, "demo", "--data", str(fhir_dir), "--json", check=True)
    summary = json.loads(proc.stdout)
    return {"home": home, "patient": summary["patients"][0]["address"]}


@pytest.fixture(scope="module")
def source(fhir_dir: Path) -> dict:
    """One patient's file: its bundle, its Patient and an Observation with a quantity."""
    for path in sorted(fhir_dir.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("resourceType") != "Bundle":
            continue
        resources = [e["resource"] for e in doc.get("entry", [])]
        patients = [r for r in resources if r["resourceType"] == "Patient"]
        observations = [
            r for r in resources if r["resourceType"] == "Observation" and "valueQuantity" in r
        ]
        if patients and observations:
            patient = patients[0]
            name = patient["name"][0]
            ssn = next(
                (i["value"] for i in patient.get("identifier", [])
                 if str(i.get("system", "")).endswith("us-ssn")),
                patient["birthDate"],
            )  # fmt: skip
            return {
                "bundle": doc,
                "patient": patient,
                "observation": observations[0],
                "full_name": " ".join([*name.get("given", []), name["family"]]),
                "ssn": ssn,
            }
    raise AssertionError(f"no bundle with a Patient and a quantity Observation in {fhir_dir}")


def _broken_status(src: dict) -> Any:
    obs = copy.deepcopy(src["observation"])
    obs["status"] = f"{src['ssn']} {src['full_name']}"
    return obs


def _broken_value(src: dict) -> Any:
    obs = copy.deepcopy(src["observation"])
    obs["valueQuantity"]["value"] = f"{obs['valueQuantity']['value']} {src['full_name']}"
    return obs


def _broken_birth_date(src: dict) -> Any:
    patient = copy.deepcopy(src["patient"])
    patient["birthDate"] = f"{src['full_name']} {patient['birthDate']}"
    return patient


def _truncated_patient(src: dict) -> str:
    text = json.dumps(src["patient"])
    return text[: text.index(src["patient"]["name"][0]["family"]) + 40]


def _unquoted_name(src: dict) -> str:
    return '{"resourceType": "Patient", "name": ' + src["full_name"] + "}"


def _bundle_one_bad_observation(src: dict) -> Any:
    bundle = copy.deepcopy(src["bundle"])
    obs = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    obs[-1]["status"] = f"{src['ssn']} {src['full_name']}"
    return bundle


def _name_as_resource_type(src: dict) -> Any:
    patient = copy.deepcopy(src["patient"])
    patient["resourceType"] = src["full_name"]
    return patient


def _name_as_unknown_field(src: dict) -> Any:
    patient = copy.deepcopy(src["patient"])
    patient[patient["name"][0]["family"]] = patient["birthDate"]
    return patient


FAILING_INPUTS = [
    pytest.param(_broken_status, "mint", id="observation-status-holds-ssn-and-name"),
    pytest.param(_broken_value, "mint", id="observation-value-not-a-number"),
    pytest.param(_broken_birth_date, "mint", id="patient-birth-date-holds-name"),
    pytest.param(_truncated_patient, "mint", id="truncated-patient-json"),
    pytest.param(_unquoted_name, "mint", id="malformed-json-with-name"),
    pytest.param(_bundle_one_bad_observation, "mint", id="bundle-with-one-bad-observation"),
    pytest.param(_bundle_one_bad_observation, "demo", id="demo-on-a-bad-bundle"),
    pytest.param(
        _name_as_resource_type,
        "mint",
        id="resource-type-holds-name",
    ),
    pytest.param(
        _name_as_unknown_field,
        "mint",
        id="unknown-field-named-by-patient-data",
    ),
]


@pytest.mark.parametrize(("make", "command"), FAILING_INPUTS)
def test_a_failing_run_prints_no_patient_data(
    make: Any,
    command: str,
    failing_home: dict,
    source: dict,
    needles: list[Needle],
    tmp_path: Path,
) -> None:
    content = make(source)
    folder = tmp_path / "input"
    folder.mkdir()
    # Named as Synthea names its files (Given_Family_uuid.json): errors name inputs by
    # position, so the name must not come back through the file name either.
    path = folder / (source["full_name"].replace(" ", "_") + "_case.json")
    path.write_text(content if isinstance(content, str) else json.dumps(content), "utf-8")
    home = failing_home["home"]
    if command == "demo":
        proc = run_cli(home, "demo", "--data", str(folder), "--json")
    else:
        proc = run_cli(
            home, "mint", "--issuer", "demo-hospital", "--patient", failing_home["patient"],
            str(path),
        )  # fmt: skip
    assert proc.returncode != 0, proc.stdout
    output = proc.stdout + proc.stderr
    assert "error:" in proc.stderr
    assert "Traceback" not in output
    # Integers alone cannot be told apart from the line, column and entry numbers that
    # error messages are meant to give; every case above also plants a name.
    found = [
        f"{n.kind} {n.text!r}"
        for n in needles
        if not n.integer and n.pattern(re.IGNORECASE).search(output)
    ]
    assert found == [], f"patient data in the output of a failing run: {found}\n{output}"
    planted = source["full_name"].split()
    assert not any(p.lower() in output.lower() for p in planted), output
