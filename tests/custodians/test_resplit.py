"""A record re-split for a new owner reaches custodians that run as services of their own
(issue 14, point 4): on anvil with three `healthnft custodian serve` processes and a
hospital home in this process.

- a record transferred to a second patient, then shared by its new owner, is opened
  by the grantee through the remote custodians (they were sent its re-split shares);
- after a guardian recovery executes, the custodians release each record's key to the
  recovered account (each release logged on chain: the access log shows the re-key),
  the re-keyed record's new shares reach them, and the recovered owner's new grant is
  released by them;
- a transfer the hospital re-sealed for a patient whose key is on their device (as the
  relay does) reaches them signed by the issuer;
- a replacement of a token's shares sent by someone who neither owns the token nor
  issued it, or naming an owner the chain does not give it to, is refused by the
  service, and what it holds is unchanged;
- a custodian down during a mint and a transfer gets the current share when it is
  back, and a replayed mint delivery does not put the old key's share back.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account

from conftest import LAB_OBSERVATION, CustodianService, need_tool
from healthnft import keys
from healthnft.consent import open_as_grantee
from healthnft.consent.delivery import sign_delivery, sign_replacement
from healthnft.consent.remote import RemoteCustodian
from healthnft.errors import AccessDenied
from healthnft.ledger import nodes
from healthnft.ledger.consent import RECOVERY_PURPOSE, Consent
from healthnft.ledger.recovery import DEFAULT_DELAY_S
from healthnft.network import Network
from healthnft.services import minting, records, recovery, sharing
from healthnft.services.custodians import deliver_pending
from healthnft.wallet.actions import OwnerActions

PASS = "resplit-passphrase"
ENV = {"HEALTHNFT_PASSPHRASE": PASS}


class Served(CustodianService):
    """One `healthnft custodian serve` process over its own home."""

    def __init__(self, home: Path) -> None:
        super().__init__(home, ENV)


@dataclass
class World:
    net: Network
    anvil: nodes.NodeProcess
    custodians: list[Served]
    hospital: str
    research: str
    ann: str
    ben: str

    def mint(self, patient: str, root: Path, name: str) -> int:
        source = root / f"{name}.json"
        source.write_text(json.dumps({**LAB_OBSERVATION, "id": name}))
        minted = minting.mint_files(self.net, "General", patient, [source], PASS)
        assert minted.custody_pending == []
        return minted.token_ids[0]

    def remote(self, n: int) -> RemoteCustodian:
        return RemoteCustodian(self.net.config["custodians"][n], self.custodians[n].url)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    need_tool("anvil")
    root = tmp_path_factory.mktemp("resplit")
    admin = Account.create()
    anvil = nodes.start_anvil(root / "anvil", prefund=[admin.address])
    served: list[Served] = []
    net = None
    try:
        net = Network.create(root / "hospital", PASS, rpc_url=anvil.rpc_url,
                             admin_secret=bytes(admin.key))  # fmt: skip
        for n in range(3):
            custodian = Served(root / f"custodian{n}")
            made = custodian.init(net.files.config_path)
            net.add_remote_custodian(made["address"], bytes.fromhex(made["enc_key"]),
                                     custodian.url, PASS)  # fmt: skip
            custodian.start()
            served.append(custodian)
        assert {type(c) for c in net.custodian_services()} == {RemoteCustodian}
        hospital = net.add_participant("hospital", "General", PASS).address
        ann = net.add_participant("patient", "Ann", PASS).address
        ben = net.add_participant("patient", "Ben", PASS).address
        research = net.add_participant("research", "Lab", PASS).address
        yield World(net, anvil, served, hospital, research, ann, ben)
    finally:
        for custodian in served:
            custodian.stop()
        if net is not None:
            net.close()
        anvil.stop()


def _share_and_open(world: World, owner: str, token: int) -> None:
    """``owner`` grants the research lab ``token``; the lab opens it through the remote
    custodians (the content is the record's)."""
    sharing.share(world.net, owner, world.research, "research", 30, token_ids=[token],
                  passphrase=PASS)  # fmt: skip
    opened = records.open_record(world.net, world.research, token, PASS)
    assert opened.token_id == token and opened.resource["resourceType"] == "Observation"
    assert opened.resource["code"] == LAB_OBSERVATION["code"]


def test_a_transferred_record_shared_by_its_new_owner_opens_through_remote_custodians(
    world: World, tmp_path: Path
) -> None:
    token = world.mint(world.ann, tmp_path, "transfer")
    done = records.transfer(world.net, world.ann, token, world.ben, PASS)
    assert (done.owner, done.custody_pending) == (world.ben, [])
    key_ref = world.net.catalog.catalogue.record(token).key_ref
    assert all(world.net.catalog.custody.delivered(key_ref, a)
               for a in world.net.config["custodians"])  # fmt: skip
    _share_and_open(world, world.ben, token)
    # Nothing is left to send: a second run delivers nothing again.
    assert deliver_pending(world.net, PASS).as_dict() == {"delivered": 0, "pending": []}


def test_a_transfer_re_sealed_by_the_issuer_reaches_the_custodians_signed_by_it(
    world: World, tmp_path: Path
) -> None:
    """The node's way for a patient whose key is on their device (the relay): the
    hospital re-seals the record with its own key, the owner's signed transfer moves
    the token, and the node, holding no key of the new owner, signs the replacement
    with the issuer's key."""
    net = world.net
    dee = keys.identity_from_secret(keys.new_secret())  # on Dee's device only
    net.admit_member(net.admin(PASS), dee.address, "patient", dee.enc_public, dee.did_public)
    assert not net.has_key(dee.address)
    token = world.mint(world.ann, tmp_path, "device")
    actions = OwnerActions(net.ledger, net.catalog, net.blobs, net.custodians())
    hospital = net.identity(world.hospital, PASS)
    actions.stage_transfer(hospital, token, dee.address, dee.enc_public, hospital.enc_public)
    net.ledger.transact(net.identity(world.ann, PASS).account,
                        net.ledger.transfer_call(world.ann, dee.address, token))  # fmt: skip
    actions.finish_transfer(token)
    assert deliver_pending(net, PASS).as_dict() == {"delivered": 3, "pending": []}
    expires = int(time.time()) + 86400 + 10 * DEFAULT_DELAY_S  # past the earlier travel
    Consent(net.ledger).share_tokens(dee.account, world.research, [token], "research", expires)
    opened = records.open_record(net, world.research, token, PASS)
    assert opened.resource["id"] == "device"


def _wrong_replacements(world: World, token: int) -> list[tuple[dict, str]]:
    """Replacements of custodian 0's share of ``token`` (Ben's now) that must be refused,
    with what the refusal says."""
    net = world.net
    custodian = net.config["custodians"][0]
    row = net.catalog.catalogue.record(token)
    wrapped, sealed = net.catalog.custody.batch_shares(row.key_ref, custodian)
    share = {"token_id": token, "commitment": row.commitment.hex(), "proof": row.proof.hex(),
             "category": row.category, "sealed_share": dict(sealed)[token].hex(),
             "original": None}  # fmt: skip

    def signed(signer: str, owner: str) -> dict:
        return sign_replacement(net.identity(signer, PASS), custodian, world.hospital, owner,
                                row.key_ref, wrapped, share)  # fmt: skip

    return [
        # The old owner, naming itself: the chain gives the token to Ben.
        (signed(world.ann, world.ann), f"the chain does not give token {token} to {world.ann}"),
        # A stranger naming the true owner: it neither owns nor issued the token.
        (signed(world.research, world.ben),
         f"{world.research} neither owns token {token} nor issued it"),
    ]  # fmt: skip


def test_a_replacement_from_who_does_not_own_the_token_is_refused(
    world: World, tmp_path: Path
) -> None:
    token = world.mint(world.ann, tmp_path, "forged")
    records.transfer(world.net, world.ann, token, world.ben, PASS)
    remote = world.remote(0)
    held = world.custodians[0].status()["shares"]
    for message, says in _wrong_replacements(world, token):
        with pytest.raises(AccessDenied, match=says):
            remote.replace(message)
    assert world.custodians[0].status()["shares"] == held  # nothing kept
    # The same share, signed by the token's issuer (the hospital node that re-seals a
    # transfer its patient signed on their device), is taken (again: no new row).
    message, _ = _wrong_replacements(world, token)[0]
    row = world.net.catalog.catalogue.record(token)
    wrapped, _ = world.net.catalog.custody.batch_shares(row.key_ref, remote.address)
    by_issuer = sign_replacement(world.net.identity(world.hospital, PASS), remote.address,
                                 world.hospital, world.ben, row.key_ref, wrapped,
                                 message["share"])  # fmt: skip
    remote.replace(by_issuer)
    assert world.custodians[0].status()["shares"] == held
    _share_and_open(world, world.ben, token)


def test_a_custodian_down_meanwhile_gets_the_new_share_and_a_replayed_mint_changes_nothing(
    world: World, tmp_path: Path
) -> None:
    """Custodian 0 is down while a record is minted and transferred: when it is back the
    pending deliveries bring it the record's current share only; the mint's delivery,
    replayed afterwards by whoever captured it, does not put the old key's share back."""
    net, down = world.net, world.custodians[0]
    address = net.config["custodians"][0]
    down.stop()
    source = tmp_path / "down.json"
    source.write_text(json.dumps({**LAB_OBSERVATION, "id": "down"}))
    minted = minting.mint_files(net, "General", world.ann, [source], PASS)
    assert len(minted.custody_pending) == 1 and down.url in minted.custody_pending[0]
    token = minted.token_ids[0]
    row = net.catalog.catalogue.record(token)
    wrapped, sealed = net.catalog.custody.batch_shares(row.batch_ref, address)
    captured = sign_delivery(net.identity(world.hospital, PASS), address, row.batch_ref, wrapped,
                             [{"token_id": token, "commitment": row.commitment.hex(),
                               "proof": row.proof.hex(), "category": row.category,
                               "sealed_share": dict(sealed)[token].hex()}])  # fmt: skip
    assert len(records.transfer(net, world.ann, token, world.ben, PASS).custody_pending) == 1
    down.start()
    assert deliver_pending(net, PASS).pending == []
    held = down.status()["shares"]
    assert world.remote(0).deliver(captured) == 1  # it checks out: acknowledged...
    assert down.status()["shares"] == held  # ...and not kept over the newer share
    sharing.share(net, world.ben, world.research, "research", 30, token_ids=[token],
                  passphrase=PASS)  # fmt: skip
    # Custodian 0 alone with one other must open it: its share is the current key's.
    members = net.custodian_services()
    opened = open_as_grantee(net.identity(world.research, PASS), token, members[:2], 2,
                             net.ledger, net.catalog, net.blobs)  # fmt: skip
    assert opened.resource["id"] == "down"


def _travel(world: World, seconds: int) -> None:
    nodes.rpc_call(world.anvil.rpc_url, "evm_increaseTime", [seconds])
    nodes.rpc_call(world.anvil.rpc_url, "evm_mine")


def _recovery_logs(world: World, owner: str, token: int, timeout_s: float = 30.0) -> list[dict]:
    """The access log's recovery entries for ``token`` once all custodians' logs are
    mined (bounded in time)."""
    deadline = time.monotonic() + timeout_s
    while True:
        pending = sum(c.status()["access_logs"]["pending"] for c in world.custodians)
        logs = [e for e in Consent(world.net.ledger).access_log(owner)
                if e["token_id"] == token and e["grant_id"] == 0]  # fmt: skip
        if not pending or time.monotonic() > deadline:
            return logs
        time.sleep(0.2)


def test_after_a_recovery_the_recovered_owners_grant_is_released_by_remote_custodians(
    world: World, tmp_path: Path
) -> None:
    net = world.net
    cat = net.add_participant("patient", "Cat", PASS).address
    token = world.mint(cat, tmp_path, "recovery")
    recovery.set_guardians(net, cat, [world.hospital, world.research], 2, PASS)
    phone = recovery.new_key(net, "cat-phone", PASS).address
    proposed = recovery.propose(net, world.hospital, cat, phone, passphrase=PASS)
    recovery.approve(net, world.research, proposed.recovery_id, PASS)
    _travel(world, DEFAULT_DELAY_S + 60)
    done = recovery.execute(net, proposed.recovery_id, passphrase=PASS)
    assert (done.state, done.records_rekeyed, done.records_pending, done.custody_pending) == (
        "executed", [token], [], [])  # fmt: skip
    # Each custodian that released the record's key to the recovered account logged it:
    # the patient's access log shows the re-key, as the patient's own access.
    logged = _recovery_logs(world, phone, token)
    assert len(logged) >= 2  # k = 2 of 3 (a third may have been asked as well)
    assert {(e["grantee"], e["purpose"]) for e in logged} == {(phone, RECOVERY_PURPOSE)}
    # The re-keyed record's new shares reached the custodians: a grant by the recovered
    # owner is released by them.
    _share_and_open(world, phone, token)
