"""The minter overlaps batches: batch n+1 is prepared while batch n waits for its block.

On a real node (anvil from npm) with a block period, so a receipt genuinely arrives
later than its submission:

* the order of events shows the overlap (every batch prepared and sent before the
  first receipt is settled, receipts settled in order) and the batches share blocks;
* a batch that reverts (another issuer took its token range) fails the mint with
  nothing half-done: the later batch already sent, whose range is right, is minted and
  marked; the reverted one is rolled back; a rerun mints what is missing, once;
* a batch the node refuses is offered again in its turn, after the batches before it
  are minted: accepted, the mint completes; refused again, it is rolled back;
* a process killed between the send of batch n and batch n+1 (real SIGKILLs at the
  pipeline's ``HEALTHNFT_CRASH_AT`` points) is settled by the rerun: no duplicate, no
  orphan, no gap.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account

from conftest import REPO, need_tool, run_cli
from healthnft.errors import LedgerError, MintInterrupted
from healthnft.ingest import ingest
from healthnft.ledger import merkle, nodes
from healthnft.minting.pipeline import CRASH_ENV, MAX_IN_FLIGHT
from healthnft.network import DEMO_PASSPHRASE, Network
from healthnft.records import Record
from healthnft.sample import write_sample

BATCHES = 3
assert MAX_IN_FLIGHT >= BATCHES, "the ordering test expects every batch in flight at once"

# Mints the sample bundle (argv[3]) into the patient (argv[2]) of the home (argv[1]) in
# batches of argv[4], as the issuer "General": the pipeline itself, in its own process,
# so HEALTHNFT_CRASH_AT can kill it for real.
_MINT = """
import json, sys
from pathlib import Path
from healthnft.ingest import ingest
from healthnft.network import Network

home, patient, data, batch = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
net = Network.open(home)
try:
    records = ingest([data]).patients[0].records
    owner = net.patient(patient)
    issuer = net.identity(net.issuer_by_name("General").address)
    res = net.minter().mint(issuer, owner.address, owner.enc_key, records, batch_size=batch)
    print(json.dumps({"minted": res.minted, "skipped": res.skipped, "batches": res.batches,
                      "token_ids": res.token_ids}))
finally:
    net.close()
