"""Which SMART Health Card issuers a verifier trusts, and their published keys and CRLs.

Trust is explicit and offline-first: a :class:`TrustStore` maps each trusted ``iss`` to
its published material (``.well-known/jwks.json`` and ``.well-known/crl/<kid>.json``),
read from a local folder (:class:`FolderIssuer`). Only when the verifier opts in
(``TrustStore(fetch=HttpIssuer)``) is an issuer missing from the store looked up where
the spec publishes it (:mod:`healthnft.credentials.shc.fetch`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import orjson

from healthnft.errors import CredentialRejected, InputNotFound

__all__ = ["FolderIssuer", "IssuerSource", "TrustStore"]

#: A key id: base64url, as an RFC 7638 thumbprint is.
KID = re.compile(r"[A-Za-z0-9_-]{1,128}")


class IssuerSource(Protocol):
    """The published key material of one issuer.

    Two ship with healthnft: :class:`FolderIssuer` (a local copy, offline) and
    :class:`HttpIssuer` (fetched from ``<iss>/.well-known/…``). A source may raise
    :class:`CredentialRejected` when its material cannot be had; :func:`verify_card`
    turns that into the card's refusal reason.
    """

    def jwks(self) -> Mapping[str, Any]:
        """The issuer's JWK set (``{"keys": [...]}``)."""
        ...

    def crl(self, kid: str) -> Mapping[str, Any] | None:
        """The revocation list of key ``kid``, or ``None`` when the issuer publishes none."""
        ...


class FolderIssuer:
    """An issuer's ``.well-known`` files copied to a local folder.

    ``root/.well-known/jwks.json`` and every ``root/.well-known/crl/<kid>.json`` are read
    and checked here, so a broken trust entry fails at start-up with
    :class:`CredentialRejected` naming the file, never halfway through a verification
    (where it would look like a problem of the card).
    """

    def __init__(self, root: Path) -> None:
        self.root = root = Path(root)
        if not root.is_dir():
            raise InputNotFound(f"{root}: trusted issuer folder not found")
        jwks_path = root / ".well-known" / "jwks.json"
        if not jwks_path.is_file():
            raise CredentialRejected(f"{root}: no .well-known/jwks.json in trusted issuer folder")
        keys = read_trust_json(jwks_path)
        check_jwks_shape(keys, str(jwks_path))
        crls: dict[str, Mapping[str, Any]] = {}
        crl_dir = root / ".well-known" / "crl"
        if crl_dir.is_dir():
            for path in sorted(crl_dir.glob("*.json")):
                crl = read_trust_json(path)
                check_crl_shape(crl, path.stem, str(path))
                crls[path.stem] = crl
        self._jwks: Mapping[str, Any] = keys
        self._crls: Mapping[str, Mapping[str, Any]] = crls

    def __repr__(self) -> str:
        return f"FolderIssuer({str(self.root)!r})"

    def jwks(self) -> Mapping[str, Any]:
        return self._jwks

    def crl(self, kid: str) -> Mapping[str, Any] | None:
        return self._crls.get(kid)


def read_trust_json(path: Path) -> dict[str, Any]:
    try:
        obj = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise CredentialRejected(f"{path}: cannot be read ({exc.strerror})") from None
    except orjson.JSONDecodeError:
        raise CredentialRejected(f"{path}: not valid JSON") from None
    if not isinstance(obj, dict):
        raise CredentialRejected(f"{path}: not a JSON object")
    return obj


def check_jwks_shape(keys: Mapping[str, Any], where: str) -> None:
    if not isinstance(keys.get("keys"), list) or not all(
        isinstance(k, dict) for k in keys["keys"]
    ):
        raise CredentialRejected(f"{where}: not a JWK set (no keys array)")


