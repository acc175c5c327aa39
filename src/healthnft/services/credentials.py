"""Verifiable credentials and SMART Health Cards, for every door.

Record attestations are checked against the chain (issuer DID bound to a current
hospital, no on-chain revocation, right commitment and patient); identity
credentials bind a patient's DID to a wallet and carry no name and no data;
presentations answer one-time challenges, and a replay is refused. SMART Health
Cards are signed by the hospital that issued the records and verified offline
against a trust folder of issuer keys (or, when asked, keys fetched over HTTPS).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from healthnft.errors import AccessDenied, HealthNFTError, InputNotFound, InvalidInput, NotFound
from healthnft.home import PRIVATE_DIR, write_private
from healthnft.services.access import catalogued, check_token_ids, current_owner, same

if TYPE_CHECKING:
    from healthnft.network import Network


@dataclass(frozen=True)
class Verdict:
    """Whether a credential (or presentation) holds, and why not when it does not."""

    valid: bool
    reason: str
    id: str | None = None
    issuer: str | None = None
    type: Any = None
    holder: str | None = None
    credentials: int = 0

    def as_dict(self, *fields: str) -> dict[str, Any]:
        data = asdict(self)
        return {k: data[k] for k in fields} if fields else data


@dataclass(frozen=True)
class IssuedCredential:
    id: str
    file: str
    holder: str
    issuer: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SignedPresentation:
    holder: str
    domain: str
    credentials: int
    presentation: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)



def read_jws(path: Path, where: str = "the credential file") -> str:
    """A compact JWS from a file; one clear error when it cannot be read, saying
    ``where`` (its role or position), never the file's name: it may be its holder's."""
    try:
        return Path(path).read_text().strip()
    except FileNotFoundError:
        raise InputNotFound(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError):
        raise InvalidInput(f"{where}: cannot be read") from None


def issue_identity(net: Network, patient: str, issuer: str, days: int = 365,
                   out: Path | None = None,
                   passphrase: str | None = None) -> IssuedCredential:  # fmt: skip
    """The hospital ``issuer`` issues the patient a credential binding their DID to their wallet."""
    from healthnft.credentials.trust import bound_did
    from healthnft.credentials.vc import issue_identity as sign_identity

    if days < 1:
        raise InvalidInput("a credential is valid for at least one day")
    hospital = net.issuer_by_name(issuer)
    owner = net.patient(patient)
    subject_did = bound_did(net.ledger, owner.address)
    if subject_did is None:
        raise NotFound(f"{owner.address} has no DID bound on chain")
    ident = net.identity(hospital.address, passphrase)
    now = datetime.now(UTC)
    cred_id = f"urn:uuid:{uuid.uuid4()}"
    jws = sign_identity(ident.did_private, ident.did, subject_did=subject_did,
                        wallet=owner.address, valid_from=now,
                        valid_until=now + timedelta(days=days), credential_id=cred_id)  # fmt: skip
    path = out or net.files.identity_credential_path(owner.address)
    path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    write_private(path, (jws + "\n").encode())
    return IssuedCredential(cred_id, str(path), subject_did, ident.did)


def verify_attestation(net: Network, token_id: int, passphrase: str | None = None) -> Verdict:
    """A record's issuer attestation, checked against the chain and the record itself."""
    from healthnft.credentials.vc import verify_credential

    row = catalogued(net, token_id)
    owner = current_owner(net, token_id)
    wallet = net.wallet()
    rec = wallet.open(token_id, net.identity(owner, passphrase))
    problem = wallet.attestation_problem(row, rec.meta)
    vc = rec.meta.get("attestation")
    cred = verify_credential(vc) if isinstance(vc, str) and not problem else {}
    return Verdict(problem is None, problem or "valid", cred.get("id"), cred.get("issuer"),
                   cred.get("type"))  # fmt: skip


def verify_file(net: Network, path: Path) -> Verdict:
    """A credential file (identity credential or record attestation), checked as
    ``verify_attestation`` checks a record's: signature and validity, the issuer's DID
    bound on chain to a registered hospital, no revocation, the patient DID bound to
    the wallet it names."""
    return verify_jws(net, read_jws(path))


def verify_jws(net: Network, jws: str) -> Verdict:
    """A credential (compact JWS) checked against the chain, as :func:`verify_file`."""
    from healthnft.credentials.trust import ChainTrust

    try:
        cred = ChainTrust(net.ledger).verify(jws.strip())
    except HealthNFTError as exc:
        return Verdict(False, str(exc))
    return Verdict(True, "valid", cred.get("id"), cred.get("issuer"), cred.get("type"))


def revoke(net: Network, target: str, passphrase: str | None = None, *,
           issuer: str | None = None) -> str:  # fmt: skip
    """Revoke, as its issuer, a record's attestation (token id), a credential (compact
    JWS) or a credential file — the CLI's door, where a path is the user's own file.

    Returns the revoked credential's id. Only the issuer's key can revoke (on chain);
    with ``issuer`` given (a signed-in hospital), it must be that issuer.
    """
    from healthnft.credentials.vc import attestation_id

    if target.lstrip("-").isdigit():  # a token id (any int: catalogued refuses a bad one)
        row = catalogued(net, int(target))
        if issuer is not None and not same(row.issuer, issuer):
            raise AccessDenied("only the record's issuer can revoke its attestation")
        signer = net.identity(row.issuer, passphrase)
        rec = net.wallet().open(int(target), signer)  # the issuer holds the batch key too
        return _revoke_id(net, signer, attestation_id(str(rec.meta.get("attestation", ""))))
    jws = target if _looks_like_jws(target) else read_jws(Path(target))
    return revoke_jws(net, jws, passphrase, issuer=issuer)


