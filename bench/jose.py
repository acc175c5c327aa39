"""JOSE benchmark: compact JWS sign and verify with jwcrypto and joserfc, EdDSA and ES256.

healthnft signs two kinds of compact JWS: VC-JOSE credentials and presentations
(``EdDSA`` over Ed25519 by default, ``ES256`` accepted) and SMART Health Cards
(``ES256`` on P-256 with a raw-DEFLATE payload and a ``zip: DEF`` header). This measures
what each candidate library costs on top of the signature itself, to choose one.

For each algorithm the same bytes go through every contender: the header healthnft
writes (``typ``/``kid``/``cty`` for EdDSA, ``zip``/``alg``/``kid`` for ES256) and a
realistic payload (a JCS-serialized HealthRecordAttestation for EdDSA, the DEFLATE'd
claims of the spec's example card 00 for ES256). Keys are built once, before the clock,
in each library's own key type.

- ``baseline``: ``cryptography`` alone signing/verifying the JWS signing input (for
  ES256 including the DER <-> raw ``r || s`` conversion JOSE requires), i.e. the floor
  any JOSE library sits on;
- ``jwcrypto``: ``JWS(payload).add_signature(key, protected=…)`` + ``serialize`` /
  ``JWS().deserialize(token)`` + ``verify(key)``;
- ``joserfc``: ``jws.serialize_compact`` / ``jws.deserialize_compact`` with a
  ``JWSRegistry`` (algorithm allow-list, ``zip`` registered as a header).

``jwk_import_thumbprint`` times what SHC verification does per issuer key: build a
public key object from a published JWK dict and compute its RFC 7638 thumbprint.

Each figure is the best of ``--repeat`` rounds of ``--number`` calls (timeit's rule:
the minimum is the run least disturbed by other work on a shared machine; rounds are
interleaved across contenders so that such work falls on all alike), in
microseconds per call; ``ratio_to_baseline`` is library / baseline and
``jwcrypto_over_joserfc`` > 1 means joserfc is faster. Prints one JSON document.

    PYTHONPATH=src .venv/bin/python bench/jose.py [--number 2000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
import zlib
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import cryptography
import jwcrypto.jwk
import jwcrypto.jws
import orjson
import rfc8785
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from joserfc import jws as jrfc_jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OKPKey
from joserfc.registry import HeaderParameter

from healthnft.credentials.did import did_for, verification_method_id

SHC_EXAMPLE = Path("/work/shared/data/shc/example-00-a-fhirBundle.json")


def _b64e(data: bytes) -> bytes:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _best(fns: dict[str, Callable[[], Any]], number: int, repeat: int) -> dict[str, float]:
    """Microseconds per call of each function: the fastest of ``repeat`` rounds.

    Rounds are interleaved (each round times every function once, ``number`` calls
    each), so load from other work on a shared machine falls on all contenders alike.
    """
    for fn in fns.values():
        fn()  # warm caches and lazy imports outside the clock
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(number):
                fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: t / number * 1e6 for name, t in best.items()}


def _attestation_payload(did: str) -> bytes:
    return rfc8785.dumps(
        {
            "@context": ["https://www.w3.org/ns/credentials/v2"],
            "id": "urn:uuid:3f1d7a2e-8c4b-4f6a-9d2e-5b7c1a0e9f34",
            "type": ["VerifiableCredential", "HealthRecordAttestation"],
            "issuer": did,
            "validFrom": "2025-01-01T00:00:00Z",
            "credentialSubject": {
                "id": "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
                "wallet": "0x" + "ab" * 20,
                "commitment": "0x" + "cd" * 32,
                "recordType": "Observation",
                "category": "laboratory",
            },
        }
    )


def _card_payload() -> bytes:
    if SHC_EXAMPLE.is_file():
        bundle = orjson.loads(SHC_EXAMPLE.read_bytes())
    else:  # a small stand-in outside this workplace
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": []}
    claims = {
        "iss": "https://spec.smarthealth.cards/examples/issuer",
        "nbf": 1_700_000_000,
        "vc": {
            "type": ["https://smarthealth.cards#health-card"],
            "credentialSubject": {"fhirVersion": "4.0.1", "fhirBundle": bundle},
        },
    }
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    return deflater.compress(orjson.dumps(claims)) + deflater.flush()


def _case(alg: str, number: int, repeat: int) -> dict[str, Any]:
    if alg == "EdDSA":
        raw_key: Any = Ed25519PrivateKey.generate()
        did = did_for(raw_key)
        header = {"alg": "EdDSA", "cty": "vc", "kid": verification_method_id(did),
                  "typ": "vc+jwt"}  # fmt: skip
        payload = _attestation_payload(did)
        jrfc_key: Any = OKPKey.import_key(raw_key)
    else:
        raw_key = ec.generate_private_key(ec.SECP256R1())
        jrfc_key = ECKey.import_key(raw_key)
        header = {"zip": "DEF", "alg": "ES256", "kid": jrfc_key.thumbprint()}
        payload = _card_payload()
    public = raw_key.public_key()
    jwc_key = jwcrypto.jwk.JWK.from_pyca(raw_key)
    jwc_public = jwcrypto.jwk.JWK.from_pyca(public)
    jrfc_public = type(jrfc_key).import_key(public)
    header_json = orjson.dumps(header).decode()
    signing_input = _b64e(orjson.dumps(header)) + b"." + _b64e(payload)

    # baseline: the primitive alone, with the JOSE signature encoding for ES256
    if alg == "EdDSA":
        def base_sign() -> bytes:
            return raw_key.sign(signing_input)

        signature = base_sign()

        def base_verify() -> None:
            public.verify(signature, signing_input)
    else:
        def base_sign() -> bytes:
            r, s = decode_dss_signature(raw_key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")

        signature = base_sign()

        def base_verify() -> None:
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            public.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))

    def jwc_sign() -> str:
        token = jwcrypto.jws.JWS(payload)
        token.add_signature(jwc_key, alg=alg, protected=header_json)
        return token.serialize(compact=True)

    jwc_token = jwc_sign()

    def jwc_verify() -> None:
        token = jwcrypto.jws.JWS()
        token.allowed_algs = [alg]
        token.deserialize(jwc_token)
        token.verify(jwc_public, alg=alg)

    # SHC's "zip" is a JWE header; joserfc's strict header check wants it registered.
    registry = jrfc_jws.JWSRegistry(
        header_registry={"zip": HeaderParameter("Compression Algorithm", "str")},
        algorithms=[alg],
    )

    def jrfc_sign() -> str:
        return jrfc_jws.serialize_compact(header, payload, jrfc_key, registry=registry)

    jrfc_token = jrfc_sign()

    def jrfc_verify() -> None:
        jrfc_jws.deserialize_compact(jrfc_token, jrfc_public, registry=registry)

    # Every contender must produce tokens the others accept before it is timed.
    expected = signing_input.decode().split(".")
    assert jwc_token.split(".")[:2] == jrfc_token.split(".")[:2] == expected
    jrfc_jws.deserialize_compact(jwc_token, jrfc_public, registry=registry)
    check = jwcrypto.jws.JWS()
    check.deserialize(jrfc_token, jwc_public, alg=alg)

    t = _best(
        {
            "baseline.sign_us": base_sign, "baseline.verify_us": base_verify,
            "jwcrypto.sign_us": jwc_sign, "jwcrypto.verify_us": jwc_verify,
            "joserfc.sign_us": jrfc_sign, "joserfc.verify_us": jrfc_verify,
        },
        number,
        repeat,
    )  # fmt: skip
    figures: dict[str, dict[str, float]] = {"baseline": {}, "jwcrypto": {}, "joserfc": {}}
    for name, value in t.items():
        lib, op = name.split(".")
        figures[lib][op] = value
    for lib in ("jwcrypto", "joserfc"):
        for op in ("sign_us", "verify_us"):
            ratio = figures[lib][op] / figures["baseline"][op]
            figures[lib][f"{op[:-3]}_ratio_to_baseline"] = ratio
    out: dict[str, Any] = {"header_bytes": len(header_json), "payload_bytes": len(payload)}
    out.update({k: {m: round(v, 2) for m, v in d.items()} for k, d in figures.items()})
    out["jwcrypto_over_joserfc"] = {
        op[:-3]: round(figures["jwcrypto"][op] / figures["joserfc"][op], 2)
        for op in ("sign_us", "verify_us")
    }
    return out


def _jwk_import(number: int, repeat: int) -> dict[str, Any]:
    published = ECKey.generate_key("P-256").as_dict(private=False)
    fields = {k: published[k] for k in ("kty", "crv", "x", "y")}

    def jwc() -> str:
        return jwcrypto.jwk.JWK(**fields).thumbprint()

    def jrfc() -> str:
        return ECKey.import_key(fields).thumbprint()

    assert jwc() == jrfc()
    times = _best({"jwcrypto_us": jwc, "joserfc_us": jrfc}, number, repeat)
    ratio = times["jwcrypto_us"] / times["joserfc_us"]
    return {**{k: round(v, 2) for k, v in times.items()}, "jwcrypto_over_joserfc": round(ratio, 2)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=2000, help="calls per round")
    parser.add_argument("--repeat", type=int, default=7, help="rounds; the fastest counts")
    args = parser.parse_args(argv)
    # joserfc warns on every "EdDSA" use (RFC 9864 prefers "Ed25519"); the wire format
    # healthnft keeps is "EdDSA", so the warning is silenced, as the code does.
    warnings.simplefilter("ignore", SecurityWarning)
    result = {
        "benchmark": "jose",
        "unit": "microseconds per call, best of repeat rounds",
        "number": args.number,
        "repeat": args.repeat,
        "versions": {
            "python": platform.python_version(),
            "cryptography": cryptography.__version__,
            "jwcrypto": version("jwcrypto"),
            "joserfc": version("joserfc"),
        },
        "EdDSA": _case("EdDSA", args.number, args.repeat),
        "ES256": _case("ES256", args.number, args.repeat),
        "jwk_import_thumbprint": _jwk_import(args.number, args.repeat),
    }
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
