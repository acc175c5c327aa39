"""What a participant does, one function per action, shared by the CLI and the HTTP API.

Each function takes an open :class:`~healthnft.network.Network` and the
*address* of the participant acting; it unlocks that participant's keystore in
the home itself (with the home's passphrase), so a caller never handles keys.
Both front ends call these and nothing lower, which keeps the two from drifting
apart: a rule enforced here (only the owner may share, a grantee opens through
the custodians) holds for the command line and the web alike.

Errors are :class:`~healthnft.errors.HealthNFTError` subclasses with messages
that name token ids and addresses, never record content.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from healthnft.errors import AccessDenied, HealthNFTError, UnknownParticipant
from healthnft.wallet.wallet import BURNED, OpenedRecord, Verification

if TYPE_CHECKING:
    from healthnft.network import Network

DAY = 86400


def _unlock(net: Network, address: str, passphrase: str | None = None) -> Any:
    return net.identity(net.participant(address).address, passphrase)


def current_owner(net: Network, token_id: int) -> str:
    """The token's owner on chain, or a clear error saying why there is none."""
    owner = net.ledger.owner_of(token_id)
    if owner is not None:
        return owner
    if 0 < token_id < net.ledger.next_token_id():
        raise AccessDenied(f"token {token_id}: {BURNED}")
    raise UnknownParticipant(f"token {token_id} does not exist")


def list_records(net: Network, owner: str) -> list[dict[str, Any]]:
    """The records ``owner`` holds, each confirmed on chain."""
    net.participant(owner)
    return net.wallet().list(owner)


def open_record(net: Network, reader: str, token_id: int,
                passphrase: str | None = None) -> OpenedRecord:  # fmt: skip
    """Open a record as ``reader``: its owner directly, a grantee through the custodians."""
    from healthnft.consent import open_as_grantee

    ident = _unlock(net, reader, passphrase)
    owner = net.ledger.owner_of(token_id)
    if owner is not None and owner.lower() == ident.address.lower():
        return net.wallet().open(token_id, ident)
    custody = net.custodians()
    if custody is None:
        raise HealthNFTError("this network has no key custodians: sharing needs them")
    return open_as_grantee(ident, token_id, net.custodian_services(), custody.threshold,
                           net.ledger, net.catalog, net.blobs,
                           net.derivatives().original_of)  # fmt: skip