def revoke_jws(net: Network, jws: str, passphrase: str | None = None, *,
               issuer: str | None = None) -> str:  # fmt: skip
    """Revoke a credential given as a compact JWS, as its issuer (the web's door: a
    request's text is never taken for a path on the server)."""
    from healthnft.credentials.trust import did_address
    from healthnft.credentials.vc import verify_credential

    jws = jws.strip()
    if not _looks_like_jws(jws):
        raise InvalidInput("not a credential: give the compact JWS (three base64url parts)")
    cred = verify_credential(jws)
    address = did_address(net.ledger, str(cred.get("issuer")))
    if address is None or not net.has_key(address) or (
        issuer is not None and not same(address, issuer)
    ):
        raise AccessDenied("only the credential's issuer can revoke it")
    return _revoke_id(net, net.identity(address, passphrase), cred.get("id"))


def _looks_like_jws(text: str) -> bool:
    return text.count(".") == 2 and "/" not in text and "\\" not in text


def _revoke_id(net: Network, signer: Any, cred_id: object) -> str:
    from healthnft.credentials.vc import credential_hash

    if not cred_id:
        raise InvalidInput("the credential has no id to revoke")
    net.ledger.revoke_credential(signer.account, credential_hash(str(cred_id)))
    return str(cred_id)


def new_challenge(net: Network, domain: str) -> str:
    """A one-time challenge for a wallet to present credentials against (5 minutes)."""
    if not domain:
        raise InvalidInput("a challenge names the verifier's domain")
    return net.challenges().issue(domain)


def challenge_book(clock: Callable[[], float]) -> Any:
    """A private in-memory challenge store (a web server's sign-in nonces): the same
    one-time, expiring, single-use challenges as a home's, kept for one process only."""
    from healthnft.credentials.challenges import ChallengeStore

    return ChallengeStore(None, clock=clock)


def check_presentation(net: Network, path: Path, domain: str) -> Verdict:
    """The presentation in file ``path``, checked as :func:`check_presentation_jws` does."""
    where = "the presentation file"
    return check_presentation_jws(net, read_jws(path, where), domain, where)


def check_presentation_jws(net: Network, jws: str, domain: str,
                           what: str = "the presentation") -> Verdict:  # fmt: skip
    """Verify a presentation against a challenge issued here; a replay is refused.

    Signatures are not enough (anyone can make a did:key): every credential's issuer
    must be a hospital with the issuer role on chain, none may be revoked or expired,
    and an identity credential's holder must be the DID bound to the wallet it names.
    """
    from healthnft.credentials import presentation_nonce
    from healthnft.credentials.trust import ChainTrust

    try:
        nonce = presentation_nonce(jws)
    except InvalidInput:
        raise InvalidInput(f"{what}: not a presentation") from None
    try:
        vp = ChainTrust(net.ledger).verify_presentation(
            jws, challenge=str(nonce), domain=domain, challenges=net.challenges()
        )
    except HealthNFTError as exc:
        return Verdict(False, str(exc))
    return Verdict(True, "valid", holder=vp.holder, credentials=len(vp.credentials))


def present(net: Network, owner: str, challenge: str, domain: str,
            credential_files: Sequence[Path] = (),
            passphrase: str | None = None) -> SignedPresentation:  # fmt: skip
    """Sign a Verifiable Presentation of the wallet's credentials for one challenge."""
    from healthnft.credentials.presentation import create_presentation

    holder = net.identity(net.participant(owner).address, passphrase)
    files = list(credential_files) or [net.files.identity_credential_path(holder.address)]
    creds = [read_jws(f, f"credential file {n} of {len(files)}") for n, f in enumerate(files, 1)]
    vp = create_presentation(holder.did_private, holder.did, creds, challenge=challenge,
                             domain=domain)  # fmt: skip
    return SignedPresentation(holder.did, domain, len(creds), vp)


def health_card(net: Network, token_ids: list[int], out_dir: Path, name: str = "health-card",
                passphrase: str | None = None, owner: str | None = None, *,
                qr: bool = True, replace: bool = False) -> Any:  # fmt: skip
    """Export the owner's immunization/laboratory records as a SMART Health Card.

    The card is signed by the hospital that issued the records (its key lives in
    this home). With ``owner`` given (a signed-in patient), every token must be theirs.
    With ``qr``, the card's one QR code too (a card too large for one code is refused:
    chunked codes are deprecated); ``replace``: a card of that name in ``out_dir``.
    """
    from healthnft.wallet.cards import export_health_card

    if not token_ids:
        raise InvalidInput("choose at least one immunization or laboratory record")
    check_token_ids(*token_ids)
    holder = current_owner(net, token_ids[0])
    if owner is not None and not same(holder, owner):
        raise NotFound("no record you may open has this id")
    row = catalogued(net, token_ids[0])
    return export_health_card(net.wallet(), net.identity(holder, passphrase),
                              net.identity(row.issuer, passphrase), token_ids, out_dir,
                              name, qr=qr, replace=replace)  # fmt: skip


def verify_cards(files: Sequence[Path], issuer_keys: Sequence[str] = (),
                 fetch_keys: bool = False) -> list[dict[str, Any]]:
    """Verify SMART Health Cards: signature, issuer, revocation, FHIR content (offline
    unless ``fetch_keys``). One verdict per card found in ``files``, its ``source`` the
    card's position ("file 2 of 3"): a file name may be the patient's."""
    from healthnft.credentials import HttpIssuer, TrustStore, read_cards, verify_card

    trust = TrustStore.from_pairs(list(issuer_keys), fetch=HttpIssuer if fetch_keys else None)
    return [{"source": card.source, **verify_card(card.jws, trust).as_dict()}
            for card in read_cards(list(files))]  # fmt: skip
