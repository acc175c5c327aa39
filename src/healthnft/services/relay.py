"""Transactions the patient signs on their own device, relayed by the node.

The node holds no patient key on this path. A patient's action (share, revoke, answer a
request, policies, allow a correction, transfer, burn) takes two calls:

1. :func:`prepare` checks the action exactly as the hosted path does (the same service
   functions: :func:`.sharing.plan_share`, :func:`.sharing.own_request`,
   :func:`.amending.check_approve_amendment`…), then answers the *unsigned*
   transaction the chain needs (contract, calldata, chain id, the account's next nonce,
   gas with the project's margin, fees as :class:`~healthnft.ledger.client.Ledger`
   computes them) and one plain sentence of what it will do, with names and counts
   from this node's registry and catalogue ("Give Research Institute read access to 3
   lab results for 30 days for research."). The device shows the sentence and signs.
2. :func:`send` takes the signed bytes and refuses them unless they are signed by the
   session's own account, for this chain, addressed to one of this network's contracts
   and calling one of the patient actions above (no payment attached); the service rules
   the contract does not hold (who may receive a grant, how long it may last) are checked
   again on the decoded call. Then it relays the bytes unchanged, awaits the receipt and
   brings this node's own state along (a transfer's copy re-encrypted for the new owner,
   a burn's crypto-shredding, the grant or policy id for the answer). The same bytes sent
   again answer the first result.

Why the node cannot forge: it never holds the key, so it cannot make a signature; it
cannot alter the signed bytes (the signature covers every field, and the sender is
recovered from it); and the contracts check ``msg.sender`` (the owner of the token, the
grant, the request, the policy), so a transaction signed by anyone else, relayed here or
anywhere, is refused by the chain.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from healthnft.errors import AccessDenied, Conflict, InvalidInput, LedgerError
from healthnft.services import amending, describe, records, sharing
from healthnft.services.access import DAY, catalogued, require_owner, same

if TYPE_CHECKING:
    from healthnft.ledger.consent import Consent
    from healthnft.network import Network

#: The patient actions a device may sign, by name (the ``action`` of :func:`prepare`).
ACTIONS = ("share", "share-category", "revoke", "approve-request", "decline-request",
           "add-policy", "remove-policy", "approve-amendment", "transfer", "burn")  # fmt: skip

#: The contract functions those actions call, by contract: nothing else is relayed.
_CONSENT_FUNCTIONS = {"share_tokens": "share", "share_category": "share-category",
                      "revoke": "revoke", "approve": "approve-request",
                      "decline": "decline-request", "add_policy": "add-policy",
                      "remove_policy": "remove-policy"}  # fmt: skip
_TOKEN_FUNCTIONS = {"approve_amendment": "approve-amendment", "transferFrom": "transfer",
                    "burn": "burn"}  # fmt: skip

#: How a number of records of one category is said ("3 lab results").
_NOUNS = {
    "laboratory": ("lab result", "lab results"),
    "vital-signs": ("vital sign reading", "vital sign readings"),
    "immunization": ("vaccination", "vaccinations"),
    "condition": ("condition", "conditions"),
    "procedure": ("procedure", "procedures"),
    "encounter": ("visit record", "visit records"),
    "claim": ("insurance claim", "insurance claims"),
    "diagnostic-report": ("report", "reports"),
    "care-plan": ("care plan", "care plans"),
    "care-team": ("care team record", "care team records"),
    "medication": ("medication record", "medication records"),
    "allergy": ("allergy record", "allergy records"),
    "imaging": ("imaging study", "imaging studies"),
    "note": ("clinical note", "clinical notes"),
    "demographics": ("personal details record", "personal details records"),
    "survey": ("questionnaire", "questionnaires"),
    "social-history": ("social history record", "social history records"),
    "exam": ("examination record", "examination records"),
    "observation": ("observation", "observations"),
}
_KIND_NOUNS = {"hospital": ("hospital", "hospitals"), "pharma": ("pharmaceutical company",
               "pharmaceutical companies"), "research": ("research institute",
               "research institutes"), "insurer": ("insurer", "insurers"),
               "government": ("government agency", "government agencies"),
               "patient": ("patient", "patients"), "custodian": ("key custodian",
               "key custodians"), "manufacturer": ("medicine manufacturer",
               "medicine manufacturers"), "pharmacy": ("pharmacy", "pharmacies")}  # fmt: skip
_PURPOSE_WORDS = {"treatment": "treatment", "research": "research",
                  "insurance": "insurance", "public-health": "public health"}  # fmt: skip


@dataclass(frozen=True)
class Prepared:
    """An unsigned transaction for the device to sign, and what it will do, in words."""

    action: str
    prompt: str
    tx: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Relayed:
    """A device-signed transaction the chain has mined, and what it did."""

    action: str
    tx_hash: str
    block: int
    result: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _consent(net: Network) -> Consent:
    from healthnft.ledger.consent import Consent

    return Consent(net.ledger)


# -- words ------------------------------------------------------------------------------


def _count(n: int, category: str) -> str:
    one, many = _NOUNS.get(category, ("record", "records"))
    return f"{n} {one if n == 1 else many}"


def _record(net: Network, token_id: int) -> str:
    """"your lab result of 12 March 2024", from this node's catalogue (never the content)."""
    row = net.catalog.record(token_id)
    if row is None:
        return f"your record {token_id}"
    noun = _NOUNS.get(row.category, ("record", ""))[0]
    when = describe.human_date(row.effective_date, month="%B")
    return f"your {noun} of {when}" if when else f"your {noun} (record {token_id})"


