"""Every refusal the web API gives has one shape: an RFC 9457 problem document.

Keys ``type``, ``title``, ``status``, ``detail``, ``code`` and ``instance`` (plus
``fields`` only for request validation), ``type`` naming the code, ``status`` the HTTP
status, served as ``application/problem+json``. The walk below sends every route of the
OpenAPI document bad input (wrong types, ids out of range, broken JSON and multipart,
missing fields) as each kind of caller, and checks every answer; none may be a 500.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.exceptions import HTTPException

from healthnft.api import problems
from healthnft.errors import ALL_ERRORS, PROBLEM_TYPE_BASE

KEYS = {"type", "title", "status", "detail", "code", "instance"}
#: Codes that are not classes of the error tree: routing's own answer to a wrong method.
ROUTING_CODES = {"method_not_allowed"}
CODES = {cls.code for cls in ALL_ERRORS} | ROUTING_CODES
TOO_BIG = 10**30  # more than any id a home holds (SQLite integers are 64-bit)


def assert_problem(r: Any, path: str) -> dict:
    where = f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:300]}"
    assert r.status_code < 500, where
    assert r.headers["content-type"] == problems.MEDIA_TYPE, where
    doc = r.json()
    assert set(doc) in (KEYS, KEYS | {"fields"}), where
    assert doc["status"] == r.status_code, where
    assert doc["code"] in CODES and doc["type"] == PROBLEM_TYPE_BASE + doc["code"], where
    assert doc["instance"] == path, where
    assert isinstance(doc["title"], str) and doc["title"], where
    assert isinstance(doc["detail"], str) and doc["detail"], where
    if "fields" in doc:
        assert doc["code"] == "invalid_input" and doc["status"] == 400, where
        assert doc["fields"] and all(isinstance(f, str) and f and not f.isdigit()
                                     for f in doc["fields"]), where  # fmt: skip
    return doc


def _schema(spec: dict, schema: dict) -> dict:
    ref = schema.get("$ref")
    return spec["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else schema


def _types(prop: dict) -> set[str]:
    return {s.get("type", "") for s in prop.get("anyOf", [prop])}


def _bad_bodies(spec: dict, op: dict) -> list[tuple[str, dict]]:
    content = op.get("requestBody", {}).get("content", {})
    if not content:
        return [("no body", {})]
    bodies: list[tuple[str, dict]] = [
        ("broken JSON", {"content": b'{"a": ', "headers": {"content-type": "application/json"}}),
        ("a JSON array", {"json": []}),
        ("nothing", {}),
        ("junk multipart", {"content": b"--x\r\nnot a part",
                            "headers": {"content-type": "multipart/form-data; boundary=x"}}),
        ("multipart without boundary", {"content": b"a",
                                        "headers": {"content-type": "multipart/form-data"}}),
    ]  # fmt: skip
    if "application/json" in content:
        props = _schema(spec, content["application/json"]["schema"]).get("properties", {})
        bodies.append(("every field an object", {"json": {k: {"x": 1} for k in props}}))
        for name, prop in props.items():
            types = _types(prop)
            if "integer" in types:
                for value in (-1, TOO_BIG):
                    bodies.append((f"{name}={value}", {"json": {name: value}}))
            if "array" in types:
                for value in (-1, TOO_BIG):
                    bodies.append((f"{name}=[{value}]", {"json": {name: [value]}}))
    return bodies


def _urls(op: dict, path: str) -> list[str]:
    ints = [p["name"] for p in op.get("parameters", [])
            if p["in"] == "path" and "integer" in _types(p["schema"])]  # fmt: skip
    if not ints:
        return [path]
    urls = []
    for value in ("abc", "-1", str(TOO_BIG), "1.5"):
        url = path
        for name in ints:
            url = url.replace("{" + name + "}", value)
        urls.append(url)
    return urls


@pytest.fixture(scope="module")
def callers(served) -> dict[str, Any]:
    clients = {"anonymous": served.client()}
    for kind, address in (("patient", served.patient(3)), ("hospital", served.hospital),
                          ("research", served.research)):  # fmt: skip
        clients[kind] = served.client()
        served.sign_in(clients[kind], address)
    return clients


def test_every_route_answers_bad_input_with_one_problem_shape(served, callers) -> None:
    spec = served.app.openapi()
    seen: set[tuple[int, str]] = set()
    for path, ops in spec["paths"].items():
        if path == "/api/auth/logout":
            continue  # it would end the sessions the walk uses (it takes no input)
        for method, op in ops.items():
            queries = [{}] + [{p["name"]: "not-a-valid-value"}
                              for p in op.get("parameters", []) if p["in"] == "query"]
            for url in _urls(op, path):
                for _what, body in _bad_bodies(spec, op):
                    for query in queries:
                        for client in callers.values():
                            r = client.request(method.upper(), url, params=query, **body)
                            if r.status_code >= 400:
                                doc = assert_problem(r, url)
                                seen.add((r.status_code, doc["code"]))
    assert (400, "invalid_input") in seen and (401, "credential_rejected") in seen
    assert (404, "not_found") in seen and (403, "access_denied") in seen


def test_broken_json_is_named_as_such(served, callers) -> None:
    r = callers["patient"].post("/api/grants", content=b'{"to": ',
                                headers={"content-type": "application/json"})  # fmt: skip
    doc = assert_problem(r, "/api/grants")
    assert doc["fields"] == ["body"] and "not valid JSON" in doc["detail"]
    r = callers["patient"].post("/api/grants")
    doc = assert_problem(r, "/api/grants")
    assert doc["fields"] == ["body"]


def test_ids_out_of_range_are_refused_not_internal_errors(callers) -> None:
    """A grant id out of range is invalid input naming the field; a token id no record
    can have is answered like one never minted (tests/api/test_token_ids.py)."""
    doc = assert_problem(callers["patient"].delete("/api/grants/-1"), "/api/grants/-1")
    assert doc["code"] == "invalid_input" and doc["fields"]
    for url in (f"/api/records/{TOO_BIG}", "/api/records/-1"):
        doc = assert_problem(callers["patient"].get(url), url)
        assert doc["code"] == "not_found"


@pytest.mark.parametrize(("status", "code", "title"), [
    (400, "invalid_input", "Invalid input"),
    (401, "credential_rejected", "Credential rejected"),
    (404, "not_found", "Not found"),
    (405, "method_not_allowed", "Method not allowed"),
    (413, "too_large", "Input too large"),
])  # fmt: skip
def test_starlette_http_errors_take_the_error_tree_shape(status: int, code: str,
                                                         title: str) -> None:  # fmt: skip
    """A framework's own refusal (Starlette's HTTPException, e.g. a body it cannot parse)
    used to answer ``code: "http"`` with its phrase as the title: a second shape."""
    app = FastAPI()
    problems.install(app)

    @app.get("/refuse")
    def _refuse() -> None:
        raise HTTPException(status, "There was an error parsing the body")

    r = TestClient(app).get("/refuse")
    doc = assert_problem(r, "/refuse")
    assert (doc["status"], doc["code"], doc["title"]) == (status, code, title)
    assert doc["detail"] == "There was an error parsing the body"