def write_record_file(net: Network, reader: str, token_id: int, out: Any,
                      passphrase: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Write a record as a file (note text, PDF, PNG, DICOM files) for its owner or a grantee.

    A grantee reads through the custodians, exactly as :func:`open_record` does (each
    release logged on chain); an imaging study's chunks are then streamed with the
    stream key from the released record, which never leaves this call.
    """
    from pathlib import Path

    import orjson

    from healthnft.consent.custodian import release_as_grantee
    from healthnft.wallet.files import record_file, write_private, write_study
    from healthnft.wallet.wallet import OpenedRecord

    out = Path(out)
    ident = _unlock(net, reader, passphrase)
    owner = net.ledger.owner_of(token_id)
    wallet = net.wallet()
    if owner is not None and owner.lower() == ident.address.lower():
        rec = wallet.open(token_id, ident)
        source: Any = ident
    else:
        custody = net.custodians()
        if custody is None:
            raise HealthNFTError("this network has no key custodians: sharing needs them")
        row, plain = release_as_grantee(ident, token_id, net.custodian_services(),
                                        custody.threshold, net.ledger, net.catalog, net.blobs,
                                        net.derivatives().original_of)  # fmt: skip
        rec = OpenedRecord(token_id, plain.meta, orjson.loads(plain.canonical))
        source = (row, plain)
    if rec.is_study:
        return {"token_id": token_id, **write_study(wallet, token_id, source, out, rec.resource)}
    data = record_file(rec.resource, out.suffix)
    write_private(out, data)
    return {"token_id": token_id, "out": str(out), "bytes": len(data)}


def verify_record(net: Network, token_id: int, passphrase: str | None = None) -> Verification:
    """Check a record against the chain; with the owner's key in the home, its content too."""
    owner = net.ledger.owner_of(token_id)
    reader = None
    if owner is not None and net.has_key(owner):
        try:
            reader = net.identity(owner, passphrase)
        except HealthNFTError:
            reader = None
    return net.wallet().verify(token_id, reader)


def share(
    net: Network,
    owner: str,
    to: str,
    purpose: str,
    days: int,
    *,
    token_ids: list[int] | None = None,
    category: str | None = None,
    deidentified_only: bool = False,
    passphrase: str | None = None,
) -> dict[str, Any]:
    """Grant ``to`` read access to records (or a category) for a purpose, for ``days``."""
    from healthnft.ledger.consent import Consent

    if bool(token_ids) == bool(category):
        raise HealthNFTError("give token ids or a category, not both")
    if days < 1:
        raise HealthNFTError("a grant lasts at least one day")
    ident = _unlock(net, owner, passphrase)
    grantee = net.participant(to)
    if grantee.address.lower() == ident.address.lower():
        raise HealthNFTError("you cannot share a record with yourself")
    if token_ids:
        owners = net.ledger.owners_of(list(token_ids))
        for tid, holder in zip(token_ids, owners, strict=True):
            if holder is None or holder.lower() != ident.address.lower():
                raise AccessDenied(f"token {tid}: only its owner can share it")
    expires = int(time.time()) + days * DAY
    consent = Consent(net.ledger)
    if category:
        gid = consent.share_category(ident.account, grantee.address, category, purpose,
                                     expires, deidentified_only)  # fmt: skip
    else:
        gid = consent.share_tokens(ident.account, grantee.address, list(token_ids or []),
                                   purpose, expires, deidentified_only)  # fmt: skip
    return {"grant_id": gid, "grantee": grantee.address, "grantee_kind": grantee.kind,
            "purpose": purpose, "expires": expires, "category": category,
            "token_ids": list(token_ids or [])}  # fmt: skip


def revoke(net: Network, owner: str, grant_id: int, passphrase: str | None = None) -> None:
    """End a grant now: no custodian releases a key under it afterwards."""
    from healthnft.ledger.consent import Consent

    ident = _unlock(net, owner, passphrase)
    consent = Consent(net.ledger)
    grant = consent.grant(grant_id)
    if grant is None or grant.owner.lower() != ident.address.lower():
        raise AccessDenied(f"grant {grant_id}: no such grant of yours")
    consent.revoke(ident.account, grant_id)


def grants_of(net: Network, owner: str) -> list[dict[str, Any]]:
    """The grants ``owner`` made, newest first, with whether each still holds."""
    from healthnft.ledger.consent import Consent

    who = net.participant(owner).address
    consent = Consent(net.ledger)
    now = int(time.time())
    rows = []
    for ev in consent.contract.events.GrantCreated().get_logs(
        from_block=0, argument_filters={"owner": who}
    ):
        grant = consent.grant(int(ev["args"]["grant_id"]))
        if grant is None:
            continue
        state = "revoked" if grant.revoked else ("expired" if grant.expires <= now else "active")
        local = net.catalog.participant(grant.grantee)
        kind, _, _ = net.ledger.participant(grant.grantee)
        rows.append({"grant_id": grant.grant_id, "grantee": grant.grantee,
                     "grantee_kind": kind, "grantee_name": local.label if local else "",
                     "category": grant.category,
                     "token_ids": _granted_tokens(consent, grant, ev["transactionHash"]),
                     "purpose": grant.purpose, "expires": grant.expires,
                     "deidentified_only": grant.deidentified_only, "state": state})  # fmt: skip
    return sorted(rows, key=lambda r: -r["grant_id"])


def _granted_tokens(consent: Any, grant: Any, tx_hash: Any) -> list[int]:
    """Which tokens a token grant covers, read back from the transaction that made it.

    The contract keeps them in a map it cannot enumerate, so the creating call's
    input is decoded instead (``share_tokens``, a request auto-approved by a
    policy, or the approval of a request).
    """
    if grant.category is not None:
        return []
    tx = consent.ledger.w3.eth.get_transaction(tx_hash)
    try:
        fn, args = consent.contract.decode_function_input(tx["input"])
    except ValueError:
        return []
    if fn.fn_name == "share_tokens":
        return [int(t) for t in args["token_ids"]]
    if fn.fn_name == "request":
        return [int(args["token_id"])] if args["token_id"] else []
    if fn.fn_name == "approve":
        req = consent.get_request(int(args["request_id"]))
        return [req.token_id] if req and req.token_id else []
    return []


def shared_with(net: Network, grantee: str) -> list[dict[str, Any]]:
    """Records ``grantee`` may open now under live grants (for institutions' pages).

    One log query finds the grantee's grants; each live one is expanded to its
    tokens (a token grant's from its creating call, a category grant's from the
    owner's records of that category) and every token is confirmed with the
    contract's own ``can_access``.
    """
    from healthnft.ledger.consent import Consent

    who = net.participant(grantee).address
    consent = Consent(net.ledger)
    now = int(time.time())
    found: dict[int, dict[str, Any]] = {}
    links = net.derivatives()
    for ev in consent.contract.events.GrantCreated().get_logs(
        from_block=0, argument_filters={"grantee": who}
    ):
        gid = int(ev["args"]["grant_id"])
        grant = consent.grant(gid)
        if grant is None or grant.revoked or grant.expires <= now:
            continue
        if grant.category is None:
            rows = [net.catalog.record(t)
                    for t in _granted_tokens(consent, grant, ev["transactionHash"])]  # fmt: skip
        else:
            rows = [r for r in net.catalog.records_of(grant.owner) if r.category == grant.category]
        if grant.deidentified_only:  # only the records' de-identified copies are readable
            copies = [c for r in rows if r is not None and links.original_of(r.token_id) is None
                      for c in links.copies_of(r.token_id)]  # fmt: skip
            rows = [r for r in rows if r is not None and links.original_of(r.token_id)]
            rows += [net.catalog.record(c) for c in copies]
        for row in rows:
            if row is None or row.status == "burned" or row.token_id in found:
                continue
            original = links.original_of(row.token_id)
            if consent.can_access(gid, who, row.token_id) or (
                original is not None and consent.can_access(gid, who, original)
            ):
                found[row.token_id] = {"token_id": row.token_id, "owner": row.owner,
                                       "category": row.category,
                                       "resource_type": row.resource_type,
                                       "effective_date": row.effective_date,
                                       "grant_id": gid, "purpose": grant.purpose}  # fmt: skip
    return [found[t] for t in sorted(found)]


def health_card(net: Network, token_ids: list[int], out_dir: Any, name: str = "health-card",
                passphrase: str | None = None, owner: str | None = None) -> Any:  # fmt: skip
    """Export the owner's immunization/laboratory records as a SMART Health Card.

    The card is signed by the hospital that issued the records (its key lives in
    this home). With ``owner`` given, every token must be that owner's.
    """
    from healthnft.wallet.cards import export_health_card

    if not token_ids:
        raise HealthNFTError("choose at least one immunization or laboratory record")
    holder = current_owner(net, token_ids[0])
    if owner is not None and holder.lower() != owner.lower():
        raise AccessDenied(f"token {token_ids[0]}: only its owner can export it")
    row = net.catalog.record(token_ids[0])
    if row is None:
        raise UnknownParticipant(f"token {token_ids[0]} is not in this home's catalogue")
    return export_health_card(net.wallet(), net.identity(holder, passphrase),
                              net.identity(row.issuer, passphrase), token_ids, out_dir,
                              name)  # fmt: skip


#: How de-identified copies are made, as recorded with each link.
SAFE_HARBOR = "HIPAA Safe Harbor (45 CFR 164.514(b)(2))"
DICOM_BASIC_PROFILE = "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile"


def _deidentify_study(net: Network, token_id: int, owner: Any, issuer: Any, rec: Any,
                      key: bytes, minter: Any, patient: Any) -> tuple[Any, Any]:  # fmt: skip
    """Decrypt a study into a private folder, de-identify every instance, mint the copy.

    UIDs are remapped with one key for the whole study (the same record always gives
    the same copy); an image that may carry burned-in text is refused, not copied.
    The decrypted and de-identified files live only in a 0700 folder inside the home
    and are deleted whatever happens.
    """
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from healthnft.records.deid.dicom import DicomDeidentifier
    from healthnft.records.dicom import prepare_study, read_studies
    from healthnft.wallet.files import write_study

    work = Path(tempfile.mkdtemp(prefix=".deid-", dir=net.home))
    try:
        os.chmod(work, 0o700)
        source, target = work / "source", work / "copy"
        write_study(net.wallet(), token_id, owner, source, rec.resource)
        target.mkdir(mode=0o700)
        deid = DicomDeidentifier(key=key)
        files = sorted(p for p in source.iterdir() if p.is_file())
        for n, path in enumerate(files, 1):
            deid.file(path, target / path.name, label=f"instance {n} of {len(files)}")
        studies = read_studies([target])
        if len(studies) != 1:
            raise HealthNFTError(f"token {token_id}: the de-identified copy is not one study")
        record = prepare_study(studies[0])
        return minter.mint(issuer, patient.address, patient.enc_key, [record]), record
    finally:
        shutil.rmtree(work, ignore_errors=True)


def deidentify(net: Network, token_id: int, passphrase: str | None = None) -> dict[str, Any]:
    """Mint a de-identified copy of a record into its owner's wallet, linked to it.

    The copy is made per HIPAA Safe Harbor (:mod:`healthnft.records.deid.fhir`; a
    note's text is scrubbed with every identifier the patient's own Patient
    records hold), attested and minted by the hospital that issued the original,
    as a token of its own. Its pseudonyms come from a key derived from the home's
    secret and the token id, so the same record always gives the same copy: a
    retry after a crash finds the copy already minted instead of minting a second.
    """
    import hashlib
    import hmac

    from healthnft.records import SourceResource, prepare
    from healthnft.records.deid.fhir import deidentify_resource, known_identifiers

    holder = current_owner(net, token_id)
    row = net.catalog.record(token_id)
    if row is None:
        raise UnknownParticipant(f"token {token_id} is not in this home's catalogue")
    links = net.derivatives()
    if links.original_of(token_id) is not None:
        raise HealthNFTError(f"token {token_id} is itself a de-identified copy")
    owner = net.identity(holder, passphrase)
    if not net.has_key(row.issuer):
        raise HealthNFTError(f"token {token_id}: its issuing hospital's key is not in this "
                             "home, and only the issuer may mint the copy")  # fmt: skip
    issuer = net.identity(row.issuer, passphrase)
    wallet = net.wallet()
    rec = wallet.open(token_id, owner)
    secret = (net.home / "secret.key").read_bytes()
    key = hmac.new(secret, b"healthnft/deid/v1|%d" % token_id, hashlib.sha256).digest()
    method = SAFE_HARBOR
    minter = net.minter()
    patient = net.participant(holder)
    if getattr(rec, "is_study", False):
        method = DICOM_BASIC_PROFILE
        res, record = _deidentify_study(net, token_id, owner, issuer, rec, key, minter, patient)
    else:
        if not str(rec.meta.get("format", "")).startswith("application/fhir+json"):
            raise HealthNFTError(f"token {token_id}: de-identifying {rec.meta.get('format')} "
                                 "records is not supported")  # fmt: skip
        patients = [wallet.open(r["token_id"], owner).resource for r in wallet.list(holder)
                    if r["resource_type"] == "Patient"]  # fmt: skip
        copy = deidentify_resource(rec.resource, key=key, known=known_identifiers(patients))
        record = prepare(SourceResource(copy, f"de-identified copy of token {token_id}"))
        res = minter.mint(issuer, holder, patient.enc_key, [record])
    new = res.token_ids[0] if res.token_ids else net.catalog.token_with_record_key(
        minter.record_key(issuer.address, holder, record.canonical))
    if new is None:
        raise HealthNFTError(f"token {token_id}: the de-identified copy was not minted")
    links.add(token_id, new, method)
    return {"token_id": new, "derived_from": token_id, "method": method,
            "category": record.category, "resource_type": record.resource_type}


def transfer(net: Network, owner: str, token_id: int, to: str,
             passphrase: str | None = None) -> str:  # fmt: skip
    """Give a record to a registered participant, re-encrypted so only they can open it."""
    from healthnft.wallet.actions import OwnerActions

    ident = _unlock(net, owner, passphrase)
    recipient = net.participant(to)
    row = net.catalog.record(token_id)
    if row is None:
        raise UnknownParticipant(f"token {token_id} is not in this home's catalogue")
    _, _, issuer_key = net.ledger.participant(row.issuer)
    OwnerActions(net.ledger, net.catalog, net.blobs, net.custodians()).transfer(
        ident, token_id, recipient.address, recipient.enc_key, issuer_key
    )
    return recipient.address


def burn(net: Network, owner: str, token_id: int, passphrase: str | None = None) -> None:
    """Burn the token and crypto-shred its record (irreversible, idempotent)."""
    from healthnft.wallet.actions import OwnerActions

    ident = _unlock(net, owner, passphrase)
    OwnerActions(net.ledger, net.catalog, net.blobs, net.custodians()).burn(ident, token_id)


def request_view(req: Any) -> dict[str, Any]:
    """An on-chain access request as plain JSON."""
    return {"request_id": req.request_id, "requester": req.requester, "owner": req.owner,
            "token_id": req.token_id, "category": req.category, "purpose": req.purpose,
            "days": req.duration // DAY, "reward_wei": req.escrow, "state": req.state,
            "grant_id": req.grant_id}  # fmt: skip


def request_access(net: Network, requester: str, owner: str, purpose: str, *, days: int = 30,
                   token_id: int | None = None, category: str | None = None,
                   reward_wei: int = 0, reason: str = "",
                   passphrase: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Ask a patient for access; a matching consent policy grants it at once.

    The free-text reason stays in this home, never on chain.
    """
    from healthnft.ledger.consent import Consent

    if (token_id is None) == (category is None):
        raise HealthNFTError("give a token id or a category")
    asker = _unlock(net, requester, passphrase)
    consent = Consent(net.ledger)
    rid = consent.request(asker.account, net.participant(owner).address, purpose=purpose,
                          duration=days * DAY, token_id=token_id, category=category,
                          reward_wei=reward_wei)  # fmt: skip
    if reason:
        net.catalog.note_request_reason(rid, reason)
    return request_view(consent.get_request(rid))


def requests_for(net: Network, owner: str) -> list[dict[str, Any]]:
    """Requests made to ``owner``, with their state and the off-chain reason."""
    from healthnft.ledger.consent import Consent

    consent = Consent(net.ledger)
    who = net.participant(owner).address
    rows = []
    for ev in consent.contract.events.AccessRequested().get_logs(
        from_block=0, argument_filters={"owner": who}
    ):
        view = request_view(consent.get_request(int(ev["args"]["request_id"])))
        view["reason"] = net.catalog.request_reason(view["request_id"])
        rows.append(view)
    return rows


def requests_by(net: Network, requester: str) -> list[dict[str, Any]]:
    """Requests ``requester`` made, with their state."""
    from healthnft.ledger.consent import Consent

    consent = Consent(net.ledger)
    who = net.participant(requester).address
    return [
        request_view(consent.get_request(int(ev["args"]["request_id"])))
        for ev in consent.contract.events.AccessRequested().get_logs(
            from_block=0, argument_filters={"requester": who}
        )
    ]


def _own_request(net: Network, owner_address: str, request_id: int) -> None:
    from healthnft.ledger.consent import Consent

    req = Consent(net.ledger).get_request(request_id)
    if req is None or req.owner.lower() != owner_address.lower():
        raise AccessDenied(f"request {request_id}: no such request to you")


def approve(net: Network, owner: str, request_id: int, deidentified_only: bool = False,
            passphrase: str | None = None) -> int:  # fmt: skip
    """Grant a pending request; any reward in escrow is paid to the patient."""
    from healthnft.ledger.consent import Consent

    ident = _unlock(net, owner, passphrase)
    _own_request(net, ident.address, request_id)
    return Consent(net.ledger).approve(ident.account, request_id, deidentified_only)


def decline(net: Network, owner: str, request_id: int, passphrase: str | None = None) -> None:
    """Decline a pending request; any reward is refunded to the requester."""
    from healthnft.ledger.consent import Consent

    ident = _unlock(net, owner, passphrase)
    _own_request(net, ident.address, request_id)
    Consent(net.ledger).decline(ident.account, request_id)


def access_log(net: Network, owner: str) -> list[dict[str, Any]]:
    """Every key release for ``owner``'s records: who, which token, purpose, when."""
    from healthnft.ledger.consent import Consent

    return Consent(net.ledger).access_log(net.participant(owner).address)