"""


@dataclass
class Home:
    net: Network
    path: Path
    patient: str
    records: list[Record]
    data: Path
    batch: int  # records per batch: BATCHES batches in all


@contextlib.contextmanager
def _home(tmp_path: Path, block_time_s: float | None) -> Iterator[Home]:
    """A home on anvil (a block every ``block_time_s``, or one per transaction), a
    hospital "General" and a patient, and one sample bundle to mint in BATCHES batches."""
    need_tool("anvil")
    admin = Account.create()
    anvil = nodes.start_anvil(tmp_path / "anvil", prefund=[admin.address],
                              block_time_s=block_time_s)  # fmt: skip
    net = None
    try:
        path = tmp_path / "home"
        net = Network.create(path, DEMO_PASSPHRASE, demo=True, rpc_url=anvil.rpc_url,
                             admin_secret=bytes(admin.key))  # fmt: skip
        net.add_participant("hospital", "General")
        patient = net.add_participant("patient", "P").address
        data = write_sample(tmp_path / "data", patients=1)
        records = ingest([data]).patients[0].records
        assert len(records) >= BATCHES
        yield Home(net, path, patient, records, data, -(-len(records) // BATCHES))
    finally:
        if net is not None:
            net.close()
        anvil.stop()


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    """On a chain that seals a block every second: receipts come later than sends."""
    with _home(tmp_path, 1) as made:
        yield made


@pytest.fixture
def instant_home(tmp_path: Path) -> Iterator[Home]:
    """On a chain that mines each transaction as it arrives."""
    with _home(tmp_path, None) as made:
        yield made


def _mint(h: Home, **kwargs: object):
    owner = h.net.patient(h.patient)
    issuer = h.net.identity(h.net.issuer_by_name("General").address)
    return h.net.minter().mint(issuer, owner.address, owner.enc_key, h.records,
                               batch_size=h.batch, **kwargs)  # fmt: skip


def _settled(h: Home, net: Network | None = None) -> None:
    """No duplicate, no orphan, no gap: journal, vault and chain agree on every token."""
    net = net or h.net
    catalog = net.catalog
    assert catalog.unfinished_batches() == []
    tokens = sorted(r["token_id"] for r in net.wallet().list(h.patient))
    assert tokens == list(range(1, len(h.records) + 1))
    assert net.ledger.next_token_id() == len(h.records) + 1
    assert net.ledger.balance_of(h.patient) == len(h.records)
    for batch in catalog.minted_batches_of(h.patient):
        info = net.ledger.batch_of(batch.start_token)
        assert info is not None
        assert (info.start, info.end, info.root) == (batch.start_token,
                                                     batch.start_token + batch.count,
                                                     batch.root)  # fmt: skip
    stored = {r[0] for r in net.blobs._conn.execute("SELECT digest FROM blobs")}
    assert stored == catalog.referenced_digests()  # every ciphertext leads somewhere


def test_the_next_batch_is_prepared_while_the_previous_one_waits_for_its_block(
    home: Home,
) -> None:
    events: list[tuple[str, int]] = []
    minter_catalog, ledger = home.net.catalog, home.net.ledger
    prepare, confirm = minter_catalog.prepare_batch, ledger.confirm

    def prepared(batch, *args, **kwargs):
        prepare(batch, *args, **kwargs)
        events.append(("prepared", batch.start_token))

    def confirmed(sent, *args, **kwargs):
        receipt = confirm(sent, *args, **kwargs)
        events.append(("receipt", sent.nonce))
        return receipt

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(minter_catalog, "prepare_batch", prepared)
        mp.setattr(ledger, "confirm", confirmed)
        progress: list[int] = []
        result = _mint(home, progress=progress.append)

    assert result.batches == BATCHES and result.minted == len(home.records)
    kinds = [kind for kind, _ in events]
    # Every batch was prepared (and sent) before the first receipt was read ...
    assert kinds == ["prepared"] * BATCHES + ["receipt"] * BATCHES, events
    # ... in consecutive token ranges, and the receipts were settled in order.
    starts = [v for k, v in events if k == "prepared"]
    assert starts == [1 + n * home.batch for n in range(BATCHES)]
    nonces = [v for k, v in events if k == "receipt"]
    assert nonces == sorted(nonces) and len(set(nonces)) == BATCHES
    assert progress == [min(home.batch, len(home.records) - n * home.batch)
                        for n in range(BATCHES)]  # fmt: skip
    # Sent without waiting, they shared blocks: fewer waits than batches.
    blocks = {int(ledger.w3.eth.get_transaction_receipt(b.tx_hash)["blockNumber"])
              for b in home.net.catalog.minted_batches_of(home.patient)}  # fmt: skip
    assert len(blocks) < BATCHES
    _settled(home)


def test_a_reverted_batch_fails_the_mint_and_the_batches_sent_after_it_are_settled(
    instant_home: Home,
) -> None:
    """Batch 2's range is taken by another issuer just before it is sent: it reverts.
    The other issuer took as many tokens as batch 2 holds, so batch 3, sent behind it,
    starts where the chain's counter then is: it is minted and marked; batch 2 is
    rolled back; the error is batch 2's."""
    home = instant_home
    net, ledger = home.net, home.net.ledger
    other = net.identity(net.add_participant("hospital", "Other").address)
    general = net.issuer_by_name("General").address.lower()
    submit = ledger.submit
    submitted: set[bytes] = set()  # the mints General sent (a re-send counts once)

    def submit_taking_batch_2s_range(sent, *args, **kwargs):
        if sent.sender.lower() == general and sent.tx_hash not in submitted:
            submitted.add(sent.tx_hash)
            if len(submitted) == 2:  # another issuer mints batch 2's worth at its start
                _mint_elsewhere(ledger, other, home.patient, home.batch)
        return submit(sent, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ledger, "submit", submit_taking_batch_2s_range)
        with pytest.raises(MintInterrupted, match="rolled back.*token range moved"):
            _mint(home)
    assert len(submitted) == BATCHES

    catalog = net.catalog
    assert catalog.unfinished_batches() == []  # nothing half-done
    minted = catalog.minted_batches_of(home.patient)
    third_start = 1 + 2 * home.batch  # its range was computed before the other mint ...
    assert [b.start_token for b in minted] == [1, third_start]  # ... and is the chain's
    for batch in minted:
        info = ledger.batch_of(batch.start_token)
        assert info is not None and info.root == batch.root
    stored = {r[0] for r in net.blobs._conn.execute("SELECT digest FROM blobs")}
    assert stored == catalog.referenced_digests()

    again = _mint(home)  # the rerun mints batch 2's records, once
    assert again.minted == home.batch and again.skipped == len(home.records) - home.batch
    assert catalog.unfinished_batches() == []
    assert ledger.balance_of(home.patient) == len(home.records) + home.batch  # and Other's
    assert len(net.wallet().list(home.patient)) == len(home.records)