def _records(net: Network, token_ids: list[int]) -> str:
    """"3 lab results", "2 lab results and 1 vaccination", or one record by its date."""
    if len(token_ids) == 1:
        return _record(net, token_ids[0]).removeprefix("your ")
    counts: dict[str, int] = {}
    for tid in token_ids:
        row = net.catalog.record(tid)
        category = row.category if row is not None else "other"
        counts[category] = counts.get(category, 0) + 1
    parts = [_count(n, c) for c, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _name(net: Network, address: str) -> str:
    """A participant's name as this node knows it; else what the chain says they are."""
    local = net.catalog.participant(address)
    if local is not None and local.label:
        return local.label
    kind, _, _ = net.ledger.participant(address)
    one = _KIND_NOUNS.get(kind or "", ("participant", ""))[0]
    return f"an unnamed {one} ({address[:6]}…{address[-4:]})"


def _days(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"


def _deid(deidentified_only: bool) -> str:
    return " (de-identified copies only)" if deidentified_only else ""


def _category_records(net: Network, owner: str, category: str) -> str:
    rows = [r for r in net.catalog.records_of(owner)
            if r.category == category and r.status == "active"]  # fmt: skip
    many = _NOUNS.get(category, ("record", "records"))[1]
    return f"all your {many} ({len(rows)} now, and any added later)"


def _what_granted(net: Network, grant: Any) -> str:
    if grant.category is not None:
        return f"your {_NOUNS.get(grant.category, ('', 'records'))[1]}"
    for row in sharing.grants_of(net, grant.owner):
        if row["grant_id"] == grant.grant_id and row["token_ids"]:
            what = _records(net, row["token_ids"])
            return what if len(row["token_ids"]) > 1 else f"your {what}"
    return "your records"


def _what_requested(net: Network, req: Any) -> str:
    if req.token_id is not None:
        return _record(net, req.token_id)
    return f"your {_NOUNS.get(req.category or '', ('', 'records'))[1]}"


def _eth(wei: int) -> str:
    return f"{wei / 10**18:.6g} ETH"


# -- network ----------------------------------------------------------------------------


def network(net: Network) -> dict[str, Any]:
    """The chain id and the two contracts a patient's device signs for. The page pins
    them the first time it signs at this node and refuses, from then on, a prepared
    transaction for another chain or contract (``static/wallet/pins.js``)."""
    ledger = net.ledger
    consent = ledger.consent.address if ledger.consent is not None else None
    return {"chain_id": ledger.chain_id, "token": ledger.token.address, "consent": consent}


# -- prepare ----------------------------------------------------------------------------


def _need(args: dict[str, Any], name: str, action: str) -> Any:
    value = args.get(name)
    if value is None or value == "" or value == []:
        raise InvalidInput(f"{action} needs {name}")
    return value


def _plan(net: Network, me: str, action: str, a: dict[str, Any]) -> tuple[Any, str]:
    """(the contract call, its sentence) for ``action`` by ``me``, after every check."""
    ledger = net.ledger
    consent = _consent(net)
    if action in ("share", "share-category"):
        purpose, days = str(_need(a, "purpose", action)), int(a.get("days") or 30)
        deid = bool(a.get("deidentified_only"))
        if action == "share":
            tokens = [int(t) for t in _need(a, "token_ids", action)]
            plan = sharing.plan_share(net, me, str(_need(a, "to", action)), purpose, days,
                                      token_ids=tokens, deidentified_only=deid)  # fmt: skip
            what = _records(net, tokens) if len(tokens) > 1 else _record(net, tokens[0])
        else:
            category = str(_need(a, "category", action))
            plan = sharing.plan_share(net, me, str(_need(a, "to", action)), purpose, days,
                                      category=category, deidentified_only=deid)  # fmt: skip
            what = _category_records(net, me, category)
        return plan.call, (f"Give {_name(net, plan.grantee.address)} read access to {what}"
                           f"{_deid(deid)} for {_days(days)} for {_PURPOSE_WORDS[purpose]}.")
    if action == "revoke":
        gid = int(_need(a, "grant_id", action))
        grant = sharing.own_grant(net, me, gid)
        if grant.revoked:
            raise Conflict(f"grant {gid} is already revoked")
        return consent.contract.functions.revoke(gid), (
            f"Stop {_name(net, grant.grantee)}'s read access to {_what_granted(net, grant)} "
            "now: no key is released under this grant afterwards.")
    if action in ("approve-request", "decline-request"):
        rid = int(_need(a, "request_id", action))
        req = sharing.own_request(net, me, rid)
        if req.state != "pending":
            raise Conflict(f"request {rid} is {req.state}, not pending: there is nothing "
                           "to answer")  # fmt: skip
        who, what = _name(net, req.requester), _what_requested(net, req)
        purpose = _PURPOSE_WORDS.get(req.purpose, req.purpose)
        if action == "decline-request":
            refund = f"; the {_eth(req.escrow)} they offered goes back to them" \
                if req.escrow else ""
            return consent.contract.functions.decline(rid), (
                f"Decline {who}'s request to read {what} for {purpose}{refund}.")
        deid = bool(a.get("deidentified_only"))
        paid = f", and receive the {_eth(req.escrow)} they offered" if req.escrow else ""
        return consent.contract.functions.approve(rid, deid), (
            f"Give {who} read access to {what}{_deid(deid)} for "
            f"{_days(req.duration // DAY)} for {purpose}, as they asked{paid}.")
    if action == "add-policy":
        kind, purpose = str(_need(a, "kind", action)), str(_need(a, "purpose", action))
        days, valid = int(a.get("days") or 365), int(a.get("valid_days") or 365)
        category, deid = a.get("category") or None, bool(a.get("deidentified_only"))
        call = sharing.plan_add_policy(net, kind=kind, purpose=purpose, category=category,
                                       days=days, valid_days=valid,
                                       deidentified_only=deid)  # fmt: skip
        many = _KIND_NOUNS[kind][1]
        what = (f"your {_NOUNS.get(category, ('', 'records'))[1]}" if category
                else "any one of your records")  # fmt: skip
        return call, (f"Let {many} who ask read {what}{_deid(deid)} for up to {_days(days)} "
                      f"for {_PURPOSE_WORDS[purpose]}, approved without asking you, for the "
                      f"next {_days(valid)}.")
    if action == "remove-policy":
        number = int(_need(a, "number", action))
        policy = sharing.own_policy(net, me, number)
        if not policy.active:
            raise Conflict(f"policy {number} is already off")
        many = _KIND_NOUNS.get(policy.kind or "", ("", "institutions"))[1]
        what = (f"your {_NOUNS.get(policy.category, ('', 'records'))[1]}" if policy.category
                else "any one of your records")  # fmt: skip
        purpose = _PURPOSE_WORDS.get(policy.purpose or "", "any purpose")
        return consent.contract.functions.remove_policy(number), (
            f"Turn off your policy {number}, which lets {many} read {what} for {purpose} "
            "without asking you; grants it already made stay until you revoke them.")
    token_id = int(_need(a, "token_id", action))
    if action == "approve-amendment":
        hospital = amending.check_approve_amendment(net, me, token_id,
                                                    str(_need(a, "issuer", action)))
        call = ledger.token.functions.approve_amendment(token_id, hospital.address)
        return call, (f"Allow {_name(net, hospital.address)} to correct "
                      f"{_record(net, token_id)} once, with a new version that replaces it.")
    if action == "transfer":
        row, recipient = records.check_transfer(net, me, token_id, str(_need(a, "to", action)))
        if not net.has_key(row.issuer):
            raise AccessDenied(f"token {token_id}: this node cannot re-encrypt it for its new "
                               "owner (its issuer's key is not here); transfer it at the "
                               "node of the hospital that issued it")  # fmt: skip
        call = ledger.transfer_call(me, recipient.address, token_id)
        return call, (f"Move {_record(net, token_id)} to {_name(net, recipient.address)}: "
                      "it becomes theirs, and you can no longer open or share it.")
    if action == "burn":
        if a.get("confirm") is not True:
            raise InvalidInput("burning is irreversible: confirm it (confirm: true)")
        row = catalogued(net, token_id)
        if ledger.is_burned(token_id) and same(row.owner, me):  # said to its last owner only
            raise Conflict(f"token {token_id} is already burned")
        require_owner(net, token_id, me)
        return ledger.token.functions.burn(token_id), (
            f"Destroy {_record(net, token_id)} permanently: it cannot be undone.")
    raise InvalidInput(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")


def prepare(net: Network, sender: str, action: str, args: dict[str, Any]) -> Prepared:
    """The unsigned transaction of ``action`` by ``sender`` (a registered patient, signed
    in; no key of theirs needed here) and its sentence. Every refusal is one error, and
    nothing is sent: the gas estimate runs the call as ``sender`` would, so the
    contract's own refusal comes now too."""
    if action not in ACTIONS:
        raise InvalidInput(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
    me = net.participant(sender)
    if me.kind != "patient":
        raise AccessDenied("only a patient's wallet signs these actions on its device")
    call, prompt = _plan(net, me.address, action, args)
    tx = net.ledger.unsigned(me.address, call)
    tx["data"] = "0x" + bytes(tx["data"]).hex()
    return Prepared(action, prompt, tx)


# -- send -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Decoded:
    sender: str
    chain_id: int | None
    to: str | None
    data: bytes
    value: int
    nonce: int
    tx_hash: bytes


def decode(raw: str | bytes) -> _Decoded:
    """A signed transaction (EIP-1559, EIP-2930 or legacy), with its recovered sender."""
    from eth_account import Account
    from eth_utils import keccak

    if isinstance(raw, str):
        text = raw.strip().removeprefix("0x")
        try:
            data = bytes.fromhex(text)
        except ValueError:
            raise InvalidInput("the signed transaction is not hex (0x…)") from None
    else:
        data = bytes(raw)
    if not data:
        raise InvalidInput("the signed transaction is empty")
    try:
        sender = Account.recover_transaction(data)
        if data[0] <= 0x7F:
            from eth_account.typed_transactions import TypedTransaction
            from hexbytes import HexBytes

            fields = TypedTransaction.from_bytes(HexBytes(data)).as_dict()
            chain_id = int(fields["chainId"])
        else:
            from eth_account._utils.legacy_transactions import Transaction

            legacy = Transaction.from_bytes(data)
            fields = {"to": legacy.to, "data": legacy.data, "value": legacy.value,
                      "nonce": legacy.nonce}  # fmt: skip
            chain_id = (legacy.v - 35) // 2 if legacy.v >= 35 else None
    except Exception:  # noqa: BLE001 - any undecodable input is one answer
        raise InvalidInput("the signed transaction cannot be decoded (not a signed "
                           "Ethereum transaction)") from None  # fmt: skip
    to = fields.get("to")
    to_hex = None if not to else (to if isinstance(to, str) else "0x" + bytes(to).hex())
    return _Decoded(sender, chain_id, to_hex, bytes(fields.get("data") or b""),
                    int(fields.get("value") or 0), int(fields["nonce"]), keccak(data))


def _check_relayable(net: Network, session: str, tx: _Decoded) -> tuple[str, str, dict]:
    """(action, function, arguments) of a signed transaction this node may relay for the
    ``session``'s account; anything else is one error, before anything is sent."""
    from web3 import Web3

    ledger = net.ledger
    if tx.chain_id != ledger.chain_id:
        said = "no chain id" if tx.chain_id is None else f"chain id {tx.chain_id}"
        raise InvalidInput(f"the transaction is signed for {said}, not this network's "
                           f"({ledger.chain_id}): refused, nothing sent")  # fmt: skip
    if not same(tx.sender, session):
        raise AccessDenied("the transaction is signed by another key than your signed-in "
                           "wallet's: refused, nothing sent")  # fmt: skip
    contracts = {ledger.token.address.lower(): (ledger.token, _TOKEN_FUNCTIONS)}
    if ledger.consent is not None:
        contracts[ledger.consent.address.lower()] = (ledger.consent, _CONSENT_FUNCTIONS)
    if tx.to is None or tx.to.lower() not in contracts:
        raise InvalidInput("the transaction is not addressed to this network's consent or "
                           "record contract: refused, nothing sent")  # fmt: skip
    if tx.value:
        raise InvalidInput("the transaction carries a payment; a patient's action carries "
                           "none: refused, nothing sent")  # fmt: skip
    contract, allowed = contracts[tx.to.lower()]
    try:
        fn, args = contract.decode_function_input(tx.data)
        name = fn.fn_name
    except Exception:  # noqa: BLE001 - unknown selector or malformed arguments
        name, args = None, {}
    if name not in allowed:
        raise InvalidInput("the transaction calls a function that is not a patient's action "
                           f"({', '.join(ACTIONS)}): refused, nothing sent")  # fmt: skip
    args = {k: (Web3.to_checksum_address(v) if isinstance(v, str) and Web3.is_address(v)
                else v) for k, v in dict(args).items()}  # fmt: skip
    _recheck(net, session, name, args)
    return allowed[name], name, args


def _recheck(net: Network, me: str, name: str, a: dict[str, Any]) -> None:
    """The service's rules that the contract does not hold, on the signed call itself (a
    device may sign something other than what was prepared)."""
    from healthnft.ledger.client import KIND_NAMES, POLICY_KINDS

    now = int(time.time())
    longest = sharing.MAX_GRANT_DAYS * DAY + 3600  # an hour's slack for a slow signer
    if name in ("share_tokens", "share_category"):
        grantee = net.participant(a["grantee"])
        if same(grantee.address, me):
            raise InvalidInput("you cannot share a record with yourself")
        if not now < int(a["expires"]) <= now + longest:
            raise InvalidInput(f"the grant's expiry must be within {sharing.MAX_GRANT_DAYS} "
                               "days from now (ten years, the longest access this network "
                               "grants)")  # fmt: skip
    elif name == "add_policy":
        if KIND_NAMES.get(int(a["grantee_kind"])) not in POLICY_KINDS:
            raise InvalidInput("a policy names an institution kind")
        if not 0 < int(a["duration"]) <= longest or not now < int(a["valid_until"]) <= (
                now + longest):
            raise InvalidInput(f"a policy's access and validity last 1 to "
                               f"{sharing.MAX_GRANT_DAYS} days")  # fmt: skip
    elif name == "transferFrom":
        if not same(a["owner"], me):
            raise AccessDenied("a transfer you sign moves your own record only")
        if same(a["to"], me):
            raise InvalidInput("the record is already yours")
        net.participant(a["to"])


def send(net: Network, session: str, raw: str | bytes) -> Relayed:
    """Relay ``raw``, signed on the device of ``session``'s account, once it passes every
    check (see :func:`_check_relayable`); its result once mined. Idempotent: the same
    bytes again answer the first result."""
    tx = decode(raw)
    action, name, args = _check_relayable(net, session, tx)
    key = "relay:" + tx.tx_hash.hex()
    ops = net.operations()
    kept = ops.get(key)
    if kept is not None and kept.result is not None:
        return Relayed(**kept.result)
    data = bytes.fromhex(raw.strip().removeprefix("0x")) if isinstance(raw, str) else bytes(raw)
    ledger = net.ledger
    mined = ledger.receipt_of(tx.tx_hash)
    actions = None
    if name in ("transferFrom", "burn"):
        from healthnft.wallet.actions import OwnerActions

        actions = OwnerActions(ledger, net.catalog, net.blobs, net.custodians())
    if name == "transferFrom" and mined is None:
        _stage_transfer(net, actions, int(args["token_id"]), args["to"])
    ops.sent(key, action, tx.tx_hash, data, tx.tx_hash, tx.nonce)
    try:
        receipt = ledger.relay(data, tx.sender, tx.nonce, tx.tx_hash, what=action)
    except LedgerError:  # refused or reverted: the chain did not move the token
        if name == "transferFrom" and actions is not None:
            actions.drop_staged(int(args["token_id"]))
        raise
    # Unavailable (not mined in time) keeps the staged copy: the retry finds it.
    result = _settle(net, actions, name, args, receipt)
    done = Relayed(action, "0x" + tx.tx_hash.hex(), int(receipt["blockNumber"]), result)
    ops.done(key, done.as_dict())
    return done


def _stage_transfer(net: Network, actions: Any, token_id: int, to: str) -> None:
    """The record re-encrypted for ``to`` before the chain moves it, by its issuer's key
    (this node's hospital: the owner's key is on their device)."""
    row = net.catalog.record(token_id)
    if row is None:  # held at another node: that node re-encrypts it
        return
    if not net.has_key(row.issuer):
        raise AccessDenied(f"token {token_id}: this node cannot re-encrypt it for its new "
                           "owner (its issuer's key is not here)")  # fmt: skip
    issuer = net.identity(row.issuer)
    recipient = net.participant(to)
    actions.stage_transfer(issuer, token_id, recipient.address, recipient.enc_key,
                           issuer.enc_public)  # fmt: skip


def _settle(net: Network, actions: Any, name: str, args: dict[str, Any],
            receipt: dict) -> dict[str, Any]:  # fmt: skip
    """What the mined transaction made, and this node's own state brought along."""
    consent = _consent(net)
    if name in ("share_tokens", "share_category"):
        return {"grant_id": consent.grant_created(receipt), "expires": int(args["expires"])}
    if name == "approve":
        req = consent.get_request(int(args["request_id"]))
        return {"request_id": int(args["request_id"]),
                "grant_id": req.grant_id if req else None}  # fmt: skip
    if name == "add_policy":
        return {"policy": consent.policy_added(receipt)}
    if name in ("revoke", "decline", "remove_policy"):
        key = {"revoke": "grant_id", "decline": "request_id", "remove_policy": "policy"}[name]
        value = args.get("grant_id", args.get("request_id", args.get("index")))
        return {key: int(value)}
    token_id = int(args["token_id"])
    if name == "transferFrom":
        row = net.catalog.record(token_id)
        if row is not None and not same(row.owner, args["to"]):
            if net.catalog.staged_transfer(token_id) is None:  # mined before it was staged
                _stage_transfer(net, actions, token_id, args["to"])
            actions.finish_transfer(token_id)
            from healthnft.services.custodians import deliver_if_remote

            deliver_if_remote(net)  # the re-split shares, as after a hosted transfer
        return {"token_id": token_id, "owner": args["to"]}
    if name == "burn":
        if net.catalog.record(token_id) is not None:
            actions.shred(token_id)
        return {"token_id": token_id, "burned": True}
    if name == "approve_amendment":
        return {"token_id": token_id, "issuer": args["issuer"]}
    raise LedgerError(f"no settlement for {name}")  # unreachable: _check_relayable allows these