def check_crl_shape(crl: Mapping[str, Any], kid: str, where: str) -> None:
    if crl.get("kid") != kid:
        raise CredentialRejected(f"{where}: kid does not match the file name")
    if crl.get("method") != "rid":
        raise CredentialRejected(f"{where}: unsupported revocation method (expected rid)")
    if crl_counter(crl.get("ctr")) is None:
        raise CredentialRejected(f"{where}: ctr is not a counter")
    rids = crl.get("rids")
    if not isinstance(rids, list) or not all(isinstance(r, str) for r in rids):
        raise CredentialRejected(f"{where}: rids is not a list of strings")


def crl_counter(value: Any) -> int | None:
    # The spec's template writes "<<ctr>>" in quotes; the examples use a number.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,18}", value):
        return int(value)
    return None


class TrustStore:
    """Which issuers this verifier trusts, by exact ``iss`` URL, and where their keys are.

    A card names its issuer in the (signed) ``iss`` claim; a verifier must decide for
    itself which issuers it accepts, so by default an ``iss`` absent from the store is
    refused rather than looked up. With ``fetch`` (e.g. :class:`HttpIssuer`), such an
    ``iss`` is instead looked up with ``fetch(iss)`` — once per store, the source is
    kept — which the caller opts into explicitly (``shc verify --fetch-keys``).
    """

    def __init__(
        self,
        issuers: Mapping[str, IssuerSource] | None = None,
        *,
        fetch: Callable[[str], IssuerSource] | None = None,
    ) -> None:
        self._issuers: dict[str, IssuerSource] = {
            _normalize_iss(iss): src for iss, src in (issuers or {}).items()
        }
        self._fetch = fetch
        self._fetched: dict[str, IssuerSource] = {}

    @classmethod
    def from_folders(
        cls,
        folders: Mapping[str, Path],
        *,
        fetch: Callable[[str], IssuerSource] | None = None,
    ) -> TrustStore:
        """Trust each ``iss`` with the keys found in its folder (see :class:`FolderIssuer`)."""
        return cls(
            {iss: FolderIssuer(Path(folder)) for iss, folder in folders.items()}, fetch=fetch
        )

    @classmethod
    def from_pairs(
        cls, pairs: Iterable[str], *, fetch: Callable[[str], IssuerSource] | None = None
    ) -> TrustStore:
        """Parse ``ISS=FOLDER`` strings (as given on a command line) into a store.

        The split is at the first ``=``: issuer URLs carry no ``=`` in practice, while
        folder names may.
        """
        folders: dict[str, Path] = {}
        for pair in pairs:
            iss, sep, folder = pair.partition("=")
            if not sep or not iss.strip() or not folder.strip():
                raise CredentialRejected(
                    f"trusted issuer must be given as ISS=FOLDER, got {safe_text(pair, 80)!r}"
                )
            folders[iss.strip()] = Path(folder.strip()).expanduser()
        return cls.from_folders(folders, fetch=fetch)

    @property
    def issuers(self) -> tuple[str, ...]:
        """The trusted ``iss`` URLs."""
        return tuple(self._issuers)

    def source_for(self, iss: str) -> IssuerSource | None:
        """The key material of ``iss`` (exact match), or ``None`` when it is not trusted.

        With ``fetch``, an ``iss`` not in the store gets the fetched source instead; that
        may raise :class:`CredentialRejected` (an ``iss`` that may not be fetched).
        """
        source = self._issuers.get(iss)
        if source is not None or self._fetch is None:
            return source
        if iss not in self._fetched:
            self._fetched[iss] = self._fetch(iss)
        return self._fetched[iss]

    def __contains__(self, iss: object) -> bool:
        return iss in self._issuers

    def __len__(self) -> int:
        return len(self._issuers)


def _normalize_iss(iss: str) -> str:
    # Cards SHALL NOT end ``iss`` with "/"; accept an operator's trailing slash anyway.
    iss = iss.strip()
    return iss[:-1] if iss.endswith("/") and not iss.endswith("://") else iss


def safe_text(text: str, limit: int = 120) -> str:
    """Printable, bounded rendering of an untrusted string for a one-line reason."""
    cleaned = "".join(c if c.isprintable() else "?" for c in text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"