@pytest.mark.parametrize("refusals", [1, 2])
def test_a_batch_the_node_refuses_is_settled_after_the_ones_before_it(
    instant_home: Home, refusals: int
) -> None:
    """The node refuses batch 2's transaction (as a full pool would). It is offered once
    more when its turn comes to be settled, after batch 1 is minted: accepted then, the
    mint goes on to batch 3 and completes; refused again, batch 2 is rolled back, batch 3
    never begun, and the rerun mints the rest with the nonce the refusal gave back."""
    home = instant_home
    ledger = home.net.ledger
    general = home.net.issuer_by_name("General").address.lower()
    submit = ledger.submit
    mints: list[bytes] = []  # General's mints, in the order first offered
    refused: list[bytes] = []

    def refusing_the_second_mint(sent, *args, **kwargs):
        if sent.sender.lower() == general and sent.tx_hash not in mints:
            mints.append(sent.tx_hash)
        if len(mints) > 1 and sent.tx_hash == mints[1] and len(refused) < refusals:
            refused.append(sent.tx_hash)
            if sent.sender:
                ledger.nonces.release(sent.sender, sent.nonce)  # as a refusal does
            raise LedgerError("transaction rejected: txpool is full")
        return submit(sent, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ledger, "submit", refusing_the_second_mint)
        if refusals == 1:
            done = _mint(home)
            assert (done.minted, done.batches) == (len(home.records), BATCHES)
            assert len(mints) == BATCHES and len(refused) == 1
            _settled(home)
            return
        with pytest.raises(MintInterrupted, match="rolled back.*txpool is full"):
            _mint(home)
    assert len(mints) == 2  # batch 3 was not prepared
    catalog = home.net.catalog
    assert catalog.unfinished_batches() == []
    assert [b.start_token for b in catalog.minted_batches_of(home.patient)] == [1]
    again = _mint(home)
    assert again.minted == len(home.records) - home.batch
    _settled(home)


def _mint_elsewhere(ledger, issuer, owner: str, count: int) -> None:
    """``issuer`` mints ``count`` tokens to ``owner`` at the chain's counter, directly."""
    start = ledger.next_token_id()
    root, _ = merkle.build([merkle.leaf_hash(start + i, os.urandom(32)) for i in range(count)])
    ledger.transact(issuer.account, ledger.mint_call(owner, count, start, root))


def _run_mint(h: Home, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash_at:
        env[CRASH_ENV] = crash_at
    return subprocess.run(
        [sys.executable, "-c", _MINT, str(h.path), h.patient, str(h.data), str(h.batch)],
        capture_output=True, text=True, env=env, cwd=str(REPO), timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("point", [
    "after-submit@1",  # batch 1 handed to the node, batch 2 not begun
    "after-encrypt@2",  # batch 1 in flight, batch 2 journaled prepared and stored
    "before-broadcast@2",  # batch 1 in flight, batch 2 signed and journaled sent
    "after-submit@2",  # batches 1 and 2 in flight, no receipt read
])  # fmt: skip
def test_a_mint_killed_between_two_batches_is_settled_by_the_rerun(home: Home,
                                                                  point: str) -> None:  # fmt: skip
    home.net.close()  # the mint runs in other processes
    killed = _run_mint(home, point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]

    net = Network.open(home.path)
    try:
        left = net.catalog.unfinished_batches()
        assert left and left[0].state == "sent"  # batch 1 was sent before the kill
    finally:
        net.close()

    rerun = _run_mint(home)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    done = json.loads(rerun.stdout)
    assert done["minted"] + done["skipped"] == len(home.records)

    net = Network.open(home.path)
    try:
        _settled(home, net)
    finally:
        net.close()
    doctor = json.loads(run_cli(home.path, "doctor", "--json").stdout)
    assert doctor["healthy"] and doctor["findings"] == [], doctor
